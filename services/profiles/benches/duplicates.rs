//! `make bench`: duplicate detection at scale, beside a reference measured
//! in the same run on the same Postgres.
//!
//! A real crm-profiles process (release build, telemetry off) on a fresh
//! database with 1 000 000 customers of one tenant, seeded by SQL: Chinese
//! names from 30 surnames and 100 given-name characters (one or two), so that
//! a name — by pinyin — is shared by a handful to a few hundred customers;
//! unique emails and phones, except that one customer in fifty shares the
//! phone of another (a planted duplicate). Measured:
//! - the full tenant scan (the job, polling every 100 ms): from the tenant
//!   falling due to its position passing the last customer (target ≤ 10 min),
//!   the pairs it found, and the service's peak RSS;
//! - FindDuplicates for one customer, one call at a time (target p95 ≤ 50 ms),
//!   against the reference: the candidate lookup alone (the same indexed
//!   query by the customer's keys) over one connection as the login role.
//!
//! `CRM_BENCH_CUSTOMERS=N` scales the data down for a quicker look;
//! `cargo test --all-targets` runs it with 2 000 as a smoke test.

use std::time::{Duration, Instant};

use crm_proto::crm::profiles::v1::{self as pb, duplicate_service_client::DuplicateServiceClient};
use crm_testkit::{
    auth::{token, with_token},
    bench::{build_kind, customer_scale, peak_rss_mb, percentile_of},
    database::fresh_database,
    process::{binary, spawn_service},
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (full, customers) = customer_scale();
    let rounds = if full { 300 } else { 20 };
    let tenant = Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);
    let db = fresh_database("profiles").await.expect("a database");
    let service = spawn_service(binary("crm-profiles"), &db, &[("CRM_LOG", "warn".into()), ("CRM_DUPLICATE_SCAN_MS", "100".into())]).await;
    let pid = service.child.id().expect("running");

    let started = Instant::now();
    let mut owner = PgConnection::connect(&db.owner_url).await?;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(tenant.to_string()).execute(&mut owner).await?;
    // Changed a minute ago: older than the scan's lag, so it takes everyone at once.
    sqlx::query(
        "INSERT INTO customers (tenant_id, id, display_name, emails, phones, company, tags, create_time, update_time)
         SELECT $1, gen_random_uuid(),
                (ARRAY['王','李','张','刘','陈','杨','黄','赵','吴','周','徐','孙','马','朱','胡','郭','何','高','林','罗',
                       '郑','梁','谢','宋','唐','许','韩','冯','邓','曹'])[1 + i % 30]
                || substr(g, (1 + (i / 30) % 100)::int, 1) || CASE WHEN i % 5 < 3 THEN substr(g, (1 + (i / 3000) % 100)::int, 1) ELSE '' END,
                jsonb_build_array(jsonb_build_object('address', 'user' || i || '@example.com', 'label', '', 'primary', true)),
                jsonb_build_array(jsonb_build_object('number', '+86138' || lpad((CASE WHEN i % 50 = 0 THEN i + 1 ELSE i END)::text, 8, '0'),
                                                     'label', '', 'primary', true)),
                'Company ' || (random() * 5000)::int, ARRAY[]::text[], now() - interval '1 minute', now() - interval '1 minute'
         FROM generate_series(1, $2) AS i,
              (SELECT '伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华慧巧美娟兰凤洁梅琳素云莲真环雪荣爱妹霞香月莺媛艳瑞凡佳嘉琼勤珍贞莉桂娣叶璧璐娅琦晶妍茜秋珊莎锦黛青倩婷姣婉娴瑾颖露瑶怡婵雁蓓纨仪荷丹蓉眉君琴蕊薇菁梦岚苑婕馨瑗琰韵融园艺咏卿聪澜纯毓悦昭冰爽琬茗羽希宁' AS g) AS given",
    )
    .bind(tenant)
    .bind(customers)
    .execute(&mut owner)
    .await?;
    sqlx::query("ANALYZE customers").execute(&mut owner).await?;
    let seeded = started.elapsed();
    let last_change: (chrono::DateTime<chrono::Utc>, Uuid) =
        sqlx::query_as("SELECT update_time, id FROM customers WHERE tenant_id = $1 ORDER BY update_time DESC, id DESC LIMIT 1")
            .bind(tenant)
            .fetch_one(&mut owner)
            .await?;

    // The full scan: the tenant falls due (as CreateCustomer marks it), the job walks everyone.
    let rss_before = peak_rss_mb(pid);
    let started = Instant::now();
    sqlx::query("INSERT INTO duplicate_scans (tenant_id) VALUES ($1)").bind(tenant).execute(&mut owner).await?;
    loop {
        let at: (chrono::DateTime<chrono::Utc>, Uuid) =
            sqlx::query_as("SELECT scanned_time, scanned_id FROM duplicate_scans WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&mut owner)
                .await?;
        if at >= last_change {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3600), "the scan finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let scan = started.elapsed();
    let rss_after = peak_rss_mb(pid);
    let pairs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM duplicate_pairs WHERE tenant_id = $1").bind(tenant).fetch_one(&mut owner).await?;
    let phone_pairs: i64 = sqlx::query_scalar("SELECT count(*) FROM duplicate_pairs WHERE tenant_id = $1 AND 'PHONE' = ANY(signals)")
        .bind(tenant)
        .fetch_one(&mut owner)
        .await?;

    // FindDuplicates for customers spread over the tenant, and the bare candidate lookup.
    let probes: Vec<(Uuid, Vec<String>)> =
        sqlx::query_as("SELECT id, match_keys FROM customers WHERE tenant_id = $1 ORDER BY md5(id::text) LIMIT $2")
            .bind(tenant)
            .bind(i64::from(rounds))
            .fetch_all(&mut owner)
            .await?;
    let mut client = DuplicateServiceClient::new(service.channel.clone());
    let mut find = Vec::with_capacity(probes.len());
    let mut found = 0usize;
    for (id, _) in &probes {
        let request = pb::FindDuplicatesRequest { name: format!("customers/{id}"), ..Default::default() };
        let t = Instant::now();
        found += client.find_duplicates(with_token(request, &bearer)).await.expect("FindDuplicates").into_inner().candidates.len();
        find.push(t.elapsed());
    }
    let mut app = PgConnection::connect(&db.app_url).await?;
    let mut reference = Vec::with_capacity(probes.len());
    for (id, keys) in &probes {
        let t = Instant::now();
        let mut tx = app.begin().await?;
        sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await?;
        let _: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM customers
             WHERE tenant_id = $1 AND delete_time IS NULL AND id <> $3
               AND id IN (SELECT customer_id FROM customer_match_keys WHERE tenant_id = $1 AND key = ANY($2))
             ORDER BY id LIMIT 200",
        )
        .bind(tenant)
        .bind(keys)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        reference.push(t.elapsed());
    }

    println!("profiles duplicates, {customers} customers of one tenant (seeded by SQL in {seeded:.1?}), {}", build_kind());
    println!("full tenant scan (keys + pairs, the job): {scan:.1?} (target ≤ 10 min); {pairs} pairs kept, {phone_pairs} by a shared phone");
    println!(
        "service peak RSS: {} before, {} after",
        rss_before.map_or(String::from("-"), |mb| format!("{mb:.1} MB")),
        rss_after.map_or(String::from("-"), |mb| format!("{mb:.1} MB"))
    );
    println!(
        "FindDuplicates (one customer, {} calls, {:.1} candidates each)   p50 {:>8.2?}   p95 {:>8.2?}   (target p95 ≤ 50 ms)",
        find.len(),
        found as f64 / find.len().max(1) as f64,
        percentile_of(&mut find, 50),
        percentile_of(&mut find, 95)
    );
    println!(
        "reference: the candidate lookup alone (same keys, SQL)   p50 {:>8.2?}   p95 {:>8.2?}",
        percentile_of(&mut reference, 50),
        percentile_of(&mut reference, 95)
    );
    Ok(())
}
