//! Authentication failures, role permissions and PII masking, end to end.

use crm_proto::crm::{common::v1::PhoneNumber, profiles::v1 as pb};
use crm_testkit::auth::{claims, token_with, with_token};
use prost_types::FieldMask;
use tonic::Code;

use crate::helpers::{assert_error, customer, error_info, spawn_app};

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let app = spawn_app().await;
    let mut client = app.customers.clone();
    let get = || pb::GetCustomerRequest { name: format!("customers/{}", uuid::Uuid::now_v7()) };

    let status = assert_error(client.get_customer(tonic::Request::new(get())).await, Code::Unauthenticated, "MISSING_CREDENTIALS");
    assert_eq!(error_info(&status).1, "profiles.crm");

    let expired = token_with(&crm_kit::auth::Claims { exp: 1_000, ..claims("u", app.tenant, &["admin"]) });
    assert_error(client.get_customer(with_token(get(), &expired)).await, Code::Unauthenticated, "TOKEN_EXPIRED");
    let wrong_audience = token_with(&crm_kit::auth::Claims { aud: "billing".into(), ..claims("u", app.tenant, &["admin"]) });
    assert_error(client.get_customer(with_token(get(), &wrong_audience)).await, Code::Unauthenticated, "INVALID_AUDIENCE");
    let no_tenant = token_with(&crm_kit::auth::Claims { tenant: None, ..claims("u", app.tenant, &["admin"]) });
    assert_error(client.get_customer(with_token(get(), &no_tenant)).await, Code::Unauthenticated, "MISSING_TENANT");
    assert_error(client.get_customer(with_token(get(), "garbage")).await, Code::Unauthenticated, "INVALID_TOKEN");
}

#[tokio::test]
async fn roles_limit_what_callers_may_do_and_permission_comes_before_existence() {
    let app = spawn_app().await;
    let mut client = app.customers.clone();
    let create =
        |roles: &[&str]| app.as_roles(pb::CreateCustomerRequest { customer: Some(customer("X", "")), request_id: String::new() }, roles);

    assert_error(client.create_customer(create(&["readonly"])).await, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_error(client.create_customer(create(&["marketer"])).await, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_error(client.create_customer(create(&[])).await, Code::PermissionDenied, "PERMISSION_DENIED");
    assert!(client.create_customer(create(&["agent"])).await.is_ok());

    // A caller who may not delete gets PERMISSION_DENIED even for a customer that does not exist.
    let missing = format!("customers/{}", uuid::Uuid::now_v7());
    let delete =
        client.delete_customer(app.as_roles(pb::DeleteCustomerRequest { name: missing.clone(), etag: String::new() }, &["agent"])).await;
    assert_error(delete, Code::PermissionDenied, "PERMISSION_DENIED");
    let delete = client.delete_customer(app.admin(pb::DeleteCustomerRequest { name: missing, etag: String::new() })).await;
    assert_error(delete, Code::NotFound, "NOT_FOUND");
}

#[tokio::test]
async fn agents_and_marketers_write_only_the_fields_of_their_work() {
    let app = spawn_app().await;
    let created = app.create(customer("Ada", "ada@example.com")).await;
    let mut client = app.customers.clone();
    let update = |paths: &[&str], roles: &[&str]| {
        app.as_roles(
            pb::UpdateCustomerRequest {
                customer: Some(pb::Customer {
                    name: created.name.clone(),
                    display_name: "Ada".into(),
                    category: pb::CustomerCategory::Vip as i32,
                    tags: vec!["x".into()],
                    ..Default::default()
                }),
                update_mask: Some(FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }),
            },
            roles,
        )
    };
    let denied = assert_error(client.update_customer(update(&["category"], &["agent"])).await, Code::PermissionDenied, "PERMISSION_DENIED");
    use tonic_types::StatusExt;
    assert_eq!(denied.get_error_details().error_info().unwrap().metadata["permission"], "customers.update.category");
    assert_error(client.update_customer(update(&["*"], &["agent"])).await, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_error(client.update_customer(update(&["display_name"], &["marketer"])).await, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_error(client.update_customer(update(&["tags"], &["readonly"])).await, Code::PermissionDenied, "PERMISSION_DENIED");

    assert!(client.update_customer(update(&["tags"], &["agent"])).await.is_ok());
    let by_marketer = client.update_customer(update(&["category"], &["marketer"])).await.unwrap().into_inner().customer.unwrap();
    assert_eq!(by_marketer.category, pb::CustomerCategory::Vip as i32);
}

#[tokio::test]
async fn callers_without_pii_see_masked_contacts_and_cannot_filter_on_them() {
    let app = spawn_app().await;
    let created = app
        .create(pb::Customer {
            phones: vec![PhoneNumber { number: "+8613812341234".into(), ..Default::default() }],
            ..customer("Alice", "alice@example.com")
        })
        .await;
    let mut client = app.customers.clone();
    for role in ["readonly", "analyst"] {
        let seen = client
            .get_customer(app.as_roles(pb::GetCustomerRequest { name: created.name.clone() }, &[role]))
            .await
            .unwrap()
            .into_inner()
            .customer
            .unwrap();
        assert_eq!(seen.emails[0].address, "a***@example.com");
        assert_eq!(seen.phones[0].number, "+86*******1234");
        let listed = client.list_customers(app.as_roles(pb::ListCustomersRequest::default(), &[role])).await.unwrap().into_inner();
        assert_eq!(listed.customers[0].emails[0].address, "a***@example.com");
        let probe = client
            .list_customers(
                app.as_roles(pb::ListCustomersRequest { filter: "email = \"alice@example.com\"".into(), ..Default::default() }, &[role]),
            )
            .await;
        assert_error(probe, Code::PermissionDenied, "PERMISSION_DENIED");
    }
    let agent_view = client
        .get_customer(app.as_roles(pb::GetCustomerRequest { name: created.name.clone() }, &["agent"]))
        .await
        .unwrap()
        .into_inner()
        .customer
        .unwrap();
    assert_eq!(agent_view.emails[0].address, "alice@example.com");
}
