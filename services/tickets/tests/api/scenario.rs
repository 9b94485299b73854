//! One customer journey through the whole service, against a real profiles
//! process: intake → classification → auto-assignment → SLA pause/resume →
//! breach → escalation → resolve → follow-up → survey → metrics, and the
//! events a consumer sees along the way.

use std::time::Duration;

use crm_proto::crm::{
    events::v1::{SubscribeRequest, event_service_client::EventServiceClient},
    profiles::v1::CustomerCategory,
    tickets::v1::{
        self as pb, classification_rule_service_client::ClassificationRuleServiceClient, follow_up_service_client::FollowUpServiceClient,
        report_service_client::ReportServiceClient, team_service_client::TeamServiceClient,
    },
};

use crate::{
    helpers::{TestApp, spawn_app},
    sla::{instant, policy, secs},
    surveys::{answer, survey},
    teams::set_member,
};

async fn intake(suite: &TestApp, customer: &str, subject: &str, kind: pb::TicketType) -> pb::Ticket {
    let ticket = pb::Ticket {
        customer: customer.into(),
        subject: subject.into(),
        r#type: kind as i32,
        channel: pb::Channel::Hotline as i32,
        ..Default::default()
    };
    let request = suite.as_roles(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }, &["agent"]);
    suite.tickets.clone().create_ticket(request).await.unwrap().into_inner().ticket.unwrap()
}

