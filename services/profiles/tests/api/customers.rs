//! CustomerService happy paths and error codes.

use crm_proto::crm::{
    common::v1::{PhoneNumber, PostalAddress},
    profiles::v1::{self as pb},
};
use prost_types::FieldMask;
use tonic::Code;

use crate::helpers::{assert_error, customer, error_info, spawn_app, violations};

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() })
}

#[tokio::test]
async fn create_then_get_returns_the_normalised_customer() {
    let app = spawn_app().await;
    let input = pb::Customer {
        display_name: "  Ada Lovelace ".into(),
        kind: pb::CustomerKind::Person as i32,
        phones: vec![PhoneNumber { number: "+44 20 7946 0958".into(), label: "office".into(), primary: true }],
        addresses: vec![PostalAddress { city: "London".into(), country: "gb".into(), ..Default::default() }],
        time_zone: "Europe/London".into(),
        locale: "en_gb".into(),
        tags: vec!["vip".into(), "vip".into()],
        category: pb::CustomerCategory::Vip as i32,
        consent: Some(pb::Consent {
            email: Some(pb::ChannelConsent { state: pb::ConsentState::OptedIn as i32, update_time: None }),
            ..Default::default()
        }),
        value_tier: pb::ValueTier::High as i32, // output only: ignored
        ..customer("", "ADA@Example.com")
    };

    let created = app.create(input).await;

    assert!(created.name.starts_with("customers/"));
    assert_eq!(created.display_name, "Ada Lovelace");
    assert_eq!(created.emails[0].address, "ada@example.com");
    assert_eq!(created.phones[0].number, "+442079460958");
    assert_eq!(created.addresses[0].country, "GB");
    assert_eq!(created.locale, "en-GB");
    assert_eq!(created.tags, ["vip"]);
    assert_eq!(created.value_tier, 0);
    assert!(created.consent.as_ref().unwrap().email.as_ref().unwrap().update_time.is_some());
    assert!(created.create_time.is_some() && created.delete_time.is_none());
    assert_eq!(app.get(&created.name).await.unwrap(), created);
}

#[tokio::test]
async fn every_invalid_field_is_reported() {
    let app = spawn_app().await;
    let input = pb::Customer {
        time_zone: "Mars/Base".into(),
        phones: vec![PhoneNumber { number: "12345".into(), ..Default::default() }],
        ..customer("", "not-an-email")
    };
    let result = app
        .customers
        .clone()
        .create_customer(app.admin(pb::CreateCustomerRequest { customer: Some(input), request_id: String::new() }))
        .await;
    let status = assert_error(result, Code::InvalidArgument, "INVALID_FIELDS");
    assert_eq!(
        violations(&status),
        [
            ("customer.display_name".to_string(), "REQUIRED".to_string()),
            ("customer.emails[0].address".into(), "INVALID_EMAIL".into()),
            ("customer.phones[0].number".into(), "INVALID_PHONE".into()),
            ("customer.time_zone".into(), "INVALID_TIME_ZONE".into()),
        ]
    );
    assert_eq!(error_info(&status).1, "profiles.crm");
    // Nothing was written.
    let list = app.customers.clone().list_customers(app.admin(pb::ListCustomersRequest::default())).await.unwrap().into_inner();
    assert!(list.customers.is_empty());
}

#[tokio::test]
async fn emails_are_unique_among_live_customers() {
    let app = spawn_app().await;
    let first = app.create(customer("Ada", "ada@example.com")).await;
    let duplicate = app
        .customers
        .clone()
        .create_customer(
            app.admin(pb::CreateCustomerRequest { customer: Some(customer("Imposter", "ADA@example.com")), request_id: String::new() }),
        )
        .await;
    assert_error(duplicate, Code::AlreadyExists, "EMAIL_ALREADY_USED");

    // Deleting frees the address; undeleting the first then conflicts with the new owner.
    app.customers
        .clone()
        .delete_customer(app.admin(pb::DeleteCustomerRequest { name: first.name.clone(), etag: String::new() }))
        .await
        .unwrap();
    let second = app.create(customer("Ada II", "ada@example.com")).await;
    let undelete = app
        .customers
        .clone()
        .undelete_customer(app.admin(pb::UndeleteCustomerRequest { name: first.name.clone(), etag: String::new() }))
        .await;
    assert_error(undelete, Code::AlreadyExists, "EMAIL_ALREADY_USED");
    assert!(app.get(&second.name).await.unwrap().delete_time.is_none());
}

