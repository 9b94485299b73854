//! AIP-155 request ids on CreateCustomer.

use crm_proto::crm::profiles::v1 as pb;
use tonic::Code;

use crate::helpers::{assert_error, customer, spawn_app};

#[tokio::test]
async fn a_retry_returns_the_first_result_and_a_reused_id_with_another_body_is_rejected() {
    let app = spawn_app().await;
    let mut client = app.customers.clone();
    let request =
        |name: &str| app.admin(pb::CreateCustomerRequest { customer: Some(customer(name, "ada@example.com")), request_id: "req-1".into() });

    let first = client.create_customer(request("Ada")).await.unwrap().into_inner().customer.unwrap();
    let retry = client.create_customer(request("Ada")).await.unwrap().into_inner().customer.unwrap();
    assert_eq!(first, retry);

    assert_error(client.create_customer(request("Someone else")).await, Code::InvalidArgument, "REQUEST_ID_REUSED");
    let invalid = client
        .create_customer(app.admin(pb::CreateCustomerRequest { customer: Some(customer("x", "")), request_id: "has space".into() }))
        .await;
    assert_error(invalid, Code::InvalidArgument, "INVALID_REQUEST_ID");
}

#[tokio::test]
async fn twenty_concurrent_identical_requests_make_one_customer() {
    let app = spawn_app().await;
    let calls = (0..20).map(|_| {
        let mut client = app.customers.clone();
        let request =
            app.admin(pb::CreateCustomerRequest { customer: Some(customer("Once", "once@example.com")), request_id: "same-id".into() });
        tokio::spawn(async move { client.create_customer(request).await.map(|r| r.into_inner().customer.unwrap().name) })
    });
    let names: Vec<String> = futures::future::join_all(calls).await.into_iter().map(|r| r.unwrap().expect("every call succeeds")).collect();
    assert!(names.iter().all(|n| n == &names[0]), "{names:?}");
    let listed = app.customers.clone().list_customers(app.admin(pb::ListCustomersRequest::default())).await.unwrap().into_inner();
    assert_eq!(listed.customers.len(), 1);
}
