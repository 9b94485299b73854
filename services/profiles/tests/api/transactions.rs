//! Transactions (交易记录): exact money, per-currency spending kept in the
//! same database transaction, external ids stored once (also under
//! concurrency), batches of up to 1000 that are all or none with every bad
//! item named, and who may record and read them.

use std::time::{Duration, SystemTime};

use crm_proto::{
    crm::profiles::v1::{self as pb, transaction_service_client::TransactionServiceClient},
    google::r#type::Money,
};
use crm_testkit::auth::{customer_token, token, with_token};
use prost::Message;
use tonic::{Code, transport::Channel};
use uuid::Uuid;

use crate::helpers::{TestApp, assert_error, customer, spawn_app, violations};

fn client(app: &TestApp) -> TransactionServiceClient<Channel> {
    TransactionServiceClient::new(app.channel.clone())
}

fn money(currency: &str, units: i64, nanos: i32) -> Option<Money> {
    Some(Money { currency_code: currency.into(), units, nanos })
}

fn days_ago(days: u64) -> Option<prost_types::Timestamp> {
    Some((SystemTime::now() - Duration::from_secs(days * 86_400)).into())
}

fn purchase(external_id: &str, amount: Option<Money>, days: u64) -> pb::Transaction {
    pb::Transaction {
        external_id: external_id.into(),
        kind: pb::TransactionKind::Purchase as i32,
        amount,
        occur_time: days_ago(days),
        channel: "store".into(),
        store: "Haidian flagship".into(),
        line_items: vec![pb::TransactionLineItem {
            product: "Water filter".into(),
            sku: "WF-200".into(),
            quantity: 1,
            unit_price: money("", 0, 0),
        }],
        ..Default::default()
    }
}

async fn record(app: &TestApp, parent: &str, transaction: pb::Transaction) -> Result<pb::Transaction, tonic::Status> {
    let request = pb::CreateTransactionRequest { parent: parent.into(), transaction: Some(transaction) };
    Ok(client(app).create_transaction(app.as_roles(request, &["agent"])).await?.into_inner().transaction.unwrap())
}

async fn batch(app: &TestApp, parent: &str, requests: Vec<pb::CreateTransactionRequest>) -> Result<Vec<pb::Transaction>, tonic::Status> {
    let request = pb::BatchCreateTransactionsRequest { parent: parent.into(), requests };
    Ok(client(app).batch_create_transactions(app.as_roles(request, &["service"])).await?.into_inner().transactions)
}

fn item(parent: &str, transaction: pb::Transaction) -> pb::CreateTransactionRequest {
    pb::CreateTransactionRequest { parent: parent.into(), transaction: Some(transaction) }
}

async fn spending(app: &TestApp, customer: &str) -> Vec<pb::CurrencySpending> {
    let request = pb::GetCustomerSpendingRequest { name: format!("{customer}/spending") };
    client(app)
        .get_customer_spending(app.as_roles(request, &["readonly"]))
        .await
        .unwrap()
        .into_inner()
        .customer_spending
        .unwrap()
        .currencies
}

async fn count(app: &TestApp, table: &str) -> i64 {
    let mut conn = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut conn).await.unwrap();
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut conn).await.unwrap()
}

