//! `make bench`: the nightly regrade at scale, beside a reference measured
//! in the same run on the same Postgres.
//!
//! A real crm-profiles process (release build, telemetry off) on a fresh
//! database with 1 000 000 customers of one tenant, every one a buyer with
//! spending seeded by SQL (1 to ~20 purchases over up to two years, varied
//! amounts), and one dynamic segment on a model field so that the regrade's
//! segment upkeep is part of the bill. Measured:
//! - the grading job's run for the tenant: cut points, every customer's
//!   scores, tier, stage and churn risk, the lifetime-value model's fit and
//!   every customer's predictions, in one transaction; its wall time and
//!   the service's peak RSS (target ≤ 2 min, ≤ 300 MB);
//! - the fit alone (BG/NBD + Gamma-Gamma over the 50 000-customer sample) in
//!   this process, on the same histories;
//! - reference: one UPDATE rewriting one column of every customer, as the
//!   login role — the floor of touching a million rows once.
//!
//! `CRM_BENCH_CUSTOMERS=N` scales the data down for a quicker look;
//! `cargo test --all-targets` runs it with 2 000 as a smoke test.

use std::time::Instant;

use chrono::Utc;
use crm_profiles::domain::lifetime::{History, LifetimeModel};
use crm_proto::crm::profiles::v1::{
    self as pb, grading_service_client::GradingServiceClient, segment_service_client::SegmentServiceClient,
};
use crm_testkit::{
    auth::{token, with_token},
    bench::{build_kind, customer_scale, peak_rss_mb},
    database::fresh_database,
    process::{binary, spawn_service},
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (_, customers) = customer_scale();
    let tenant = Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);
    let db = fresh_database("profiles").await.expect("a database");
    let service = spawn_service(binary("crm-profiles"), &db, &[("CRM_LOG", "warn".into()), ("CRM_GRADING_POLL_MS", "100".into())]).await;
    let pid = service.child.id().expect("running");

    let started = Instant::now();
    let mut owner = PgConnection::connect(&db.owner_url).await?;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(tenant.to_string()).execute(&mut owner).await?;
    sqlx::query(
        "INSERT INTO customers (tenant_id, id, display_name, tags, create_time, update_time)
         SELECT $1, gen_random_uuid(), 'Customer ' || i, ARRAY[]::text[], now() - interval '3 years', now()
         FROM generate_series(1, $2) AS i",
    )
    .bind(tenant)
    .bind(customers)
    .execute(&mut owner)
    .await?;
    // Purchases: a geometric count (mean ~3), a first purchase up to two
    // years ago, the last somewhere between it and now, 20-100 CNY each.
    sqlx::query(
        "INSERT INTO customer_spending (tenant_id, customer_id, currency_code, purchase_count, purchase_minor, first_purchase_time,
                                        last_purchase_time)
         SELECT tenant_id, id, 'CNY', n, n * (2000 + (random() * 8000)::bigint), first, first + random() * (now() - first)
         FROM (SELECT tenant_id, id, 1 + floor(-ln(1 - random()) * 2.5)::bigint AS n, now() - random() * interval '730 days' AS first
               FROM customers WHERE tenant_id = $1) AS c",
    )
    .bind(tenant)
    .execute(&mut owner)
    .await?;
    sqlx::query("UPDATE customer_spending SET last_purchase_time = first_purchase_time WHERE purchase_count = 1")
        .execute(&mut owner)
        .await?;
    sqlx::query("ANALYZE customers").execute(&mut owner).await?;
    sqlx::query("ANALYZE customer_spending").execute(&mut owner).await?;
    let seeded = started.elapsed();

    let segment = pb::Segment {
        display_name: "Likely gone".into(),
        kind: pb::SegmentKind::Dynamic as i32,
        filter: "probability_alive < 0.5".into(),
        ..Default::default()
    };
    SegmentServiceClient::new(service.channel.clone())
        .create_segment(with_token(pb::CreateSegmentRequest { segment: Some(segment), request_id: String::new() }, &bearer))
        .await
        .expect("CreateSegment");

    // The job's run, as every night: the tenant falls due and the job (polling every 100 ms) regrades it;
    // done when its cut points are committed. (RegradeCustomers runs the same, but within a call's 10 s deadline.)
    let rss_before = peak_rss_mb(pid);
    let started = Instant::now();
    sqlx::query("INSERT INTO grading_state (tenant_id, next_run_time) VALUES ($1, now())").bind(tenant).execute(&mut owner).await?;
    loop {
        let done: Option<chrono::DateTime<Utc>> =
            sqlx::query_scalar("SELECT compute_time FROM grading_state WHERE tenant_id = $1").bind(tenant).fetch_one(&mut owner).await?;
        if done.is_some() {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(900), "the job regraded the tenant");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let regrade = started.elapsed();
    let rss_after = peak_rss_mb(pid);
    let changed: i64 =
        sqlx::query_scalar("SELECT count(*) FROM customers WHERE tenant_id = $1 AND value_tier <> '' AND probability_alive IS NOT NULL")
            .bind(tenant)
            .fetch_one(&mut owner)
            .await?;
    let mut grading = GradingServiceClient::new(service.channel.clone());
    let settings = grading
        .get_grading_settings(with_token(pb::GetGradingSettingsRequest { name: "gradingSettings".into() }, &bearer))
        .await
        .expect("GetGradingSettings")
        .into_inner()
        .grading_settings
        .expect("settings");
    let model = settings.lifetime_model.expect("a fitted model");

    // The fit alone, on the same histories, in this process.
    let now = Utc::now();
    let histories: Vec<History> = sqlx::query_as::<_, (i64, i64, f64, f64)>(
        "SELECT purchase_count, purchase_minor, extract(epoch FROM last_purchase_time - first_purchase_time)::float8 / 86400,
                extract(epoch FROM $2 - first_purchase_time)::float8 / 86400
         FROM customer_spending WHERE tenant_id = $1 ORDER BY customer_id",
    )
    .bind(tenant)
    .bind(now)
    .fetch_all(&mut owner)
    .await?
    .into_iter()
    .map(|(n, minor, last, age)| History {
        repeats: u32::try_from(n - 1).unwrap_or(0),
        last,
        age: age.max(last),
        mean_value: minor as f64 / n as f64,
    })
    .collect();
    let started = Instant::now();
    let fitted = LifetimeModel::fit(histories.iter().copied()).expect("a fit");
    let fit = started.elapsed();

    // Reference: rewrite one column of every customer once, as the login role (RLS on).
    let mut app = PgConnection::connect(&db.app_url).await?;
    let started = Instant::now();
    let mut tx = app.begin().await?;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await?;
    sqlx::query("UPDATE customers SET probability_alive = coalesce(probability_alive, 0.5) * 0.999 WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let reference = started.elapsed();

    println!("profiles regrade, {customers} customers of one tenant, all buyers (seeded by SQL in {seeded:.1?}), {}", build_kind());
    println!(
        "the grading job's regrade (cut points + scores + model fit + predictions + segment upkeep): {regrade:.1?}, {changed} customers graded and valued (target ≤ 2 min)"
    );
    println!(
        "service peak RSS: {} before, {} after (target ≤ 300 MB)",
        rss_before.map_or(String::from("-"), |mb| format!("{mb:.1} MB")),
        rss_after.map_or(String::from("-"), |mb| format!("{mb:.1} MB"))
    );
    println!(
        "the fit alone (BG/NBD + Gamma-Gamma over a {}-customer sample): {fit:.2?}; repeat check {:.3} (in the service: {:.3})",
        fitted.fitted_customers, fitted.repeat_check, model.repeat_check
    );
    println!(
        "reference: one UPDATE of one column of every customer: {reference:.1?} → the regrade costs {:.1}x it",
        regrade.as_secs_f64() / reference.as_secs_f64()
    );
    Ok(())
}
