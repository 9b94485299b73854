//! TicketService end to end, with the customer check against a real profiles process.

use crm_proto::crm::tickets::v1::{self as pb};
use crm_testkit::auth::{token, with_token};
use tonic::Code;
use tonic_types::StatusExt;
use uuid::Uuid;

use crate::helpers::{assert_error, spawn_app, spawn_tickets};

#[tokio::test]
async fn a_ticket_is_opened_for_an_existing_customer_with_defaults() {
    let suite = spawn_app().await;
    let customer = suite.customer("Ada").await;
    let created = suite.open(&customer, "  Printer on fire ").await;
    assert!(created.name.starts_with("tickets/"));
    assert_eq!(created.customer, customer);
    assert_eq!(created.subject, "Printer on fire");
    assert_eq!(created.status, pb::Status::New as i32);
    assert_eq!(created.priority, pb::Priority::Normal as i32);
    assert_eq!(created.r#type, pb::TicketType::Question as i32);
    let fetched = suite.get(&created.name).await;
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn unknown_or_malformed_customers_are_invalid_argument() {
    let suite = spawn_app().await;
    let create = |customer: String| {
        let mut client = suite.tickets.clone();
        let request = suite.admin(pb::CreateTicketRequest {
            ticket: Some(pb::Ticket { customer, subject: "x".into(), ..Default::default() }),
            request_id: String::new(),
        });
        async move { client.create_ticket(request).await }
    };
    let status = assert_error(create(format!("customers/{}", Uuid::now_v7())).await, Code::InvalidArgument, "UNKNOWN_CUSTOMER");
    assert_eq!(status.get_error_details().bad_request().unwrap().field_violations[0].field, "ticket.customer");
    assert_error(create("people/1".into()).await, Code::InvalidArgument, "INVALID_CUSTOMER");
    // A customer of another tenant, in the same profiles service, is unknown to this one.
    let other_tenant = token(Uuid::now_v7(), &["admin"]);
    let foreign = suite
        .customers
        .clone()
        .create_customer(with_token(
            crm_proto::crm::profiles::v1::CreateCustomerRequest {
                customer: Some(crm_proto::crm::profiles::v1::Customer { display_name: "Elsewhere".into(), ..Default::default() }),
                request_id: String::new(),
            },
            &other_tenant,
        ))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap()
        .name;
    assert_error(create(foreign).await, Code::InvalidArgument, "UNKNOWN_CUSTOMER");
}

#[tokio::test]
async fn profiles_being_down_is_unavailable_with_retry_info_and_writes_nothing() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let suite = spawn_tickets(None, format!("http://{closed}")).await;
    let request = suite.admin(pb::CreateTicketRequest {
        ticket: Some(pb::Ticket { customer: format!("customers/{}", Uuid::now_v7()), subject: "x".into(), ..Default::default() }),
        request_id: "retry-me".into(),
    });
    let status = assert_error(suite.tickets.clone().create_ticket(request).await, Code::Unavailable, "PROFILES_UNAVAILABLE");
    assert!(status.get_error_details().retry_info().is_some());
    let listed = suite.tickets.clone().list_tickets(suite.admin(pb::ListTicketsRequest::default())).await.unwrap().into_inner();
    assert!(listed.tickets.is_empty());
}

#[tokio::test]
async fn an_unknown_team_is_refused_before_the_customer_is_checked() {
    // Profiles is down: a request that is wrong on its own gets its own error, not UNAVAILABLE.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = spawn_tickets(None, format!("http://{closed}")).await;
    let ticket = pb::Ticket {
        customer: format!("customers/{}", Uuid::now_v7()),
        subject: "x".into(),
        team: format!("teams/{}", Uuid::now_v7()),
        ..Default::default()
    };
    let request = app.admin(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() });
    assert_error(app.tickets.clone().create_ticket(request).await, Code::InvalidArgument, "UNKNOWN_TEAM");
}