/// Polls the timeline until an entry of `kind` whose detail starts with `detail` shows up.
async fn wait_for(suite: &TestApp, ticket: &str, kind: &str, detail: &str) -> pb::TicketEvent {
    for _ in 0..150 {
        if let Some(e) = suite.timeline(ticket).await.into_iter().find(|e| e.kind == kind && e.detail.starts_with(detail)) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {kind} {detail:?} on {ticket}: {:?}", suite.timeline(ticket).await);
}

/// Event types recorded for `subject`, in stream order, read until the stream goes quiet.
async fn events_of(suite: &TestApp, subject: &str) -> Vec<String> {
    let mut stream = EventServiceClient::new(suite.channel.clone())
        .subscribe(suite.admin(SubscribeRequest { after_position: 0, types: vec![] }))
        .await
        .unwrap()
        .into_inner();
    let mut types = Vec::new();
    while let Ok(Ok(Some(message))) = tokio::time::timeout(Duration::from_millis(1500), stream.message()).await {
        let event = message.event.unwrap();
        if event.subject == subject {
            types.push(event.r#type.trim_start_matches("crm.tickets.v1.").to_owned());
        }
    }
    types
}

#[tokio::test]
async fn a_vip_complaint_goes_from_intake_to_metrics() {
    // Arrange: a billing team of two agents (one ticket each) led by lena, a
    // rule sending refunds to it, and a tight SLA for urgent tickets.
    let suite = spawn_app().await;
    let team = pb::Team {
        display_name: "Billing".into(),
        lead: "lena".into(),
        assignment_strategy: pb::AssignmentStrategy::RoundRobin as i32,
        ..Default::default()
    };
    let billing = TeamServiceClient::new(suite.channel.clone())
        .create_team(suite.admin(pb::CreateTeamRequest { request_id: String::new(), team: Some(team) }))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap()
        .name;
    set_member(&suite, &billing, "alice", 1, &[], true).await;
    set_member(&suite, &billing, "bob", 1, &[], true).await;
    let rule = pb::ClassificationRule {
        display_name: "Refunds to billing".into(),
        keywords: vec!["refund".into()],
        set_category: "billing".into(),
        set_team: billing.clone(),
        ..Default::default()
    };
    ClassificationRuleServiceClient::new(suite.channel.clone())
        .create_classification_rule(suite.admin(pb::CreateClassificationRuleRequest { request_id: String::new(), rule: Some(rule) }))
        .await
        .unwrap();
    policy(&suite, pb::Priority::Urgent, "", "", secs(2), secs(60), 0.5).await;
    let start = chrono::Utc::now() - chrono::Duration::minutes(1);
    let vip = suite.customer_in("Big Spender", CustomerCategory::Vip).await;
    let regular = suite.customer("Ada").await;

    // Intake: classification, priority, SLA and round-robin dispatch; the third waits in the queue.
    let complaint = intake(&suite, &vip, "I want a REFUND now", pb::TicketType::Complaint).await;
    assert_eq!((complaint.category.as_str(), complaint.team.as_str()), ("billing", billing.as_str()));
    assert_eq!(complaint.priority, pb::Priority::Urgent as i32, "a VIP complaint is urgent");
    assert!(!complaint.sla_policy.is_empty() && complaint.first_response_due.is_some());
    let question = intake(&suite, &regular, "Refund status?", pb::TicketType::Question).await;
    let queued = intake(&suite, &regular, "Another refund", pb::TicketType::Request).await;
    let mut assignees = [complaint.assignee.clone(), question.assignee.clone()];
    assignees.sort();
    assert_eq!(assignees, ["alice", "bob"]);
    assert_eq!(queued.assignee, "", "both agents are at capacity");

    // Waiting on the customer pauses the clock.
    let pending = suite.transition(&complaint.name, pb::Status::Pending).await.unwrap();
    assert!(pending.first_response_due.is_none());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let resumed = suite.transition(&complaint.name, pb::Status::Open).await.unwrap();
    let moved = instant(&resumed.first_response_due) - instant(&complaint.first_response_due);
    assert!(moved >= chrono::Duration::milliseconds(1100), "the pause moved the due time by {moved}");

    // No reply within two seconds: the job records the breach and escalates to the lead.
    let breach = wait_for(&suite, &complaint.name, "SLA_BREACHED", "first_response").await;
    assert!(breach.detail.ends_with("→ lena (team lead)"), "{}", breach.detail);
    let escalated = suite.get(&complaint.name).await;
    assert_eq!((escalated.assignee.as_str(), escalated.first_response_sla), ("lena", pb::SlaState::Breached as i32));

    // The agent the lead took over from has capacity again: the queued ticket goes to them.
    assert_eq!(suite.get(&queued.name).await.assignee, complaint.assignee, "the queue drains as capacity frees");

    // Reply and resolve.
    suite.comment(&complaint.name, "Your refund is on its way", true).await;
    suite.transition(&complaint.name, pb::Status::Resolved).await.unwrap();
    suite.transition(&question.name, pb::Status::Resolved).await.unwrap();

    // Follow-up visit by the resolving agent, then the customer's survey.
    let mut follow_ups = FollowUpServiceClient::new(suite.channel.clone());
    let due = follow_ups
        .list_follow_ups(suite.as_roles(
            pb::ListFollowUpsRequest {
                page_size: 0,
                page_token: String::new(),
                agent: "lena".into(),
                due_only: true,
                include_closed: false,
            },
            &["agent"],
        ))
        .await
        .unwrap()
        .into_inner()
        .follow_ups;
    assert_eq!(due.len(), 1);
    let outcome =
        pb::CompleteFollowUpRequest { name: due[0].name.clone(), reached: true, satisfied: true, notes: "refund received".into() };
    follow_ups.complete_follow_up(suite.as_roles(outcome, &["agent"])).await.unwrap();
    answer(&suite, &survey(&suite, &complaint.name).await.answer_token, 2, Some(3)).await.unwrap();
    assert_eq!(suite.get(&complaint.name).await.status, pb::Status::Resolved as i32);

    // Metrics: the manager's view of the day.
    let period = pb::GetServiceMetricsRequest {
        start_time: Some(crm_kit::time::to_timestamp(start)),
        end_time: Some(crm_kit::time::to_timestamp(chrono::Utc::now() + chrono::Duration::minutes(1))),
        group_by: pb::MetricsGrouping::Priority as i32,
    };
    let metrics = ReportServiceClient::new(suite.channel.clone())
        .get_service_metrics(suite.as_roles(period, &["analyst"]))
        .await
        .unwrap()
        .into_inner();
    let all = metrics.overall.unwrap();
    assert_eq!((all.opened, all.resolved, all.backlog), (3, 2, 1));
    assert_eq!((all.sla_tracked, all.sla_compliance_percent), (1, 0.0), "the one tracked ticket breached");
    assert_eq!((all.surveys_sent, all.survey_response_rate_percent, all.csat_average, all.nps), (2, 50.0, 2.0, -100.0));
    let urgent = metrics.groups.iter().find(|g| g.group == "URGENT").unwrap();
    assert!(urgent.first_response_median.as_ref().unwrap().seconds >= 2, "business time to the first reply, pause excluded");

    // Every step reached the outbox, in order, for consumers.
    let events = events_of(&suite, &complaint.name).await;
    let expected = ["TicketCreated", "TicketStatusChanged", "TicketStatusChanged", "SlaBreached", "TicketCommented", "TicketStatusChanged"];
    let mut remaining = expected.iter().peekable();
    for e in &events {
        if remaining.peek().is_some_and(|want| *want == e) {
            remaining.next();
        }
    }
    assert!(remaining.peek().is_none(), "expected {expected:?} in order within {events:?}");
    for kind in ["SurveyAnswered", "FollowUpCompleted"] {
        assert!(events.iter().any(|e| e == kind), "{kind} in {events:?}");
    }
}
