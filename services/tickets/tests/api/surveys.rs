//! Satisfaction surveys: one-time tokens without login, once per ticket, aggregates.

use crm_proto::crm::tickets::v1::{self as pb, survey_service_client::SurveyServiceClient};
use tonic::Code;

use crate::helpers::{TestApp, assert_error, spawn_app};

fn client(suite: &TestApp) -> SurveyServiceClient<tonic::transport::Channel> {
    SurveyServiceClient::new(suite.channel.clone())
}

async fn resolved_by(suite: &TestApp, customer: &str, agent: &str) -> pb::Ticket {
    let ticket = suite.open(customer, "Help").await;
    let assign = pb::AssignTicketRequest { name: ticket.name.clone(), assignee: agent.into(), team: String::new(), etag: String::new() };
    suite.tickets.clone().assign_ticket(suite.admin(assign)).await.unwrap();
    suite.transition(&ticket.name, pb::Status::Resolved).await.unwrap()
}

pub async fn survey(suite: &TestApp, ticket: &str) -> pb::Survey {
    client(suite)
        .get_ticket_survey(suite.as_roles(pb::GetTicketSurveyRequest { ticket: ticket.into() }, &["agent"]))
        .await
        .unwrap()
        .into_inner()
        .survey
        .unwrap()
}

/// Answers without any login, as a customer-facing page would.
pub async fn answer(suite: &TestApp, token: &str, csat: i32, nps: Option<i32>) -> Result<(), tonic::Status> {
    let request = tonic::Request::new(pb::AnswerSurveyRequest { token: token.into(), csat, nps, comment: "thanks".into() });
    client(suite).answer_survey(request).await.map(|_| ())
}

#[tokio::test]
async fn a_survey_is_answered_once_with_its_token_and_no_login() {
    let suite = spawn_app().await;
    let customer = suite.customer("Ada").await;
    let open = suite.open(&customer, "Not yet").await;
    let missing = client(&suite).get_ticket_survey(suite.admin(pb::GetTicketSurveyRequest { ticket: open.name.clone() })).await;
    assert_error(missing, Code::NotFound, "NOT_FOUND");

    let ticket = resolved_by(&suite, &customer, "alice").await;
    let sent = survey(&suite, &ticket.name).await;
    assert_eq!((sent.agent.as_str(), sent.csat), ("alice", 0));
    let by_reader =
        client(&suite).get_ticket_survey(suite.as_roles(pb::GetTicketSurveyRequest { ticket: ticket.name.clone() }, &["readonly"])).await;
    assert_error(by_reader, Code::PermissionDenied, "PERMISSION_DENIED");

    let mut forged = sent.answer_token.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    assert_error(answer(&suite, &String::from_utf8(forged).unwrap(), 5, None).await, Code::Unauthenticated, "INVALID_SURVEY_TOKEN");
    let status = answer(&suite, &sent.answer_token, 9, Some(11)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    answer(&suite, &sent.answer_token, 4, Some(9)).await.unwrap();
    assert_error(answer(&suite, &sent.answer_token, 1, None).await, Code::FailedPrecondition, "SURVEY_ALREADY_ANSWERED");

    let answered = survey(&suite, &ticket.name).await;
    assert_eq!((answered.csat, answered.nps, answered.comment.as_str()), (4, Some(9), "thanks"));
    // Resolving again does not send a second survey.
    suite.transition(&ticket.name, pb::Status::Open).await.unwrap();
    suite.transition(&ticket.name, pb::Status::Resolved).await.unwrap();
    assert_eq!(survey(&suite, &ticket.name).await.name, sent.name);
    let events = suite.timeline(&ticket.name).await;
    assert!(events.iter().any(|e| e.kind == "SURVEY_ANSWERED" && e.actor == "customer" && e.detail == "CSAT 4, NPS 9"));
}

#[tokio::test]
async fn the_summary_gives_csat_nps_and_response_rate_per_agent() {
    let suite = spawn_app().await;
    let customer = suite.customer("Ada").await;
    let start = chrono::Utc::now() - chrono::Duration::minutes(1);
    let a1 = resolved_by(&suite, &customer, "alice").await;
    let a2 = resolved_by(&suite, &customer, "alice").await;
    resolved_by(&suite, &customer, "bob").await;
    answer(&suite, &survey(&suite, &a1.name).await.answer_token, 5, Some(10)).await.unwrap();
    answer(&suite, &survey(&suite, &a2.name).await.answer_token, 3, Some(5)).await.unwrap();
    let period = |from: chrono::DateTime<chrono::Utc>| pb::GetSatisfactionSummaryRequest {
        group_by: pb::SummaryGrouping::Agent as i32,
        start_time: Some(crm_kit::time::to_timestamp(from)),
        end_time: Some(crm_kit::time::to_timestamp(chrono::Utc::now() + chrono::Duration::minutes(1))),
    };
    let groups = client(&suite).get_satisfaction_summary(suite.as_roles(period(start), &["analyst"])).await.unwrap().into_inner().groups;
    let summary: Vec<(String, i64, i64, f64, f64)> =
        groups.iter().map(|g| (g.key.clone(), g.surveys_sent, g.responses, g.csat_average, g.nps)).collect();
    assert_eq!(
        summary,
        [("alice".to_string(), 2, 2, 4.0, 0.0), ("bob".to_string(), 1, 0, 0.0, 0.0)],
        "one promoter and one detractor: NPS 0"
    );
    assert_eq!(groups[0].response_rate, 1.0);
    let invalid = pb::GetSatisfactionSummaryRequest { group_by: 0, ..period(start) };
    assert_error(client(&suite).get_satisfaction_summary(suite.admin(invalid)).await, Code::InvalidArgument, "INVALID_GROUPING");
}
