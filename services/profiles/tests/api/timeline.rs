//! ListCustomerTimeline: communications, transactions, occurrences,
//! move-ins, move-outs and field changes of one customer, newest first,
//! paged, filtered by kind, masked as their own Gets are, and without the
//! field changes for the customer themself.

use std::time::{Duration, SystemTime};

use chrono::{Datelike, Utc};
use crm_proto::{
    crm::profiles::v1::{
        self as pb, communication_service_client::CommunicationServiceClient, occurrence_service_client::OccurrenceServiceClient,
        premises_service_client::PremisesServiceClient, transaction_service_client::TransactionServiceClient,
    },
    google::r#type::{Date, Money},
};
use crm_testkit::auth::{customer_token, with_token};
use tonic::Code;

use crate::helpers::{TestApp, assert_error, customer, spawn_app};

fn days_ago(days: u64) -> prost_types::Timestamp {
    (SystemTime::now() - Duration::from_secs(days * 86_400)).into()
}

fn date_days_ago(days: i64) -> Date {
    let d = Utc::now().date_naive() - chrono::Duration::days(days);
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

async fn timeline(
    app: &TestApp,
    request: pb::ListCustomerTimelineRequest,
    roles: &[&str],
) -> Result<pb::ListCustomerTimelineResponse, tonic::Status> {
    Ok(app.customers.clone().list_customer_timeline(app.as_roles(request, roles)).await?.into_inner())
}

fn kinds(items: &[pb::TimelineItem]) -> Vec<pb::TimelineKind> {
    items.iter().map(|i| pb::TimelineKind::try_from(i.kind).unwrap()).collect()
}

#[tokio::test]
async fn everything_that_happened_comes_newest_first_paged_filtered_and_masked() {
    use pb::TimelineKind::*;
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let han = app.create(customer("韩梅梅", "hanmeimei@example.com")).await;

    let call = pb::Communication {
        kind: pb::CommunicationKind::Call as i32,
        subject: "Renewal".into(),
        content: "Call back on 13812345678".into(),
        occur_time: Some(days_ago(3)),
        ..Default::default()
    };
    let request = pb::CreateCommunicationRequest { parent: li.name.clone(), communication: Some(call), request_id: String::new() };
    CommunicationServiceClient::new(app.channel.clone()).create_communication(app.as_roles(request, &["agent"])).await.unwrap();
    let purchase = pb::Transaction {
        external_id: "POS-1".into(),
        kind: pb::TransactionKind::Purchase as i32,
        amount: Some(Money { currency_code: "CNY".into(), units: 328, nanos: 0 }),
        occur_time: Some(days_ago(1)),
        ..Default::default()
    };
    let request = pb::CreateTransactionRequest { parent: li.name.clone(), transaction: Some(purchase) };
    TransactionServiceClient::new(app.channel.clone()).create_transaction(app.as_roles(request, &["agent"])).await.unwrap();
    let unit = pb::Premises { unit_code: "3-1502".into(), ..Default::default() };
    let mut premises = PremisesServiceClient::new(app.channel.clone());
    let unit = premises
        .create_premises(app.as_roles(pb::CreatePremisesRequest { premises: Some(unit), request_id: String::new() }, &["agent"]))
        .await
        .unwrap()
        .into_inner()
        .premises
        .unwrap();
    let occurrence = pb::Occurrence {
        category: "renovation".into(),
        occur_date: Some(date_days_ago(2)),
        premises: unit.name.clone(),
        ..Default::default()
    };
    let request = pb::CreateOccurrenceRequest { parent: li.name.clone(), occurrence: Some(occurrence), request_id: String::new() };
    OccurrenceServiceClient::new(app.channel.clone()).create_occurrence(app.as_roles(request, &["agent"])).await.unwrap();
    let move_in = pb::MoveInRequest {
        premises: unit.name.clone(),
        customer: li.name.clone(),
        role: pb::OccupancyRole::Tenant as i32,
        move_in_date: Some(date_days_ago(10)),
        request_id: String::new(),
    };
    let occupancy = premises.move_in(app.as_roles(move_in, &["agent"])).await.unwrap().into_inner().occupancy.unwrap();
    let out = pb::MoveOutRequest { name: occupancy.name.clone(), move_out_date: Some(date_days_ago(5)), etag: String::new() };
    premises.move_out(app.as_roles(out, &["agent"])).await.unwrap();

    let all =
        timeline(&app, pb::ListCustomerTimelineRequest { parent: li.name.clone(), ..Default::default() }, &["agent"]).await.unwrap().items;
    let seen = kinds(&all);
    let first_other = seen.iter().position(|k| *k != FieldChange).unwrap();
    assert!(first_other > 0, "the customer's creation and the archive records' fields come first: {seen:?}");
    assert_eq!(seen[first_other..], [Transaction, Occurrence, Communication, MoveOut, MoveIn], "{seen:?}");
    assert!(all.windows(2).all(|w| w[0].time.unwrap().seconds >= w[1].time.unwrap().seconds), "newest first");
    let Some(pb::timeline_item::Detail::Occupancy(moved)) = &all[seen.len() - 1].detail else { panic!("an occupancy") };
    assert_eq!((moved.name.as_str(), all[seen.len() - 1].record.as_str()), (occupancy.name.as_str(), occupancy.name.as_str()));

    // Paged two at a time, the same entries in the same order.
    let mut paged = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListCustomerTimelineRequest { parent: li.name.clone(), page_size: 2, page_token, ..Default::default() };
        let page = timeline(&app, request, &["agent"]).await.unwrap();
        paged.extend(page.items);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(paged, all);

    // By kind; masked for readonly callers as the record's own Get would be.
    let request = pb::ListCustomerTimelineRequest {
        parent: li.name.clone(),
        kinds: vec![Communication as i32, Transaction as i32],
        ..Default::default()
    };
    let some = timeline(&app, request, &["readonly"]).await.unwrap().items;
    assert_eq!(kinds(&some), [Transaction, Communication]);
    let Some(pb::timeline_item::Detail::Communication(call)) = &some[1].detail else { panic!("a communication") };
    assert!(!call.content.contains("13812345678"), "{}", call.content);

    // The customer reads their own, without the field changes; nobody else's.
    let own = with_token(
        pb::ListCustomerTimelineRequest { parent: li.name.clone(), ..Default::default() },
        &customer_token(app.tenant, &li.name),
    );
    let own = app.customers.clone().list_customer_timeline(own).await.unwrap().into_inner().items;
    assert_eq!(kinds(&own), [Transaction, Occurrence, Communication, MoveOut, MoveIn]);
    let Some(pb::timeline_item::Detail::Communication(call)) = &own[2].detail else { panic!("a communication") };
    assert!(call.content.contains("13812345678"), "their own data unmasked");
    let changes = pb::ListCustomerTimelineRequest { parent: li.name.clone(), kinds: vec![FieldChange as i32], ..Default::default() };
    let asked = app.customers.clone().list_customer_timeline(with_token(changes, &customer_token(app.tenant, &li.name))).await;
    assert_error(asked, Code::PermissionDenied, "PERMISSION_DENIED");
    let others = with_token(
        pb::ListCustomerTimelineRequest { parent: li.name.clone(), ..Default::default() },
        &customer_token(app.tenant, &han.name),
    );
    assert_error(app.customers.clone().list_customer_timeline(others).await, Code::NotFound, "NOT_FOUND");
    let bad = pb::ListCustomerTimelineRequest { parent: li.name.clone(), kinds: vec![0], ..Default::default() };
    assert_error(timeline(&app, bad, &["agent"]).await, Code::InvalidArgument, "INVALID_KIND");
}
