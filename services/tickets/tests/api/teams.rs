//! Teams and automatic dispatch: capacity, skills, availability, the queue,
//! and no over-assignment under concurrent intake.

use std::collections::HashMap;

use crm_proto::crm::tickets::v1::{self as pb, team_service_client::TeamServiceClient};
use sqlx::Connection;
use tonic::Code;

use crate::helpers::{TestApp, assert_error, spawn_app};

/// Creates a team as admin and returns its name.
pub async fn team(suite: &TestApp, display_name: &str, strategy: pb::AssignmentStrategy) -> String {
    let team = pb::Team { display_name: display_name.into(), assignment_strategy: strategy as i32, ..Default::default() };
    teams(suite)
        .create_team(suite.admin(pb::CreateTeamRequest { request_id: String::new(), team: Some(team) }))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap()
        .name
}

fn teams(suite: &TestApp) -> TeamServiceClient<tonic::transport::Channel> {
    TeamServiceClient::new(suite.channel.clone())
}

pub async fn set_member(suite: &TestApp, team: &str, agent: &str, capacity: i32, skills: &[&str], available: bool) -> pb::TeamMember {
    let member = pb::TeamMember {
        agent: agent.into(),
        capacity,
        skills: skills.iter().map(|s| s.to_string()).collect(),
        available,
        ..Default::default()
    };
    teams(suite)
        .set_team_member(suite.admin(pb::SetTeamMemberRequest { parent: team.into(), member: Some(member) }))
        .await
        .unwrap()
        .into_inner()
        .member
        .unwrap()
}

