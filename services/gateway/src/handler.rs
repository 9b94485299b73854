//! One REST request through the gateway: route lookup → server span (parent
//! from `traceparent`) → admission (bearer token, rate limits:
//! [`Gateway::admit`]) → body (size-limited) → request message → `If-Match` →
//! deadline → backend call (or the [`crate::overview`] the gateway serves
//! itself) → JSON (or NDJSON for server streams) with `ETag`. Every step that
//! fails answers in the Google JSON error format; nothing a client sends can
//! produce a 500. Also the `x-request-id` middleware every response passes.
//!
//! Two kinds of route leave the path after admission: a body streamed into a
//! client-streaming RPC ([`crate::upload`]), and a server stream of
//! `google.api.HttpBody` answered as a plain body ([`crate::download`]).

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use crm_kit::telemetry::HeaderExtractor;
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost_reflect::DynamicMessage;
use tonic::{Code, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::{
    download,
    errors::{ApiError, error_info},
    forward::service_label,
    ratelimit::RouteClass,
    routes::{BodyBinding, LOCAL, Lookup, Route},
    state::Gateway,
    transcode,
};

/// Header carrying the request id, generated when the client sends none.
pub const REQUEST_ID: &str = "x-request-id";
/// Header with the client's deadline: milliseconds, or a gRPC-style value (`5S`, `250m`).
pub const REQUEST_TIMEOUT: &str = "x-request-timeout";

/// The request id of the current request (set by [`request_id`]).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware: takes the client's `x-request-id` (or makes one) and echoes it
/// on every response, the gateway's own errors and health answers included.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_owned);
    request.extensions_mut().insert(RequestId(id.clone()));
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// The fallback handler: every API request.
pub async fn handle(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    gateway.serve(request).await.unwrap_or_else(IntoResponse::into_response)
}

impl Gateway {
    async fn serve(&self, request: Request) -> Result<Response, ApiError> {
        let (parts, body) = request.into_parts();
        let (route, vars) = match self.routes.lookup(&parts.method, parts.uri.path()) {
            Lookup::Found(route, vars) => (route, vars),
            Lookup::MethodNotAllowed(allowed) => return Err(ApiError::MethodNotAllowed { method: parts.method, allowed }),
            Lookup::NotFound => return Err(ApiError::RouteNotFound { path: parts.uri.path().to_owned() }),
        };
        let request_id = parts.extensions.get::<RequestId>().map(|r| r.0.clone()).unwrap_or_default();
        let span = tracing::info_span!(
            "http.server",
            otel.name = %format_args!("{} {}", route.method, route.http_route()),
            otel.kind = "server",
            http.request.method = %route.method,
            http.route = route.http_route(),
            rpc.system = "grpc",
            rpc.service = route.rpc.parent_service().full_name(),
            rpc.method = route.rpc.name(),
            request_id = %request_id,
            http.response.status_code = tracing::field::Empty,
        );
        let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(&parts.headers)));
        // Fails only when no OpenTelemetry layer is installed; the span is then a log span.
        let _ = span.set_parent(parent);
        let started = std::time::Instant::now();
        let result = self.call(route, &vars, &parts, body, &request_id).instrument(span.clone()).await;
        let status = result.as_ref().map_or_else(ApiError::http_status, Response::status);
        span.record("http.response.status_code", status.as_u16());
        // For streams this is the time to the first byte: the stream itself runs on.
        crm_kit::metrics::record_http(route.method.as_str(), route.http_route(), status.as_u16(), started.elapsed());
        if status.is_server_error() {
            span.in_scope(|| tracing::warn!(status = status.as_u16(), "request failed"));
        }
        result
    }

    async fn call(
        &self,
        route: &Route,
        vars: &[(Vec<String>, String)],
        parts: &http::request::Parts,
        body: Body,
        request_id: &str,
    ) -> Result<Response, ApiError> {
        self.admit(route.grpc_path(), RouteClass::of(route), &parts.headers, &parts.extensions)?;
        if route.streams_request_body() {
            // Streamed as it arrives: neither buffered nor held to the body size limit.
            return self.upload(route, vars, parts, body, request_id).await;
        }
        let raw = matches!(route.body, BodyBinding::Raw(_));
        let bytes = self.read_body(&parts.headers, body, raw).await?;
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        let message = self.request_message(route, vars, parts, &bytes, content_type)?;
        let streaming = route.rpc.is_server_streaming();
        // Server streams (event subscriptions, downloads) run until the client leaves unless it asks for a deadline.
        let timeout = client_timeout(&parts.headers)?.or((!streaming).then_some(self.request_timeout));
        let request = backend_request(route, message, parts, request_id, timeout);

        if route.backend == LOCAL {
            let (metadata, _, message) = request.into_parts();
            let response = self.overview.serve(route, &message, &metadata, timeout.unwrap_or(self.request_timeout)).await?;
            return Ok(json_response(route, &response));
        }
        if streaming {
            let response = self.backends.server_streaming(route, request).await.map_err(|s| self.backend_error(route, s))?;
            if route.raw_response() {
                return download::http_body_stream(route, response).await.map_err(|s| self.backend_error(route, s));
            }
            return Ok(self.ndjson(response.into_inner()));
        }
        let response = self.backends.unary(route, request).await.map_err(|s| self.backend_error(route, s))?;
        if route.raw_response() {
            return Ok(raw_response(route, response));
        }
        Ok(json_response(route, response.get_ref()))
    }

    /// The request message from the path, the query and `body`, with the
    /// gateway's adjustments: page size capped, `If-Match` applied.
    pub(crate) fn request_message(
        &self,
        route: &Route,
        vars: &[(Vec<String>, String)],
        parts: &http::request::Parts,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<DynamicMessage, ApiError> {
        let mut message = transcode::request_message(route, vars, parts.uri.query(), body, content_type)?;
        transcode::cap_page_size(&mut message, self.max_page_size);
        if takes_if_match(route)
            && let Some(etag) = parts.headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()).and_then(transcode::parse_if_match)
        {
            transcode::apply_if_match(&mut message, &etag);
        }
        Ok(message)
    }

    /// The body, size-limited; JSON unless the route takes it `raw`.
    async fn read_body(&self, headers: &HeaderMap, body: Body, raw: bool) -> Result<Bytes, ApiError> {
        // A missing Content-Type is taken as JSON (curl -d without -H); a
        // declared non-JSON type is refused rather than misread.
        if !raw
            && let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
            && !is_json(content_type)
        {
            return Err(ApiError::UnsupportedMediaType { content_type: content_type.to_owned() });
        }
        let limit = self.max_body_bytes;
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::PayloadTooLarge { limit }),
            Err(err) => Err(ApiError::bad_request("INVALID_BODY", format!("reading the request body failed: {err}"))),
        }
    }

    /// A backend status as the client's error; a transport failure (no
    /// details: the backend never answered) says which backend is down.
    pub(crate) fn backend_error(&self, route: &Route, status: Status) -> ApiError {
        if status.code() == Code::OutOfRange && status.message().contains("decoded message length too large") {
            return ApiError::ResponseTooLarge { limit: self.backends.max_response_bytes() };
        }
        if status.code() == Code::Cancelled && status.message() == tonic::TimeoutExpired(()).to_string() {
            // tonic reports its own client-side deadline as CANCELLED.
            return ApiError::Backend {
                code: Code::DeadlineExceeded,
                message: format!("the {} backend did not answer within the deadline", service_label(route)),
                details: vec![error_info("DEADLINE_EXCEEDED")],
            };
        }
        if status.code() == Code::Unavailable && status.details().is_empty() {
            tracing::warn!(backend = %route.backend, error = %status.message(), "backend unavailable");
            return ApiError::Backend {
                code: Code::Unavailable,
                message: format!("the {} backend is unavailable; retry later", service_label(route)),
                details: vec![error_info("BACKEND_UNAVAILABLE")],
            };
        }
        ApiError::from_status(&status, &self.pool)
    }

    /// A server stream as newline-delimited JSON; an error after the first
    /// message ends the stream with one `{"error": …}` line.
    fn ndjson(&self, stream: tonic::codec::Streaming<DynamicMessage>) -> Response {
        let pool = self.pool.clone();
        let mut shutdown = self.shutdown.clone();
        let lines = stream
            .map(move |item| {
                Ok::<_, std::convert::Infallible>(Bytes::from(match item {
                    Ok(message) => transcode::stream_line(&message),
                    Err(status) => {
                        let mut line = ApiError::from_status(&status, &pool).to_json().to_string().into_bytes();
                        line.push(b'\n');
                        line
                    }
                }))
            })
            .take_until(async move {
                let _ = shutdown.wait_for(|stopping| *stopping).await;
            });
        Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .body(Body::from_stream(lines))
            .expect("valid response parts")
    }
}

