//! The tower middleware in front of every service's routes: one server span
//! per call (OpenTelemetry RPC conventions, parented on the caller's W3C
//! `traceparent`), load shedding, bearer authentication, the ErrorInfo
//! domain for the handler's errors, and the origin of the changes it makes
//! (the caller and its `x-request-id`, made up when absent and echoed back).

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use opentelemetry::{global, trace::TraceContextExt};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tower::{Layer, Service};
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    auth::Authenticator,
    error::{ERROR_DOMAIN, Error},
    history::{ORIGIN, Origin},
    telemetry::HeaderExtractor,
};

/// The request-id header: the gateway's, or any client's.
const REQUEST_ID: &str = "x-request-id";

/// The caller's request id when it is a sane one (1-128 printable ASCII), else a new UUIDv7.
fn request_id(headers: &http::HeaderMap) -> String {
    match headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(id) if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) => id.to_owned(),
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

/// Shared state of the middleware.
pub(crate) struct MiddlewareState {
    pub auth: Arc<Authenticator>,
    pub in_flight: Arc<Semaphore>,
    pub error_domain: &'static str,
    /// Methods that authenticate with a token in the request instead of a bearer token.
    pub token_methods: &'static [&'static str],
    pub local_addr: SocketAddr,
    /// Deadline when the client sends no shorter `grpc-timeout`.
    pub request_timeout: Duration,
}

/// Layer that wraps routes in [`Middleware`].
#[derive(Clone)]
pub(crate) struct MiddlewareLayer(pub Arc<MiddlewareState>);

impl<S> Layer<S> for MiddlewareLayer {
    type Service = Middleware<S>;
    fn layer(&self, inner: S) -> Middleware<S> {
        Middleware { inner, state: self.0.clone() }
    }
}

/// See the module docs.
#[derive(Clone)]
pub(crate) struct Middleware<S> {
    inner: S,
    state: Arc<MiddlewareState>,
}

/// Health and reflection answer without a token and are never shed, so that
/// probes and tooling keep working under load.
fn is_infrastructure(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// gRPC codes that are server errors per the RPC semantic conventions.
fn is_server_error(code: i32) -> bool {
    use tonic::Code::*;
    [Unknown, DeadlineExceeded, Unimplemented, Internal, Unavailable, DataLoss].iter().any(|c| *c as i32 == code)
}

impl<S> Service<http::Request<Body>> for Middleware<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        let path = request.uri().path().to_owned();
        let span = server_span(&path, &request, state.local_addr);

        Box::pin(
            async move {
                let started = Instant::now();
                let infrastructure = is_infrastructure(&path);
                let outcome = async {
                    let _permit = if infrastructure {
                        None
                    } else {
                        match state.in_flight.clone().try_acquire_owned() {
                            Ok(permit) => Some(permit),
                            Err(_) => return Ok(reject(overloaded())),
                        }
                    };
                    let mut origin = Origin { actor: String::new(), request_id: request_id(request.headers()) };
                    if !infrastructure && !state.token_methods.contains(&path.as_str()) {
                        let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                        match state.auth.authenticate(header) {
                            Ok(principal) => {
                                tracing::Span::current().record("tenant", tracing::field::display(principal.tenant));
                                origin.actor.clone_from(&principal.subject);
                                request.extensions_mut().insert(principal);
                            }
                            Err(err) => return Ok(reject(ERROR_DOMAIN.sync_scope(state.error_domain, || tonic::Status::from(err)))),
                        }
                    }
                    let deadline = grpc_timeout(request.headers()).map_or(state.request_timeout, |t| t.min(state.request_timeout));
                    // Outbound calls made while handling this one inherit what is left of it.
                    let echoed = http::HeaderValue::from_str(&origin.request_id).ok();
                    let call = crate::client::REQUEST_DEADLINE.scope(
                        tokio::time::Instant::now() + deadline,
                        ERROR_DOMAIN.scope(state.error_domain, ORIGIN.scope(origin, inner.call(request))),
                    );
                    let mut response = match tokio::time::timeout(deadline, call).await {
                        Ok(response) => with_error_info(response?, state.error_domain),
                        Err(_) => return Ok(reject(deadline_exceeded(deadline, state.error_domain))),
                    };
                    if let Some(id) = echoed {
                        response.headers_mut().insert(REQUEST_ID, id);
                    }
                    // Errors raised before the first message arrive trailers-only, so
                    // their code is in the headers; any other call's code comes in the
                    // trailers, after the body: recorded when they pass (the span stays
                    // open until then, so it covers the whole response).
                    let span = tracing::Span::current();
                    match header_status(&response) {
                        Some(code) => finished(&span, &path, code, started, infrastructure, false),
                        None => {
                            let path = path.clone();
                            let on_status: crate::status_body::OnStatus =
                                Box::new(move |code| finished(&span, &path, code, started, infrastructure, true));
                            response = response.map(|body| Body::new(crate::status_body::StatusFromTrailers::new(body, on_status)));
                        }
                    }
                    Ok(response)
                }
                .await;
                if let Ok(response) = &outcome
                    && !infrastructure
                    && let Some(code) = header_status(response)
                    && rejected(response)
                {
                    // Rejections (auth, load shedding, deadlines) count too: they are what callers saw.
                    crate::metrics::record_rpc(&path, code, started.elapsed());
                }
                outcome
            }
            .instrument(span),
        )
    }
}