#[tokio::test]
async fn purchases_and_refunds_add_up_to_exact_spending_per_currency() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let mut filter = purchase("POS-1", money("USD", 19, 990_000_000), 3);
    filter.line_items.push(pb::TransactionLineItem {
        product: "Cartridge".into(),
        sku: "WF-C".into(),
        quantity: 2,
        unit_price: money("USD", 4, 500_000_000),
    });
    let first = record(&app, &li.name, filter).await.unwrap();
    assert!(first.name.starts_with(&format!("{}/transactions/", li.name)), "{}", first.name);
    assert_eq!(first.amount, money("USD", 19, 990_000_000));
    assert_eq!(first.line_items[0].unit_price, money("USD", 0, 0), "an empty currency is the transaction's");
    assert_eq!(first.line_items[1].unit_price, money("USD", 4, 500_000_000));
    record(&app, &li.name, purchase("POS-2", money("USD", 10, 0), 10)).await.unwrap();
    let refund =
        pb::Transaction { kind: pb::TransactionKind::Refund as i32, line_items: vec![], ..purchase("POS-3", money("USD", 5, 0), 1) };
    record(&app, &li.name, refund).await.unwrap();
    record(&app, &li.name, purchase("POS-4", money("JPY", 1500, 0), 2)).await.unwrap();
    record(&app, &li.name, purchase("POS-5", money("KWD", 1, 5_000_000), 2)).await.unwrap();

    let totals = spending(&app, &li.name).await;
    assert_eq!(totals.iter().map(|c| c.currency_code.as_str()).collect::<Vec<_>>(), ["JPY", "KWD", "USD"]);
    let usd = &totals[2];
    assert_eq!((usd.purchase_count, usd.refund_count), (2, 1));
    assert_eq!(usd.total_spent, money("USD", 24, 990_000_000), "19.99 + 10.00 - 5.00, exactly");
    assert_eq!(usd.average_order_value, money("USD", 12, 500_000_000), "24.99 / 2 rounds half away from zero");
    let first_purchase = usd.first_purchase_time.unwrap().seconds;
    let last_purchase = usd.last_purchase_time.unwrap().seconds;
    assert!(last_purchase - first_purchase > 6 * 86_400, "ten and three days ago: {first_purchase} .. {last_purchase}");
    assert_eq!(totals[1].total_spent, money("KWD", 1, 5_000_000), "three decimal places kept");

    let got = client(&app)
        .get_transaction(app.as_roles(pb::GetTransactionRequest { name: first.name.clone() }, &["marketer"]))
        .await
        .unwrap()
        .into_inner()
        .transaction
        .unwrap();
    assert_eq!(got, first);

    // Most recent first, one per page, and by kind.
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListTransactionsRequest { parent: li.name.clone(), page_size: 2, page_token, ..Default::default() };
        let page = client(&app).list_transactions(app.as_roles(request, &["agent"])).await.unwrap().into_inner();
        seen.extend(page.transactions.into_iter().map(|t| t.external_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    // POS-5 was sent after POS-4, a moment later "two days ago".
    assert_eq!(seen, ["POS-3", "POS-5", "POS-4", "POS-1", "POS-2"]);
    let refunds = pb::ListTransactionsRequest { parent: li.name.clone(), kind: pb::TransactionKind::Refund as i32, ..Default::default() };
    let listed = client(&app).list_transactions(app.as_roles(refunds, &["agent"])).await.unwrap().into_inner().transactions;
    assert_eq!(listed.iter().map(|t| t.external_id.as_str()).collect::<Vec<_>>(), ["POS-3"]);

    let events = crm_testkit::events::collect(&app.channel, &app.admin_token, 0, 6).await;
    let recorded = pb::TransactionRecorded::decode(events[1].data.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(recorded.transaction.unwrap().name, first.name);
    assert_eq!(events[1].subject, li.name, "announced on the customer's subject");
}

#[tokio::test]
async fn an_external_id_is_stored_once_and_reused_with_other_content_is_refused() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let first = record(&app, &li.name, purchase("POS-1", money("CNY", 88, 0), 1)).await.unwrap();
    let again = record(&app, &li.name, pb::Transaction { occur_time: None, ..purchase("POS-1", money("CNY", 99, 0), 1) }).await;
    assert_error(again, Code::InvalidArgument, "INVALID_OCCUR_TIME");
    let mut other_amount = purchase("POS-1", money("CNY", 99, 0), 1);
    other_amount.occur_time = first.occur_time;
    let status = assert_error(record(&app, &li.name, other_amount).await, Code::AlreadyExists, "EXTERNAL_ID_USED");
    assert!(status.message().contains("POS-1"), "{}", status.message());

    let sent = purchase("POS-2", money("CNY", 12, 500_000_000), 1);
    let stored = record(&app, &li.name, sent.clone()).await.unwrap();
    assert_eq!(record(&app, &li.name, sent.clone()).await.unwrap(), stored, "re-sent: the stored one, unchanged");
    let twice = batch(&app, &li.name, vec![item("", sent.clone()), item("", sent.clone())]).await.unwrap();
    assert_eq!(twice, [stored.clone(), stored.clone()]);
    let cny = &spending(&app, &li.name).await[0];
    assert_eq!((cny.purchase_count, cny.total_spent.clone()), (2, money("CNY", 100, 500_000_000)), "counted once each");

    // A clash anywhere in a batch writes nothing of it.
    let other_content = pb::Transaction { amount: money("CNY", 13, 0), ..sent.clone() };
    let status = assert_error(
        batch(&app, &li.name, vec![item("", purchase("POS-3", money("CNY", 1, 0), 1)), item("", other_content)]).await,
        Code::AlreadyExists,
        "EXTERNAL_ID_USED",
    );
    assert!(status.message().contains("POS-2"), "{}", status.message());
    assert_eq!(count(&app, "transactions").await, 2, "POS-3 was not kept");
    assert_eq!(spending(&app, &li.name).await[0].purchase_count, 2);
}

#[tokio::test]
async fn concurrent_batches_with_the_same_external_ids_store_each_once() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let han = app.create(customer("韩梅梅", "hanmeimei@example.com")).await;
    let items: Vec<_> = (0..200)
        .map(|i| {
            let parent = if i % 2 == 0 { &li.name } else { &han.name };
            item(parent, purchase(&format!("WEB-{i:04}"), money("EUR", 10, 0), 1 + i % 5))
        })
        .collect();
    let mut reversed = items.clone();
    reversed.reverse();
    let results = futures::future::join_all([
        batch(&app, "customers/-", items.clone()),
        batch(&app, "customers/-", reversed),
        batch(&app, "customers/-", items),
    ])
    .await;
    let names: Vec<Vec<String>> =
        results.into_iter().map(|r| r.expect("every batch succeeds").into_iter().map(|t| t.name).collect()).collect();
    let mut back = names[1].clone();
    back.reverse();
    assert_eq!(names[0], back, "both see the same stored transactions");
    assert_eq!(names[0], names[2]);
    assert_eq!(count(&app, "transactions").await, 200);
    assert_eq!(count(&app, "transaction_items").await, 200);
    for person in [&li, &han] {
        let eur = &spending(&app, &person.name).await[0];
        assert_eq!((eur.purchase_count, eur.total_spent.clone()), (100, money("EUR", 1000, 0)));
    }
}