/// The backend call of `message` (a message, or a stream of them): the
/// caller's token, the request id, the trace context, signature headers of a
/// raw body, and the deadline.
pub(crate) fn backend_request<T>(
    route: &Route,
    message: T,
    parts: &http::request::Parts,
    request_id: &str,
    timeout: Option<Duration>,
) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let metadata = request.metadata_mut();
    if let Some(value) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|a| a.parse().ok()) {
        metadata.insert("authorization", value);
    }
    if let Ok(value) = request_id.parse() {
        metadata.insert(REQUEST_ID, value);
    }
    if matches!(route.body, BodyBinding::Raw(_)) {
        pass_signature_headers(&parts.headers, metadata);
    }
    crm_kit::telemetry::inject_context(metadata);
    // Without span export the injected context is empty: pass the client's through.
    if !metadata.contains_key("traceparent") {
        for name in ["traceparent", "tracestate"] {
            if let Some(value) = parts.headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()) {
                metadata.insert(name, value);
            }
        }
    }
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    request
}

/// Headers a raw body's sender signs it with (`X-Twilio-Signature`,
/// `X-CRM-Signature`, …): every `x-` header but the gateway's own and the
/// proxies', passed to the backend as metadata, which checks them.
fn pass_signature_headers(headers: &HeaderMap, metadata: &mut tonic::metadata::MetadataMap) {
    const NOT_PASSED: [&str; 4] = [REQUEST_ID, REQUEST_TIMEOUT, "x-forwarded-", "x-real-ip"];
    for (name, value) in headers {
        let name = name.as_str();
        if !name.starts_with("x-") || NOT_PASSED.iter().any(|n| name.starts_with(n)) || value.len() > 1024 {
            continue;
        }
        if let (Ok(key), Ok(value)) =
            (tonic::metadata::MetadataKey::from_bytes(name.as_bytes()), tonic::metadata::MetadataValue::try_from(value.as_bytes()))
        {
            metadata.insert(key, value);
        }
    }
}

