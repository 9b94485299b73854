//! One trace across the whole suite, proven with a real OTLP/gRPC receiver
//! (built from the published opentelemetry-proto service definitions): a
//! mobile call through the gateway (a real process) → tickets → profiles
//! (the customer check) → Postgres, and the outbox event that carries the
//! trace to consumers; and a campaign, from StartCampaign through its
//! snapshot and the ledger to each provider call.

use std::time::Duration;

use crm_e2e::{marketing::Marketing, spawn_suite_with};
use crm_proto::crm::events::v1::{SubscribeRequest, event_service_client::EventServiceClient};
use crm_testkit::{
    auth::with_token,
    otlp::{Collector, has, hex},
    process::terminate,
    providers::{PeerConfig, ProviderPeer},
};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use reqwest::Method;
use serde_json::json;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";
const CAMPAIGN_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test]
async fn a_gateway_call_is_one_trace_through_tickets_profiles_postgres_and_the_event() {
    // Arrange: a receiver, and every process exporting to it (metrics often
    // enough that the gateway's RED histogram is sent before it stops).
    let collector = Collector::start().await;
    let suite =
        spawn_suite_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.clone()), ("OTEL_METRIC_EXPORT_INTERVAL", "200".to_owned())])
            .await;
    let (base, http) = (&suite.base, &suite.http);
    let admin = suite.token("test-user", &["admin"]);
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
        .json(&json!({"customer": customer["name"], "subject": "Traced through the suite"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200, "{:?}", created.text().await);

    // The event a consumer reads carries the same trace.
    let mut events = EventServiceClient::new(suite.tickets.channel.clone())
        .subscribe(with_token(SubscribeRequest::default(), &admin))
        .await
        .unwrap()
        .into_inner();
    let event = tokio::time::timeout(Duration::from_secs(10), events.message()).await.unwrap().unwrap().unwrap().event.unwrap();
    assert!(event.traceparent.contains(TRACE_ID), "{}", event.traceparent);
    drop(events);
    suite.terminate().await;

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

#[tokio::test]
async fn a_campaign_is_one_trace_from_its_start_through_the_ledger_to_each_provider_call() {
    // Arrange: a receiver; profiles, campaigns and the gateway exporting to it; Twilio as a local peer.
    let collector = Collector::start().await;
    let otel = [("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.clone()), ("OTEL_METRIC_EXPORT_INTERVAL", "200".to_owned())];
    let suite = Marketing::start(&otel).await;
    let peer = ProviderPeer::start(PeerConfig::default()).await;
    let (account, auth_token) = peer.config.twilio.clone();
    let twilio = json!({"displayName": "Twilio", "channel": "CHANNEL_SMS",
        "twilio": {"accountSid": account, "authToken": auth_token, "from": "+15005550006", "baseUrl": peer.url}});
    assert_eq!(suite.call(&suite.admin, Method::POST, "/v1/providers", Some(twilio)).await.status, 200);
    for i in 0..3 {
        let phone = format!("+1555123000{i}");
        suite
            .customer(json!({"phones": [{"number": phone, "primary": true}], "consent": {"sms": {"state": "CONSENT_STATE_OPTED_IN"}}}))
            .await;
    }
    let campaign_path = suite.draft_campaign("CHANNEL_SMS", "").await;

    // Act: the marketer's app starts the campaign with its own trace context.
    let started = suite
        .http
        .post(format!("{}{campaign_path}:start", suite.base))
        .bearer_auth(&suite.marketer)
        .header("traceparent", format!("00-{CAMPAIGN_TRACE}-{CLIENT_SPAN}-01"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    assert_eq!(suite.count(&campaign_path, "sent", 3).await, 3);
    let (profiles, campaigns, gateway) = suite.processes;
    terminate(gateway).await;
    campaigns.terminate().await;
    profiles.terminate().await;

    // Assert: the start, the snapshot, every send and every provider call in the one trace.
    let spans: Vec<Span> =
        collector.spans().into_iter().filter(|(svc, s)| svc == "campaigns" && hex(&s.trace_id) == CAMPAIGN_TRACE).map(|(_, s)| s).collect();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).cloned().collect::<Vec<_>>();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let start = named("crm.campaigns.v1.CampaignService/StartCampaign");
    assert_eq!(start.len(), 1, "{names:?}");
    assert_eq!(named("campaign.snapshot").len(), 1, "the snapshot continues the start's trace: {names:?}");
    let sends = named("delivery.send");
    assert_eq!(sends.len(), 3, "each message's send: {names:?}");
    let calls = named("twilio send");
    assert_eq!(calls.len(), 3, "each provider call: {names:?}");
    for call in &calls {
        assert_eq!(call.kind, SpanKind::Client as i32);
        assert!(sends.iter().any(|s| s.span_id == call.parent_span_id), "a provider call is a child of its send");
    }
    // The dashboard's throughput metric: accepted SMS.
    let accepted = collector.metrics().into_iter().filter(|m| m.name == "crm.campaigns.deliveries").count();
    assert!(accepted > 0, "crm.campaigns.deliveries is exported");
}
