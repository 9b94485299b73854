//! MergeTickets: duplicates of one customer fold into the ticket that stays.

use crm_proto::crm::tickets::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, assert_error, spawn_app};

fn merge_request(target: &str, sources: &[&str]) -> pb::MergeTicketsRequest {
    pb::MergeTicketsRequest { name: target.into(), source_tickets: sources.iter().map(|s| s.to_string()).collect(), etag: String::new() }
}

async fn tagged(suite: &TestApp, customer: &str, subject: &str, tags: &[&str]) -> pb::Ticket {
    let ticket = suite.open(customer, subject).await;
    let mut update = ticket.clone();
    update.tags = tags.iter().map(|t| t.to_string()).collect();
    let request =
        pb::UpdateTicketRequest { ticket: Some(update), update_mask: Some(prost_types::FieldMask { paths: vec!["tags".into()] }) };
    suite.tickets.clone().update_ticket(suite.admin(request)).await.unwrap().into_inner().ticket.unwrap()
}

#[tokio::test]
async fn duplicates_close_into_the_survivor_with_their_comments_tags_and_a_note() {
    // Arrange: the same customer wrote three times about one problem.
    let suite = spawn_app().await;
    let customer = suite.customer("Ada").await;
    let survivor = tagged(&suite, &customer, "Router down", &["network"]).await;
    let by_email = tagged(&suite, &customer, "Internet not working", &["network", "email"]).await;
    let by_phone = tagged(&suite, &customer, "Called about the router", &["vip-callback"]).await;
    suite.comment(&by_email.name, "Customer sent a photo of the lights", false).await;
    suite.comment(&by_phone.name, "We are looking into it", true).await;

    // Act
    let request = merge_request(&survivor.name, &[&by_email.name, &by_phone.name]);
    let merged = suite.tickets.clone().merge_tickets(suite.as_roles(request.clone(), &["agent"])).await.unwrap().into_inner();

    // Assert: the survivor carries everything, the duplicates are closed and point at it.
    let kept = merged.ticket.unwrap();
    assert_eq!(kept.tags, ["network", "email", "vip-callback"]);
    assert_ne!(kept.etag, survivor.etag);
    assert_eq!(merged.merged_tickets.len(), 2);
    for duplicate in &merged.merged_tickets {
        assert_eq!((duplicate.status, duplicate.merged_into.as_str()), (pb::Status::Closed as i32, kept.name.as_str()));
        let timeline = suite.timeline(&duplicate.name).await;
        assert!(timeline.iter().any(|e| e.kind == "MERGED_INTO" && e.detail == format!("NEW → CLOSED: merged into {}", kept.name)));
    }
    let comments = suite.comments(&kept.name).await;
    let bodies: Vec<&str> = comments.iter().map(|c| c.body.as_str()).collect();
    assert!(bodies.contains(&"Customer sent a photo of the lights") && bodies.contains(&"We are looking into it"), "{bodies:?}");
    let note = comments.iter().find(|c| c.body.starts_with("Merged ")).expect("a note quoting the duplicates");
    assert!(!note.public && note.body.contains("Internet not working") && note.body.contains(&by_phone.name));
    assert!(suite.comments(&by_email.name).await.is_empty(), "the comments moved");
    assert!(suite.timeline(&kept.name).await.iter().any(|e| e.kind == "MERGED"));

    // A retry changes nothing and answers the same.
    let again = suite.tickets.clone().merge_tickets(suite.admin(request)).await.unwrap().into_inner();
    assert_eq!(again.ticket.unwrap().etag, kept.etag);
    assert_eq!(suite.comments(&kept.name).await.len(), comments.len());
    // A merged duplicate is closed for good.
    assert_error(suite.transition(&by_email.name, pb::Status::Open).await, Code::FailedPrecondition, "INVALID_TRANSITION");
}

#[tokio::test]
async fn merges_that_would_lose_or_mix_data_are_refused_and_change_nothing() {
    let suite = spawn_app().await;
    let ada = suite.customer("Ada").await;
    let bob = suite.customer("Bob").await;
    let survivor = suite.open(&ada, "Router down").await;
    let other_customer = suite.open(&bob, "Router down too").await;
    let resolved = suite.open(&ada, "Old problem").await;
    suite.transition(&resolved.name, pb::Status::Resolved).await.unwrap();
    let mut tickets = suite.tickets.clone();

    let mixed = tickets.merge_tickets(suite.admin(merge_request(&survivor.name, &[&other_customer.name]))).await;
    assert_error(mixed, Code::FailedPrecondition, "DIFFERENT_CUSTOMER");
    let done = tickets.merge_tickets(suite.admin(merge_request(&survivor.name, &[&resolved.name]))).await;
    assert_error(done, Code::FailedPrecondition, "TICKET_NOT_OPEN");
    let itself = tickets.merge_tickets(suite.admin(merge_request(&survivor.name, &[&survivor.name]))).await;
    let status = assert_error(itself, Code::InvalidArgument, "SAME_TICKET");
    use tonic_types::StatusExt;
    assert_eq!(status.get_error_details().bad_request().unwrap().field_violations[0].field, "source_tickets[0]");
    let unknown = format!("tickets/{}", uuid::Uuid::now_v7());
    assert_error(tickets.merge_tickets(suite.admin(merge_request(&survivor.name, &[&unknown]))).await, Code::NotFound, "NOT_FOUND");
    assert_error(tickets.merge_tickets(suite.admin(merge_request(&survivor.name, &[]))).await, Code::InvalidArgument, "INVALID_COUNT");
    let stale = pb::MergeTicketsRequest { etag: "r99".into(), ..merge_request(&survivor.name, &[&resolved.name]) };
    assert_error(tickets.merge_tickets(suite.admin(stale)).await, Code::Aborted, "ETAG_MISMATCH");
    let reader = tickets.merge_tickets(suite.as_roles(merge_request(&survivor.name, &[&resolved.name]), &["readonly"])).await;
    assert_error(reader, Code::PermissionDenied, "PERMISSION_DENIED");

    // Nothing moved.
    assert_eq!(suite.get(&survivor.name).await.etag, survivor.etag);
    assert_eq!(suite.get(&other_customer.name).await.status, pb::Status::New as i32);
}

#[tokio::test]
async fn crossing_merges_never_deadlock_and_exactly_one_wins() {
    // Two agents merge the same pair in opposite directions at the same time.
    let suite = spawn_app().await;
    let customer = suite.customer("Ada").await;
    for _ in 0..5 {
        let (a, b) = (suite.open(&customer, "Twin A").await, suite.open(&customer, "Twin B").await);
        let (mut left, mut right) = (suite.tickets.clone(), suite.tickets.clone());
        let (ab, ba) = tokio::join!(
            left.merge_tickets(suite.admin(merge_request(&a.name, &[&b.name]))),
            right.merge_tickets(suite.admin(merge_request(&b.name, &[&a.name]))),
        );
        assert!(ab.is_ok() != ba.is_ok(), "exactly one merge wins: {ab:?} / {ba:?}");
        let loser = ab.err().or(ba.err()).unwrap();
        assert_eq!(loser.code(), Code::FailedPrecondition, "{loser:?}");
        let closed = [suite.get(&a.name).await, suite.get(&b.name).await].iter().filter(|t| t.status == pb::Status::Closed as i32).count();
        assert_eq!(closed, 1);
    }
}
