//! `make bench`: the customer archive's bulk paths against references run
//! in the same process on the same Postgres.
//!
//! BatchCreateTransactions: a real crm-profiles process (release build,
//! telemetry off) on a fresh database with 100 customers receives batches of
//! 1000 transactions (10 per customer, one line item each), one call at a
//! time. The reference writes the same rows over one connection as the
//! service's login role (RLS on): BEGIN with the tenant set, one multi-row
//! INSERT of the transactions, one of their line items, one upsert of the
//! customers' spending, COMMIT — no idempotency check, no events. Service
//! and reference rounds alternate, so that both see the same machine.
//! `cargo test --all-targets` runs it without `--bench` as a short smoke test.

use std::time::{Duration, Instant};

use crm_proto::{
    crm::profiles::v1::{self as pb, customer_service_client::CustomerServiceClient, transaction_service_client::TransactionServiceClient},
    google::r#type::Money,
};
use crm_testkit::{
    auth::{token, with_token},
    bench::{build_kind, peak_rss_mb},
    database::fresh_database,
    process::{binary, spawn_service},
};
use sqlx::{Connection, PgConnection, QueryBuilder};
use uuid::Uuid;

const CUSTOMERS: usize = 100;
const BATCH: usize = 1000;

/// Transaction `i` of batch `round`, of customer `i % CUSTOMERS`.
struct Sample {
    customer: Uuid,
    external_id: String,
    amount_minor: i64,
    occur_time: chrono::DateTime<chrono::Utc>,
}

fn batch_of(round: usize, prefix: &str, customers: &[Uuid]) -> Vec<Sample> {
    let now = chrono::Utc::now();
    (0..BATCH)
        .map(|i| Sample {
            customer: customers[i % customers.len()],
            external_id: format!("{prefix}-{round:04}-{i:04}"),
            amount_minor: 100 + (i as i64 % 50) * 37,
            occur_time: now - chrono::Duration::minutes(i as i64),
        })
        .collect()
}

fn request(samples: &[Sample]) -> pb::BatchCreateTransactionsRequest {
    let requests = samples
        .iter()
        .map(|s| pb::CreateTransactionRequest {
            parent: format!("customers/{}", s.customer),
            transaction: Some(pb::Transaction {
                external_id: s.external_id.clone(),
                kind: pb::TransactionKind::Purchase as i32,
                amount: Some(Money {
                    currency_code: "CNY".into(),
                    units: s.amount_minor / 100,
                    nanos: (s.amount_minor % 100) as i32 * 10_000_000,
                }),
                occur_time: Some(prost_types::Timestamp { seconds: s.occur_time.timestamp(), nanos: 0 }),
                channel: "store".into(),
                store: "Bench outlet".into(),
                line_items: vec![pb::TransactionLineItem {
                    product: "Water filter".into(),
                    sku: "WF-200".into(),
                    quantity: 1,
                    unit_price: Some(Money {
                        currency_code: String::new(),
                        units: s.amount_minor / 100,
                        nanos: (s.amount_minor % 100) as i32 * 10_000_000,
                    }),
                }],
                ..Default::default()
            }),
        })
        .collect();
    pb::BatchCreateTransactionsRequest { parent: "customers/-".into(), requests }
}

