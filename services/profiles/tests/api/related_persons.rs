//! Related persons (客户成员): under their customer, validated field by
//! field, masked for callers without `pii`, written by agents only, read by
//! a customer for themselves, changed under etags, with one event per change
//! — against real Postgres, foreign keys and RLS included.

use crm_proto::{
    crm::{
        common::v1::{EmailAddress, PhoneNumber},
        profiles::v1::{self as pb, related_person_service_client::RelatedPersonServiceClient},
    },
    google::r#type::Date,
};
use crm_testkit::auth::{customer_token, with_token};
use prost::Message;
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app, violations};

fn client(app: &TestApp) -> RelatedPersonServiceClient<Channel> {
    RelatedPersonServiceClient::new(app.channel.clone())
}

fn spouse() -> pb::RelatedPerson {
    pb::RelatedPerson {
        relation: pb::Relation::Spouse as i32,
        display_name: "韩梅梅".into(),
        phones: vec![PhoneNumber { number: "+8613800138001".into(), label: "mobile".into(), primary: true }],
        emails: vec![EmailAddress { address: "meimei@example.com".into(), label: String::new(), primary: false }],
        gender: pb::Gender::Female as i32,
        birthday: Some(Date { year: 1990, month: 5, day: 20 }),
        note: "Decides on renovations".into(),
        ..Default::default()
    }
}

async fn add(app: &TestApp, parent: &str, person: pb::RelatedPerson, roles: &[&str]) -> Result<pb::RelatedPerson, tonic::Status> {
    let request = pb::CreateRelatedPersonRequest { parent: parent.into(), related_person: Some(person), request_id: String::new() };
    Ok(client(app).create_related_person(app.as_roles(request, roles)).await?.into_inner().related_person.unwrap())
}

#[tokio::test]
async fn an_agent_adds_changes_and_removes_a_related_person_with_one_event_each() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let created = add(&app, &li.name, spouse(), &["agent"]).await.unwrap();
    assert!(created.name.starts_with(&format!("{}/relatedPersons/", li.name)), "{}", created.name);
    assert_eq!((created.relation, created.phones[0].number.as_str()), (pb::Relation::Spouse as i32, "+8613800138001"));

    // A second person, linked to her own customer record.
    let meimei = app.create(customer("韩梅梅", "meimei@example.com")).await;
    let linked = add(&app, &li.name, pb::RelatedPerson { linked_customer: meimei.name.clone(), ..spouse() }, &["agent"]).await.unwrap();
    assert_eq!(linked.linked_customer, meimei.name);
    let listed = client(&app)
        .list_related_persons(
            app.as_roles(pb::ListRelatedPersonsRequest { parent: li.name.clone(), page_size: 1, ..Default::default() }, &["marketer"]),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.related_persons.len(), 1);
    assert_eq!(listed.related_persons[0].name, created.name, "oldest first");
    let next = pb::ListRelatedPersonsRequest { parent: li.name.clone(), page_size: 1, page_token: listed.next_page_token };
    assert_eq!(
        client(&app).list_related_persons(app.as_roles(next, &["marketer"])).await.unwrap().into_inner().related_persons[0].name,
        linked.name
    );

    // Update one field under the etag; the same values again change nothing.
    let edit = pb::UpdateRelatedPersonRequest {
        related_person: Some(pb::RelatedPerson {
            name: created.name.clone(),
            note: "Prefers calls after 6 pm".into(),
            etag: created.etag.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["note".into()] }),
    };
    let updated =
        client(&app).update_related_person(app.as_roles(edit.clone(), &["agent"])).await.unwrap().into_inner().related_person.unwrap();
    assert_eq!((updated.note.as_str(), updated.display_name.as_str()), ("Prefers calls after 6 pm", "韩梅梅"), "other fields kept");
    assert_ne!(updated.etag, created.etag);
    assert_error(client(&app).update_related_person(app.as_roles(edit, &["agent"])).await, Code::Aborted, "ETAG_MISMATCH");
    let same = pb::UpdateRelatedPersonRequest {
        related_person: Some(pb::RelatedPerson { name: created.name.clone(), note: updated.note.clone(), ..Default::default() }),
        update_mask: Some(prost_types::FieldMask { paths: vec!["note".into()] }),
    };
    let unchanged = client(&app).update_related_person(app.as_roles(same, &["agent"])).await.unwrap().into_inner().related_person.unwrap();
    assert_eq!(unchanged.etag, updated.etag, "no change, no new revision");

    client(&app)
        .delete_related_person(app.as_roles(pb::DeleteRelatedPersonRequest { name: created.name.clone(), etag: String::new() }, &["agent"]))
        .await
        .unwrap();
    assert_error(
        client(&app).get_related_person(app.admin(pb::GetRelatedPersonRequest { name: created.name.clone() })).await,
        Code::NotFound,
        "NOT_FOUND",
    );

    // Two customers, two persons added, one updated, one removed: four RelatedPersonChanged events on the customer's subject.
    let events = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 6).await;
    let changes: Vec<pb::RelatedPersonChanged> = events
        .iter()
        .filter(|e| e.r#type == "crm.profiles.v1.RelatedPersonChanged")
        .map(|e| pb::RelatedPersonChanged::decode(e.data.as_ref().unwrap().value.as_slice()).unwrap())
        .collect();
    assert_eq!(changes.len(), 4);
    assert_eq!(changes[2].changed_paths, ["note"]);
    assert!(changes[3].deleted && changes[3].related_person.as_ref().unwrap().name == created.name);
}