#[tokio::test]
async fn update_applies_the_mask_and_checks_the_etag() {
    let app = spawn_app().await;
    let created = app.create(customer("Ada", "ada@example.com")).await;
    let update = |customer: pb::Customer, paths: &[&str]| {
        let mut client = app.customers.clone();
        let request = app.admin(pb::UpdateCustomerRequest { customer: Some(customer), update_mask: mask(paths) });
        async move { client.update_customer(request).await }
    };

    let changed = update(
        pb::Customer {
            name: created.name.clone(),
            display_name: "Ada King".into(),
            company: "ignored".into(),
            etag: created.etag.clone(),
            ..Default::default()
        },
        &["display_name"],
    )
    .await
    .unwrap()
    .into_inner()
    .customer
    .unwrap();
    assert_eq!(changed.display_name, "Ada King");
    assert_eq!(changed.company, "", "fields outside the mask are untouched");
    assert_eq!(changed.emails, created.emails);
    assert_ne!(changed.etag, created.etag);

    // Stale etag → ABORTED; nothing changes.
    let stale = update(
        pb::Customer { name: created.name.clone(), display_name: "Lost".into(), etag: created.etag.clone(), ..Default::default() },
        &["display_name"],
    )
    .await;
    assert_error(stale, Code::Aborted, "ETAG_MISMATCH");
    assert_eq!(app.get(&created.name).await.unwrap().display_name, "Ada King");

    // Unknown mask paths and a missing mask are INVALID_ARGUMENT.
    let unknown = update(pb::Customer { name: created.name.clone(), ..Default::default() }, &["display_name", "value_tier"]).await;
    let status = assert_error(unknown, Code::InvalidArgument, "UNKNOWN_FIELD_PATH");
    assert_eq!(violations(&status)[0].0, "update_mask.paths[1]");
    assert_error(
        update(pb::Customer { name: created.name.clone(), ..Default::default() }, &[]).await,
        Code::InvalidArgument,
        "UPDATE_MASK_REQUIRED",
    );

    // "*" replaces every writable field.
    let replaced = update(pb::Customer { name: created.name.clone(), display_name: "Only Name".into(), ..Default::default() }, &["*"])
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert!(replaced.emails.is_empty());
    assert_eq!(replaced.display_name, "Only Name");

    // Unknown customer → NOT_FOUND with ResourceInfo.
    let missing = update(
        pb::Customer { name: format!("customers/{}", uuid::Uuid::now_v7()), display_name: "x".into(), ..Default::default() },
        &["display_name"],
    )
    .await;
    assert_error(missing, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn an_update_that_changes_nothing_keeps_the_etag() {
    let app = spawn_app().await;
    let created = app.create(customer("Ada", "ada@example.com")).await;
    let same = app
        .customers
        .clone()
        .update_customer(app.admin(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer { name: created.name.clone(), display_name: " Ada ".into(), ..Default::default() }),
            update_mask: mask(&["display_name"]),
        }))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(same.etag, created.etag);
}

#[tokio::test]
async fn delete_and_undelete_are_soft_and_idempotent() {
    let app = spawn_app().await;
    let created = app.create(customer("Ada", "")).await;
    let mut client = app.customers.clone();

    let stale = client.delete_customer(app.admin(pb::DeleteCustomerRequest { name: created.name.clone(), etag: "r99".into() })).await;
    assert_error(stale, Code::Aborted, "ETAG_MISMATCH");

    let deleted = client
        .delete_customer(app.admin(pb::DeleteCustomerRequest { name: created.name.clone(), etag: created.etag.clone() }))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert!(deleted.delete_time.is_some());
    let again = client
        .delete_customer(app.admin(pb::DeleteCustomerRequest { name: created.name.clone(), etag: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(again.etag, deleted.etag, "a retried delete changes nothing");

    // Get still finds it; List hides it unless show_deleted.
    assert!(app.get(&created.name).await.unwrap().delete_time.is_some());
    let live = client.list_customers(app.admin(pb::ListCustomersRequest::default())).await.unwrap().into_inner();
    assert!(live.customers.is_empty());
    let all =
        client.list_customers(app.admin(pb::ListCustomersRequest { show_deleted: true, ..Default::default() })).await.unwrap().into_inner();
    assert_eq!(all.customers.len(), 1);

    // A deleted customer cannot be updated.
    let update = client
        .update_customer(app.admin(pb::UpdateCustomerRequest {
            customer: Some(pb::Customer { name: created.name.clone(), display_name: "x".into(), ..Default::default() }),
            update_mask: mask(&["display_name"]),
        }))
        .await;
    assert_error(update, Code::FailedPrecondition, "CUSTOMER_DELETED");

    let restored = client
        .undelete_customer(app.admin(pb::UndeleteCustomerRequest { name: created.name.clone(), etag: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert!(restored.delete_time.is_none());
}

#[tokio::test]
async fn malformed_names_are_invalid_and_unknown_ones_not_found() {
    let app = spawn_app().await;
    assert_error(app.get("customers/not-a-uuid").await, Code::InvalidArgument, "INVALID_NAME");
    assert_error(app.get("tickets/0190a4c2-0000-7000-8000-000000000001").await, Code::InvalidArgument, "INVALID_NAME");
    let status = assert_error(app.get(&format!("customers/{}", uuid::Uuid::now_v7())).await, Code::NotFound, "NOT_FOUND");
    use tonic_types::StatusExt;
    assert_eq!(status.get_error_details().resource_info().unwrap().resource_type, "profiles.crm/Customer");
}

#[tokio::test]
async fn batch_get_keeps_request_order_and_fails_on_any_missing_name() {
    let app = spawn_app().await;
    let a = app.create(customer("A", "")).await;
    let b = app.create(customer("B", "")).await;
    let mut client = app.customers.clone();
    let got = client
        .batch_get_customers(app.admin(pb::BatchGetCustomersRequest { names: vec![b.name.clone(), a.name.clone(), b.name.clone()] }))
        .await
        .unwrap()
        .into_inner()
        .customers;
    assert_eq!(got.iter().map(|c| c.display_name.as_str()).collect::<Vec<_>>(), ["B", "A", "B"]);
    let missing = client
        .batch_get_customers(
            app.admin(pb::BatchGetCustomersRequest { names: vec![a.name.clone(), format!("customers/{}", uuid::Uuid::now_v7())] }),
        )
        .await;
    assert_error(missing, Code::NotFound, "NOT_FOUND");
    let too_many = client.batch_get_customers(app.admin(pb::BatchGetCustomersRequest { names: vec![a.name.clone(); 1001] })).await;
    assert_error(too_many, Code::InvalidArgument, "TOO_MANY_ENTRIES");
}
