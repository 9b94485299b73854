//! Span export to a real OTLP/gRPC receiver (built from the published
//! opentelemetry-proto service definitions), and telemetry that never hurts requests.

use std::time::Duration;

use crm_proto::crm::{
    events::v1::{SubscribeRequest, event_service_client::EventServiceClient},
    profiles::v1::{self as pb, customer_service_client::CustomerServiceClient},
};
use crm_testkit::{
    auth::with_token,
    otlp::{Collector, attribute, has, hex},
};
use opentelemetry_proto::tonic::{
    metrics::v1::metric::Data,
    trace::v1::{Span, span::SpanKind},
};
use tokio_stream::StreamExt;

use crate::helpers::{customer, spawn_binary};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn spans_reach_an_otlp_receiver_as_one_trace_with_semantic_conventions() {
    let collector = Collector::start().await;
    let app = spawn_binary(&[("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.clone())]).await;

    let mut request = with_token(
        pb::CreateCustomerRequest { customer: Some(customer("Traced", "traced@example.com")), request_id: String::new() },
        &app.admin_token,
    );
    request.metadata_mut().insert("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN}-01").parse().unwrap());
    CustomerServiceClient::new(app.channel.clone()).create_customer(request).await.unwrap();
    // The event carries the trace context of the request that produced it.
    let mut events = EventServiceClient::new(app.channel.clone())
        .subscribe(with_token(SubscribeRequest::default(), &app.admin_token))
        .await
        .unwrap()
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap().event.unwrap();
    assert!(event.traceparent.contains(TRACE_ID), "{}", event.traceparent);
    drop(events);
    app.terminate().await; // flushes the batch exporter

    let spans = collector.spans();
    let in_trace: Vec<&Span> = spans.iter().map(|(_, s)| s).filter(|s| hex(&s.trace_id) == TRACE_ID).collect();
    assert!(spans.iter().all(|(service, _)| service == "profiles"));
    let server = in_trace
        .iter()
        .find(|s| s.name == "crm.profiles.v1.CustomerService/CreateCustomer")
        .unwrap_or_else(|| panic!("no server span among {:?}", in_trace.iter().map(|s| &s.name).collect::<Vec<_>>()));
    assert_eq!(server.kind, SpanKind::Server as i32);
    assert_eq!(hex(&server.parent_span_id), PARENT_SPAN, "parented on the caller's traceparent");
    assert_eq!(attribute(&server.attributes, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(attribute(&server.attributes, "rpc.service").as_deref(), Some("crm.profiles.v1.CustomerService"));
    assert_eq!(attribute(&server.attributes, "rpc.method").as_deref(), Some("CreateCustomer"));
    assert_eq!(attribute(&server.attributes, "rpc.grpc.status_code").as_deref(), Some("0"));

    // The transaction's BEGIN is a client span of its own.
    let begin = in_trace.iter().find(|s| s.name == "BEGIN transaction").expect("a BEGIN span");
    assert_eq!(begin.kind, SpanKind::Client as i32);
    assert_eq!(attribute(&begin.attributes, "db.operation.name").as_deref(), Some("BEGIN"));
    // The server span covers the response to its trailers, where an OK call's code is read.
    assert!(server.end_time_unix_nano >= begin.end_time_unix_nano);
    // So is its COMMIT, after the writes.
    let commit = in_trace.iter().find(|s| s.name == "COMMIT transaction").expect("a COMMIT span");
    assert_eq!(commit.kind, SpanKind::Client as i32);
    assert_eq!(attribute(&commit.attributes, "db.operation.name").as_deref(), Some("COMMIT"));
    let insert_end = in_trace.iter().filter(|s| s.name == "INSERT customers").map(|s| s.end_time_unix_nano).max();
    assert!(Some(commit.start_time_unix_nano) >= insert_end, "the COMMIT follows the INSERT");

    // DB spans are client spans below the server span, named per the DB conventions.
    let insert = in_trace.iter().find(|s| s.name == "INSERT customers").expect("a DB span");
    assert_eq!(insert.kind, SpanKind::Client as i32);
    assert_eq!(attribute(&insert.attributes, "db.system.name").as_deref(), Some("postgresql"));
    assert_eq!(attribute(&insert.attributes, "db.collection.name").as_deref(), Some("customers"));
    let mut ancestor = *insert;
    while ancestor.span_id != server.span_id {
        ancestor = in_trace.iter().find(|s| s.span_id == ancestor.parent_span_id).expect("an unbroken parent chain to the server span");
    }
    // No span carries the customer's email.
    for span in &in_trace {
        assert!(span.attributes.iter().all(|kv| !format!("{:?}", kv.value).contains("traced@example.com")), "PII in {}", span.name);
    }
}

#[tokio::test]
async fn an_unreachable_collector_neither_blocks_nor_fails_requests() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = spawn_binary(&[("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{closed}"))]).await;
    let mut client = CustomerServiceClient::new(app.channel.clone());
    for i in 0..50 {
        let request = with_token(
            pb::CreateCustomerRequest { customer: Some(customer(&format!("C{i}"), "")), request_id: String::new() },
            &app.admin_token,
        );
        tokio::time::timeout(Duration::from_secs(5), client.create_customer(request)).await.expect("not blocked").expect("not failed");
    }
    assert!(app.terminate().await < Duration::from_secs(10));
}

#[tokio::test]
async fn red_metrics_and_pool_gauges_reach_the_collector_per_method_and_code() {
    // Arrange: export every 200 ms to a real OTLP receiver.
    let collector = Collector::start().await;
    let app =
        spawn_binary(&[("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.clone()), ("OTEL_METRIC_EXPORT_INTERVAL", "200".into())]).await;
    let mut client = CustomerServiceClient::new(app.channel.clone());

    // Act: a success, a NOT_FOUND and an UNAUTHENTICATED call.
    let create = pb::CreateCustomerRequest { customer: Some(customer("Metered", "")), request_id: String::new() };
    client.create_customer(with_token(create, &app.admin_token)).await.unwrap();
    let missing = pb::GetCustomerRequest { name: format!("customers/{}", uuid::Uuid::now_v7()) };
    client.get_customer(with_token(missing.clone(), &app.admin_token)).await.unwrap_err();
    client.get_customer(tonic::Request::new(missing)).await.unwrap_err();
    // A subscriber's first read delivers the CustomerCreated event: its wait is the outbox lag.
    let mut events = EventServiceClient::new(app.channel.clone())
        .subscribe(with_token(SubscribeRequest::default(), &app.admin_token))
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), events.next()).await.unwrap().unwrap().unwrap();
    drop(events);
    tokio::time::sleep(Duration::from_millis(800)).await;
    app.terminate().await; // the final collection is flushed at exit

    // Assert: one histogram with a data point per method and code, and the pool gauge.
    let exported = collector.metrics();
    assert!(exported.iter().filter(|m| m.name == "rpc.server.duration").all(|m| m.unit == "ms"));
    let points = collector.histogram_points("rpc.server.duration");
    let count = |method: &str, code: &str| {
        points
            .iter()
            .filter(|p| has(&p.attributes, "rpc.method", method) && has(&p.attributes, "rpc.grpc.status_code", code))
            .filter(|p| has(&p.attributes, "rpc.service", "crm.profiles.v1.CustomerService") && has(&p.attributes, "rpc.system", "grpc"))
            .map(|p| p.count)
            .max()
            .unwrap_or(0)
    };
    assert_eq!(count("CreateCustomer", "0"), 1, "{points:?}");
    assert_eq!(count("GetCustomer", "5"), 1, "NOT_FOUND");
    assert_eq!(count("GetCustomer", "16"), 1, "rejected before the handler, still counted");
    let lag = exported.iter().rev().find(|m| m.name == "crm.outbox.lag").expect("the outbox lag");
    let Some(Data::Histogram(lag)) = &lag.data else { panic!("a histogram") };
    assert!(lag.data_points.iter().map(|p| p.count).max() >= Some(1), "{lag:?}");
    let waiting = exported.iter().find(|m| m.name == "db.client.connection.pending_requests").expect("the pool's waiting gauge");
    let Some(Data::Gauge(waiting)) = &waiting.data else { panic!("a gauge") };
    assert!(!waiting.data_points.is_empty(), "{waiting:?}");
    assert!(waiting.data_points.iter().all(|p| has(&p.attributes, "db.client.connection.pool.name", "profiles")), "{waiting:?}");
    let pool = exported.iter().find(|m| m.name == "db.client.connection.count").expect("the pool gauge");
    let Some(Data::Gauge(gauge)) = &pool.data else { panic!("a gauge") };
    for state in ["used", "idle"] {
        assert!(gauge.data_points.iter().any(|p| has(&p.attributes, "db.client.connection.state", state)), "{state}");
    }
}
