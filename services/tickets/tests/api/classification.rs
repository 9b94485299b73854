//! Classification on intake: the built-in VIP rules and the tenant's ordered rules.

use crm_proto::crm::{
    profiles::v1::CustomerCategory,
    tickets::v1::{self as pb, classification_rule_service_client::ClassificationRuleServiceClient},
};
use tonic::Code;

use crate::helpers::{TestApp, assert_error, spawn_app};

fn rules(suite: &TestApp) -> ClassificationRuleServiceClient<tonic::transport::Channel> {
    ClassificationRuleServiceClient::new(suite.channel.clone())
}

async fn open(suite: &TestApp, customer: &str, subject: &str, kind: pb::TicketType, channel: pb::Channel) -> pb::Ticket {
    let ticket = pb::Ticket {
        customer: customer.into(),
        subject: subject.into(),
        r#type: kind as i32,
        channel: channel as i32,
        ..Default::default()
    };
    suite
        .tickets
        .clone()
        .create_ticket(suite.admin(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap()
}

#[tokio::test]
async fn vip_tickets_are_at_least_high_and_vip_complaints_urgent() {
    let suite = spawn_app().await;
    let vip = suite.customer_in("Big Spender", CustomerCategory::Vip).await;
    let regular = suite.customer_in("Regular Joe", CustomerCategory::Regular).await;
    let complaint = open(&suite, &vip, "Rude driver", pb::TicketType::Complaint, pb::Channel::Phone).await;
    assert_eq!(complaint.priority, pb::Priority::Urgent as i32);
    assert_eq!(open(&suite, &vip, "Opening hours?", pb::TicketType::Question, pb::Channel::Chat).await.priority, pb::Priority::High as i32);
    assert_eq!(
        open(&suite, &regular, "Rude driver", pb::TicketType::Complaint, pb::Channel::Phone).await.priority,
        pb::Priority::Normal as i32
    );
    let events = suite.timeline(&complaint.name).await;
    let classified = events.iter().find(|e| e.kind == "CLASSIFIED").expect("a classification entry");
    assert_eq!(classified.detail, "priority NORMAL → URGENT");
}

#[tokio::test]
async fn tenant_rules_set_category_team_and_priority_in_order_then_dispatch_runs() {
    let suite = spawn_app().await;
    let billing = crate::teams::team(&suite, "Billing", pb::AssignmentStrategy::RoundRobin).await;
    crate::teams::set_member(&suite, &billing, "alice", 5, &[], true).await;
    let create =
        |rule: pb::ClassificationRule| suite.admin(pb::CreateClassificationRuleRequest { request_id: String::new(), rule: Some(rule) });
    let mut client = rules(&suite);
    client
        .create_classification_rule(create(pb::ClassificationRule {
            display_name: "Hotline is high".into(),
            position: 20,
            channels: vec![pb::Channel::Hotline as i32],
            set_priority: pb::Priority::High as i32,
            ..Default::default()
        }))
        .await
        .unwrap();
    client
        .create_classification_rule(create(pb::ClassificationRule {
            display_name: "Invoices to billing".into(),
            position: 10,
            keywords: vec!["Invoice".into()],
            set_category: "billing".into(),
            set_team: billing.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let listed = client
        .list_classification_rules(
            suite.as_roles(pb::ListClassificationRulesRequest { page_size: 0, page_token: String::new() }, &["readonly"]),
        )
        .await
        .unwrap()
        .into_inner()
        .rules;
    assert_eq!(listed.iter().map(|r| r.position).collect::<Vec<_>>(), [10, 20]);

    let customer = suite.customer("Ada").await;
    let ticket = open(&suite, &customer, "My INVOICE is wrong", pb::TicketType::Problem, pb::Channel::Hotline).await;
    assert_eq!(ticket.category, "billing");
    assert_eq!(ticket.team, billing);
    assert_eq!(ticket.priority, pb::Priority::High as i32);
    assert_eq!(ticket.assignee, "alice", "dispatch runs on the classified team");
    let other = open(&suite, &customer, "Password reset", pb::TicketType::Request, pb::Channel::Web).await;
    assert_eq!((other.category.as_str(), other.team.as_str(), other.priority), ("", "", pb::Priority::Normal as i32));

    client
        .delete_classification_rule(suite.admin(pb::DeleteClassificationRuleRequest { etag: String::new(), name: listed[0].name.clone() }))
        .await
        .unwrap();
    let again = client
        .delete_classification_rule(suite.admin(pb::DeleteClassificationRuleRequest { etag: String::new(), name: listed[0].name.clone() }))
        .await;
    assert_error(again, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn rules_are_validated_and_admin_only() {
    let suite = spawn_app().await;
    let mut client = rules(&suite);
    let rule = pb::ClassificationRule { display_name: "x".into(), set_category: "c".into(), ..Default::default() };
    let by_agent = client
        .create_classification_rule(
            suite.as_roles(pb::CreateClassificationRuleRequest { request_id: String::new(), rule: Some(rule.clone()) }, &["agent"]),
        )
        .await;
    assert_error(by_agent, Code::PermissionDenied, "PERMISSION_DENIED");
    let no_action = pb::ClassificationRule { display_name: "x".into(), ..Default::default() };
    assert_error(
        client
            .create_classification_rule(
                suite.admin(pb::CreateClassificationRuleRequest { request_id: String::new(), rule: Some(no_action) }),
            )
            .await,
        Code::InvalidArgument,
        "NO_ACTION",
    );
    let bad = pb::ClassificationRule { customer_categories: vec!["GOLD".into()], channels: vec![0], ..rule.clone() };
    let status = assert_error(
        client
            .create_classification_rule(suite.admin(pb::CreateClassificationRuleRequest { request_id: String::new(), rule: Some(bad) }))
            .await,
        Code::InvalidArgument,
        "INVALID_FIELDS",
    );
    assert!(status.message().contains("rule.channels"));
    let ghost_team = pb::ClassificationRule { set_team: format!("teams/{}", uuid::Uuid::now_v7()), ..rule };
    assert_error(
        client
            .create_classification_rule(
                suite.admin(pb::CreateClassificationRuleRequest { request_id: String::new(), rule: Some(ghost_team) }),
            )
            .await,
        Code::InvalidArgument,
        "UNKNOWN_TEAM",
    );
}