async fn open_in(suite: &TestApp, customer: &str, team: &str, category: &str) -> pb::Ticket {
    let ticket = pb::Ticket {
        customer: customer.into(),
        subject: "Help".into(),
        team: team.into(),
        category: category.into(),
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

async fn loads(suite: &TestApp, team: &str) -> HashMap<String, i64> {
    let members = teams(suite)
        .list_team_members(suite.admin(pb::ListTeamMembersRequest { page_size: 0, page_token: String::new(), parent: team.into() }))
        .await
        .unwrap()
        .into_inner()
        .members;
    members.into_iter().map(|m| (m.agent, m.open_tickets)).collect()
}

#[tokio::test]
async fn only_admins_manage_teams_and_inputs_are_validated() {
    let suite = spawn_app().await;
    let team_request = |name: &str| pb::CreateTeamRequest {
        request_id: String::new(),
        team: Some(pb::Team { display_name: name.into(), ..Default::default() }),
    };
    assert_error(
        teams(&suite).create_team(suite.as_roles(team_request("Support"), &["agent"])).await,
        Code::PermissionDenied,
        "PERMISSION_DENIED",
    );
    assert_error(teams(&suite).create_team(suite.admin(team_request(" "))).await, Code::InvalidArgument, "INVALID_VALUE");
    let support = team(&suite, "Support", pb::AssignmentStrategy::Unspecified).await;
    let fetched = teams(&suite)
        .get_team(suite.as_roles(pb::GetTeamRequest { name: support.clone() }, &["readonly"]))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    assert_eq!(fetched.assignment_strategy, pb::AssignmentStrategy::RoundRobin as i32);
    let member = pb::TeamMember { agent: "alice".into(), capacity: 5000, ..Default::default() };
    let too_big =
        teams(&suite).set_team_member(suite.admin(pb::SetTeamMemberRequest { parent: support.clone(), member: Some(member) })).await;
    assert_error(too_big, Code::InvalidArgument, "INVALID_CAPACITY");
    assert_eq!(set_member(&suite, &support, "alice", 0, &[], true).await.capacity, 10, "0 means the default");
    let removed =
        teams(&suite).remove_team_member(suite.admin(pb::RemoveTeamMemberRequest { name: format!("{support}/members/alice") })).await;
    assert!(removed.is_ok());
    let again =
        teams(&suite).remove_team_member(suite.admin(pb::RemoveTeamMemberRequest { name: format!("{support}/members/alice") })).await;
    assert_error(again, Code::NotFound, "NOT_FOUND");
    let customer = suite.customer("Ada").await;
    let unknown = pb::Ticket { customer, subject: "x".into(), team: format!("teams/{}", uuid::Uuid::now_v7()), ..Default::default() };
    let result = suite
        .tickets
        .clone()
        .create_ticket(suite.admin(pb::CreateTicketRequest { ticket: Some(unknown), request_id: String::new() }))
        .await;
    assert_error(result, Code::InvalidArgument, "UNKNOWN_TEAM");
}

#[tokio::test]
async fn concurrent_intake_never_exceeds_capacity_and_the_queue_drains_as_capacity_frees() {
    let suite = spawn_app().await;
    let support = team(&suite, "Support", pb::AssignmentStrategy::RoundRobin).await;
    set_member(&suite, &support, "alice", 3, &[], true).await;
    set_member(&suite, &support, "bob", 3, &[], true).await;
    let customer = suite.customer("Ada").await;

    let intake = (0..10).map(|_| {
        let (suite_tickets, token, customer, support) =
            (suite.tickets.clone(), suite.admin_token.clone(), customer.clone(), support.clone());
        tokio::spawn(async move {
            let ticket = pb::Ticket { customer, subject: "Rush".into(), team: support, ..Default::default() };
            let request =
                crm_testkit::auth::with_token(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }, &token);
            suite_tickets.clone().create_ticket(request).await.unwrap().into_inner().ticket.unwrap()
        })
    });
    let created: Vec<pb::Ticket> = futures::future::join_all(intake).await.into_iter().map(Result::unwrap).collect();
    let assigned = created.iter().filter(|t| !t.assignee.is_empty()).count();
    assert_eq!(assigned, 6, "both agents filled to capacity");
    assert_eq!(loads(&suite, &support).await, HashMap::from([("alice".to_string(), 3), ("bob".to_string(), 3)]));

    // Resolving one of alice's tickets gives her the oldest queued one.
    let mut queued: Vec<&pb::Ticket> = created.iter().filter(|t| t.assignee.is_empty()).collect();
    queued.sort_by(|a, b| a.name.cmp(&b.name));
    let alices = created.iter().find(|t| t.assignee == "alice").unwrap();
    suite.transition(&alices.name, pb::Status::Resolved).await.unwrap();
    let oldest = suite.get(&queued[0].name).await;
    assert_eq!(oldest.assignee, "alice");

    // A new member with room takes from the queue at once; an unavailable one does not.
    assert_eq!(set_member(&suite, &support, "dave", 5, &[], false).await.open_tickets, 0);
    assert_eq!(set_member(&suite, &support, "carol", 2, &[], true).await.open_tickets, 2);
    let loads = loads(&suite, &support).await;
    // 9 open tickets, room for 3 + 3 + 2: exactly one still waits in the queue.
    assert_eq!(loads.values().sum::<i64>(), 8);
    let waiting = suite
        .tickets
        .clone()
        .list_tickets(suite.admin(pb::ListTicketsRequest { filter: "assignee = \"\" AND status = NEW".into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(waiting.tickets.len(), 1);
    assert!(loads["alice"] <= 3 && loads["bob"] <= 3 && loads["carol"] <= 2);
    let events = suite.timeline(&oldest.name).await;
    let auto = events.iter().find(|e| e.kind == "ASSIGNED").unwrap();
    assert_eq!((auto.actor.as_str(), auto.detail.as_str()), ("dispatch", "nobody → alice (ROUND_ROBIN)"));
}

/// Opens `count` tickets of `team` at once, each its own request.
fn open_concurrently(suite: &TestApp, customer: &str, team: &str, count: usize) -> Vec<tokio::task::JoinHandle<pb::Ticket>> {
    (0..count)
        .map(|i| {
            let (tickets, token) = (suite.tickets.clone(), suite.admin_token.clone());
            let ticket = pb::Ticket { customer: customer.into(), subject: format!("Rush {i}"), team: team.into(), ..Default::default() };
            tokio::spawn(async move {
                let request =
                    crm_testkit::auth::with_token(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }, &token);
                tickets.clone().create_ticket(request).await.unwrap().into_inner().ticket.unwrap()
            })
        })
        .collect()
}

#[tokio::test]
async fn an_agent_in_two_teams_is_held_to_one_capacity_under_concurrent_intake() {
    let suite = spawn_app().await;
    let sales = team(&suite, "Sales", pb::AssignmentStrategy::RoundRobin).await;
    let support = team(&suite, "Support", pb::AssignmentStrategy::LeastLoaded).await;
    set_member(&suite, &sales, "alice", 3, &[], true).await;
    set_member(&suite, &support, "alice", 5, &[], true).await;
    let customer = suite.customer("Ada").await;

    // Twelve intakes in each team at once: alice's load counts both teams
    // and is held to her lowest capacity (3), never 3 + 5.
    let mut intake = open_concurrently(&suite, &customer, &sales, 12);
    intake.extend(open_concurrently(&suite, &customer, &support, 12));
    let created: Vec<pb::Ticket> = futures::future::join_all(intake).await.into_iter().map(Result::unwrap).collect();
    let alices = created.iter().filter(|t| t.assignee == "alice").count();
    assert_eq!(alices, 3, "exactly her capacity across both teams");
    assert_eq!(loads(&suite, &sales).await["alice"], 3);
    assert_eq!(loads(&suite, &support).await["alice"], 3, "the same load seen from either team");

    // Resolving one of her tickets hands her the oldest ticket waiting in
    // that ticket's team; raising her lowest capacity lets the other team's queue in.
    let resolved = created.iter().find(|t| t.assignee == "alice").unwrap();
    suite.transition(&resolved.name, pb::Status::Resolved).await.unwrap();
    assert_eq!(loads(&suite, &sales).await["alice"], 3, "the freed place was taken again at once");
    set_member(&suite, &sales, "alice", 4, &[], true).await;
    assert_eq!(loads(&suite, &support).await["alice"], 4, "one more place, filled from a queue");
    // Leaving Sales lifts her capacity to Support's 5: Support's queue fills the place at once.
    let removed = pb::RemoveTeamMemberRequest { name: format!("{sales}/members/alice") };
    teams(&suite).remove_team_member(suite.admin(removed)).await.unwrap();
    assert_eq!(loads(&suite, &support).await["alice"], 5);
}

#[tokio::test]
async fn freed_capacity_serves_the_queue_of_the_agents_other_team() {
    let suite = spawn_app().await;
    let sales = team(&suite, "Sales", pb::AssignmentStrategy::RoundRobin).await;
    let support = team(&suite, "Support", pb::AssignmentStrategy::RoundRobin).await;
    set_member(&suite, &sales, "alice", 1, &[], true).await;
    set_member(&suite, &support, "alice", 1, &[], true).await;
    let customer = suite.customer("Ada").await;
    let first = open_in(&suite, &customer, &sales, "").await;
    assert_eq!(first.assignee, "alice");
    let waiting = open_in(&suite, &customer, &support, "").await;
    assert_eq!(waiting.assignee, "", "alice is full, in every team");

    // Sales has no queue; the place alice gets back goes to Support's.
    suite.transition(&first.name, pb::Status::Resolved).await.unwrap();
    assert_eq!(suite.get(&waiting.name).await.assignee, "alice");
}

#[tokio::test]
async fn a_dispatch_that_cannot_get_the_tenants_lock_in_time_is_unavailable_and_changes_nothing() {
    // Arrange: something holds the tenant's dispatch lock (the key the service uses).
    let suite = spawn_app().await;
    let sales = team(&suite, "Sales", pb::AssignmentStrategy::RoundRobin).await;
    set_member(&suite, &sales, "alice", 5, &[], true).await;
    let customer = suite.customer("Ada").await;
    let mut holder = sqlx::PgConnection::connect(suite.app_database_url()).await.unwrap();
    let key = format!("crm.tickets.dispatch:{}", suite.tenant.hyphenated());
    sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))").bind(&key).execute(&mut holder).await.unwrap();

    // Act
    let started = std::time::Instant::now();
    let ticket = pb::Ticket { customer: customer.clone(), subject: "Help".into(), team: sales.clone(), ..Default::default() };
    let request = pb::CreateTicketRequest { ticket: Some(ticket), request_id: "busy-1".into() };
    let busy = suite.tickets.clone().create_ticket(suite.admin(request.clone())).await;

    // Assert: refused, retryable, after the wait; nothing was stored, and the retry goes through.
    assert_error(busy, Code::Unavailable, "BUSY");
    assert!(started.elapsed() >= std::time::Duration::from_secs(4), "waited {:?}", started.elapsed());
    let listed = suite.tickets.clone().list_tickets(suite.admin(pb::ListTicketsRequest::default())).await.unwrap().into_inner();
    assert!(listed.tickets.is_empty(), "{listed:?}");
    sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))").bind(&key).execute(&mut holder).await.unwrap();
    let created = suite.tickets.clone().create_ticket(suite.admin(request)).await.unwrap().into_inner().ticket.unwrap();
    assert_eq!(created.assignee, "alice");
}

#[tokio::test]
async fn skills_route_tickets_and_least_loaded_balances() {
    let suite = spawn_app().await;
    let desk = team(&suite, "Desk", pb::AssignmentStrategy::LeastLoaded).await;
    set_member(&suite, &desk, "alice", 5, &["billing"], true).await;
    set_member(&suite, &desk, "bob", 5, &["tech"], true).await;
    set_member(&suite, &desk, "carol", 5, &[], true).await;
    let customer = suite.customer("Ada").await;
    assert_eq!(open_in(&suite, &customer, &desk, "tech").await.assignee, "bob");
    assert_eq!(open_in(&suite, &customer, &desk, "tech").await.assignee, "carol", "bob has one, carol none");
    assert_eq!(open_in(&suite, &customer, &desk, "billing").await.assignee, "alice");
    let manual = team(&suite, "Escalations", pb::AssignmentStrategy::Manual).await;
    set_member(&suite, &manual, "erin", 5, &[], true).await;
    assert_eq!(open_in(&suite, &customer, &manual, "").await.assignee, "", "manual teams queue everything");
}
