//! Field history (ListCustomerChanges): every field changed on a customer or
//! one of its archive records, from what to what, by whom and through which
//! request; masked for callers without `pii`; nothing for a write that
//! changed nothing; and only for staff.

use crm_proto::crm::{
    common::v1::PhoneNumber,
    profiles::v1::{self as pb, related_person_service_client::RelatedPersonServiceClient},
};
use crm_testkit::auth::{claims, customer_token, token_with, with_token};
use serde_json::json;
use tonic::{Code, Request};

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

/// `message` as staff member `subject` with `roles`, sent with `x-request-id: request_id`.
fn as_staff<T>(app: &TestApp, message: T, subject: &str, roles: &[&str], request_id: &str) -> Request<T> {
    let mut request = with_token(message, &token_with(&claims(subject, app.tenant, roles)));
    request.metadata_mut().insert("x-request-id", request_id.parse().unwrap());
    request
}

async fn changes(app: &TestApp, request: pb::ListCustomerChangesRequest, roles: &[&str]) -> Vec<pb::CustomerChange> {
    app.customers.clone().list_customer_changes(app.as_roles(request, roles)).await.unwrap().into_inner().changes
}

fn json_of(value: &Option<prost_types::Value>) -> serde_json::Value {
    use prost_types::value::Kind;
    match value.as_ref().and_then(|v| v.kind.as_ref()) {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::ListValue(l)) => serde_json::Value::Array(l.values.iter().map(|v| json_of(&Some(v.clone()))).collect()),
        Some(Kind::StructValue(s)) => s.fields.iter().map(|(k, v)| (k.clone(), json_of(&Some(v.clone())))).collect(),
    }
}

fn summary(changes: &[pb::CustomerChange]) -> Vec<(String, i32, String)> {
    changes.iter().map(|c| (c.record.rsplit('/').nth(1).unwrap_or("").to_owned(), c.operation, c.field_path.clone())).collect()
}