/// A 200 with the JSON of `response` and its resource's `ETag`.
pub(crate) fn json_response(route: &Route, response: &DynamicMessage) -> Response {
    let mut http = Response::builder().status(StatusCode::OK).header(header::CONTENT_TYPE, "application/json");
    if let Some(etag) = transcode::response_etag(response) {
        // Strong etag, quoted as RFC 9110 requires; the quotes are stripped again from If-Match.
        http = http.header(header::ETAG, format!("\"{}\"", etag.replace('"', "")));
    }
    http.body(Body::from(transcode::response_json(route, response))).expect("valid response parts")
}

/// The `google.api.HttpBody` a route answers with, as sent: its bytes and
/// content type, never cached (each fetch may be recorded, as a tracking
/// pixel's is). A `location` in the backend's metadata makes it a 302
/// redirect there (a tracked link); the body stays, for clients that show it.
pub(crate) fn raw_response(route: &Route, response: tonic::Response<DynamicMessage>) -> Response {
    let (metadata, message, _) = response.into_parts();
    let (content_type, data) = transcode::response_http_body(route, message);
    let location = metadata.get("location").and_then(|v| v.to_str().ok()).and_then(|v| HeaderValue::from_str(v).ok());
    let mut http = Response::builder()
        .status(if location.is_some() { StatusCode::FOUND } else { StatusCode::OK })
        .header(header::CACHE_CONTROL, "no-store, private");
    if !content_type.is_empty() {
        http = http.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(location) = location {
        http = http.header(header::LOCATION, location);
    }
    http.body(Body::from(data)).expect("valid response parts")
}

/// `application/json` or a `+json` type, with any parameters (`; charset=utf-8`).
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether `If-Match` applies: updates, deletes and custom methods (`:verb`).
fn takes_if_match(route: &Route) -> bool {
    matches!(route.method, Method::PATCH | Method::PUT | Method::DELETE)
        || (route.method == Method::POST && route.template.verb().is_some())
}

/// The client's deadline from `X-Request-Timeout` (ms or gRPC-style) or `grpc-timeout`.
pub(crate) fn client_timeout(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    for name in [REQUEST_TIMEOUT, "grpc-timeout"] {
        if let Some(value) = headers.get(name) {
            let text = value.to_str().unwrap_or_default().trim();
            return parse_timeout(text).map(Some).ok_or_else(|| {
                ApiError::bad_request("INVALID_TIMEOUT", format!("{name} {text:?} is not a timeout such as 5000 (ms) or 5S"))
            });
        }
    }
    Ok(None)
}

/// `1500` (ms) or the gRPC form `<digits><H|M|S|m|u|n>`; zero is refused.
fn parse_timeout(text: &str) -> Option<Duration> {
    let (digits, unit) = match text.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&text[..i], Some(c)),
        _ => (text, None),
    };
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let duration = match unit {
        None | Some('m') => Duration::from_millis(n),
        Some('H') => Duration::from_secs(n * 3600),
        Some('M') => Duration::from_secs(n * 60),
        Some('S') => Duration::from_secs(n),
        Some('u') => Duration::from_micros(n),
        Some('n') => Duration::from_nanos(n),
        Some(_) => return None,
    };
    (!duration.is_zero()).then_some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        assert!(is_json("application/json") && is_json("Application/JSON; charset=utf-8") && is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain") && !is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn timeouts_parse_in_both_forms() {
        assert_eq!(parse_timeout("1500"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_timeout("2M"), Some(Duration::from_secs(120)));
        for bad in ["", "S", "0", "-5", "1.5S", "5X", "123456789"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }
}
