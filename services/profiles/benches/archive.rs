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
//!
//! ListCustomerTimeline: one customer with 100 000 timeline entries (40 000
//! communications, 30 000 transactions with a line item each, 15 000
//! occurrences, 15 000 field changes, seeded by SQL), read 50 at a time:
//! the first page again and again, then the first 40 pages in turn, one call
//! at a time. The reference is one hand-written statement returning the same
//! page with every record's columns (`to_jsonb`, line items aggregated),
//! inside the same BEGIN + tenant + COMMIT as the service, over one
//! connection; it runs after each service call, for the same page.
//! `cargo test --all-targets` runs it without `--bench` as a short smoke test.

use std::time::{Duration, Instant};

use crm_testkit::database::TestDb;

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

/// Seeds `entries` timeline entries for `customer` by SQL, as the schema owner with the tenant set (RLS is forced).
async fn seed_timeline(db: &TestDb, tenant: Uuid, customer: Uuid, entries: i64) {
    let mut owner = PgConnection::connect(&db.owner_url).await.expect("owner connects");
    let (communications, transactions, occurrences) = (entries * 40 / 100, entries * 30 / 100, entries * 15 / 100);
    let changes = entries - communications - transactions - occurrences;
    let statements = [
        format!(
            "INSERT INTO communications (tenant_id, customer_id, id, kind, direction, subject, content, occur_time, agent, create_time, update_time)
             SELECT $1, $2, gen_random_uuid(), 'CALL', 'INBOUND', 'Call ' || i, repeat('Talked about the renewal. ', 8),
                    now() - i * interval '17 minutes', 'agent:bench', now(), now()
             FROM generate_series(1, {communications}) AS i"
        ),
        format!(
            "INSERT INTO transactions (tenant_id, customer_id, id, external_id, kind, currency_code, amount_minor, occur_time, channel, store, create_time)
             SELECT $1, $2, gen_random_uuid(), 'seed-' || i, 'PURCHASE', 'CNY', 100 + i % 5000, now() - i * interval '23 minutes', 'store', 'Bench outlet', now()
             FROM generate_series(1, {transactions}) AS i"
        ),
        "INSERT INTO transaction_items (tenant_id, transaction_id, position, product, sku, quantity, unit_price_minor)
         SELECT tenant_id, id, 0, 'Water filter', 'WF-200', 1, amount_minor FROM transactions WHERE tenant_id = $1 AND customer_id = $2"
            .to_owned(),
        format!(
            "INSERT INTO occurrences (tenant_id, customer_id, id, category, occur_date, handler, description, create_time, update_time)
             SELECT $1, $2, gen_random_uuid(), 'visit', (now() - i * interval '41 minutes')::date, 'agent:bench', 'Visited the site.', now(), now()
             FROM generate_series(1, {occurrences}) AS i"
        ),
        format!(
            "INSERT INTO field_changes (tenant_id, customer_id, id, record, operation, field_path, old_value, new_value, old_masked, new_masked,
                                        actor, request_id, change_time)
             SELECT $1, $2, gen_random_uuid(), 'customers/' || $2, 'UPDATE', 'display_name', to_jsonb('Name ' || i), to_jsonb('Name ' || i + 1),
                    to_jsonb('Name ' || i), to_jsonb('Name ' || i + 1), 'agent:bench', 'seed-' || i, now() - i * interval '13 minutes'
             FROM generate_series(1, {changes}) AS i"
        ),
        "ANALYZE".to_owned(),
    ];
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(tenant.to_string()).execute(&mut owner).await.expect("tenant");
    for statement in statements {
        sqlx::query(&statement).bind(tenant).bind(customer).execute(&mut owner).await.expect("seeding the timeline");
    }
}

/// The reference: the same page of 50 in one hand-written statement, every record's columns included.
const REFERENCE_TIMELINE: &str = "
SELECT time, kind, id, row FROM (
  (SELECT occur_time AS time, 'COMMUNICATION'::text AS kind, id, to_jsonb(c) AS row FROM communications c
   WHERE tenant_id = $1 AND customer_id = $2 AND occur_time <= $3 AND (occur_time, 'COMMUNICATION'::text, id) < ($3, $4, $5)
   ORDER BY occur_time DESC, id DESC LIMIT 51)
  UNION ALL
  (SELECT occur_time, 'TRANSACTION', id, to_jsonb(t) || jsonb_build_object('items',
      (SELECT jsonb_agg(i ORDER BY position) FROM transaction_items i WHERE i.tenant_id = t.tenant_id AND i.transaction_id = t.id))
   FROM transactions t
   WHERE tenant_id = $1 AND customer_id = $2 AND occur_time <= $3 AND (occur_time, 'TRANSACTION'::text, id) < ($3, $4, $5)
   ORDER BY occur_time DESC, id DESC LIMIT 51)
  UNION ALL
  (SELECT occur_date::timestamp AT TIME ZONE 'UTC', 'OCCURRENCE', id, to_jsonb(o) FROM occurrences o
   WHERE tenant_id = $1 AND customer_id = $2 AND occur_date <= ($3 AT TIME ZONE 'UTC')::date
     AND (occur_date::timestamp AT TIME ZONE 'UTC', 'OCCURRENCE'::text, id) < ($3, $4, $5)
   ORDER BY occur_date DESC, id DESC LIMIT 51)
  UNION ALL
  (SELECT change_time, 'FIELD_CHANGE', id, to_jsonb(f) FROM field_changes f
   WHERE tenant_id = $1 AND customer_id = $2 AND change_time <= $3 AND (change_time, 'FIELD_CHANGE'::text, id) < ($3, $4, $5)
   ORDER BY change_time DESC, id DESC LIMIT 51)
) AS entries ORDER BY time DESC, kind DESC, id DESC LIMIT 51";

