//! Follow-up visits after resolution.

use crm_proto::crm::tickets::v1::{self as pb, follow_up_service_client::FollowUpServiceClient};
use tonic::Code;

use crate::helpers::{TestApp, assert_error, spawn_app};

fn client(suite: &TestApp) -> FollowUpServiceClient<tonic::transport::Channel> {
    FollowUpServiceClient::new(suite.channel.clone())
}

async fn list(suite: &TestApp, agent: &str, include_closed: bool) -> Vec<pb::FollowUp> {
    let request = suite.admin(pb::ListFollowUpsRequest {
        page_size: 0,
        page_token: String::new(),
        agent: agent.into(),
        due_only: !include_closed,
        include_closed,
    });
    client(suite).list_follow_ups(request).await.unwrap().into_inner().follow_ups
}

/// A ticket assigned to alice and resolved.
async fn resolved_ticket(suite: &TestApp) -> pb::Ticket {
    let ticket = suite.open(&suite.customer("Ada").await, "Broken").await;
    let assign = pb::AssignTicketRequest { name: ticket.name.clone(), assignee: "alice".into(), team: String::new(), etag: String::new() };
    suite.tickets.clone().assign_ticket(suite.admin(assign)).await.unwrap();
    suite.transition(&ticket.name, pb::Status::Resolved).await.unwrap()
}

fn complete(name: &str, reached: bool, satisfied: bool, notes: &str) -> pb::CompleteFollowUpRequest {
    pb::CompleteFollowUpRequest { name: name.into(), reached, satisfied, notes: notes.into() }
}

#[tokio::test]
async fn resolving_schedules_a_follow_up_for_the_agent_and_a_satisfied_customer_closes_the_loop() {
    let suite = spawn_app().await;
    let ticket = resolved_ticket(&suite).await;
    let due = list(&suite, "alice", false).await;
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].ticket.as_str(), due[0].state), (ticket.name.as_str(), pb::FollowUpState::Scheduled as i32));
    assert!(list(&suite, "bob", false).await.is_empty());

    let by_reader = client(&suite).complete_follow_up(suite.as_roles(complete(&due[0].name, true, true, ""), &["readonly"])).await;
    assert_error(by_reader, Code::PermissionDenied, "PERMISSION_DENIED");
    let done = client(&suite)
        .complete_follow_up(suite.as_roles(complete(&due[0].name, true, true, "happy"), &["agent"]))
        .await
        .unwrap()
        .into_inner()
        .follow_up
        .unwrap();
    assert_eq!((done.state, done.satisfied, done.notes.as_str()), (pb::FollowUpState::Done as i32, true, "happy"));
    let again = client(&suite).complete_follow_up(suite.admin(complete(&due[0].name, true, true, ""))).await;
    assert_error(again, Code::FailedPrecondition, "FOLLOW_UP_CLOSED");

    let still = suite.get(&ticket.name).await;
    assert_eq!(still.status, pb::Status::Resolved as i32);
    let events = suite.timeline(&ticket.name).await;
    assert!(events.iter().any(|e| e.kind == "FOLLOW_UP_COMPLETED" && e.detail == "customer satisfied: happy"));
}

#[tokio::test]
async fn an_unsatisfied_customer_reopens_the_ticket_and_a_reopen_cancels_the_follow_up() {
    let suite = spawn_app().await;
    let ticket = resolved_ticket(&suite).await;
    let follow_up = list(&suite, "alice", false).await.remove(0);
    client(&suite).complete_follow_up(suite.admin(complete(&follow_up.name, true, false, "still broken"))).await.unwrap();
    let reopened = suite.get(&ticket.name).await;
    assert_eq!(reopened.status, pb::Status::Open as i32);
    let events = suite.timeline(&ticket.name).await;
    assert!(events.iter().any(|e| e.detail == "RESOLVED → OPEN: customer not satisfied at follow-up"));

    // Resolved again: a new follow-up; reopened by hand before it is done: cancelled.
    suite.transition(&ticket.name, pb::Status::Resolved).await.unwrap();
    assert_eq!(list(&suite, "alice", false).await.len(), 1);
    suite.transition(&ticket.name, pb::Status::Open).await.unwrap();
    assert!(list(&suite, "alice", false).await.is_empty());
    let states: Vec<i32> = list(&suite, "alice", true).await.iter().map(|f| f.state).collect();
    assert_eq!(states, [pb::FollowUpState::Done as i32, pb::FollowUpState::Cancelled as i32]);
}

#[tokio::test]
async fn a_customer_not_reached_leaves_the_ticket_resolved() {
    let suite = spawn_app().await;
    let ticket = resolved_ticket(&suite).await;
    let follow_up = list(&suite, "", false).await.remove(0);
    let done = client(&suite)
        .complete_follow_up(suite.admin(complete(&follow_up.name, false, true, "")))
        .await
        .unwrap()
        .into_inner()
        .follow_up
        .unwrap();
    assert!(!done.satisfied, "satisfaction needs a reached customer");
    let still = suite.get(&ticket.name).await;
    assert_eq!(still.status, pb::Status::Resolved as i32);
}