#[tokio::test]
async fn a_batch_is_all_or_none_and_names_every_bad_item() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let gone = app.create(customer("Gone", "gone@example.com")).await;
    let request = pb::DeleteCustomerRequest { name: gone.name.clone(), etag: String::new() };
    app.customers.clone().delete_customer(app.admin(request)).await.unwrap();

    let mut bad_price = purchase("B-4", money("USD", 1, 0), 1);
    bad_price.line_items[0].unit_price = money("EUR", 1, 0);
    bad_price.line_items[0].quantity = 0;
    let future = pb::Transaction {
        occur_time: Some((SystemTime::now() + Duration::from_secs(3600)).into()),
        ..purchase("B-5", money("USD", 1, 0), 0)
    };
    let status = assert_error(
        batch(
            &app,
            "customers/-",
            vec![
                item("", purchase("B-0", money("USD", 1, 0), 1)),
                item(&li.name, purchase("B-1", money("usd", 1, 0), 1)),
                item(&li.name, purchase("B-2", money("USD", 1, 5_000_000), 1)),
                item(&li.name, purchase("B-3", money("JPY", 1, 500_000_000), 1)),
                item(&li.name, bad_price),
                item(&li.name, future),
                item(&li.name, pb::Transaction { kind: 0, external_id: String::new(), ..purchase("", money("USD", -1, 0), 1) }),
            ],
        )
        .await,
        Code::InvalidArgument,
        "INVALID_FIELDS",
    );
    let expected = [
        ("requests[0].parent", "REQUIRED"),
        ("requests[1].transaction.amount", "INVALID_CURRENCY"),
        ("requests[2].transaction.amount", "TOO_PRECISE"),
        ("requests[3].transaction.amount", "TOO_PRECISE"),
        ("requests[4].transaction.line_items[0].quantity", "INVALID_QUANTITY"),
        ("requests[4].transaction.line_items[0].unit_price.currency_code", "CURRENCY_MISMATCH"),
        ("requests[5].transaction.occur_time", "INVALID_OCCUR_TIME"),
        ("requests[6].transaction.external_id", "REQUIRED"),
        ("requests[6].transaction.kind", "INVALID_KIND"),
        ("requests[6].transaction.amount", "NEGATIVE_AMOUNT"),
    ];
    assert_eq!(violations(&status), expected.map(|(f, r)| (f.to_owned(), r.to_owned())));

    let mismatch = batch(&app, &li.name, vec![item(&gone.name, purchase("M-1", money("USD", 1, 0), 1))]).await;
    assert_eq!(violations(&assert_error(mismatch, Code::InvalidArgument, "PARENT_MISMATCH"))[0].0, "requests[0].parent");
    let deleted = batch(
        &app,
        "customers/-",
        vec![item(&li.name, purchase("D-1", money("USD", 1, 0), 1)), item(&gone.name, purchase("D-2", money("USD", 1, 0), 1))],
    )
    .await;
    assert_error(deleted, Code::FailedPrecondition, "CUSTOMER_DELETED");
    let unknown = format!("customers/{}", Uuid::now_v7());
    assert_error(record(&app, &unknown, purchase("U-1", money("USD", 1, 0), 1)).await, Code::NotFound, "NOT_FOUND");
    let too_many = (0..1001).map(|i| item("", purchase(&format!("X-{i}"), money("USD", 1, 0), 1))).collect();
    assert_error(batch(&app, &li.name, too_many).await, Code::InvalidArgument, "INVALID_BATCH_SIZE");
    assert_eq!(count(&app, "transactions").await, 0, "nothing half-written");
    assert_eq!(count(&app, "customer_spending").await, 0);

    // The largest batch goes through whole.
    let full: Vec<_> = (0..1000).map(|i| item("", purchase(&format!("F-{i:04}"), money("USD", 2, 500_000_000), 1))).collect();
    assert_eq!(batch(&app, &li.name, full).await.unwrap().len(), 1000);
    let usd = &spending(&app, &li.name).await[0];
    assert_eq!((usd.purchase_count, usd.total_spent.clone()), (1000, money("USD", 2500, 0)));
}