#[tokio::test]
async fn every_changed_field_is_kept_with_its_values_its_author_and_its_request() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let mut customers = app.customers.clone();

    let renamed = pb::Customer {
        name: li.name.clone(),
        display_name: "李雷 (Lei Li)".into(),
        phones: vec![PhoneNumber { number: "+8613812341234".into(), label: "mobile".into(), primary: true }],
        ..Default::default()
    };
    let mask = prost_types::FieldMask { paths: vec!["display_name".into(), "phones".into()] };
    let update = pb::UpdateCustomerRequest { customer: Some(renamed.clone()), update_mask: Some(mask.clone()) };
    let response = customers.update_customer(as_staff(&app, update, "agent:wang", &["agent"], "req-42")).await.unwrap();
    assert_eq!(response.metadata().get("x-request-id").unwrap(), "req-42", "the request id is echoed");
    // The same values again: no change, no history.
    let again = pb::UpdateCustomerRequest { customer: Some(renamed), update_mask: Some(mask) };
    customers.update_customer(as_staff(&app, again, "agent:wang", &["agent"], "req-43")).await.unwrap();
    let disable = pb::DisableCustomerRequest { name: li.name.clone(), reason: "moved abroad".into(), etag: String::new() };
    customers.disable_customer(as_staff(&app, disable, "agent:zhao", &["agent"], "req-44")).await.unwrap();

    let mut people = RelatedPersonServiceClient::new(app.channel.clone());
    let spouse = pb::RelatedPerson { relation: pb::Relation::Spouse as i32, display_name: "韩梅梅".into(), ..Default::default() };
    let add = pb::CreateRelatedPersonRequest { parent: li.name.clone(), related_person: Some(spouse), request_id: String::new() };
    let added = people
        .create_related_person(as_staff(&app, add, "agent:wang", &["agent"], "req-45"))
        .await
        .unwrap()
        .into_inner()
        .related_person
        .unwrap();
    let remove = pb::DeleteRelatedPersonRequest { name: added.name.clone(), etag: String::new() };
    people.delete_related_person(as_staff(&app, remove, "agent:wang", &["agent"], "req-46")).await.unwrap();

    let all = changes(&app, pb::ListCustomerChangesRequest { parent: li.name.clone(), ..Default::default() }, &["admin"]).await;
    let (create, update, delete) =
        (pb::ChangeOperation::Create as i32, pb::ChangeOperation::Update as i32, pb::ChangeOperation::Delete as i32);
    let person = |op, field: &str| ("relatedPersons".to_owned(), op, field.to_owned());
    let customer_field = |op, field: &str| ("customers".to_owned(), op, field.to_owned());
    let seen = summary(&all);
    let sorted = |range: std::ops::Range<usize>| {
        let mut part = seen[range].to_vec();
        part.sort();
        part
    };
    assert_eq!(sorted(0..2), [person(delete, "display_name"), person(delete, "relation")], "{seen:?}");
    assert_eq!(sorted(2..4), [person(create, "display_name"), person(create, "relation")], "{seen:?}");
    assert!(
        seen[4..6].contains(&customer_field(update, "disable_time")) && seen[4..6].contains(&customer_field(update, "disable_reason")),
        "{seen:?}"
    );
    assert!(
        seen[6..8].contains(&customer_field(update, "display_name")) && seen[6..8].contains(&customer_field(update, "phones")),
        "{seen:?}"
    );
    assert!(seen[8..].iter().all(|(_, op, _)| *op == create) && seen[8..].contains(&customer_field(create, "display_name")), "{seen:?}");

    let rename = all.iter().find(|c| c.field_path == "display_name" && c.operation == update).unwrap();
    assert_eq!((json_of(&rename.old_value), json_of(&rename.new_value)), (json!("李雷"), json!("李雷 (Lei Li)")));
    assert_eq!((rename.actor.as_str(), rename.request_id.as_str()), ("agent:wang", "req-42"));
    assert!(rename.name.starts_with(&format!("{}/changes/", li.name)));
    let phones = all.iter().find(|c| c.field_path == "phones").unwrap();
    assert_eq!(json_of(&phones.old_value), serde_json::Value::Null);
    assert_eq!(json_of(&phones.new_value)[0]["number"], json!("+8613812341234"));
    let reason = all.iter().find(|c| c.field_path == "disable_reason").unwrap();
    assert_eq!((json_of(&reason.new_value), reason.actor.as_str()), (json!("moved abroad"), "agent:zhao"));

    // Without `pii` the values are masked as the records themselves are.
    let read_only = changes(
        &app,
        pb::ListCustomerChangesRequest { parent: li.name.clone(), field_path: "phones".into(), ..Default::default() },
        &["readonly"],
    )
    .await;
    assert_eq!(json_of(&read_only[0].new_value)[0]["number"], json!("+86*******1234"));

    // One record's history, and paging.
    let of_person = changes(
        &app,
        pb::ListCustomerChangesRequest { parent: li.name.clone(), record: added.name.clone(), ..Default::default() },
        &["marketer"],
    )
    .await;
    assert_eq!(of_person.len(), 4);
    let mut paged = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListCustomerChangesRequest { parent: li.name.clone(), page_size: 3, page_token, ..Default::default() };
        let page = app.customers.clone().list_customer_changes(app.admin(request)).await.unwrap().into_inner();
        paged.extend(page.changes);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(paged, all);
}

#[tokio::test]
async fn only_staff_read_the_history_and_bad_filters_are_named() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let own =
        with_token(pb::ListCustomerChangesRequest { parent: li.name.clone(), ..Default::default() }, &customer_token(app.tenant, &li.name));
    assert_error(app.customers.clone().list_customer_changes(own).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let elsewhere = pb::ListCustomerChangesRequest { parent: li.name.clone(), record: "customers/other".into(), ..Default::default() };
    assert_error(app.customers.clone().list_customer_changes(app.admin(elsewhere)).await, Code::InvalidArgument, "INVALID_RECORD");
    let unknown = pb::ListCustomerChangesRequest { parent: format!("customers/{}", uuid::Uuid::now_v7()), ..Default::default() };
    assert_error(app.customers.clone().list_customer_changes(app.admin(unknown)).await, Code::NotFound, "NOT_FOUND");

    // As the service's own role, another tenant sees none of it.
    let mut conn = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(uuid::Uuid::now_v7().to_string()).execute(&mut conn).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM field_changes").fetch_one(&mut conn).await.unwrap();
    assert_eq!(seen, 0);
}
