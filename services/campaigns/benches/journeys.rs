//! `make bench`: journeys at scale, with release crm-profiles and
//! crm-campaigns processes on fresh databases.
//!
//! 1. **Entry from a burst**: a 3-step journey (wait 3 days → send → exit)
//!    starts on CustomerCreated. With campaigns stopped, N customers are
//!    created through profiles' API, so their N events wait in profiles'
//!    stream. Reference: a plain client reads the same N events from the
//!    stream (Subscribe, the same event type) — the stream's own rate. Then
//!    campaigns starts and applies the backlog; its rate is N over the time
//!    from its start until N runs exist. Every customer must have exactly one run.
//! 2. **Storage and reads at 1 000 000 runs**: M runs of one journey (three
//!    steps each in their history) are seeded into campaigns' database; the
//!    bytes per run of the tables with their indexes, then `ListJourneyRuns`
//!    of one customer (`journeys/-`, customer=…) timed 500 times.
//!
//! `cargo test --all-targets` runs it without `--bench` as a short smoke test.

use std::time::{Duration, Instant};

use crm_proto::crm::{
    campaigns::v1::{self as pb, journey_service_client::JourneyServiceClient, template_service_client::TemplateServiceClient},
    events::v1::{SubscribeRequest, event_service_client::EventServiceClient},
    profiles::v1::{self as profiles, customer_service_client::CustomerServiceClient},
};
use crm_testkit::{
    auth::{token, with_token},
    database::fresh_database,
    process::{binary, free_port, spawn_service_on},
};
use futures::StreamExt;
use prost::Name;
use sqlx::{Connection, PgConnection};
use tonic::transport::Channel;
use uuid::Uuid;

fn step(id: &str, kind: pb::journey_step::Kind, next: &str) -> pb::JourneyStep {
    pb::JourneyStep { id: id.into(), kind: Some(kind), next: next.into() }
}

/// Creates and publishes the 3-step welcome journey; returns its name.
async fn welcome_journey(channel: &Channel, bearer: &str) -> anyhow::Result<String> {
    let template = pb::Template {
        display_name: "Welcome".into(),
        channel: pb::Channel::Email as i32,
        purpose: pb::Purpose::Marketing as i32,
        contents: vec![pb::TemplateContent { locale: "en".into(), subject: "Welcome".into(), body: "Hello".into(), ..Default::default() }],
        default_locale: "en".into(),
        ..Default::default()
    };
    let template = TemplateServiceClient::new(channel.clone())
        .create_template(with_token(pb::CreateTemplateRequest { template: Some(template), request_id: String::new() }, bearer))
        .await?
        .into_inner()
        .template
        .unwrap_or_default()
        .name;
    let wait = pb::WaitStep { until: Some(pb::wait_step::Until::Duration(prost_types::Duration { seconds: 3 * 86_400, nanos: 0 })) };
    let journey = pb::Journey {
        display_name: "Welcome".into(),
        trigger: Some(pb::JourneyTrigger {
            kind: Some(pb::journey_trigger::Kind::Event(pb::JourneyEventTrigger {
                event: pb::JourneyEvent::CustomerCreated as i32,
                segment: String::new(),
            })),
        }),
        steps: vec![
            step("settle-in", pb::journey_step::Kind::Wait(wait), "hello"),
            step(
                "hello",
                pb::journey_step::Kind::Send(pb::SendStep {
                    template,
                    variables: Default::default(),
                    ab_test: None,
                    questionnaire: String::new(),
                }),
                "done",
            ),
            step("done", pb::journey_step::Kind::Exit(pb::ExitStep {}), ""),
        ],
        ..Default::default()
    };
    let mut journeys = JourneyServiceClient::new(channel.clone());
    let draft = journeys
        .create_journey(with_token(pb::CreateJourneyRequest { journey: Some(journey), request_id: String::new() }, bearer))
        .await?
        .into_inner()
        .journey
        .unwrap_or_default();
    journeys.publish_journey(with_token(pb::PublishJourneyRequest { name: draft.name.clone(), etag: String::new() }, bearer)).await?;
    Ok(draft.name)
}

