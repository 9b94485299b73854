//! `make bench`: what the gateway and telemetry cost per call.
//!
//! Against one real crm-profiles process (release build) and real Postgres:
//! - reference: `GetCustomer` over gRPC straight to profiles, telemetry off;
//! - the same call as REST through the gateway (in-process, pooled channel);
//! - the same gRPC call to a second profiles process exporting spans and
//!   metrics to a real OTLP collector running in this benchmark.
//!
//! Each is measured sequentially (latency) and with 16 callers at once
//! (throughput), in the same run, so the ratios hold on a noisy machine.
//! `cargo test --all-targets` runs it without `--bench` as a quick smoke test.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crm_gateway::{config::Config, startup::Application};
use crm_proto::crm::profiles::v1::{self as pb, customer_service_client::CustomerServiceClient};
use crm_testkit::{
    auth::{jwt_secret, token, with_token},
    database::fresh_database,
    otlp::Collector,
    process::{ServiceProcess, binary, spawn_service},
};
use tonic::transport::Channel;

struct Figures {
    median: Duration,
    p99: Duration,
    per_second: f64,
}

/// `calls` sequential calls (latency), then `calls` spread over 16 concurrent callers (throughput).
async fn measure<F, Fut>(calls: usize, call: F) -> Figures
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    for _ in 0..50 {
        call().await; // warm connections, caches and plans
    }
    let mut samples = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        call().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    let call = Arc::new(call);
    let started = Instant::now();
    let workers: Vec<_> = (0..16)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                for _ in 0..calls / 16 {
                    call().await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    Figures {
        median: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
        per_second: (calls / 16 * 16) as f64 / started.elapsed().as_secs_f64(),
    }
}

async fn profiles(extra_env: &[(&str, String)]) -> ServiceProcess {
    spawn_service(binary("crm-profiles"), &fresh_database("profiles").await.expect("database"), extra_env).await
}

async fn create_customer(channel: Channel, bearer: &str) -> String {
    let customer = pb::Customer { display_name: "Bench".into(), ..Default::default() };
    let request = with_token(pb::CreateCustomerRequest { customer: Some(customer), request_id: String::new() }, bearer);
    CustomerServiceClient::new(channel).create_customer(request).await.expect("created").into_inner().customer.expect("customer").name
}

fn grpc_get(
    channel: Channel,
    name: String,
    bearer: String,
) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync {
    move || {
        let (mut client, request) =
            (CustomerServiceClient::new(channel.clone()), with_token(pb::GetCustomerRequest { name: name.clone() }, &bearer));
        Box::pin(async move {
            client.get_customer(request).await.expect("GetCustomer");
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let calls = if full { 4000 } else { 64 };
    let tenant = uuid::Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);

    // Telemetry off (no endpoint), and on (exporting to a sink in this process).
    let plain = profiles(&[]).await;
    // A real collector in this process (keeping what it gets costs the services nothing).
    let collector = Collector::start().await;
    let traced =
        profiles(&[("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.clone()), ("OTEL_METRIC_EXPORT_INTERVAL", "1000".into())]).await;

    let app = Application::build(Config::for_tests(&format!("crm.profiles.v1={}", plain.url), &jwt_secret())).await?;
    let gateway = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let name = create_customer(plain.channel.clone(), &bearer).await;
    let traced_name = create_customer(traced.channel.clone(), &bearer).await;
    let direct = measure(calls, grpc_get(plain.channel.clone(), name.clone(), bearer.clone())).await;
    let exported = measure(calls, grpc_get(traced.channel.clone(), traced_name, bearer.clone())).await;
    let http = reqwest::Client::new();
    let url = format!("{gateway}/v1/{name}");
    let rest = measure(calls, move || {
        let request = http.get(&url).bearer_auth(&bearer).send();
        async move {
            let response = request.await.expect("the gateway answers");
            assert!(response.status().is_success(), "{}", response.status());
            response.bytes().await.expect("body");
        }
    })
    .await;

    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    println!("{:<52} {:>10} {:>10} {:>12} {:>14}", format!("GetCustomer, {calls} calls"), "median", "p99", "calls/s (16)", "÷ reference");
    for (label, f) in [
        ("reference: gRPC direct, telemetry off", &direct),
        ("gRPC direct, spans + metrics exported", &exported),
        ("REST through the gateway (JSON, auth, limits)", &rest),
    ] {
        let ratio = f.median.as_secs_f64() / direct.median.as_secs_f64();
        println!("{label:<52} {:>10} {:>10} {:>12.0} {ratio:>13.2}x", ms(f.median), ms(f.p99), f.per_second);
    }
    Ok(())
}
