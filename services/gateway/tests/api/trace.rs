//! One trace across the whole suite, proven with a real OTLP/gRPC receiver
//! (built from the published opentelemetry-proto service definitions): a
//! mobile call through the gateway (a real process) → tickets → profiles
//! (the customer check) → Postgres, and the outbox event that carries the
//! trace to consumers.

use std::{process::Stdio, time::Duration};

use crm_proto::crm::events::v1::{SubscribeRequest, event_service_client::EventServiceClient};
use crm_testkit::{
    auth::{jwt_secret, token, with_token},
    database::fresh_database,
    otlp::{Collector, has, hex},
    process::{binary, spawn_service, terminate},
};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use serde_json::json;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

#[tokio::test]
async fn a_gateway_call_is_one_trace_through_tickets_profiles_postgres_and_the_event() {
    // Arrange: a receiver, and every process exporting to it.
    let collector = Collector::start().await;
    let export = ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.clone());
    let profiles = spawn_service(binary("crm-profiles"), &fresh_database("profiles").await.unwrap(), std::slice::from_ref(&export)).await;
    let tickets_env = [export.clone(), ("CRM_PROFILES_URL", profiles.url.clone())];
    let tickets = spawn_service(binary("crm-tickets"), &fresh_database("tickets").await.unwrap(), &tickets_env).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let gateway = tokio::process::Command::new(binary("crm-gateway"))
        .env("CRM_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("CRM_BACKENDS", format!("crm.profiles.v1={},crm.tickets.v1={}", profiles.url, tickets.url))
        .env("CRM_JWT_SECRET", jwt_secret())
        .env("CRM_LOG", "warn")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector.endpoint)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tenant = uuid::Uuid::now_v7();
    let admin = token(tenant, &["admin"]);
    let customer: serde_json::Value = http
        .post(format!("{base}/v1/customers"))
        .bearer_auth(&admin)
        .json(&json!({"displayName": "Ada"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Act: the mobile app's call, with its own trace context.
    let created = http
        .post(format!("{base}/v1/tickets"))
        .bearer_auth(&admin)
        .header("traceparent", format!("00-{TRACE_ID}-{CLIENT_SPAN}-01"))
        .json(&json!({"customer": customer["customer"]["name"], "subject": "Traced through the suite"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200, "{:?}", created.text().await);

    // The event a consumer reads carries the same trace.
    let mut events = EventServiceClient::new(tickets.channel.clone())
        .subscribe(with_token(SubscribeRequest::default(), &admin))
        .await
        .unwrap()
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(10), events.message()).await.unwrap().unwrap().unwrap().event.unwrap();
    assert!(event.traceparent.contains(TRACE_ID), "{}", event.traceparent);
    drop(events);
    terminate(gateway).await;
    tickets.terminate().await;
    profiles.terminate().await;

    // The gateway's RED metric has the route template (never the raw path) and the status.
    let points = collector.histogram_points("http.server.request.duration");
    assert!(
        points.iter().any(|p| has(&p.attributes, "http.route", "/v1/tickets") && has(&p.attributes, "http.response.status_code", "200")),
        "{points:?}"
    );

    // Assert: one trace id, and the parent links the hops form.
    let spans: Vec<(String, Span)> = collector.spans().into_iter().filter(|(_, s)| hex(&s.trace_id) == TRACE_ID).collect();
    let names: Vec<String> = spans.iter().map(|(svc, s)| format!("{svc}: {}", s.name)).collect();
    let find = |service: &str, name: &str| {
        spans
            .iter()
            .find(|(svc, s)| svc == service && s.name == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no {service} {name:?} in {names:#?}"))
    };
    let gateway_span = find("gateway", "POST /v1/tickets");
    assert_eq!(
        (gateway_span.kind, hex(&gateway_span.parent_span_id)),
        (SpanKind::Server as i32, CLIENT_SPAN.to_owned()),
        "parented on the app"
    );
    let tickets_span = find("tickets", "crm.tickets.v1.TicketService/CreateTicket");
    assert_eq!(tickets_span.kind, SpanKind::Server as i32);
    assert_eq!(tickets_span.parent_span_id, gateway_span.span_id, "tickets continues the gateway's span");
    let check = find("tickets", "crm.profiles.v1.CustomerService/GetCustomer");
    assert_eq!(check.kind, SpanKind::Client as i32);
    let profiles_span = find("profiles", "crm.profiles.v1.CustomerService/GetCustomer");
    assert_eq!((profiles_span.kind, profiles_span.parent_span_id.clone()), (SpanKind::Server as i32, check.span_id.clone()));
    // Postgres work on both sides, as client spans inside this trace.
    for (service, name) in [("tickets", "INSERT tickets"), ("profiles", "SELECT customers")] {
        let db = find(service, name);
        assert_eq!(db.kind, SpanKind::Client as i32, "{name}");
    }
    // Each hop's ancestors lead back to the gateway span.
    let by_id = |id: &[u8]| spans.iter().find(|(_, s)| s.span_id == id).map(|(_, s)| s.clone());
    for (_, span) in &spans {
        let mut current = span.clone();
        while current.span_id != gateway_span.span_id {
            current =
                by_id(&current.parent_span_id).unwrap_or_else(|| panic!("{} is not connected to the gateway span: {names:#?}", span.name));
        }
    }
}