/// Creates `count` customers through profiles' API, 32 at a time; how long it took.
async fn create_customers(channel: &Channel, bearer: &str, count: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..count)
        .map(|i| {
            let mut client = CustomerServiceClient::new(channel.clone());
            let customer = profiles::Customer { display_name: format!("Member {i}"), ..Default::default() };
            let request = with_token(profiles::CreateCustomerRequest { customer: Some(customer), request_id: String::new() }, bearer);
            async move {
                client.create_customer(request).await?;
                Ok(())
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect::<anyhow::Result<()>>()?;
    Ok(started.elapsed())
}

/// Reads `count` CustomerCreated events of the tenant's stream from the start, as a plain client; how long it took.
async fn read_stream(channel: &Channel, service_bearer: &str, count: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let request = SubscribeRequest { after_position: 0, types: vec![profiles::CustomerCreated::full_name()] };
    let mut events = EventServiceClient::new(channel.clone()).subscribe(with_token(request, service_bearer)).await?.into_inner();
    let mut read = 0;
    while read < count {
        match events.message().await? {
            Some(message) if message.event.is_some() => read += 1,
            Some(_) => {}
            None => anyhow::bail!("the stream ended after {read} events"),
        }
    }
    Ok(started.elapsed())
}

/// Seeds `count` finished runs of journey `journey`, three steps each, for as many customers.
async fn seed_runs(owner: &mut PgConnection, tenant: Uuid, journey: Uuid, count: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let count = i64::try_from(count)?;
    sqlx::query(
        "INSERT INTO journey_runs (tenant_id, id, journey_id, version, customer_id, entry_key, trigger, state, step_id, step_count,
                                   due_time, exit_on_purchase, enter_time, end_time, end_reason)
         SELECT $1, uuidv7_like, $2, 1, gen_random_uuid(), 'once', 'seeded ' || i, 'COMPLETED', NULL, 3,
                NULL, false, now(), now(), 'EXIT_STEP'
         FROM (SELECT i, (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0') || '7' || substr(md5(i::text), 1, 19))::uuid
                   AS uuidv7_like FROM generate_series(1, $3) AS i) s",
    )
    .bind(tenant)
    .bind(journey)
    .bind(count)
    .execute(&mut *owner)
    .await?;
    sqlx::query(
        "INSERT INTO journey_run_steps (tenant_id, run_id, seq, step_id, outcome, delivery_id, detail, time)
         SELECT r.tenant_id, r.id, s.seq, (ARRAY['settle-in', 'hello', 'done'])[s.seq + 1],
                (ARRAY['WAITED', 'SENT', 'EXITED'])[s.seq + 1], CASE WHEN s.seq = 1 THEN gen_random_uuid() END,
                CASE WHEN s.seq = 0 THEN '2027-03-04T09:00:00+00:00' ELSE '' END, now()
         FROM journey_runs r CROSS JOIN generate_series(0, 2) AS s(seq)
         WHERE r.tenant_id = $1 AND r.journey_id = $2 AND r.trigger LIKE 'seeded %'",
    )
    .bind(tenant)
    .bind(journey)
    .execute(&mut *owner)
    .await?;
    sqlx::query("ANALYZE journey_runs").execute(&mut *owner).await?;
    sqlx::query("ANALYZE journey_run_steps").execute(&mut *owner).await?;
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let entrants = std::env::var("CRM_BENCH_ENTRANTS").ok().and_then(|n| n.parse().ok()).unwrap_or(if full { 100_000 } else { 300 });
    let runs = std::env::var("CRM_BENCH_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(if full { 1_000_000 } else { 2_000 });
    let tenant = Uuid::now_v7();
    let (admin, service) = (token(tenant, &["admin"]), token(tenant, &["service"]));
    let profiles_db = fresh_database("profiles").await?;
    let profiles = spawn_service_on(binary("crm-profiles"), &profiles_db, free_port(), &[]).await;
    let db = fresh_database("campaigns").await?;
    let env = [
        ("CRM_PROFILES_URL", profiles.url.clone()),
        ("CRM_TICKETS_URL", "http://127.0.0.1:9".to_owned()),
        ("CRM_JOURNEY_POLL_MS", "100".to_owned()),
    ];
    let port = free_port();
    let campaigns = spawn_service_on(binary("crm-campaigns"), &db, port, &env).await;
    let journey = welcome_journey(&campaigns.channel, &admin).await?;
    let journey_id: Uuid = journey.trim_start_matches("journeys/").parse()?;
    let mut lines = Vec::new();

    // 1. The burst waits in profiles' stream while campaigns is down; then the stream alone, then campaigns.
    campaigns.kill_hard().await;
    let created = create_customers(&profiles.channel, &admin, entrants).await?;
    lines.push(format!(
        "{entrants} customers created through profiles' API in {:.1} s ({:.0}/s)",
        created.as_secs_f64(),
        entrants as f64 / created.as_secs_f64()
    ));
    let read = read_stream(&profiles.channel, &service, entrants).await?;
    let read_rate = entrants as f64 / read.as_secs_f64();
    let mut owner = PgConnection::connect(&db.owner_url).await?;
    sqlx::query("SELECT set_config('crm.tenant_id', $1, false)").bind(tenant.to_string()).execute(&mut owner).await?;
    let started = Instant::now();
    let campaigns = spawn_service_on(binary("crm-campaigns"), &db, port, &env).await;
    let deadline = started + Duration::from_secs(600);
    let entered = loop {
        let (runs, customers): (i64, i64) =
            sqlx::query_as("SELECT count(*), count(DISTINCT customer_id) FROM journey_runs").fetch_one(&mut owner).await?;
        if runs >= entrants as i64 {
            anyhow::ensure!(runs == customers && runs == entrants as i64, "{runs} runs for {customers} customers, {entrants} events");
            break started.elapsed();
        }
        anyhow::ensure!(Instant::now() < deadline, "only {runs} of {entrants} entered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let enter_rate = entrants as f64 / entered.as_secs_f64();
    lines.push(format!(
        "stream alone: {entrants} CustomerCreated events read in {:.2} s ({read_rate:.0}/s); campaigns from start: all {entrants} entered once in {:.2} s ({enter_rate:.0}/s) — {:.2}x the stream",
        read.as_secs_f64(),
        entered.as_secs_f64(),
        enter_rate / read_rate
    ));

    // 2. Storage and a customer's runs at M runs of one journey.
    let seeded = seed_runs(&mut owner, tenant, journey_id, runs).await?;
    let bytes: i64 =
        sqlx::query_scalar("SELECT (pg_total_relation_size('journey_runs') + pg_total_relation_size('journey_run_steps'))::bigint")
            .fetch_one(&mut owner)
            .await?;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM journey_runs").fetch_one(&mut owner).await?;
    let customer: Uuid =
        sqlx::query_scalar("SELECT customer_id FROM journey_runs ORDER BY id DESC LIMIT 1 OFFSET 1000").fetch_one(&mut owner).await?;
    let mut client = JourneyServiceClient::new(campaigns.channel.clone());
    let mut times = Vec::new();
    for _ in 0..500 {
        let request = pb::ListJourneyRunsRequest {
            parent: "journeys/-".into(),
            customer: format!("customers/{customer}"),
            page_size: 0,
            page_token: String::new(),
        };
        let t = Instant::now();
        client.list_journey_runs(with_token(request, &admin)).await?;
        times.push(t.elapsed());
    }
    times.sort();
    let p = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    lines.push(format!(
        "{total} runs (3 steps each) seeded in {:.1} s: {:.0} bytes per run, tables and indexes; ListJourneyRuns of one customer p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
        seeded.as_secs_f64(),
        bytes as f64 / total as f64,
        p(0.5),
        p(0.95),
        p(0.99)
    ));
    campaigns.kill_hard().await;

    println!("\ncampaigns journeys ({}):", if full { "full" } else { "smoke" });
    for line in lines {
        println!("  {line}");
    }
    Ok(())
}