/// The reference: the same rows in one multi-row INSERT each, plus the spending upsert.
async fn reference_round(conn: &mut PgConnection, tenant: Uuid, samples: &[Sample]) {
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await.expect("tenant");
    let ids: Vec<Uuid> = samples.iter().map(|_| Uuid::now_v7()).collect();
    let now = chrono::Utc::now();
    let mut insert = QueryBuilder::new(
        "INSERT INTO transactions (tenant_id, id, customer_id, external_id, kind, currency_code, amount_minor, occur_time, channel, store, create_time) ",
    );
    insert.push_values(samples.iter().zip(&ids), |mut row, (s, id)| {
        row.push_bind(tenant)
            .push_bind(id)
            .push_bind(s.customer)
            .push_bind(&s.external_id)
            .push_bind("PURCHASE")
            .push_bind("CNY")
            .push_bind(s.amount_minor)
            .push_bind(s.occur_time)
            .push_bind("store")
            .push_bind("Bench outlet")
            .push_bind(now);
    });
    insert.build().execute(&mut *tx).await.expect("reference transactions");
    let mut items =
        QueryBuilder::new("INSERT INTO transaction_items (tenant_id, transaction_id, position, product, sku, quantity, unit_price_minor) ");
    items.push_values(samples.iter().zip(&ids), |mut row, (s, id)| {
        row.push_bind(tenant)
            .push_bind(id)
            .push_bind(0_i16)
            .push_bind("Water filter")
            .push_bind("WF-200")
            .push_bind(1_i32)
            .push_bind(s.amount_minor);
    });
    items.build().execute(&mut *tx).await.expect("reference items");
    sqlx::query(
        "INSERT INTO customer_spending AS s (tenant_id, customer_id, currency_code, purchase_count, purchase_minor, first_purchase_time, last_purchase_time)
         SELECT $1, customer_id, currency_code, count(*), sum(amount_minor), min(occur_time), max(occur_time)
         FROM transactions WHERE tenant_id = $1 AND id = ANY($2) GROUP BY customer_id, currency_code
         ON CONFLICT (tenant_id, customer_id, currency_code) DO UPDATE SET
             purchase_count = s.purchase_count + excluded.purchase_count, purchase_minor = s.purchase_minor + excluded.purchase_minor,
             first_purchase_time = least(s.first_purchase_time, excluded.first_purchase_time),
             last_purchase_time = greatest(s.last_purchase_time, excluded.last_purchase_time)",
    )
    .bind(tenant)
    .bind(&ids)
    .execute(&mut *tx)
    .await
    .expect("reference spending");
    tx.commit().await.expect("commit");
}

fn summary(label: &str, times: &mut [Duration]) -> f64 {
    times.sort();
    let total: Duration = times.iter().sum();
    let per_second = (times.len() * BATCH) as f64 / total.as_secs_f64();
    let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
    println!("{label:<52} {per_second:>9.0} rows/s   p50 {:>7.1?}   p95 {:>7.1?}", times[times.len() / 2], p95);
    per_second
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let rounds = if full { 30 } else { 2 };
    let tenant = Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);
    let db = fresh_database("profiles").await.expect("a database");
    let service = spawn_service(binary("crm-profiles"), &db, &[("CRM_LOG", "warn".into())]).await;
    let customers_client = CustomerServiceClient::new(service.channel.clone());
    let mut customers = Vec::with_capacity(CUSTOMERS);
    for i in 0..CUSTOMERS {
        let customer = pb::Customer { display_name: format!("Bench customer {i}"), ..Default::default() };
        let created = customers_client
            .clone()
            .create_customer(with_token(pb::CreateCustomerRequest { customer: Some(customer), request_id: String::new() }, &bearer))
            .await?
            .into_inner()
            .customer
            .expect("a customer");
        customers.push(Uuid::parse_str(created.name.trim_start_matches("customers/"))?);
    }
    let client = TransactionServiceClient::new(service.channel.clone());
    let mut reference = PgConnection::connect(&db.app_url).await?;

    // One warm-up round each, not counted.
    client.clone().batch_create_transactions(with_token(request(&batch_of(0, "warm", &customers)), &bearer)).await?;
    reference_round(&mut reference, tenant, &batch_of(0, "warm-ref", &customers)).await;

    let (mut service_times, mut reference_times) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let call = with_token(request(&batch_of(round, "svc", &customers)), &bearer);
        let started = Instant::now();
        let stored = client.clone().batch_create_transactions(call).await?.into_inner().transactions;
        service_times.push(started.elapsed());
        assert_eq!(stored.len(), BATCH);

        let samples = batch_of(round, "ref", &customers);
        let started = Instant::now();
        reference_round(&mut reference, tenant, &samples).await;
        reference_times.push(started.elapsed());
    }

    println!(
        "profiles archive bulk writes, {rounds} batches of {BATCH} over {CUSTOMERS} customers, one call at a time ({}, telemetry off)",
        build_kind()
    );
    let service_rate = summary("BatchCreateTransactions (gRPC, events, idempotent)", &mut service_times);
    let reference_rate = summary("reference: multi-row INSERTs + spending upsert", &mut reference_times);
    println!("BatchCreateTransactions / reference: {:.2}x (target ≥ 0.5x)", service_rate / reference_rate);
    println!(
        "service peak RSS: {}",
        peak_rss_mb(service.child.id().expect("running")).map_or(String::from("-"), |mb| format!("{mb:.1} MB"))
    );
    Ok(())
}