#[tokio::test]
async fn a_slow_profiles_service_does_not_starve_other_calls_of_database_connections() {
    // Arrange: a profiles that accepts connections and never answers, so every
    // customer check runs into its deadline (1 s); more such intakes than the
    // pool has connections (8 in tests).
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", black_hole.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = black_hole.accept().await {
            held.push(socket);
        }
    });
    let suite = spawn_tickets(None, url).await;
    let intakes: Vec<_> = (0..20)
        .map(|i| {
            let mut client = suite.tickets.clone();
            let request = suite.admin(pb::CreateTicketRequest {
                ticket: Some(pb::Ticket {
                    customer: format!("customers/{}", Uuid::now_v7()),
                    subject: format!("t{i}"),
                    ..Default::default()
                }),
                request_id: String::new(),
            });
            tokio::spawn(async move { client.create_ticket(request).await })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // Act: while all of them wait on profiles, other calls need connections.
    let mut list = suite.admin(pb::ListTicketsRequest::default());
    list.set_timeout(std::time::Duration::from_millis(500));
    let listed = suite.tickets.clone().list_tickets(list).await;
    let still_waiting = intakes.iter().filter(|t| !t.is_finished()).count();

    // Assert: the list was answered before the intakes gave up, and each intake failed cleanly.
    assert!(listed.is_ok(), "a read waited for a connection held across the profiles call: {listed:?}");
    assert_eq!(still_waiting, 20, "the intakes were still waiting on profiles while the list was answered");
    for intake in intakes {
        assert_error(intake.await.unwrap(), Code::Unavailable, "PROFILES_UNAVAILABLE");
    }
}

#[tokio::test]
async fn the_lifecycle_is_enforced_and_recorded_in_the_timeline() {
    let suite = spawn_app().await;
    let ticket = suite.open(&suite.customer("Ada").await, "Refund").await;
    use pb::Status::*;
    for status in [Open, Pending, Open, Resolved, Open, Resolved] {
        let moved = suite.transition(&ticket.name, status).await.unwrap();
        assert_eq!(moved.status, status as i32);
    }
    let resolved = suite.transition(&ticket.name, Closed).await.unwrap();
    assert!(resolved.resolve_time.is_some());
    assert!(resolved.pending_duration.is_some());

    let status = assert_error(suite.transition(&ticket.name, Open).await, Code::FailedPrecondition, "INVALID_TRANSITION");
    assert!(status.message().contains("CLOSED"));
    let fresh = suite.open(&suite.customer("Bob").await, "Question").await;
    let status = assert_error(suite.transition(&fresh.name, Closed).await, Code::FailedPrecondition, "INVALID_TRANSITION");
    let violation = status.get_error_details().precondition_failure().unwrap().violations[0].clone();
    assert_eq!(violation.subject, fresh.name);
    assert!(violation.description.contains("allowed: OPEN, PENDING, RESOLVED"), "{}", violation.description);
    assert_error(suite.transition(&fresh.name, Unspecified).await, Code::InvalidArgument, "INVALID_STATUS");

    let events = suite.timeline(&ticket.name).await;
    let details: Vec<&str> = events.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(events[0].kind, "CREATED");
    assert_eq!(
        &details[1..],
        ["NEW → OPEN", "OPEN → PENDING", "PENDING → OPEN", "OPEN → RESOLVED", "RESOLVED → OPEN", "OPEN → RESOLVED", "RESOLVED → CLOSED"]
    );
}

#[tokio::test]
async fn a_stale_etag_is_aborted() {
    let suite = spawn_app().await;
    let ticket = suite.open(&suite.customer("Ada").await, "Etag").await;
    suite.transition(&ticket.name, pb::Status::Open).await.unwrap();
    let request = suite.admin(pb::TransitionTicketRequest {
        name: ticket.name.clone(),
        status: pb::Status::Pending as i32,
        etag: ticket.etag.clone(),
        reason: String::new(),
    });
    assert_error(suite.tickets.clone().transition_ticket(request).await, Code::Aborted, "ETAG_MISMATCH");
}

#[tokio::test]
async fn the_first_public_reply_is_the_first_response_and_notes_stay_internal() {
    let suite = spawn_app().await;
    let ticket = suite.open(&suite.customer("Ada").await, "Help").await;
    let comment = |public: bool, body: &str| pb::AddCommentRequest {
        request_id: String::new(),
        parent: ticket.name.clone(),
        comment: Some(pb::Comment { body: body.into(), public, attachments: vec!["s3://bucket/log.txt".into()], ..Default::default() }),
    };
    let mut client = suite.tickets.clone();
    client.add_comment(suite.as_roles(comment(false, "customer sounds upset"), &["agent"])).await.unwrap();
    let get = |c: &mut pb::ticket_service_client::TicketServiceClient<_>| {
        let mut c = c.clone();
        let request = suite.admin(pb::GetTicketRequest { name: ticket.name.clone() });
        async move { c.get_ticket(request).await.unwrap().into_inner().ticket.unwrap() }
    };
    assert!(get(&mut client).await.first_response_time.is_none(), "an internal note is not a response");
    let reply = client.add_comment(suite.as_roles(comment(true, "We are on it"), &["agent"])).await.unwrap().into_inner().comment.unwrap();
    assert_eq!(reply.author, "test-user");
    let first = get(&mut client).await.first_response_time;
    assert!(first.is_some());
    client.add_comment(suite.admin(comment(true, "Update"))).await.unwrap();
    assert_eq!(get(&mut client).await.first_response_time, first, "only the first reply counts");

    let public_only = client
        .list_comments(suite.as_roles(
            pb::ListCommentsRequest { page_size: 0, page_token: String::new(), parent: ticket.name.clone(), include_internal: false },
            &["readonly"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(public_only.comments.len(), 2);
    let denied = client
        .list_comments(suite.as_roles(
            pb::ListCommentsRequest { page_size: 0, page_token: String::new(), parent: ticket.name.clone(), include_internal: true },
            &["readonly"],
        ))
        .await;
    assert_error(denied, Code::PermissionDenied, "PERMISSION_DENIED");
    let all = client
        .list_comments(suite.as_roles(
            pb::ListCommentsRequest { page_size: 0, page_token: String::new(), parent: ticket.name.clone(), include_internal: true },
            &["agent"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.comments.len(), 3);
    assert_error(client.add_comment(suite.admin(comment(true, "  "))).await, Code::InvalidArgument, "REQUIRED");

    for status in [pb::Status::Resolved, pb::Status::Closed] {
        suite.transition(&ticket.name, status).await.unwrap();
    }
    assert_error(client.add_comment(suite.admin(comment(true, "late"))).await, Code::FailedPrecondition, "TICKET_CLOSED");
}

#[tokio::test]
async fn roles_and_tenants_limit_access() {
    let suite = spawn_app().await;
    let ticket = suite.open(&suite.customer("Ada").await, "Private").await;
    let mut client = suite.tickets.clone();
    let get = |token: &str| with_token(pb::GetTicketRequest { name: ticket.name.clone() }, token);
    assert_error(client.get_ticket(get(&token(suite.tenant, &["marketer"]))).await, Code::PermissionDenied, "PERMISSION_DENIED");
    assert!(client.get_ticket(get(&token(suite.tenant, &["readonly"]))).await.is_ok());
    assert_error(client.get_ticket(get(&token(Uuid::now_v7(), &["admin"]))).await, Code::NotFound, "NOT_FOUND");
    let by_readonly = suite.as_roles(
        pb::TransitionTicketRequest {
            name: ticket.name.clone(),
            status: pb::Status::Open as i32,
            etag: String::new(),
            reason: String::new(),
        },
        &["readonly"],
    );
    assert_error(client.transition_ticket(by_readonly).await, Code::PermissionDenied, "PERMISSION_DENIED");
}

#[tokio::test]
async fn list_filters_and_pages_newest_first() {
    let suite = spawn_app().await;
    let customer = suite.customer("Ada").await;
    let mut names = Vec::new();
    for i in 0..5 {
        names.push(suite.open(&customer, &format!("T{i}")).await.name);
    }
    suite.transition(&names[1], pb::Status::Open).await.unwrap();
    let mut client = suite.tickets.clone();
    let list = |filter: &str, page_size: i32, page_token: String| {
        suite.admin(pb::ListTicketsRequest { filter: filter.into(), page_size, page_token, show_deleted: false })
    };

    let open = client.list_tickets(list("status = OPEN", 0, String::new())).await.unwrap().into_inner();
    assert_eq!(open.tickets.iter().map(|t| t.name.clone()).collect::<Vec<_>>(), [names[1].clone()]);
    let mine =
        client.list_tickets(list(&format!("customer = \"{customer}\" AND status = NEW"), 0, String::new())).await.unwrap().into_inner();
    assert_eq!(mine.tickets.len(), 4);

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client.list_tickets(list("", 2, token)).await.unwrap().into_inner();
        seen.extend(page.tickets.into_iter().map(|t| t.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    names.reverse();
    assert_eq!(seen, names, "newest first, each once");
    assert_error(client.list_tickets(list("priority = SOON", 0, String::new())).await, Code::InvalidArgument, "INVALID_FILTER");
}

#[tokio::test]
async fn a_retried_create_returns_the_first_ticket() {
    let suite = spawn_app().await;
    let customer = suite.customer("Ada").await;
    let request = || {
        suite.admin(pb::CreateTicketRequest {
            ticket: Some(pb::Ticket { customer: customer.clone(), subject: "Once".into(), ..Default::default() }),
            request_id: "t-1".into(),
        })
    };
    let first = suite.tickets.clone().create_ticket(request()).await.unwrap().into_inner();
    let again = suite.tickets.clone().create_ticket(request()).await.unwrap().into_inner();
    assert_eq!(first, again);
}

#[tokio::test]
async fn update_applies_the_mask_records_changes_and_checks_the_etag() {
    let suite = spawn_app().await;
    let ticket = suite.open(&suite.customer("Ada").await, "Slow site").await;
    let mut client = suite.tickets.clone();
    let update = |t: pb::Ticket, paths: &[&str]| {
        suite.admin(pb::UpdateTicketRequest {
            ticket: Some(t),
            update_mask: Some(prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
        })
    };
    let change = pb::Ticket {
        name: ticket.name.clone(),
        priority: pb::Priority::Urgent as i32,
        tags: vec!["vip".into()],
        subject: "ignored".into(),
        etag: ticket.etag.clone(),
        ..Default::default()
    };
    let updated = client.update_ticket(update(change.clone(), &["priority", "tags"])).await.unwrap().into_inner().ticket.unwrap();
    assert_eq!(updated.priority, pb::Priority::Urgent as i32);
    assert_eq!(updated.tags, ["vip"]);
    assert_eq!(updated.subject, "Slow site");
    assert_error(client.update_ticket(update(change.clone(), &["priority"])).await, Code::Aborted, "ETAG_MISMATCH");
    assert_error(
        client.update_ticket(update(pb::Ticket { name: ticket.name.clone(), ..Default::default() }, &["status"])).await,
        Code::InvalidArgument,
        "UNKNOWN_FIELD_PATH",
    );
    let blank = pb::Ticket { name: ticket.name.clone(), subject: " ".into(), ..Default::default() };
    assert_error(client.update_ticket(update(blank, &["subject"])).await, Code::InvalidArgument, "REQUIRED");
    let same = pb::Ticket { name: ticket.name.clone(), priority: pb::Priority::Urgent as i32, ..Default::default() };
    let unchanged = client.update_ticket(update(same, &["priority"])).await.unwrap().into_inner().ticket.unwrap();
    assert_eq!(unchanged.etag, updated.etag, "a no-op update keeps the etag");

    let events = client
        .list_ticket_events(suite.admin(pb::ListTicketEventsRequest {
            page_size: 0,
            page_token: String::new(),
            parent: ticket.name.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .events;
    let updates: Vec<&str> = events.iter().filter(|e| e.kind == "UPDATED").map(|e| e.detail.as_str()).collect();
    assert_eq!(updates, ["priority, tags"]);
}

#[tokio::test]
async fn assignment_is_recorded_and_limited_to_open_work() {
    let suite = spawn_app().await;
    let ticket = suite.open(&suite.customer("Ada").await, "Assign me").await;
    let billing = crate::teams::team(&suite, "Billing", pb::AssignmentStrategy::Manual).await;
    let mut client = suite.tickets.clone();
    let assign = |assignee: &str, team: &str| pb::AssignTicketRequest {
        name: ticket.name.clone(),
        assignee: assignee.into(),
        team: team.into(),
        etag: String::new(),
    };
    let assigned = client.assign_ticket(suite.as_roles(assign("alice", ""), &["agent"])).await.unwrap().into_inner().ticket.unwrap();
    assert_eq!(assigned.assignee, "alice");
    let moved = client.assign_ticket(suite.admin(assign("bob", &billing))).await.unwrap().into_inner().ticket.unwrap();
    assert_eq!((moved.assignee.as_str(), moved.team.as_str()), ("bob", billing.as_str()));
    let unknown = format!("teams/{}", Uuid::now_v7());
    assert_error(client.assign_ticket(suite.admin(assign("bob", &unknown))).await, Code::InvalidArgument, "UNKNOWN_TEAM");
    let again = client.assign_ticket(suite.admin(assign("bob", ""))).await.unwrap().into_inner().ticket.unwrap();
    assert_eq!(again.etag, moved.etag, "re-assigning to the same agent changes nothing");
    assert_error(client.assign_ticket(suite.as_roles(assign("eve", ""), &["readonly"])).await, Code::PermissionDenied, "PERMISSION_DENIED");

    let events = client
        .list_ticket_events(suite.admin(pb::ListTicketEventsRequest {
            page_size: 0,
            page_token: String::new(),
            parent: ticket.name.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .events;
    let details: Vec<&str> = events.iter().filter(|e| e.kind == "ASSIGNED").map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["nobody → alice".to_string(), format!("alice → bob (team {billing})")]);
    let filter = format!("assignee = bob AND team = \"{billing}\"");
    let by_assignee = client.list_tickets(suite.admin(pb::ListTicketsRequest { filter, ..Default::default() })).await.unwrap().into_inner();
    assert_eq!(by_assignee.tickets.len(), 1);

    for status in [pb::Status::Resolved, pb::Status::Closed] {
        suite.transition(&ticket.name, status).await.unwrap();
    }
    assert_error(client.assign_ticket(suite.admin(assign("carol", ""))).await, Code::FailedPrecondition, "TICKET_CLOSED");
}

#[tokio::test]
async fn only_admins_soft_delete_and_a_deleted_ticket_takes_no_work() {
    let suite = spawn_app().await;
    let ticket = suite.open(&suite.customer("Ada").await, "Spam").await;
    let mut client = suite.tickets.clone();
    let delete = || pb::DeleteTicketRequest { name: ticket.name.clone(), etag: String::new() };
    assert_error(client.delete_ticket(suite.as_roles(delete(), &["agent"])).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let deleted = client.delete_ticket(suite.admin(delete())).await.unwrap().into_inner().ticket.unwrap();
    assert!(deleted.delete_time.is_some());
    let again = client.delete_ticket(suite.admin(delete())).await.unwrap().into_inner().ticket.unwrap();
    assert_eq!(again.etag, deleted.etag, "a retried delete changes nothing");

    let live = client.list_tickets(suite.admin(pb::ListTicketsRequest::default())).await.unwrap().into_inner();
    assert!(live.tickets.is_empty());
    let all =
        client.list_tickets(suite.admin(pb::ListTicketsRequest { show_deleted: true, ..Default::default() })).await.unwrap().into_inner();
    assert_eq!(all.tickets.len(), 1);
    assert_error(suite.transition(&ticket.name, pb::Status::Open).await, Code::FailedPrecondition, "TICKET_DELETED");

    let restored = client
        .undelete_ticket(suite.admin(pb::UndeleteTicketRequest { name: ticket.name.clone(), etag: deleted.etag.clone() }))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    assert!(restored.delete_time.is_none());
    assert!(suite.transition(&ticket.name, pb::Status::Open).await.is_ok());
}