/// Errors tonic produces itself (oversized message, unknown method, ...) come
/// without google.rpc details; give them the ErrorInfo every error carries,
/// and the gRPC-spec code for an oversized message (RESOURCE_EXHAUSTED).
fn with_error_info(response: http::Response<Body>, domain: &'static str) -> http::Response<Body> {
    let headers = response.headers();
    if headers.contains_key("grpc-status-details-bin") {
        return response;
    }
    let Some(status) = tonic::Status::from_header_map(headers) else { return response };
    let (code, reason) = match status.code() {
        tonic::Code::Ok => return response,
        tonic::Code::OutOfRange if status.message().contains("too large") => (tonic::Code::ResourceExhausted, "MESSAGE_TOO_LARGE"),
        tonic::Code::Unimplemented => (tonic::Code::Unimplemented, "UNKNOWN_METHOD"),
        tonic::Code::Cancelled => (tonic::Code::Cancelled, "CANCELLED"),
        tonic::Code::DeadlineExceeded => (tonic::Code::DeadlineExceeded, "DEADLINE_EXCEEDED"),
        tonic::Code::InvalidArgument => (tonic::Code::InvalidArgument, "MALFORMED_REQUEST"),
        code => (code, "TRANSPORT_ERROR"),
    };
    let mut details = tonic_types::ErrorDetails::new();
    details.set_error_info(reason, domain, std::collections::HashMap::new());
    use tonic_types::StatusExt;
    tonic::Status::with_error_details(code, status.message(), details).into_http()
}

/// The deadline a client sent in `grpc-timeout` (e.g. `250m`), if valid.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok().filter(|_| digits.len() <= 8)?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn deadline_exceeded(deadline: Duration, domain: &'static str) -> tonic::Status {
    let mut details = tonic_types::ErrorDetails::new();
    details.set_error_info("DEADLINE_EXCEEDED", domain, std::collections::HashMap::new());
    use tonic_types::StatusExt;
    tonic::Status::with_error_details(
        tonic::Code::DeadlineExceeded,
        format!("the call did not finish within its {} ms deadline", deadline.as_millis()),
        details,
    )
}

/// The gRPC code in a response's headers: a trailers-only response (an
/// error before the first message); `None` when the code will come in the trailers.
fn header_status(response: &http::Response<Body>) -> Option<i32> {
    response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok())
}

/// Marks a response the middleware made itself (see [`reject`]), whose code
/// [`finished`] did not record.
#[derive(Clone, Copy)]
struct Rejected;

fn rejected(response: &http::Response<Body>) -> bool {
    response.extensions().get::<Rejected>().is_some()
}

/// Records a finished call's code: on its server span, in the log, and (but
/// for health and reflection) in the RPC metrics.
fn finished(span: &tracing::Span, path: &str, code: i32, started: Instant, infrastructure: bool, from_trailers: bool) {
    span.record("rpc.grpc.status_code", code);
    if is_server_error(code) {
        span.record("otel.status_code", "ERROR");
    }
    if !infrastructure {
        let elapsed = started.elapsed();
        span.in_scope(|| {
            tracing::info!(grpc.status_code = code, elapsed_ms = elapsed.as_secs_f64() * 1000.0, from_trailers, "rpc finished")
        });
        crate::metrics::record_rpc(path, code, elapsed);
    }
}

fn overloaded() -> tonic::Status {
    Error::Unavailable {
        reason: "OVERLOADED",
        message: "the server is at capacity; retry with backoff".to_owned(),
        retry_after: std::time::Duration::from_millis(200),
    }
    .into()
}

fn reject(status: tonic::Status) -> http::Response<Body> {
    let span = tracing::Span::current();
    span.record("rpc.grpc.status_code", status.code() as i32);
    if is_server_error(status.code() as i32) {
        span.record("otel.status_code", "ERROR");
    }
    tracing::info!(grpc.status_code = status.code() as i32, reason = status.message(), "rpc rejected");
    let mut response = status.into_http();
    response.extensions_mut().insert(Rejected);
    response
}

/// The server span of one call, parented on the caller's trace context.
fn server_span(path: &str, request: &http::Request<Body>, local: SocketAddr) -> tracing::Span {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = Empty,
        server.address = %local.ip(),
        server.port = local.port(),
        trace_id = Empty,
        tenant = Empty,
    );
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(request.headers())));
    let incoming = parent.span().span_context().clone();
    let _ = span.set_parent(parent);
    let exported = span.context().span().span_context().trace_id();
    let trace_id = if exported != opentelemetry::trace::TraceId::INVALID {
        exported
    } else if incoming.is_valid() {
        incoming.trace_id()
    } else {
        opentelemetry::trace::TraceId::from_bytes(uuid::Uuid::new_v4().into_bytes())
    };
    span.record("trace_id", tracing::field::display(trace_id));
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_are_parsed() {
        let header = |v: &str| {
            let mut h = http::HeaderMap::new();
            h.insert("grpc-timeout", v.parse().unwrap());
            grpc_timeout(&h)
        };
        assert_eq!(header("250m"), Some(Duration::from_millis(250)));
        assert_eq!(header("2S"), Some(Duration::from_secs(2)));
        assert_eq!(header("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(header("5x"), None);
        assert_eq!(header("123456789S"), None);
        assert_eq!(header(""), None);
        assert_eq!(grpc_timeout(&http::HeaderMap::new()), None);
    }
}
