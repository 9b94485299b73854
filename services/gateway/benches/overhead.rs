//! `make bench`: what the gateway and telemetry cost per call, with the
//! suite's bench harness (8 and 1 in flight, every response checked,
//! p50/p99, CPU per call of the process named in the row, peak RSS).
//!
//! Real release processes on real Postgres: crm-profiles (telemetry off) with
//! 200 customers; crm-gateway in front of it; a second crm-profiles exporting
//! spans and metrics to a real OTLP collector running in this benchmark.
//! References in the same run: the same calls over gRPC straight to profiles.
//! `cargo test --all-targets` runs it without `--bench` as a short smoke test.

use std::{sync::Arc, time::Duration};

use crm_proto::crm::profiles::v1::{self as pb, customer_service_client::CustomerServiceClient};
use crm_testkit::{
    auth::{token, with_token},
    bench::{Figures, HEADER, build_kind, measure, peak_rss_mb, row, unary},
    database::fresh_database,
    otlp::Collector,
    process::{ServiceProcess, binary, spawn_gateway, spawn_service},
};

const CUSTOMERS: usize = 200;

async fn profiles(extra_env: &[(&str, String)]) -> ServiceProcess {
    spawn_service(binary("crm-profiles"), &fresh_database("profiles").await.expect("database"), extra_env).await
}

/// Creates `CUSTOMERS` customers in `service`; returns their names.
async fn customers(service: &ServiceProcess, bearer: &str) -> Arc<Vec<String>> {
    let client = CustomerServiceClient::new(service.channel.clone());
    let mut names = Vec::with_capacity(CUSTOMERS);
    for i in 0..CUSTOMERS {
        let customer = pb::Customer { display_name: format!("Bench {i}"), ..Default::default() };
        let request = with_token(pb::CreateCustomerRequest { customer: Some(customer), request_id: String::new() }, bearer);
        names.push(client.clone().create_customer(request).await.expect("created").into_inner().customer.expect("customer").name);
    }
    Arc::new(names)
}

/// GetCustomer over gRPC against `service`.
fn grpc_get(
    service: &ServiceProcess,
    names: Arc<Vec<String>>,
    bearer: String,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static {
    let get = unary(
        CustomerServiceClient::new(service.channel.clone()),
        move |i| with_token(pb::GetCustomerRequest { name: names[i % names.len()].clone() }, &bearer),
        |mut client, request| async move {
            client.get_customer(request).await.expect("GetCustomer");
        },
    );
    move |i| Box::pin(get(i))
}

/// A GET through the gateway, which must answer 200 with a body.
fn rest_get(
    http: reqwest::Client,
    url: impl Fn(usize) -> String + Send + Sync + 'static,
    bearer: String,
) -> impl Fn(usize) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static {
    move |i| {
        let request = http.get(url(i)).bearer_auth(&bearer).send();
        Box::pin(async move {
            let response = request.await.expect("the gateway answers");
            assert!(response.status().is_success(), "{}", response.status());
            response.bytes().await.expect("a body");
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let full = std::env::args().any(|a| a == "--bench");
    let duration = if full { Duration::from_secs(6) } else { Duration::from_millis(300) };
    let tenant = uuid::Uuid::now_v7();
    let bearer = token(tenant, &["admin"]);

    let plain = profiles(&[]).await;
    let collector = Collector::start().await;
    let traced =
        profiles(&[("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.clone()), ("OTEL_METRIC_EXPORT_INTERVAL", "1000".into())]).await;
    // Rate limits off: the benchmark measures the path, not the limiter's verdicts.
    let limits_off = [("CRM_RATE_LIMIT_PER_SUBJECT", "off".to_owned()), ("CRM_RATE_LIMIT_PER_TENANT", "off".to_owned())];
    let (gateway, base) = spawn_gateway(&format!("crm.profiles.v1={}", plain.url), &limits_off).await;
    let (plain_pid, traced_pid, gateway_pid) = (plain.child.id().unwrap(), traced.child.id().unwrap(), gateway.id().unwrap());

    let names = customers(&plain, &bearer).await;
    let traced_names = customers(&traced, &bearer).await;
    let http = reqwest::Client::new();
    let list_direct = unary(
        CustomerServiceClient::new(plain.channel.clone()),
        {
            let bearer = bearer.clone();
            move |_| with_token(pb::ListCustomersRequest { page_size: 50, ..Default::default() }, &bearer)
        },
        |mut client, request| async move {
            assert_eq!(client.list_customers(request).await.expect("ListCustomers").into_inner().customers.len(), 50);
        },
    );
    let get_url = {
        let (base, names) = (base.clone(), names.clone());
        move |i: usize| format!("{base}/v1/{}", names[i % names.len()])
    };
    let list_url = {
        let base = base.clone();
        move |_: usize| format!("{base}/v1/customers?pageSize=50")
    };

    let rows: Vec<(&str, &str, Figures)> = vec![
        ("GetCustomer, gRPC direct", "profiles", measure(plain_pid, grpc_get(&plain, names.clone(), bearer.clone()), duration).await),
        ("GetCustomer, REST via gateway", "gateway", measure(gateway_pid, rest_get(http.clone(), get_url, bearer.clone()), duration).await),
        ("ListCustomers 50, gRPC direct", "profiles", measure(plain_pid, list_direct, duration).await),
        (
            "ListCustomers 50, REST via gw",
            "gateway",
            measure(gateway_pid, rest_get(http.clone(), list_url, bearer.clone()), duration).await,
        ),
        (
            "GetCustomer, gRPC, telemetry on",
            "profiles",
            measure(traced_pid, grpc_get(&traced, traced_names, bearer.clone()), duration).await,
        ),
    ];

    println!("gateway and telemetry overhead, 8 in flight for {duration:?} each ({}; CPU/call is the named process's)", build_kind());
    println!("{HEADER}  process    ÷ direct");
    for (i, (label, process, f)) in rows.iter().enumerate() {
        let reference = match i {
            1 => Some(&rows[0].2),
            3 => Some(&rows[2].2),
            4 => Some(&rows[0].2),
            _ => None,
        };
        let ratio = reference.map_or(String::from("-"), |r| format!("{:.2}x", f.per_second / r.per_second));
        println!("{}  {process:<9} {ratio:>8}", row(label, f));
    }
    println!("gateway peak RSS: {}", peak_rss_mb(gateway_pid).map_or(String::from("-"), |mb| format!("{mb:.1} MB")));
    drop(gateway);
    Ok(())
}
