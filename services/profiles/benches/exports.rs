//! `make bench`: exporting 1 000 000 customers as CSV (and XLSX), beside
//! `COPY (SELECT …) TO STDOUT` of the same rows measured in the same run.
//!
//! A real crm-profiles process (release build, telemetry off) on a fresh
//! database seeded with 1 000 000 customers of one tenant (names, two
//! emails, a phone, an address, a company, tags, a birthday and an external
//! id each). Measured:
//! - the export: ExportCustomers (CSV, the default columns) read to its end
//!   by a gRPC client, and the service's RSS before and at its peak;
//! - the reference: the same rows, the same columns of `customers` the
//!   export reads, in the same order, under the same RLS policy, as
//!   `COPY (SELECT …) TO STDOUT` by the service's own database role — what
//!   Postgres alone takes to hand the rows out as text;
//! - the same export as XLSX.
//!
//! `CRM_BENCH_CUSTOMERS=N` scales it down; `cargo test --all-targets` runs
//! it with 2 000 customers as a smoke test.

use std::time::{Duration, Instant};

use crm_proto::crm::profiles::v1::{self as pb, export_service_client::ExportServiceClient};
use crm_testkit::{
    auth::{token, with_token},
    bench::{build_kind, customer_scale, peak_rss_mb, with_session_tenant},
    database::fresh_database,
    process::{binary, spawn_service},
};
use futures::StreamExt;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// The columns ExportCustomers reads (the service's `SELECT` of a customer).
const COLUMNS: &str = "id, display_name, given_name, family_name, kind, emails, phones, addresses, company, job_title, industry, \
company_size, source_channel, birthday_year, birthday_month, birthday_day, time_zone, locale, tags, attributes, owner, category, \
consent, value_tier, lifecycle_stage, revision, create_time, update_time, delete_time, verify_time, disable_time, disable_reason, erase_time, \
recency_score, frequency_score, monetary_score, lifecycle_time, churn_risk, probability_alive, expected_purchases, expected_value_minor, \
expected_value_currency, merged_into";

/// Reads ExportCustomers in `format` to its end: its bytes and how long it took.
async fn export(channel: &tonic::transport::Channel, bearer: &str, format: pb::ExportFormat) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let request = pb::ExportCustomersRequest { format: format as i32, ..Default::default() };
    let mut stream = ExportServiceClient::new(channel.clone()).export_customers(with_token(request, bearer)).await?.into_inner();
    let mut bytes = 0;
    while let Some(chunk) = stream.next().await {
        bytes += chunk?.chunk.map_or(0, |c| c.data.len() as u64);
    }
    Ok((bytes, started.elapsed()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (_, customers) = customer_scale();
    let tenant = Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);
    let db = fresh_database("profiles").await.expect("a database");
    let env = [("CRM_LOG", "warn".into()), ("CRM_DUPLICATE_SCAN_MS", "3600000".into()), ("CRM_SEGMENT_SWEEP_MS", "3600000".into())];
    let service = spawn_service(binary("crm-profiles"), &db, &env).await;
    let pid = service.child.id().expect("running");

    let mut owner = PgConnection::connect(&db.owner_url).await?;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(tenant.to_string()).execute(&mut owner).await?;
    sqlx::query(
        "INSERT INTO customers (tenant_id, id, display_name, given_name, family_name, emails, phones, addresses, company, job_title,
                                birthday_year, birthday_month, birthday_day, tags, attributes, create_time, update_time)
         SELECT $1, gen_random_uuid(), 'Customer ' || i, 'Given' || i, 'Family' || i,
                jsonb_build_array(jsonb_build_object('address', 'user' || i || '@example.com', 'label', 'work', 'primary', true),
                                  jsonb_build_object('address', 'home' || i || '@example.net', 'label', 'home', 'primary', false)),
                jsonb_build_array(jsonb_build_object('number', '+86138' || lpad(i::text, 8, '0'), 'label', 'mobile', 'primary', true)),
                jsonb_build_array(jsonb_build_object('lines', jsonb_build_array(i || ' Nanjing Road'), 'city', 'Shanghai', 'region', '',
                                                     'postal_code', '200001', 'country', 'CN', 'label', '', 'primary', true)),
                'Company ' || i % 5000, 'Buyer', 1960 + i % 40, 1 + i % 12, 1 + i % 28,
                CASE WHEN i % 3 = 0 THEN ARRAY['vip', 'gold'] ELSE ARRAY['new'] END,
                jsonb_build_object('external_id', 'X-' || i),
                now() - make_interval(secs => $2 - i), now()
         FROM generate_series(1, $2) AS i",
    )
    .bind(tenant)
    .bind(customers)
    .execute(&mut owner)
    .await?;
    sqlx::query("ANALYZE customers").execute(&mut owner).await?;
    let rss_idle = peak_rss_mb(pid).unwrap_or(0.0);

    // The reference: Postgres handing the same rows out as text, as the service's role, under RLS.
    let mut app_role = PgConnection::connect(&with_session_tenant(&db.app_url, tenant)).await?;
    let started = Instant::now();
    let mut copy = app_role
        .copy_out_raw(&format!(
            "COPY (SELECT {COLUMNS} FROM customers c WHERE c.tenant_id = '{tenant}' AND c.delete_time IS NULL AND c.disable_time IS NULL \
             ORDER BY c.create_time, c.id) TO STDOUT"
        ))
        .await?;
    let mut copy_bytes = 0_u64;
    while let Some(chunk) = copy.next().await {
        copy_bytes += chunk?.len() as u64;
    }
    let copy_time = started.elapsed();

    let (csv_bytes, csv_time) = export(&service.channel, &bearer, pb::ExportFormat::Csv).await?;
    let rss_after_csv = peak_rss_mb(pid).unwrap_or(0.0);
    let (xlsx_bytes, xlsx_time) = export(&service.channel, &bearer, pb::ExportFormat::Xlsx).await?;
    let rss_peak = peak_rss_mb(pid).unwrap_or(0.0);

    let per_second = |d: Duration| customers as f64 / d.as_secs_f64();
    println!("profiles export, {customers} customers, {}", build_kind());
    println!(
        "reference COPY (SELECT the same columns, same order, same RLS) TO STDOUT: {:.2}s = {:.0} rows/s ({:.1} MB)",
        copy_time.as_secs_f64(),
        per_second(copy_time),
        copy_bytes as f64 / 1e6
    );
    println!(
        "ExportCustomers CSV (default columns, read by a gRPC client): {:.2}s = {:.0} rows/s ({:.1} MB)",
        csv_time.as_secs_f64(),
        per_second(csv_time),
        csv_bytes as f64 / 1e6
    );
    println!("ratio: CSV export {:.2}x COPY TO STDOUT (target >= 0.5x)", copy_time.as_secs_f64() / csv_time.as_secs_f64());
    println!(
        "ExportCustomers XLSX: {:.2}s = {:.0} rows/s ({:.1} MB) = {:.2}x COPY",
        xlsx_time.as_secs_f64(),
        per_second(xlsx_time),
        xlsx_bytes as f64 / 1e6,
        copy_time.as_secs_f64() / xlsx_time.as_secs_f64()
    );
    println!(
        "service RSS: idle peak {rss_idle:.0} MB, peak after the CSV export {rss_after_csv:.0} MB, after the XLSX export {rss_peak:.0} MB"
    );
    service.kill_hard().await;
    Ok(())
}
