//! The `customer` role (OWASP API1/API3): a customer reads and updates its
//! own record only, only its contact details and consent, and nothing else.

use crm_proto::crm::{
    common::v1::{PhoneNumber, PostalAddress},
    events::v1::SubscribeRequest,
    profiles::v1 as pb,
};
use crm_testkit::auth::{claims, customer_token, token_with, with_token};
use prost_types::FieldMask;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

/// Two customers A and B of one tenant, and A's token.
struct Two {
    app: TestApp,
    a: pb::Customer,
    b: pb::Customer,
    a_token: String,
}

async fn two_customers() -> Two {
    let app = spawn_app().await;
    let a = app.create(customer("Ada", "ada@example.com")).await;
    let b = app.create(customer("Bob", "bob@example.com")).await;
    let a_token = customer_token(app.tenant, &a.name);
    Two { app, a, b, a_token }
}

impl Two {
    fn as_a<T>(&self, message: T) -> Request<T> {
        with_token(message, &self.a_token)
    }

    fn update(&self, name: &str, paths: &[&str]) -> Request<pb::UpdateCustomerRequest> {
        self.as_a(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer {
                name: name.into(),
                display_name: "Mallory".into(),
                phones: vec![PhoneNumber { number: "+8613812341234".into(), label: "mobile".into(), primary: true }],
                category: pb::CustomerCategory::Vip as i32,
                owner: "mallory".into(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
        })
    }
}

/// The permission an ErrorInfo names.
fn permission(status: &Status) -> String {
    status.get_error_details().error_info().and_then(|i| i.metadata.get("permission").cloned()).unwrap_or_default()
}

#[tokio::test]
async fn a_customer_reads_its_own_record_unmasked_and_no_other() {
    let t = two_customers().await;
    let mut client = t.app.customers.clone();

    let own = client.get_customer(t.as_a(pb::GetCustomerRequest { name: t.a.name.clone() })).await.unwrap().into_inner().customer.unwrap();
    assert_eq!(own.emails[0].address, "ada@example.com", "its own email is not masked");

    // Another customer's record and a record that does not exist look the same.
    let other = client.get_customer(t.as_a(pb::GetCustomerRequest { name: t.b.name.clone() })).await;
    let status = assert_error(other, Code::NotFound, "NOT_FOUND");
    assert!(!status.message().contains("bob"), "{status:?}");
    let missing = format!("customers/{}", uuid::Uuid::now_v7());
    assert_error(client.get_customer(t.as_a(pb::GetCustomerRequest { name: missing })).await, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn a_customer_updates_only_its_own_contact_details_and_consent() {
    let t = two_customers().await;
    let mut client = t.app.customers.clone();

    let consent = pb::Consent {
        email: Some(pb::ChannelConsent { state: pb::ConsentState::OptedOut as i32, update_time: None }),
        ..Default::default()
    };
    let request = t.as_a(pb::UpdateCustomerRequest {
        customer: Some(pb::Customer {
            name: t.a.name.clone(),
            phones: vec![PhoneNumber { number: "+8613812341234".into(), label: "mobile".into(), primary: true }],
            addresses: vec![PostalAddress { city: "London".into(), country: "GB".into(), ..Default::default() }],
            consent: Some(consent),
            ..Default::default()
        }),
        update_mask: Some(FieldMask { paths: vec!["phones".into(), "addresses".into(), "consent".into()] }),
    });
    let updated = client.update_customer(request).await.unwrap().into_inner().customer.unwrap();
    assert_eq!(updated.phones[0].number, "+8613812341234", "its own phone is not masked");
    assert_eq!(updated.addresses[0].city, "London");
    assert_eq!(updated.consent.unwrap().email.unwrap().state, pb::ConsentState::OptedOut as i32);
    assert_eq!(updated.display_name, "Ada");

    // API3: any other field is refused, naming the field, and nothing changes.
    for (paths, field) in [
        (vec!["display_name"], "display_name"),
        (vec!["phones", "category"], "category"),
        (vec!["owner"], "owner"),
        (vec!["*"], "display_name"),
    ] {
        let status = assert_error(client.update_customer(t.update(&t.a.name, &paths)).await, Code::PermissionDenied, "PERMISSION_DENIED");
        assert_eq!(permission(&status), format!("customers.update.{field}"), "{paths:?}");
    }
    let after = t.app.get(&t.a.name).await.unwrap();
    assert_eq!((after.display_name.as_str(), after.category, after.owner.as_str()), ("Ada", 0, ""));
    assert_eq!(after.phones.len(), 1);
}

#[tokio::test]
async fn a_customer_can_neither_read_nor_change_another_customer_through_any_rpc() {
    let t = two_customers().await;
    let mut client = t.app.customers.clone();
    let b = &t.b.name;

    // Reads and updates of B are NOT_FOUND: B's existence is not revealed.
    assert_error(client.get_customer(t.as_a(pb::GetCustomerRequest { name: b.clone() })).await, Code::NotFound, "NOT_FOUND");
    for paths in [&["phones"][..], &["emails", "consent"], &["display_name"], &["*"]] {
        assert_error(client.update_customer(t.update(b, paths)).await, Code::NotFound, "NOT_FOUND");
    }
    // Every other RPC is refused outright, for B and for A itself.
    for name in [b, &t.a.name] {
        let deleted = client.delete_customer(t.as_a(pb::DeleteCustomerRequest { name: name.clone(), etag: String::new() })).await;
        assert_error(deleted, Code::PermissionDenied, "PERMISSION_DENIED");
        let undeleted = client.undelete_customer(t.as_a(pb::UndeleteCustomerRequest { name: name.clone(), etag: String::new() })).await;
        assert_error(undeleted, Code::PermissionDenied, "PERMISSION_DENIED");
        let batch = client.batch_get_customers(t.as_a(pb::BatchGetCustomersRequest { names: vec![name.clone()] })).await;
        assert_error(batch, Code::PermissionDenied, "PERMISSION_DENIED");
    }
    let listed = client.list_customers(t.as_a(pb::ListCustomersRequest::default())).await;
    assert_error(listed, Code::PermissionDenied, "PERMISSION_DENIED");
    let filtered = client
        .list_customers(t.as_a(pb::ListCustomersRequest { filter: r#"email = "bob@example.com""#.into(), ..Default::default() }))
        .await;
    assert_error(filtered, Code::PermissionDenied, "PERMISSION_DENIED");
    let created = client
        .create_customer(
            t.as_a(pb::CreateCustomerRequest { customer: Some(customer("Eve", "eve@example.com")), request_id: String::new() }),
        )
        .await;
    assert_error(created, Code::PermissionDenied, "PERMISSION_DENIED");
    let events = t.app.events.clone().subscribe(t.as_a(SubscribeRequest::default())).await.map(|_| ());
    assert_error(events, Code::PermissionDenied, "PERMISSION_DENIED");

    // B is untouched.
    let b_now = t.app.get(b).await.unwrap();
    assert_eq!(b_now, t.b);
}

#[tokio::test]
async fn customer_tokens_must_name_the_customer_and_stand_alone() {
    let t = two_customers().await;
    let mut client = t.app.customers.clone();
    let get = || pb::GetCustomerRequest { name: t.a.name.clone() };

    let not_a_customer_name = token_with(&claims("user-7", t.app.tenant, &["customer"]));
    assert_error(client.get_customer(with_token(get(), &not_a_customer_name)).await, Code::Unauthenticated, "INVALID_SUBJECT");
    let mixed = token_with(&claims(&t.a.name, t.app.tenant, &["customer", "admin"]));
    assert_error(client.get_customer(with_token(get(), &mixed)).await, Code::Unauthenticated, "INVALID_ROLES");
    // A's token in another tenant does not reach A.
    let elsewhere = customer_token(uuid::Uuid::now_v7(), &t.a.name);
    assert_error(client.get_customer(with_token(get(), &elsewhere)).await, Code::NotFound, "NOT_FOUND");
}
