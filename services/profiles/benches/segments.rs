//! `make bench`: segments at scale, each figure beside a reference measured
//! in the same run on the same Postgres.
//!
//! A real crm-profiles process (release build, telemetry off) on a fresh
//! database with 1 000 000 customers of one tenant, seeded by SQL in one
//! statement; half of them are tagged `half`.
//! - `member_count` of the 500 000-member dynamic segment `tags:half`
//!   (GetSegment), one call at a time, against `count(*)` of the same
//!   members over one connection as the login role (RLS on);
//! - UpdateCustomer toggling a customer's `hot` tag, 8 in flight, with no
//!   segment defined, then with 20 dynamic segments it moves into and out of;
//! - PreviewSegment of a three-clause rule, one call at a time.
//!
//! `CRM_BENCH_CUSTOMERS=N` scales the data down for a quicker look;
//! `cargo test --all-targets` runs it with 2 000 as a smoke test.

use std::time::{Duration, Instant};

use crm_proto::crm::profiles::v1::{
    self as pb, customer_service_client::CustomerServiceClient, segment_service_client::SegmentServiceClient,
};
use crm_testkit::{
    auth::{token, with_token},
    bench::{build_kind, customer_scale, peak_rss_mb, percentile_of},
    database::fresh_database,
    process::{binary, spawn_service},
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// Calls `call` `n` times one after the other; the latencies.
async fn timed<F, Fut>(n: usize, mut call: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        call(i).await;
        times.push(started.elapsed());
    }
    times
}

