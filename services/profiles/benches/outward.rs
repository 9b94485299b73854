//! `make bench`: events delivered outward — to a webhook and to NATS
//! JetStream — each beside a plain client doing the same against the same
//! peer in the same run.
//!
//! A real crm-profiles process (release build) on a fresh database, a local
//! HTTP receiver (answering 204 at once) and a real nats-server with
//! JetStream. Measured:
//! 1. webhook throughput: a backlog of N events (CustomerCreated, written
//!    into the outbox as the service writes them) delivered to one webhook,
//!    start to last acceptance; reference: a plain reqwest client POSTing the
//!    same bodies with the same headers to the same receiver, one at a time
//!    (a webhook's deliveries are ordered, so one at a time is the shape);
//! 2. commit-to-delivery latency: single-event transactions committed at 500
//!    a second for 20 s, each event's latency from its commit returning to
//!    its arrival at the receiver (p50, p99);
//! 3. relay throughput: a backlog of N events relayed to JetStream, start to
//!    the stream holding them all — once as the backlog's first reader (the
//!    relay stamps the positions) and once on a backlog already stamped (as
//!    after a webhook or a Subscribe stream read it); reference: a plain
//!    async-nats publisher of the same messages (payload, headers,
//!    Nats-Msg-Id) to another stream on the same server, 256 publishes in
//!    flight (the relay has up to 2048: a window read); after an untimed
//!    warm-up (the stream's creation), five rounds of the three, one after
//!    the other, and the median of each ratio reported.
//!
//! `CRM_BENCH_EVENTS=N` sets the backlogs (default 20 000; 500 in the smoke
//! test `cargo test --all-targets` runs); `CRM_BENCH_ONLY=webhook|latency|relay`
//! runs one part.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage, stream};
use crm_proto::crm::webhooks::v1::{self as hooks, webhook_service_client::WebhookServiceClient};
use crm_testkit::{
    auth::{token, with_token},
    bench::build_kind,
    database::fresh_database,
    events::{write_backlog, write_stamped_backlog},
    nats::NatsServer,
    process::{binary, spawn_service},
    webhooks::WebhookReceiver,
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// Publishes in flight for the plain publisher.
const WINDOW: usize = 256;
/// Alternating rounds of the relay and the plain publisher (`--bench`; the smoke test runs one).
const RELAY_ROUNDS: usize = 5;

async fn stream_messages(js: &jetstream::Context, name: &str) -> u64 {
    match js.get_stream(name).await {
        Ok(s) => s.get_info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let events: usize = std::env::var("CRM_BENCH_EVENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(if full { 20_000 } else { 500 });
    let latency_secs: u64 = if full { 20 } else { 2 };
    let nats = NatsServer::start().await;
    let db = fresh_database("profiles").await.expect("a database");
    let env = [
        ("CRM_LOG", "warn".to_owned()),
        ("CRM_OUTBOUND_ALLOW_PRIVATE", "true".to_owned()),
        ("CRM_NATS_URL", nats.url.clone()),
        ("CRM_DUPLICATE_SCAN_MS", "3600000".to_owned()),
        ("CRM_SEGMENT_SWEEP_MS", "3600000".to_owned()),
    ];
    let service = spawn_service(binary("crm-profiles"), &db, &env).await;
    println!("\noutward delivery ({}), {events} events per backlog\n", build_kind());

    let only = std::env::var("CRM_BENCH_ONLY").unwrap_or_default();
    let runs = |part: &str| only.is_empty() || only == part;

    // 1. Webhook throughput against a plain client.
    if runs("webhook") {
        let tenant = Uuid::now_v7();
        let bearer = token(tenant, &["admin"]);
        let receiver = WebhookReceiver::start().await;
        WebhookServiceClient::new(service.channel.clone())
            .create_webhook(with_token(
                hooks::CreateWebhookRequest {
                    webhook: Some(hooks::Webhook { target_uri: receiver.url(), ..Default::default() }),
                    ..Default::default()
                },
                &bearer,
            ))
            .await?;
        // Timed from the backlog's commit: what is measured is delivery, not the INSERT.
        write_backlog(&db.app_url, tenant, events).await;
        let started = Instant::now();
        let delivered = receiver.wait_for_accepted(events, Duration::from_secs(600)).await;
        let webhook_secs = started.elapsed().as_secs_f64();
        assert_eq!(delivered.len(), events, "every event delivered");

        let reference = WebhookReceiver::start().await;
        let client = reqwest::Client::new();
        let started = Instant::now();
        for r in &delivered {
            let mut request = client.post(reference.url()).body(r.body.clone());
            for name in ["content-type", "webhook-id", "webhook-timestamp", "webhook-signature", "user-agent"] {
                if let Some(value) = r.headers.get(name) {
                    request = request.header(name, value.as_bytes());
                }
            }
            assert!(request.send().await?.status().is_success());
        }
        let plain_secs = started.elapsed().as_secs_f64();
        let (webhook_rate, plain_rate) = (events as f64 / webhook_secs, events as f64 / plain_secs);
        println!(
            "webhook backlog:   {webhook_rate:>8.0} events/s   plain client, same bodies: {plain_rate:>8.0} posts/s   ratio {:.2}×",
            webhook_rate / plain_rate
        );
    }

    // 2. Commit-to-delivery latency at 500 events/s.
    if runs("latency") {
        let latency_tenant = Uuid::now_v7();
        let latency_receiver = WebhookReceiver::start().await;
        WebhookServiceClient::new(service.channel.clone())
            .create_webhook(with_token(
                hooks::CreateWebhookRequest {
                    webhook: Some(hooks::Webhook { target_uri: latency_receiver.url(), ..Default::default() }),
                    ..Default::default()
                },
                &token(latency_tenant, &["admin"]),
            ))
            .await?;
        let mut conn = PgConnection::connect(&db.app_url).await?;
        let data = {
            use crm_proto::crm::profiles::v1 as pb;
            use prost::{Message, Name};
            let created = pb::CustomerCreated {
                customer: Some(pb::Customer { name: "customers/x".into(), display_name: "Latency".into(), ..Default::default() }),
            };
            prost_types::Any { type_url: pb::CustomerCreated::type_url(), value: created.encode_to_vec() }.encode_to_vec()
        };
        let mut committed: HashMap<String, Instant> = HashMap::new();
        let total = 500 * latency_secs as usize;
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        for _ in 0..total {
            tick.tick().await;
            let id = Uuid::now_v7();
            let mut tx = conn.begin().await?;
            sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(latency_tenant.to_string()).execute(&mut *tx).await?;
            sqlx::query(
            "INSERT INTO outbox (tenant_id, id, type, subject, data) VALUES ($1, $2, 'crm.profiles.v1.CustomerCreated', 'customers/x', $3)",
        )
        .bind(latency_tenant)
        .bind(id)
        .bind(&data)
        .execute(&mut *tx)
        .await?;
            sqlx::query("SELECT pg_notify('crm_outbox', $1)").bind(latency_tenant.to_string()).execute(&mut *tx).await?;
            tx.commit().await?;
            committed.insert(id.to_string(), Instant::now());
        }
        let arrived = latency_receiver.wait_for_accepted(total, Duration::from_secs(60)).await;
        let mut latencies: Vec<Duration> =
            arrived.iter().filter_map(|r| committed.get(&r.id).map(|at| r.at.saturating_duration_since(*at))).collect();
        assert_eq!(latencies.len(), total, "every event delivered");
        latencies.sort();
        let pct = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
        println!(
            "commit → delivery at 500 events/s for {latency_secs} s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            pct(50).as_secs_f64() * 1e3,
            pct(99).as_secs_f64() * 1e3,
            latencies.last().unwrap().as_secs_f64() * 1e3
        );
    }

    // 3. The relay against a plain publisher, in alternating rounds: both
    // take well under a second, so one pass of each is at the mercy of a
    // moment's noise on the shared cores; the median ratios are reported.
    if runs("relay") {
        let client = nats.client().await;
        let js = jetstream::new(client.clone());
        let relay_stream = crm_kit::relay::stream_name("profiles");
        js.get_or_create_stream(stream::Config {
            name: "REFERENCE".into(),
            subjects: vec!["reference.>".into()],
            duplicate_window: Duration::from_secs(600),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
        // Untimed: the process's first relay creates the stream (the plain
        // publisher's is created above, untimed too).
        relay_backlog(&js, &client, &relay_stream, &db.app_url, (events / 10).max(100), false).await;
        let rounds = if full { RELAY_ROUNDS } else { 1 };
        let mut ratios: Vec<(f64, f64)> = Vec::with_capacity(rounds);
        for round in 1..=rounds {
            // A backlog the relay is the first to read (it stamps positions), then
            // one another reader stamped already (a webhook, a Subscribe stream).
            let (relay_secs, messages) = relay_backlog(&js, &client, &relay_stream, &db.app_url, events, false).await;
            let (stamped_secs, _) = relay_backlog(&js, &client, &relay_stream, &db.app_url, events, true).await;
            let reference_secs = publish_plainly(&js, &messages).await?;
            let (relay_rate, stamped_rate, reference_rate) =
                (events as f64 / relay_secs, events as f64 / stamped_secs, events as f64 / reference_secs);
            println!(
                "  round {round}: relay {relay_rate:>6.0} events/s (already stamped {stamped_rate:>6.0}), plain publisher {reference_rate:>6.0} msgs/s: {:.2}× ({:.2}×)",
                relay_rate / reference_rate,
                stamped_rate / reference_rate
            );
            ratios.push((relay_rate / reference_rate, stamped_rate / reference_rate));
        }
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        println!(
            "JetStream relay against a plain async-nats publisher, medians of {rounds} rounds: first reader {:.2}×, already stamped {:.2}×",
            median(ratios.iter().map(|r| r.0).collect()),
            median(ratios.iter().map(|r| r.1).collect())
        );
    }
    drop(service);
    Ok(())
}

/// Publishes what the relay relayed again, plainly — the same payloads,
/// headers and ids, `WINDOW` in flight — to the `REFERENCE` stream; the seconds it took.
async fn publish_plainly(js: &jetstream::Context, messages: &[crm_testkit::jetstream::Relayed]) -> anyhow::Result<f64> {
    let payloads: Vec<(String, String, bytes::Bytes)> = messages
        .iter()
        .map(|m| {
            use prost::Message;
            (format!("reference.{}", m.subject), m.message_id.clone(), m.event.encode_to_vec().into())
        })
        .collect();
    let started = Instant::now();
    for chunk in payloads.chunks(WINDOW) {
        let mut acks: Vec<PublishAckFuture> = Vec::with_capacity(chunk.len());
        for (subject, id, payload) in chunk {
            let message = PublishMessage::build()
                .payload(payload.clone())
                .message_id(id)
                .header("Crm-Event-Type", "crm.profiles.v1.CustomerCreated")
                .header("Content-Type", "application/protobuf");
            acks.push(js.send_publish(subject.clone(), message).await?);
        }
        for ack in acks {
            ack.await?;
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Writes a backlog of `events` for a new tenant and times the relay until
/// the stream holds it all; returns the seconds and (unless `stamped`) the relayed messages.
async fn relay_backlog(
    js: &jetstream::Context,
    client: &async_nats::Client,
    stream: &str,
    app_url: &str,
    events: usize,
    stamped: bool,
) -> (f64, Vec<crm_testkit::jetstream::Relayed>) {
    let before = stream_messages(js, stream).await;
    let tenant = Uuid::now_v7();
    if stamped {
        write_stamped_backlog(app_url, tenant, events).await;
    } else {
        write_backlog(app_url, tenant, events).await;
    }
    let started = Instant::now();
    while stream_messages(js, stream).await < before + events as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    // What the plain publisher sends again: the first-reader run's messages.
    let relayed =
        if stamped { Vec::new() } else { crm_testkit::jetstream::messages_in(client, stream, before + 1..=before + events as u64).await };
    (secs, relayed)
}
