//! When profiles erases a customer (CustomerErased on its event stream),
//! tickets erases its copies of their personal text — their tickets'
//! subjects, descriptions, comments — once, even with two replicas
//! following the stream, and leaves other customers' tickets alone.

use std::time::{Duration, Instant};

use crm_proto::crm::{profiles::v1 as profiles, tickets::v1 as pb};

use crate::helpers::spawn_app;

#[tokio::test]
async fn an_erased_customers_text_leaves_their_tickets_once_and_only_theirs() {
    let app = spawn_app().await;
    let _replica = app.replica().await;
    let ada = app.customer("Ada Lovelace").await;
    let bob = app.customer("Bob").await;
    let mut ticket = pb::Ticket { customer: ada.clone(), subject: "Ada's router at 12 Elm St".into(), ..Default::default() };
    ticket.description = "Ada Lovelace says the router at 12 Elm St blinks red".into();
    let adas = app
        .tickets
        .clone()
        .create_ticket(app.admin(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    let comment = pb::Comment { body: "Call Ada on +44 7700 900123".into(), ..Default::default() };
    app.tickets
        .clone()
        .add_comment(app.admin(pb::AddCommentRequest { parent: adas.name.clone(), comment: Some(comment), request_id: String::new() }))
        .await
        .unwrap();
    let bobs = app.open(&bob, "Bob's invoice").await;

    let erase = profiles::EraseCustomerRequest { name: ada.clone(), reason: "GDPR Art. 17".into(), etag: String::new() };
    app.customers.clone().erase_customer(app.admin(erase.clone())).await.unwrap();

    let get = |name: &str| {
        let (mut tickets, request) = (app.tickets.clone(), app.admin(pb::GetTicketRequest { name: name.to_owned() }));
        async move { tickets.get_ticket(request).await }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let erased = loop {
        let ticket = get(&adas.name).await.unwrap().into_inner().ticket.unwrap();
        if ticket.subject == "(erased)" {
            break ticket;
        }
        assert!(Instant::now() < deadline, "the erasure reached tickets in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(erased.description, "");
    let comments = app
        .tickets
        .clone()
        .list_comments(app.admin(pb::ListCommentsRequest { parent: adas.name.clone(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .comments;
    assert!(comments.iter().all(|c| c.body.is_empty() && c.attachments.is_empty()), "{comments:?}");
    assert_eq!(get(&bobs.name).await.unwrap().into_inner().ticket.unwrap().subject, "Bob's invoice", "other customers' tickets stay");

    // Erasing again in profiles announces nothing; the two replicas applied the one event once.
    app.customers.clone().erase_customer(app.admin(erase)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = app
        .tickets
        .clone()
        .list_ticket_events(app.admin(pb::ListTicketEventsRequest { parent: adas.name.clone(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.iter().filter(|e| e.kind == "ERASED").count(), 1, "{events:?}");
}

#[tokio::test]
async fn tenants_with_tickets_from_before_the_stream_are_followed_from_start_up() {
    use sqlx::Connection;
    let app = spawn_app().await;
    let ada = app.customer("Ada Lovelace").await;
    app.open(&ada, "Router down").await;
    // As if the ticket predated migration 1013: the tenant is not marked as following profiles.
    let mut conn = sqlx::PgConnection::connect(app.app_database_url()).await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut conn).await.unwrap();
    sqlx::query("DELETE FROM stream_positions WHERE source = 'profiles'").execute(&mut conn).await.unwrap();

    let _replica = app.replica().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let marked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM stream_positions WHERE source = 'profiles'").fetch_one(&mut conn).await.unwrap();
        if marked == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "a starting replica marked the tenant");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
