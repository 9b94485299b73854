//! Two replicas of profiles on one database, as a Deployment scaled to two
//! runs them: both take writes at once and the guarantees hold across them —
//! a request id makes one customer however many replicas see the retries, an
//! etag lets exactly one of two racing updates through, and the event stream
//! hands out every event once, in one order, whichever replica serves it.

use std::collections::HashSet;

use crm_proto::crm::{
    events::v1::Event,
    profiles::v1::{self as pb, customer_service_client::CustomerServiceClient},
};
use crm_testkit::{
    auth::{token, with_token},
    database::fresh_database,
    process::{ServiceProcess, binary, spawn_service},
};
use tonic::{Code, transport::Channel};
use uuid::Uuid;

fn customers(replica: &ServiceProcess) -> CustomerServiceClient<Channel> {
    CustomerServiceClient::new(replica.channel.clone())
}

fn create(name: &str, request_id: &str, bearer: &str) -> tonic::Request<pb::CreateCustomerRequest> {
    let customer = pb::Customer { display_name: name.into(), ..Default::default() };
    with_token(pb::CreateCustomerRequest { customer: Some(customer), request_id: request_id.into() }, bearer)
}

/// The first `n` events of `replica`'s stream (failing after 20 s).
async fn events(replica: &ServiceProcess, bearer: &str, n: usize) -> Vec<Event> {
    crm_testkit::events::collect(&replica.channel, bearer, 0, n).await
}

#[tokio::test]
async fn two_replicas_on_one_database_keep_idempotency_etags_and_event_order() {
    // Arrange: two processes on the same database.
    let db = fresh_database("profiles").await.unwrap();
    let (a, b) = (spawn_service(binary("crm-profiles"), &db, &[]).await, spawn_service(binary("crm-profiles"), &db, &[]).await);
    let bearer = token(Uuid::now_v7(), &["admin"]);

    // Retries of one create, sent to both replicas at once: one customer.
    let retries: Vec<_> = (0..16)
        .map(|i| {
            let (mut client, request) = (customers(if i % 2 == 0 { &a } else { &b }), create("Ada", "signup-1", &bearer));
            tokio::spawn(async move { client.create_customer(request).await.map(|r| r.into_inner().customer.unwrap()) })
        })
        .collect();
    let mut created = Vec::new();
    for retry in retries {
        created.push(retry.await.unwrap().expect("every retry succeeds"));
    }
    assert!(created.iter().all(|c| *c == created[0]), "every retry gets the first response");
    let listed = customers(&b).list_customers(with_token(pb::ListCustomersRequest::default(), &bearer)).await.unwrap().into_inner();
    assert_eq!(listed.customers.len(), 1, "one customer for one request id");

    // Two updates racing from the same etag, one per replica: one wins, one is ABORTED.
    let ada = &created[0];
    let rename = |name: &str| {
        with_token(
            pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    name: ada.name.clone(),
                    display_name: name.into(),
                    etag: ada.etag.clone(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask { paths: vec!["display_name".into()] }),
            },
            &bearer,
        )
    };
    let (mut on_a, mut on_b) = (customers(&a), customers(&b));
    let (first, second) = tokio::join!(on_a.update_customer(rename("Ada A")), on_b.update_customer(rename("Ada B")));
    let outcomes = [first.map(|_| ()).map_err(|s| s.code()), second.map(|_| ()).map_err(|s| s.code())];
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    assert!(outcomes.contains(&Err(Code::Aborted)), "{outcomes:?}");

    // Concurrent writers on both replicas; both streams hand out every event once, in the same order.
    let writers: Vec<_> = (0..40)
        .map(|i| {
            let (mut client, request) = (customers(if i % 2 == 0 { &a } else { &b }), create(&format!("C{i}"), "", &bearer));
            tokio::spawn(async move { client.create_customer(request).await.unwrap() })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let expected = 1 + 1 + 40; // Ada, her rename, the 40 creates
    let (from_a, from_b) = (events(&a, &bearer, expected).await, events(&b, &bearer, expected).await);
    let positions: Vec<i64> = from_a.iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "positions strictly increase: {positions:?}");
    assert_eq!(from_a.iter().map(|e| &e.id).collect::<HashSet<_>>().len(), expected, "each event once");
    assert_eq!(
        from_a.iter().map(|e| (&e.id, e.position)).collect::<Vec<_>>(),
        from_b.iter().map(|e| (&e.id, e.position)).collect::<Vec<_>>(),
        "both replicas serve one history"
    );
}
