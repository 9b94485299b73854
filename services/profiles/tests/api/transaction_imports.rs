//! Importing transactions from spreadsheets: Chinese headers suggested,
//! whose each row is found by phone, email, external id or resource name,
//! each external id recorded once (the same content again is skipped, other
//! content refused), amounts, times and items read as lists write them,
//! spending and the bulk event following, a dry run that writes nothing,
//! an export that imports back unchanged, and settings refused by name.

use std::time::Duration;

use crm_proto::crm::{
    common::v1::PhoneNumber,
    events::v1::SubscribeRequest,
    profiles::v1::{
        self as pb, export_service_client::ExportServiceClient, import_job::Kind, import_settings as ps,
        transaction_service_client::TransactionServiceClient,
    },
};
use crm_proto::google::r#type::Money;
use crm_testkit::auth::{token, with_token};
use futures::StreamExt;
use prost_types::{Struct, Value, value};
use tonic::{Code, transport::Channel};

use crate::{
    helpers::{TestApp, assert_error, customer, spawn_app, violations},
    imports::{run, upload_messages},
};

fn transactions(app: &TestApp) -> TransactionServiceClient<Channel> {
    TransactionServiceClient::new(app.channel.clone())
}

/// Uploads `bytes` as a transactions file, as the admin.
async fn upload_transactions(app: &TestApp, bytes: &[u8]) -> pb::ImportJob {
    upload_kind(app, bytes, Kind::Transactions).await
}

/// Uploads `bytes` as a file of `kind`, as the admin.
pub async fn upload_kind(app: &TestApp, bytes: &[u8], kind: Kind) -> pb::ImportJob {
    let mut messages = upload_messages(bytes, 7_000, "", "");
    messages[0].kind = kind as i32;
    messages[0].file_name = "records.csv".into();
    let client = pb::import_service_client::ImportServiceClient::new(app.channel.clone());
    client.clone().upload_import_file(app.admin(tokio_stream::iter(messages))).await.unwrap().into_inner().import_job.unwrap()
}

fn transaction_settings(dry_run: bool) -> pb::ImportSettings {
    pb::ImportSettings {
        mode: ps::Mode::CreateOnly as i32,
        calling_code: "86".into(),
        time_zone: "Asia/Shanghai".into(),
        currency_code: "CNY".into(),
        dry_run,
        ..Default::default()
    }
}

pub async fn start(app: &TestApp, job: &str, settings: pb::ImportSettings, roles: &[&str]) -> Result<pb::ImportJob, tonic::Status> {
    let client = pb::import_service_client::ImportServiceClient::new(app.channel.clone());
    let request = app.as_roles(pb::StartImportJobRequest { name: job.into(), settings: Some(settings) }, roles);
    Ok(client.clone().start_import_job(request).await?.into_inner().import_job.unwrap())
}

async fn stored(app: &TestApp, customer: &str) -> Vec<pb::Transaction> {
    let request = app.admin(pb::ListTransactionsRequest { parent: customer.into(), page_size: 100, ..Default::default() });
    let mut found = transactions(app).list_transactions(request).await.unwrap().into_inner().transactions;
    found.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    found
}

async fn record(app: &TestApp, customer: &str, external_id: &str, units: i64) {
    let transaction = pb::Transaction {
        external_id: external_id.into(),
        kind: pb::TransactionKind::Purchase as i32,
        amount: Some(Money { currency_code: "CNY".into(), units, nanos: 0 }),
        occur_time: Some(prost_types::Timestamp { seconds: 1_790_000_000, nanos: 0 }),
        ..Default::default()
    };
    let request = pb::CreateTransactionRequest { parent: customer.into(), transaction: Some(transaction) };
    transactions(app).create_transaction(app.admin(request)).await.unwrap();
}

fn with_external_id(mut c: pb::Customer, id: &str) -> pb::Customer {
    let value = Value { kind: Some(value::Kind::StringValue(id.into())) };
    c.attributes = Some(Struct { fields: [("external_id".to_owned(), value)].into_iter().collect() });
    c
}

