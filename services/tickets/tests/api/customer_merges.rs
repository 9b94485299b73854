//! When profiles merges customers (CustomersMerged), their tickets move to
//! the survivor — once, with two replicas following the stream — and an
//! unmerge (CustomersUnmerged) puts back exactly the tickets it moved.

use std::time::{Duration, Instant};

use crm_proto::crm::{profiles::v1 as profiles, tickets::v1 as pb};

use crate::helpers::{TestApp, spawn_app};

async fn customer_of(app: &TestApp, ticket: &str) -> String {
    let request = app.admin(pb::GetTicketRequest { name: ticket.to_owned() });
    app.tickets.clone().get_ticket(request).await.unwrap().into_inner().ticket.unwrap().customer
}

async fn wait_for(app: &TestApp, ticket: &str, customer: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while customer_of(app, ticket).await != customer {
        assert!(Instant::now() < deadline, "{ticket} moved to {customer} in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn merged_customers_tickets_follow_the_survivor_and_come_back_on_unmerge() {
    let app = spawn_app().await;
    let _replica = app.replica().await;
    let ada = app.customer("Ada Lovelace").await;
    let ada_again = app.customer("A. Lovelace").await;
    let bob = app.customer("Bob").await;
    let first = app.open(&ada_again, "Router down").await;
    let second = app.open(&ada_again, "Invoice").await;
    let bobs = app.open(&bob, "Bob's invoice").await;
    let adas = app.open(&ada, "Ada's own").await;

    let mut merges = profiles::merge_service_client::MergeServiceClient::new(app.profiles.clone());
    let request = profiles::MergeCustomersRequest { survivor: ada.clone(), duplicates: vec![ada_again.clone()], ..Default::default() };
    let merge = merges.merge_customers(app.admin(request)).await.unwrap().into_inner().customer_merge.unwrap();
    wait_for(&app, &first.name, &ada).await;
    wait_for(&app, &second.name, &ada).await;
    assert_eq!(customer_of(&app, &bobs.name).await, bob, "other customers' tickets stay");
    assert_eq!(customer_of(&app, &adas.name).await, ada);

    merges.unmerge_customers(app.admin(profiles::UnmergeCustomersRequest { name: merge.name })).await.unwrap();
    wait_for(&app, &first.name, &ada_again).await;
    wait_for(&app, &second.name, &ada_again).await;
    assert_eq!(customer_of(&app, &adas.name).await, ada, "the survivor's own ticket stays with it");

    let events = app
        .tickets
        .clone()
        .list_ticket_events(app.admin(pb::ListTicketEventsRequest { parent: first.name.clone(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .events;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).filter(|k| k.starts_with("CUSTOMER_")).collect();
    assert_eq!(kinds, ["CUSTOMER_MERGED", "CUSTOMER_UNMERGED"], "once each, with two replicas following");
}