/// The key a page continues after: far in the future for the first page.
type PageAfter = (chrono::DateTime<chrono::Utc>, String, Uuid);

fn first_page() -> PageAfter {
    (chrono::Utc::now() + chrono::Duration::days(3650), "~".into(), Uuid::max())
}

/// The key of the last item of a service page, to continue after.
fn key_of(item: &pb::TimelineItem) -> PageAfter {
    let time = item.time.expect("a time");
    let time = chrono::DateTime::from_timestamp(time.seconds, time.nanos as u32).expect("a valid time");
    let kind = pb::TimelineKind::try_from(item.kind).expect("a kind").as_str_name().trim_start_matches("TIMELINE_KIND_").to_owned();
    let id = Uuid::parse_str(item.record.rsplit('/').next().expect("an id")).expect("a uuid");
    (time, kind, id)
}

async fn reference_page(conn: &mut PgConnection, tenant: Uuid, customer: Uuid, after: &PageAfter) -> usize {
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await.expect("tenant");
    let rows = sqlx::query(REFERENCE_TIMELINE)
        .bind(tenant)
        .bind(customer)
        .bind(after.0)
        .bind(&after.1)
        .bind(after.2)
        .fetch_all(&mut *tx)
        .await
        .expect("reference timeline");
    tx.commit().await.expect("commit");
    rows.len()
}

fn latency(label: &str, times: &mut [Duration]) -> Duration {
    times.sort();
    let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
    println!("{label:<52} p50 {:>7.2?}   p95 {:>7.2?}   ({} calls)", times[times.len() / 2], p95, times.len());
    p95
}

/// The timeline benchmark; prints its figures.
async fn timeline_bench(
    db: &TestDb,
    client: &CustomerServiceClient<tonic::transport::Channel>,
    bearer: &str,
    tenant: Uuid,
    full: bool,
) -> anyhow::Result<()> {
    let entries: i64 = if full { 100_000 } else { 2_000 };
    let created = client
        .clone()
        .create_customer(with_token(
            pb::CreateCustomerRequest {
                customer: Some(pb::Customer { display_name: "Long history".into(), ..Default::default() }),
                request_id: String::new(),
            },
            bearer,
        ))
        .await?
        .into_inner()
        .customer
        .expect("a customer");
    let customer = Uuid::parse_str(created.name.trim_start_matches("customers/"))?;
    let started = Instant::now();
    seed_timeline(db, tenant, customer, entries).await;
    let seeded = started.elapsed();
    let mut reference = PgConnection::connect(&db.app_url).await?;
    let page = |page_token: String| {
        with_token(pb::ListCustomerTimelineRequest { parent: created.name.clone(), page_size: 50, page_token, kinds: vec![] }, bearer)
    };

    let (rounds, pages) = if full { (200, 40) } else { (5, 3) };
    let (mut first_service, mut first_reference) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let started = Instant::now();
        let items = client.clone().list_customer_timeline(page(String::new())).await?.into_inner().items;
        first_service.push(started.elapsed());
        assert_eq!(items.len(), 50);
        let started = Instant::now();
        assert_eq!(reference_page(&mut reference, tenant, customer, &first_page()).await, 51);
        first_reference.push(started.elapsed());
    }
    let (mut walk_service, mut walk_reference) = (Vec::new(), Vec::new());
    let (mut token, mut after) = (String::new(), first_page());
    for _ in 0..pages {
        let started = Instant::now();
        let response = client.clone().list_customer_timeline(page(token)).await?.into_inner();
        walk_service.push(started.elapsed());
        let started = Instant::now();
        reference_page(&mut reference, tenant, customer, &after).await;
        walk_reference.push(started.elapsed());
        after = key_of(response.items.last().expect("a full page"));
        token = response.next_page_token;
    }

    println!();
    println!("profiles timeline, one customer with {entries} entries (seeded by SQL in {seeded:.1?}), pages of 50, one call at a time");
    let service_p95 = latency("ListCustomerTimeline, first page (gRPC)", &mut first_service);
    let reference_p95 = latency("reference: one hand-written statement, same page", &mut first_reference);
    println!("first page p95: {:.2}x the reference (target ≤ 3x, ≤ 50 ms)", service_p95.as_secs_f64() / reference_p95.as_secs_f64());
    let service_p95 = latency(&format!("ListCustomerTimeline, pages 1-{pages} in turn"), &mut walk_service);
    let reference_p95 = latency("reference, the same pages", &mut walk_reference);
    println!("walk p95: {:.2}x the reference", service_p95.as_secs_f64() / reference_p95.as_secs_f64());
    Ok(())
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

    timeline_bench(&db, &customers_client, &bearer, tenant, full).await?;
    println!(
        "service peak RSS: {}",
        peak_rss_mb(service.child.id().expect("running")).map_or(String::from("-"), |mb| format!("{mb:.1} MB"))
    );
    Ok(())
}