/// The reasons each refused row gave, by row number.
pub async fn refusals(app: &TestApp, job: &str) -> Vec<(i64, String, String)> {
    let client = pb::import_service_client::ImportServiceClient::new(app.channel.clone());
    let request = app.admin(pb::ListImportErrorsRequest { parent: job.into(), page_size: 100, page_token: String::new() });
    let errors = client.clone().list_import_errors(request).await.unwrap().into_inner().import_errors;
    errors.iter().flat_map(|e| e.problems.iter().map(|p| (e.row, p.field.clone(), p.reason.clone()))).collect()
}

// 2026-11-01 10:00 in Shanghai is 02:00 UTC.
const ORDERS: &str = "会员手机,订单号,交易时间,实付金额,门店,商品,数量,单价,类型\n\
13800138000,T-1,2026-11-01 10:00:00,\"1,200.50\",静安店,茶,2,600.25,购买\n\
13900139000,T-2,2026/11/02,88,,,,,\n\
13800138000,T-1,2026-11-03 10:00,1,,,,,\n\
13600000000,T-3,2026-11-03 10:00,1,,,,,\n\
13800138000,T-9,2026-11-03 10:00,6,,,,,\n\
13800138000,T-0,2026-09-21 22:13:20,100,,,,,\n\
13800138000,T-5,2026-11-03 10:00,abc,,,,,\n\
13800138000,T-6,2099-01-01,1,,,,,\n\
13800138000,T-4,2026-11-04 09:00,50,静安店,,,,退款\n\
13800138000,T-7,2026-11-05 09:00,10,,,,,gift\n\
not-a-phone,T-8,2026-11-05 09:00,10,,,,,\n";

#[tokio::test]
async fn orders_are_found_by_their_customers_phone_and_recorded_once_each() {
    let app = spawn_app().await;
    let mut ada = customer("Ada", "ada@example.com");
    ada.phones = vec![PhoneNumber { number: "+8613800138000".into(), label: String::new(), primary: true }];
    let ada = app.create(ada).await;
    let mut bob = customer("Bob", "bob@example.com");
    bob.phones = vec![PhoneNumber { number: "+8613900139000".into(), label: String::new(), primary: true }];
    let bob = app.create(bob).await;
    // T-0 recorded with the content the sheet has (2026-09-21 22:13:20 Shanghai = 1 790 000 000 s), T-9 with other content.
    record(&app, &ada.name, "T-0", 100).await;
    record(&app, &ada.name, "T-9", 5).await;

    let job = upload_transactions(&app, ORDERS.as_bytes()).await;
    assert_eq!((job.kind, job.total_rows), (Kind::Transactions as i32, 11));
    let suggested: Vec<&str> = job.suggested_mapping.iter().map(|m| m.field.as_str()).collect();
    assert_eq!(suggested, ["customer_phone", "external_id", "occur_time", "amount", "store", "product", "quantity", "unit_price", "kind"]);

    // A dry run counts what a real run would do and records nothing.
    let dry = run(&app, &job.name, transaction_settings(true)).await;
    let p = dry.progress.unwrap();
    assert_eq!((p.rows_read, p.rows_valid, p.rows_created, p.rows_failed), (11, 4, 3, 7), "{dry:?}");
    assert_eq!(stored(&app, &ada.name).await.len(), 2);

    let done = run(&app, &job.name, transaction_settings(false)).await;
    let p = done.progress.unwrap();
    assert_eq!((p.rows_read, p.rows_valid, p.rows_created, p.rows_updated, p.rows_failed), (11, 4, 3, 0, 7), "{done:?}");
    let mut refused = refusals(&app, &job.name).await;
    refused.sort();
    let expected = [
        (4, "external_id", "DUPLICATE_IN_FILE"),
        (5, "customer_phone", "CUSTOMER_NOT_FOUND"),
        (6, "external_id", "EXTERNAL_ID_USED"),
        (8, "amount", "INVALID_AMOUNT"),
        (9, "occur_time", "INVALID_OCCUR_TIME"),
        (11, "kind", "INVALID_KIND"),
        (12, "customer_phone", "INVALID_PHONE"),
    ];
    let expected: Vec<(i64, String, String)> = expected.iter().map(|(r, f, why)| (*r, (*f).to_owned(), (*why).to_owned())).collect();
    assert_eq!(refused, expected);

    let ada_has = stored(&app, &ada.name).await;
    let ids: Vec<&str> = ada_has.iter().map(|t| t.external_id.as_str()).collect();
    assert_eq!(ids, ["T-0", "T-1", "T-4", "T-9"]);
    let t1 = &ada_has[1];
    assert_eq!(t1.amount, Some(Money { currency_code: "CNY".into(), units: 1200, nanos: 500_000_000 }));
    assert_eq!(t1.occur_time.as_ref().map(|t| t.seconds), Some(1_793_498_400), "2026-11-01T02:00:00Z");
    assert_eq!((t1.store.as_str(), t1.line_items[0].product.as_str(), t1.line_items[0].quantity), ("静安店", "茶", 2));
    assert_eq!(ada_has[2].kind, pb::TransactionKind::Refund as i32);
    assert_eq!(stored(&app, &bob.name).await[0].occur_time.as_ref().map(|t| t.seconds), Some(1_793_548_800), "midnight in Shanghai");

    // Their spending moved with them.
    let request = app.admin(pb::GetCustomerSpendingRequest { name: format!("{}/spending", ada.name) });
    let spending = transactions(&app).get_customer_spending(request).await.unwrap().into_inner().customer_spending.unwrap();
    let cny = spending.currencies.iter().find(|c| c.currency_code == "CNY").unwrap();
    assert_eq!((cny.purchase_count, cny.refund_count), (3, 1), "{spending:?}");

    // One event for the batch, naming what it recorded.
    let request = app.admin(SubscribeRequest { after_position: 0, types: vec!["crm.profiles.v1.TransactionsImported".into()] });
    let mut events = app.events.clone().subscribe(request).await.unwrap().into_inner();
    let event = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap().event.unwrap();
    let event = <pb::TransactionsImported as prost::Message>::decode(event.data.unwrap().value.as_slice()).unwrap();
    assert_eq!((event.import_job.as_str(), event.transactions.len()), (job.name.as_str(), 3));
    let mut customers = event.customers.clone();
    customers.sort();
    let mut both = vec![ada.name.clone(), bob.name.clone()];
    both.sort();
    assert_eq!(customers, both);

    // The same file uploaded again records nothing twice: every recorded row is skipped as the same.
    let mut again = ORDERS.as_bytes().to_vec();
    again.extend_from_slice(b"\n");
    let job = upload_transactions(&app, &again).await;
    let done = run(&app, &job.name, transaction_settings(false)).await;
    let p = done.progress.unwrap();
    assert_eq!((p.rows_valid, p.rows_created), (4, 0), "{done:?}");
    assert_eq!(stored(&app, &ada.name).await.len(), 4);
}

