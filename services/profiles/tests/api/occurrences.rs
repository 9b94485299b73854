//! Occurrences (客户事件): recorded by agents under the tenant's categories,
//! optionally about premises that must exist, descriptions masked for
//! callers without `pii`, one event per change.

use crm_proto::{
    crm::profiles::v1::{self as pb, occurrence_service_client::OccurrenceServiceClient, premises_service_client::PremisesServiceClient},
    google::r#type::Date,
};
use tonic::{Code, transport::Channel};

use crate::helpers::{TestApp, assert_error, customer, spawn_app, violations};

fn client(app: &TestApp) -> OccurrenceServiceClient<Channel> {
    OccurrenceServiceClient::new(app.channel.clone())
}

async fn record(app: &TestApp, parent: &str, o: pb::Occurrence) -> Result<pb::Occurrence, tonic::Status> {
    let request = pb::CreateOccurrenceRequest { parent: parent.into(), occurrence: Some(o), request_id: String::new() };
    Ok(client(app).create_occurrence(app.as_roles(request, &["agent"])).await?.into_inner().occurrence.unwrap())
}

#[tokio::test]
async fn agents_record_what_happened_to_a_customer() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let unit = PremisesServiceClient::new(app.channel.clone())
        .create_premises(app.as_roles(
            pb::CreatePremisesRequest {
                premises: Some(pb::Premises { unit_code: "5-1-802".into(), ..Default::default() }),
                request_id: String::new(),
            },
            &["agent"],
        ))
        .await
        .unwrap()
        .into_inner()
        .premises
        .unwrap();
    let renovation = pb::Occurrence {
        category: "renovation".into(),
        occur_date: Some(Date { year: 2026, month: 10, day: 8 }),
        premises: unit.name.clone(),
        description: "Kitchen redone; contractor 13912345678.".into(),
        ..Default::default()
    };
    let stored = record(&app, &li.name, renovation.clone()).await.unwrap();
    assert_eq!((stored.premises.as_str(), stored.handler.is_empty()), (unit.name.as_str(), false), "{stored:?}");

    let get = app.as_roles(pb::GetOccurrenceRequest { name: stored.name.clone() }, &["readonly"]);
    let masked = client(&app).get_occurrence(get).await.unwrap().into_inner().occurrence.unwrap();
    assert!(!masked.description.contains("13912345678"), "{}", masked.description);
    let listed = client(&app)
        .list_occurrences(app.as_roles(pb::ListOccurrencesRequest { parent: li.name.clone(), ..Default::default() }, &["marketer"]))
        .await
        .unwrap()
        .into_inner()
        .occurrences;
    assert_eq!(listed.len(), 1);

    let nowhere = pb::Occurrence { premises: format!("premises/{}", uuid::Uuid::now_v7()), ..renovation.clone() };
    assert_error(record(&app, &li.name, nowhere).await, Code::InvalidArgument, "PREMISES_NOT_FOUND");
    let bad =
        pb::Occurrence { category: "two words".into(), occur_date: Some(Date { year: 2099, month: 1, day: 1 }), ..Default::default() };
    let status = assert_error(record(&app, &li.name, bad).await, Code::InvalidArgument, "INVALID_FIELDS");
    assert_eq!(
        violations(&status),
        [
            ("occurrence.category".to_owned(), "INVALID_CATEGORY".to_owned()),
            ("occurrence.occur_date".to_owned(), "INVALID_DATE".to_owned())
        ]
    );
    client(&app)
        .delete_occurrence(app.as_roles(pb::DeleteOccurrenceRequest { name: stored.name.clone(), etag: stored.etag.clone() }, &["agent"]))
        .await
        .unwrap();
    let events = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 4).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "crm.profiles.v1.CustomerCreated",
            "crm.profiles.v1.PremisesChanged",
            "crm.profiles.v1.OccurrenceChanged",
            "crm.profiles.v1.OccurrenceChanged"
        ]
    );
}
