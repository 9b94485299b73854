//! Logs and traces.
//!
//! Logs are JSON lines (or pretty text for local use) that include the fields
//! of the current request span, so every line carries `trace_id`, the RPC and
//! the tenant. When `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are exported
//! over OTLP/gRPC in batches; otherwise no OpenTelemetry layer is installed
//! and tracing costs only the log spans.
//!
//! Semantic conventions: spans follow OpenTelemetry semantic conventions
//! **v1.34.0** — RPC spans `{rpc.service}/{rpc.method}` with `rpc.system`,
//! `rpc.service`, `rpc.method`, `rpc.grpc.status_code`, `server.address`,
//! `server.port`; DB spans `{db.operation.name} {db.collection.name}` with
//! `db.system.name = postgresql`.

use opentelemetry::{global, trace::TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{
    Resource,
    metrics::{PeriodicReader, SdkMeterProvider},
    propagation::TraceContextPropagator,
    trace::SdkTracerProvider,
};
use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, Layer, Registry, filter::FilterExt, fmt::MakeWriter, layer::SubscriberExt};

use crate::config::LogFormat;

/// The spans whose fields log lines carry: one per request, made by the kit's
/// middleware (gRPC) and the gateway's handler (HTTP).
pub const REQUEST_SPANS: [&str; 2] = ["grpc.server", "http.server"];

/// Log filter when `CRM_LOG` is unset, and span filter when `CRM_TRACE` is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,h2=warn,tower=warn,hyper=warn";

/// The semantic-conventions version the spans follow.
pub const SEMCONV_VERSION: &str = "1.34.0";

/// Keeps the tracer provider alive; call [`TelemetryGuard::shutdown`] at exit
/// (dropping does not flush buffered spans).
#[must_use]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Flushes and stops span and metric export.
    pub fn shutdown(self) {
        if let Some(Err(err)) = self.provider.map(|p| p.shutdown()) {
            eprintln!("flushing spans failed: {err}");
        }
        if let Some(Err(err)) = self.meters.map(|m| m.shutdown()) {
            eprintln!("flushing metrics failed: {err}");
        }
    }
}

/// A subscriber writing logs to `sink` (and spans to `tracer` when given),
/// split from [`init`] so that tests can silence or capture logs. Logs and
/// spans are filtered separately, so quieting logs never loses spans.
pub fn get_subscriber<W>(
    filter: &str,
    format: LogFormat,
    sink: W,
    tracer: Option<opentelemetry_sdk::trace::Tracer>,
) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // Logs see events and the request spans only (`grpc.server`, the gateway's
    // `http.server`): their fields — trace id, RPC, tenant — are what a line
    // needs, so an event inside a handler is logged with the request's fields.
    // Handler, client and per-statement DB spans exist for trace export; when
    // no exporter is installed nothing enables them and they cost nothing
    // (at `info` they used to cost ~40 µs of CPU per call, see docs/benchmarks.md).
    let env_filter = || {
        let levels = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
        levels.and(tracing_subscriber::filter::filter_fn(|meta| meta.is_event() || REQUEST_SPANS.contains(&meta.name())))
    };
    let trace_filter = std::env::var("CRM_TRACE").unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .with_writer(sink)
            .with_filter(env_filter())
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(sink).with_filter(env_filter()).boxed(),
    };
    let mut layers = vec![logs];
    if let Some(tracer) = tracer {
        let filter = EnvFilter::try_new(&trace_filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
        layers.push(tracing_opentelemetry::layer().with_tracer(tracer).with_filter(filter).boxed());
    }
    tracing_subscriber::registry().with(layers)
}

/// Installs logging and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, span
/// export. Must run inside the Tokio runtime that lives for the whole process:
/// the OTLP channel's background task is spawned on it.
pub fn init(service_name: &'static str, format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|e| !e.is_empty());
    let filter = std::env::var("CRM_LOG").unwrap_or_else(|_| DEFAULT_FILTER.to_owned());
    let Some(endpoint) = endpoint else {
        tracing::subscriber::set_global_default(get_subscriber(&filter, format, std::io::stdout, None))?;
        return Ok(TelemetryGuard { provider: None, meters: None });
    };
    let resource = Resource::builder().with_service_name(service_name).build();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_timeout(std::time::Duration::from_secs(3))
        .build()?;
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.clone()).build();
    global::set_tracer_provider(provider.clone());
    // Metrics go to the same collector, every OTEL_METRIC_EXPORT_INTERVAL ms (default 60 000).
    let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(3))
        .build()?;
    let meters = SdkMeterProvider::builder().with_reader(PeriodicReader::builder(metric_exporter).build()).with_resource(resource).build();
    global::set_meter_provider(meters.clone());
    let subscriber = get_subscriber(&filter, format, std::io::stdout, Some(provider.tracer(service_name)));
    tracing::subscriber::set_global_default(subscriber)?;
    Ok(TelemetryGuard { provider: Some(provider), meters: Some(meters) })
}

/// Reads W3C trace context from HTTP/gRPC headers.
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Writes W3C trace context into outgoing HTTP/gRPC headers.
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl opentelemetry::propagation::Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}

/// The `traceparent` of the current span, or "" when spans are not exported.
pub fn current_traceparent() -> String {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// Makes `span` a child of the span `traceparent` names — work a request
/// started that a background job carries on (a campaign's sends, a notice's
/// delivery), so that it is one trace from the request to the last effect.
/// Nothing happens for an empty or malformed `traceparent`.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::{propagation::TextMapPropagator, trace::TraceContextExt};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if traceparent.is_empty() {
        return;
    }
    let carrier = std::collections::HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed; the span is then a log span.
        let _ = span.set_parent(parent);
    }
}

/// Writes W3C trace context into outgoing gRPC metadata.
struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl opentelemetry::propagation::Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (tonic::metadata::MetadataKey::from_bytes(key.as_bytes()), value.parse()) {
            self.0.insert(key, value);
        }
    }
}

/// A client span for an outgoing call to `service/method` (RPC semantic
/// conventions); inject it with [`inject_context`] inside the span.
pub fn client_span(service: &'static str, method: &'static str, peer: &str) -> tracing::Span {
    tracing::info_span!(
        "grpc.client",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "client",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        server.address = %peer,
        rpc.grpc.status_code = tracing::field::Empty,
    )
}

/// Puts the current span's trace context into `metadata` as `traceparent`.
pub fn inject_context(metadata: &mut tonic::metadata::MetadataMap) {
    use opentelemetry::propagation::TextMapPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut MetadataInjector(metadata));
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A log sink the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_logged_inside_a_handler_carries_the_request_span_and_inner_spans_are_not_built() {
        let sink = Captured::default();
        let writer = sink.clone();
        let subscriber = get_subscriber("info", LogFormat::Json, move || writer.clone(), None);
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("grpc.server", trace_id = "4bf92f3577b34da6a3ce929d0e0e4736", tenant = "t-1");
            let _request = request.enter();
            let handler = tracing::info_span!("create_customer");
            assert!(handler.is_disabled(), "a span only traces use is not built when no exporter is installed");
            let _handler = handler.enter();
            tracing::info!("customer created");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().expect("one line")).unwrap();
        assert_eq!(line["message"], "customer created");
        assert_eq!(line["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736", "{line}");
        assert_eq!(line["span"]["tenant"], "t-1");
    }
}
