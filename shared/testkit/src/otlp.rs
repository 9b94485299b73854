//! A real OTLP/gRPC collector for tests, built from the published
//! opentelemetry-proto service definitions (not a mock of our exporter): it
//! keeps every span (with its resource's `service.name`) and every metric it
//! is sent, for assertions.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::{
    collector::{
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    },
    common::v1::{AnyValue, KeyValue, any_value::Value},
    metrics::v1::{HistogramDataPoint, Metric, metric::Data},
    trace::v1::Span,
};
use tonic::{Request, Response, Status};

type Spans = Arc<Mutex<Vec<(String, Span)>>>;
type Metrics = Arc<Mutex<Vec<Metric>>>;

/// A running collector; point `OTEL_EXPORTER_OTLP_ENDPOINT` at [`Collector::endpoint`].
#[derive(Clone)]
pub struct Collector {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    spans: Spans,
    metrics: Metrics,
}

#[derive(Clone)]
struct Receiver {
    spans: Spans,
    metrics: Metrics,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(&self, request: Request<ExportTraceServiceRequest>) -> Result<Response<ExportTraceServiceResponse>, Status> {
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans.resource.as_ref().and_then(|r| attribute(&r.attributes, "service.name")).unwrap_or_default();
            for scope in resource_spans.scope_spans {
                self.spans.lock().expect("spans").extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(&self, request: Request<ExportMetricsServiceRequest>) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        for resource in request.into_inner().resource_metrics {
            for scope in resource.scope_metrics {
                self.metrics.lock().expect("metrics").extend(scope.metrics);
            }
        }
        Ok(Response::new(ExportMetricsServiceResponse { partial_success: None }))
    }
}

impl Collector {
    /// Starts a collector on a free port.
    pub async fn start() -> Self {
        let receiver = Receiver { spans: Spans::default(), metrics: Metrics::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let endpoint = format!("http://{}", listener.local_addr().expect("bound"));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver.clone()))
                .add_service(MetricsServiceServer::new(receiver.clone()))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        Self { endpoint, spans: receiver.spans, metrics: receiver.metrics }
    }

    /// Every span received so far, with its service name.
    pub fn spans(&self) -> Vec<(String, Span)> {
        self.spans.lock().expect("spans").clone()
    }

    /// Every metric received so far (each export's copy).
    pub fn metrics(&self) -> Vec<Metric> {
        self.metrics.lock().expect("metrics").clone()
    }

    /// The data points of every export of histogram `name`.
    pub fn histogram_points(&self, name: &str) -> Vec<HistogramDataPoint> {
        self.metrics()
            .into_iter()
            .filter(|m| m.name == name)
            .flat_map(|m| match m.data {
                Some(Data::Histogram(h)) => h.data_points,
                other => panic!("{name} is a histogram, not {other:?}"),
            })
            .collect()
    }
}

/// Lower-case hex of a trace or span id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A string or integer attribute value as text.
pub fn string(value: Option<&AnyValue>) -> Option<String> {
    match value?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The value of attribute `key`, as text.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| string(kv.value.as_ref()))
}

/// Whether attribute `key` is `value`.
pub fn has(attributes: &[KeyValue], key: &str, value: &str) -> bool {
    attribute(attributes, key).as_deref() == Some(value)
}