/// UpdateCustomer toggling `hot` on `names`, 8 in flight for `duration`; calls per second.
async fn toggle_rate(client: &CustomerServiceClient<tonic::transport::Channel>, bearer: &str, names: &[String], duration: Duration) -> f64 {
    let until = Instant::now() + duration;
    let workers = (0..8).map(|w| {
        let (mut client, bearer) = (client.clone(), bearer.to_owned());
        let names: Vec<String> = names.iter().skip(w).step_by(8).cloned().collect();
        async move {
            let mut calls = 0usize;
            while Instant::now() < until {
                let name = names[calls % names.len()].clone();
                let tags = if (calls / names.len()).is_multiple_of(2) { vec!["hot".to_owned()] } else { vec![] };
                let customer = pb::Customer { name, tags, ..Default::default() };
                let mask = prost_types::FieldMask { paths: vec!["tags".into()] };
                client
                    .update_customer(with_token(pb::UpdateCustomerRequest { customer: Some(customer), update_mask: Some(mask) }, &bearer))
                    .await
                    .expect("UpdateCustomer");
                calls += 1;
            }
            calls
        }
    });
    let calls: usize = futures::future::join_all(workers).await.into_iter().sum();
    calls as f64 / duration.as_secs_f64()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (full, customers) = customer_scale();
    let (rounds, duration) = if full { (500, Duration::from_secs(8)) } else { (20, Duration::from_millis(400)) };
    let tenant = Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);
    let db = fresh_database("profiles").await.expect("a database");
    let service = spawn_service(binary("crm-profiles"), &db, &[("CRM_LOG", "warn".into())]).await;
    let client = CustomerServiceClient::new(service.channel.clone());
    let segments = SegmentServiceClient::new(service.channel.clone());

    // A customer through the API first, so that the tenant's schema objects are warm; then the bulk by SQL.
    let started = Instant::now();
    let mut owner = PgConnection::connect(&db.owner_url).await?;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(tenant.to_string()).execute(&mut owner).await?;
    sqlx::query(
        "INSERT INTO customers (tenant_id, id, display_name, tags, company, birthday_month, create_time, update_time)
         SELECT $1, gen_random_uuid(), 'Customer ' || i, CASE WHEN i % 2 = 0 THEN ARRAY['half'] ELSE ARRAY[]::text[] END,
                'Company ' || (i % 5000), 1 + i % 12, now() - make_interval(secs => i), now()
         FROM generate_series(1, $2) AS i",
    )
    .bind(tenant)
    .bind(customers)
    .execute(&mut owner)
    .await?;
    sqlx::query("ANALYZE customers").execute(&mut owner).await?;
    let seeded = started.elapsed();
    let names: Vec<String> = sqlx::query_scalar("SELECT 'customers/' || id FROM customers WHERE tenant_id = $1 ORDER BY id LIMIT 64")
        .bind(tenant)
        .fetch_all(&mut owner)
        .await?;

    let create = |filter: String, display_name: String| {
        let mut segments = segments.clone();
        let request = with_token(
            pb::CreateSegmentRequest {
                segment: Some(pb::Segment { display_name, kind: pb::SegmentKind::Dynamic as i32, filter, ..Default::default() }),
                request_id: String::new(),
            },
            &bearer,
        );
        async move { segments.create_segment(request).await.expect("CreateSegment").into_inner().segment.expect("a segment") }
    };
    let started = Instant::now();
    let half = create("tags:half".into(), "Half".into()).await;
    let filled = started.elapsed();
    assert_eq!(half.member_count, customers / 2);

    // member_count, and count(*) of the same members as the login role.
    let mut get = timed(rounds, |_| {
        let (mut segments, request) = (segments.clone(), with_token(pb::GetSegmentRequest { name: half.name.clone() }, &bearer));
        async move {
            segments.get_segment(request).await.expect("GetSegment");
        }
    })
    .await;
    let half_id = Uuid::parse_str(half.name.trim_start_matches("segments/"))?;
    let mut app = PgConnection::connect(&db.app_url).await?;
    let mut reference = Vec::with_capacity(rounds / 10);
    for _ in 0..(rounds / 10).max(5) {
        let started = Instant::now();
        let mut tx = app.begin().await?;
        sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM segment_members WHERE tenant_id = $1 AND segment_id = $2")
            .bind(tenant)
            .bind(half_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        assert_eq!(n, customers / 2);
        reference.push(started.elapsed());
    }

    // Updates with only the big segment, then moving in and out of 20 more.
    let alone = toggle_rate(&client, &bearer, &names, duration).await;
    for i in 0..20 {
        create(format!("tags:hot AND birthday.month >= 1 AND display_name != \"nobody {i}\""), format!("Hot {i}")).await;
    }
    let with_twenty = toggle_rate(&client, &bearer, &names, duration).await;

    // One rule an index answers, one that reads every customer (a substring match).
    let mut previews = Vec::new();
    for filter in
        ["tags:half AND birthday.month >= 6 AND company = \"Company 42\"", "tags:half AND birthday.month >= 6 AND display_name:77"]
    {
        let times = timed(rounds.min(50), |_| {
            let mut segments = segments.clone();
            let request = with_token(pb::PreviewSegmentRequest { filter: filter.into(), sample_size: 10 }, &bearer);
            async move {
                segments.preview_segment(request).await.expect("PreviewSegment");
            }
        })
        .await;
        previews.push((filter, times));
    }

    println!(
        "profiles segments, {customers} customers of one tenant (seeded by SQL in {seeded:.1?}; the 50% segment filled in {filled:.1?}), {}",
        build_kind()
    );
    println!(
        "member_count of a {}-member segment (GetSegment)   p50 {:>8.2?}   p99 {:>8.2?}   (target p99 ≤ 5 ms)",
        customers / 2,
        percentile_of(&mut get, 50),
        percentile_of(&mut get, 99)
    );
    println!(
        "reference: count(*) of the same members          p50 {:>8.2?}   p99 {:>8.2?}",
        percentile_of(&mut reference, 50),
        percentile_of(&mut reference, 99)
    );
    println!(
        "UpdateCustomer, 8 in flight, moving into and out of 20 segments: {with_twenty:.0}/s; with only the 50% segment: {alone:.0}/s → {:.2}x slower (target ≤ 2x)",
        alone / with_twenty
    );
    for (filter, times) in &mut previews {
        println!(
            "PreviewSegment, {filter:?}   p50 {:>8.2?}   p95 {:>8.2?}   (target p95 ≤ 500 ms)",
            percentile_of(times, 50),
            percentile_of(times, 95)
        );
    }
    println!(
        "service peak RSS: {}",
        peak_rss_mb(service.child.id().expect("running")).map_or(String::from("-"), |mb| format!("{mb:.1} MB"))
    );
    Ok(())
}