#[tokio::test]
async fn an_export_imports_back_unchanged_and_names_deleted_and_ambiguous_customers() {
    let app = spawn_app().await;
    let ada = app.create(with_external_id(customer("Ada", "ada@example.com"), "M-1")).await;
    let carl = app.create(customer("Carl", "carl@example.com")).await;
    app.create(with_external_id(customer("Dan", "dan@example.com"), "M-2")).await;
    app.create(with_external_id(customer("Dan again", "dan2@example.com"), "M-2")).await;
    record(&app, &ada.name, "A-1", 10).await;
    record(&app, &carl.name, "C-1", 20).await;

    // Exported, then imported back by resource name: every row the same as stored.
    let mut stream = ExportServiceClient::new(app.channel.clone())
        .export_transactions(app.admin(pb::ExportTransactionsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend(chunk.unwrap().chunk.unwrap().data);
    }
    let job = upload_transactions(&app, &bytes).await;
    let mapped: Vec<&str> = job.suggested_mapping.iter().filter(|m| !m.field.is_empty()).map(|m| m.field.as_str()).collect();
    assert_eq!(mapped, ["customer", "external_id", "kind", "currency_code", "amount", "occur_time", "channel", "store", "line_items"]);
    let settings = pb::ImportSettings { currency_code: String::new(), ..transaction_settings(true) };
    let done = run(&app, &job.name, settings.clone()).await;
    let p = done.progress.unwrap();
    assert_eq!((p.rows_valid, p.rows_created, p.rows_failed), (2, 0, 0), "{done:?}");

    // Carl deleted: his row is refused by name.
    let request = app.admin(pb::DeleteCustomerRequest { name: carl.name.clone(), ..Default::default() });
    app.customers.clone().delete_customer(request).await.unwrap();
    let done = run(&app, &job.name, settings).await;
    assert_eq!(done.progress.unwrap().rows_failed, 1);
    let refused = refusals(&app, &job.name).await;
    assert_eq!(refused, [(3, "customer".to_owned(), "CUSTOMER_DELETED".to_owned())]);

    // Two customers with one external id: the row is ambiguous, not given to either.
    let sheet = "会员编号,订单号,日期,金额\nM-2,D-1,2026-11-01,5\nM-1,D-2,2026-11-01,6\nM-3,D-3,2026-11-01,7\n";
    let job = upload_transactions(&app, sheet.as_bytes()).await;
    let done = run(&app, &job.name, transaction_settings(false)).await;
    let p = done.progress.unwrap();
    assert_eq!((p.rows_created, p.rows_failed), (1, 2));
    let mut refused = refusals(&app, &job.name).await;
    refused.sort();
    assert_eq!(
        refused,
        [
            (2, "customer_external_id".to_owned(), "AMBIGUOUS_MATCH".to_owned()),
            (4, "customer_external_id".to_owned(), "CUSTOMER_NOT_FOUND".to_owned())
        ]
    );
    assert_eq!(stored(&app, &ada.name).await.len(), 2);

    // Another tenant's customer, named by its resource name, is no customer here.
    let other = token(uuid::Uuid::now_v7(), &["admin"]);
    let request = pb::CreateCustomerRequest { customer: Some(customer("Eve", "eve@example.com")), ..Default::default() };
    let mut customers = app.customers.clone();
    let foreign = customers.create_customer(with_token(request, &other)).await.unwrap().into_inner().customer.unwrap();
    let sheet = format!("customer,external_id,occur_time,amount\n{},F-1,2026-11-01,5\n", foreign.name);
    let job = upload_transactions(&app, sheet.as_bytes()).await;
    let done = run(&app, &job.name, transaction_settings(false)).await;
    assert_eq!(done.progress.unwrap().rows_failed, 1);
    assert_eq!(refusals(&app, &job.name).await, [(2, "customer".to_owned(), "CUSTOMER_NOT_FOUND".to_owned())]);
}

#[tokio::test]
async fn settings_a_transactions_job_cannot_run_with_are_refused_by_name() {
    let app = spawn_app().await;
    let job = upload_transactions(&app, "order,amount,note\nT-1,5,x\n".as_bytes()).await;
    let upsert = pb::ImportSettings {
        mode: ps::Mode::Upsert as i32,
        currency_code: String::new(),
        time_zone: "Mars/Base".into(),
        ..transaction_settings(false)
    };
    let status = start(&app, &job.name, upsert, &["admin"]).await.unwrap_err();
    let mut found = violations(&status);
    found.sort();
    let expected = [
        ("settings.currency_code", "CURRENCY_REQUIRED"),
        ("settings.mapping", "CUSTOMER_NOT_MAPPED"),
        ("settings.mapping", "FIELD_NOT_MAPPED"),
        ("settings.mode", "MODE_NOT_SUPPORTED"),
        ("settings.time_zone", "INVALID_TIME_ZONE"),
    ];
    assert_eq!(found, expected.iter().map(|(f, r)| ((*f).to_owned(), (*r).to_owned())).collect::<Vec<_>>());
    // A customer's field is not a transaction's.
    let wrong = pb::ImportSettings {
        mapping: vec![pb::ColumnMapping { column: 0, field: "display_name".into(), ..Default::default() }],
        ..transaction_settings(false)
    };
    let status = start(&app, &job.name, wrong, &["admin"]).await.unwrap_err();
    assert!(violations(&status).contains(&("settings.mapping[0].field".to_owned(), "UNKNOWN_FIELD".to_owned())));

    // A marketer may check a file (dry run) but not record transactions.
    let sheet = "email,order,date,amount\nada@example.com,T-1,2026-11-01,5\n";
    let job = upload_transactions(&app, sheet.as_bytes()).await;
    assert_error(start(&app, &job.name, transaction_settings(false), &["marketer"]).await, Code::PermissionDenied, "PERMISSION_DENIED");
    start(&app, &job.name, transaction_settings(true), &["marketer"]).await.unwrap();
}