#[tokio::test]
async fn agents_record_others_read_a_customer_reads_their_own_and_tenants_and_the_database_keep_their_rules() {
    let app = spawn_app().await;
    let li = app.create(customer("李雷", "lilei@example.com")).await;
    let han = app.create(customer("韩梅梅", "hanmeimei@example.com")).await;
    let mine = record(&app, &li.name, purchase("P-1", money("USD", 3, 0), 1)).await.unwrap();
    let request = pb::CreateTransactionRequest { parent: li.name.clone(), transaction: Some(purchase("P-2", money("USD", 1, 0), 1)) };
    assert_error(client(&app).create_transaction(app.as_roles(request, &["marketer"])).await, Code::PermissionDenied, "PERMISSION_DENIED");

    let own = with_token(pb::GetTransactionRequest { name: mine.name.clone() }, &customer_token(app.tenant, &li.name));
    assert_eq!(client(&app).get_transaction(own).await.unwrap().into_inner().transaction.unwrap(), mine);
    let others = with_token(pb::GetTransactionRequest { name: mine.name.clone() }, &customer_token(app.tenant, &han.name));
    assert_error(client(&app).get_transaction(others).await, Code::NotFound, "NOT_FOUND");
    let elsewhere = token(Uuid::now_v7(), &["admin"]);
    let listed = client(&app)
        .list_transactions(with_token(pb::ListTransactionsRequest { parent: li.name.clone(), ..Default::default() }, &elsewhere))
        .await;
    assert_error(listed, Code::NotFound, "NOT_FOUND");
    let spent = client(&app)
        .get_customer_spending(with_token(pb::GetCustomerSpendingRequest { name: format!("{}/spending", li.name) }, &elsewhere))
        .await;
    assert_error(spent, Code::NotFound, "NOT_FOUND");

    // As the service's own login role: another tenant sees none of it, and the table refuses what the service refuses.
    let mut conn = app.app_connection().await;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(Uuid::now_v7().to_string()).execute(&mut conn).await.unwrap();
    for table in ["transactions", "transaction_items", "customer_spending"] {
        let seen: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut conn).await.unwrap();
        assert_eq!(seen, 0, "{table} is tenant-scoped");
    }
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(app.tenant.to_string()).execute(&mut conn).await.unwrap();
    let li_id = Uuid::parse_str(li.name.trim_start_matches("customers/")).unwrap();
    let insert = |external_id: &'static str, amount: i64| {
        sqlx::query(
            "INSERT INTO transactions (tenant_id, customer_id, id, external_id, kind, currency_code, amount_minor, occur_time, create_time)
             VALUES ($1, $2, $3, $4, 'PURCHASE', 'USD', $5, now(), now())",
        )
        .bind(app.tenant)
        .bind(li_id)
        .bind(Uuid::now_v7())
        .bind(external_id)
        .bind(amount)
    };
    let duplicate = insert("P-1", 100).execute(&mut conn).await.unwrap_err();
    assert_eq!(duplicate.as_database_error().unwrap().code().as_deref(), Some("23505"), "one external id per tenant");
    let negative = insert("P-9", -1).execute(&mut conn).await.unwrap_err();
    assert_eq!(negative.as_database_error().unwrap().code().as_deref(), Some("23514"), "no negative amounts");
}