#[tokio::test]
async fn bad_input_is_refused_field_by_field_and_nothing_is_written() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let bad = pb::RelatedPerson {
        relation: 0,
        display_name: String::new(),
        phones: vec![PhoneNumber { number: "12".into(), ..Default::default() }],
        birthday: Some(Date { year: 2990, month: 1, day: 1 }),
        linked_customer: "customers/not-a-uuid".into(),
        ..Default::default()
    };
    let status = assert_error(add(&app, &li.name, bad, &["agent"]).await, Code::InvalidArgument, "INVALID_FIELDS");
    let fields: Vec<String> = violations(&status).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "related_person.relation",
            "related_person.display_name",
            "related_person.phones[0].number",
            "related_person.birthday",
            "related_person.linked_customer"
        ]
    );
    let unknown = format!("customers/{}", uuid::Uuid::now_v7());
    let dangling = pb::RelatedPerson { linked_customer: unknown.clone(), ..spouse() };
    assert_error(add(&app, &li.name, dangling, &["agent"]).await, Code::InvalidArgument, "LINKED_CUSTOMER_NOT_FOUND");
    assert_error(add(&app, &unknown, spouse(), &["agent"]).await, Code::NotFound, "NOT_FOUND");

    // A deleted customer takes no new related person.
    app.customers
        .clone()
        .delete_customer(app.admin(pb::DeleteCustomerRequest { name: li.name.clone(), etag: String::new() }))
        .await
        .unwrap();
    assert_error(add(&app, &li.name, spouse(), &["agent"]).await, Code::FailedPrecondition, "CUSTOMER_DELETED");
    let mut conn = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut conn).await.unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM related_persons").fetch_one(&mut conn).await.unwrap();
    assert_eq!(stored, 0, "nothing half-written");
}

#[tokio::test]
async fn roles_decide_who_writes_and_who_sees_contact_details() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let han = app.create(customer("韩梅梅", "meimei@example.com")).await;
    assert_error(add(&app, &li.name, spouse(), &["marketer"]).await, Code::PermissionDenied, "PERMISSION_DENIED");
    assert_error(add(&app, &li.name, spouse(), &["analyst"]).await, Code::PermissionDenied, "PERMISSION_DENIED");
    let person = add(&app, &li.name, spouse(), &["agent"]).await.unwrap();

    let get = |roles: &[&str]| app.as_roles(pb::GetRelatedPersonRequest { name: person.name.clone() }, roles);
    let analyst = client(&app).get_related_person(get(&["analyst"])).await.unwrap().into_inner().related_person.unwrap();
    assert!(analyst.phones[0].number.contains('*') && analyst.emails[0].address.contains('*'), "masked: {analyst:?}");
    let marketer = client(&app).get_related_person(get(&["marketer"])).await.unwrap().into_inner().related_person.unwrap();
    assert_eq!(marketer.phones[0].number, "+8613800138001", "marketers hold pii");

    // The customer reads their own, unmasked; another customer finds nothing.
    let own = with_token(pb::GetRelatedPersonRequest { name: person.name.clone() }, &customer_token(app.tenant, &li.name));
    assert_eq!(client(&app).get_related_person(own).await.unwrap().into_inner().related_person.unwrap().phones[0].number, "+8613800138001");
    let other = with_token(pb::GetRelatedPersonRequest { name: person.name.clone() }, &customer_token(app.tenant, &han.name));
    assert_error(client(&app).get_related_person(other).await, Code::NotFound, "NOT_FOUND");
    let write = with_token(
        pb::CreateRelatedPersonRequest { parent: li.name.clone(), related_person: Some(spouse()), request_id: String::new() },
        &customer_token(app.tenant, &li.name),
    );
    assert_error(client(&app).create_related_person(write).await, Code::PermissionDenied, "PERMISSION_DENIED");

    // A name under the wrong customer is not found, however real the id.
    let moved = person.name.replacen(&li.name, &han.name, 1);
    assert_error(
        client(&app).get_related_person(app.admin(pb::GetRelatedPersonRequest { name: moved })).await,
        Code::NotFound,
        "NOT_FOUND",
    );
}
