//! The gateway's errors and their one rendering: the Google JSON error format
//! `{"error": {"code", "message", "status", "details"}}`, with the HTTP status
//! derived from the gRPC code.
//!
//! Mistakes the gateway itself catches (bad JSON, unknown route, oversize
//! body, missing token) carry an `ErrorInfo` with domain `gateway.crm`, like
//! every service error carries one with its own domain.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Value, json};
use tonic::Code;

use crate::ratelimit::Limited;

/// ErrorInfo domain of errors raised by the gateway itself.
pub const DOMAIN: &str = "gateway.crm";

/// An error answered to the HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 INVALID_ARGUMENT: malformed JSON, a wrong type, an unknown field or query parameter.
    #[error("{message}")]
    BadRequest {
        /// ErrorInfo reason.
        reason: &'static str,
        /// What is wrong, for the client.
        message: String,
    },
    /// 401 UNAUTHENTICATED: no or an invalid bearer token (checked before forwarding).
    #[error("{message}")]
    Unauthenticated {
        /// ErrorInfo reason, the kit's.
        reason: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 404 NOT_FOUND: no route matches the path.
    #[error("no API method is served at {path}")]
    RouteNotFound {
        /// The request path.
        path: String,
    },
    /// 405: the path is served, but not with this verb (`Allow` lists the verbs).
    #[error("{method} is not allowed here; use {}", allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", "))]
    MethodNotAllowed {
        /// The request's verb.
        method: Method,
        /// The verbs the path takes.
        allowed: Vec<Method>,
    },
    /// 413: the body exceeds `CRM_MAX_BODY_BYTES`.
    #[error("the request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit.
        limit: usize,
    },
    /// 408: a streamed upload's body stopped arriving; the backend call is cancelled.
    #[error("no part of the request body arrived for {} s; the upload is cancelled", idle.as_secs())]
    BodyStalled {
        /// How long nothing arrived.
        idle: std::time::Duration,
    },
    /// 415: a body that is not declared as JSON.
    #[error("the request body must be JSON (Content-Type: application/json), not {content_type:?}")]
    UnsupportedMediaType {
        /// The declared content type.
        content_type: String,
    },
    /// 502: the backend's answer exceeds `CRM_MAX_RESPONSE_BYTES`.
    #[error("the response exceeds {limit} bytes; ask for a smaller page")]
    ResponseTooLarge {
        /// The limit.
        limit: usize,
    },
    /// 429: a rate-limit bucket is empty (`Retry-After` and RetryInfo say when to retry).
    #[error("too many {} requests for this {}; retry in {:.1} s", .0.class.as_str(), .0.scope.as_str(), .0.retry_after.as_secs_f64())]
    RateLimited(Limited),
    /// Whatever the backend answered (or UNAVAILABLE when it could not be reached),
    /// with its details already rendered as JSON.
    #[error("{message}")]
    Backend {
        /// The gRPC code.
        code: Code,
        /// The status message.
        message: String,
        /// `google.rpc.Status.details` as proto3 JSON (each with `@type`).
        details: Vec<Value>,
    },
}

impl ApiError {
    /// A 400 with `reason`.
    pub fn bad_request(reason: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { reason, message: message.into() }
    }

    /// A backend status; its `grpc-status-details-bin` is decoded as a
    /// `google.rpc.Status` with `pool`, whose `Any` details serialise with `@type`.
    pub fn from_status(status: &tonic::Status, pool: &DescriptorPool) -> Self {
        Self::Backend { code: status.code(), message: status.message().to_owned(), details: decode_details(status.details(), pool) }
    }

    /// The gRPC code this error stands for.
    pub fn code(&self) -> Code {
        match self {
            Self::BadRequest { .. } => Code::InvalidArgument,
            Self::Unauthenticated { .. } => Code::Unauthenticated,
            Self::RouteNotFound { .. } => Code::NotFound,
            Self::MethodNotAllowed { .. } => Code::Unimplemented,
            Self::PayloadTooLarge { .. } | Self::UnsupportedMediaType { .. } => Code::InvalidArgument,
            Self::RateLimited(_) => Code::ResourceExhausted,
            Self::BodyStalled { .. } => Code::DeadlineExceeded,
            Self::ResponseTooLarge { .. } => Code::Internal,
            Self::Backend { code, .. } => *code,
        }
    }

    /// The HTTP status: from the code, except for the pure-HTTP errors.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BodyStalled { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::ResponseTooLarge { .. } => StatusCode::BAD_GATEWAY,
            other => http_status(other.code()),
        }
    }

    /// The error as the JSON body.
    pub fn to_json(&self) -> Value {
        let details = match self {
            Self::Backend { details, .. } => details.clone(),
            Self::BadRequest { reason, .. } | Self::Unauthenticated { reason, .. } => vec![error_info(reason)],
            Self::RouteNotFound { .. } => vec![error_info("ROUTE_NOT_FOUND")],
            Self::MethodNotAllowed { .. } => vec![error_info("METHOD_NOT_ALLOWED")],
            Self::PayloadTooLarge { .. } => vec![error_info("BODY_TOO_LARGE")],
            Self::UnsupportedMediaType { .. } => vec![error_info("UNSUPPORTED_MEDIA_TYPE")],
            Self::BodyStalled { .. } => vec![error_info("BODY_STALLED")],
            Self::ResponseTooLarge { .. } => vec![error_info("RESPONSE_TOO_LARGE")],
            Self::RateLimited(limited) => vec![
                json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMITED", "domain": DOMAIN,
                       "metadata": {"scope": limited.scope.as_str(), "class": limited.class.as_str()}}),
                json!({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                       "retryDelay": format!("{:.3}s", limited.retry_after.as_secs_f64())}),
            ],
        };
        json!({"error": {
            "code": self.http_status().as_u16(),
            "message": self.to_string(),
            "status": status_name(self.code()),
            "details": details,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.http_status(), [(header::CONTENT_TYPE, "application/json")], self.to_json().to_string()).into_response();
        if let Self::MethodNotAllowed { allowed, .. } = &self {
            let allow = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
        }
        if let Self::RateLimited(limited) = &self {
            // Whole seconds, rounded up, so that a client honouring it never retries too early.
            let seconds = limited.retry_after.as_secs() + u64::from(limited.retry_after.subsec_nanos() > 0);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if self.code() == Code::Unauthenticated {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The HTTP status of a gRPC code (google.rpc.Code's documented mapping;
/// CANCELLED is 499 as there, since it is the client's doing, not a 500).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).expect("499 is a valid status"),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The `google.rpc.Code` enum name, e.g. `NOT_FOUND`.
pub fn status_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A `google.rpc.ErrorInfo` detail of the gateway's domain.
pub fn error_info(reason: &str) -> Value {
    json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": DOMAIN})
}

/// `grpc-status-details-bin` (a `google.rpc.Status`) → its details as JSON.
/// Details of a type the pool does not know are dropped rather than failing
/// the whole error: the code and message still reach the client.
fn decode_details(bytes: &[u8], pool: &DescriptorPool) -> Vec<Value> {
    let Some(desc) = pool.get_message_by_name("google.rpc.Status") else { return Vec::new() };
    if bytes.is_empty() {
        return Vec::new();
    }
    let Ok(status) = DynamicMessage::decode(desc, bytes) else { return Vec::new() };
    let Some(details) = status.get_field_by_name("details") else { return Vec::new() };
    let Some(list) = details.as_list() else { return Vec::new() };
    list.iter()
        .filter_map(|any| any.as_message())
        .filter_map(|any| match serde_json::to_value(any) {
            Ok(v) => Some(v),
            Err(err) => {
                tracing::warn!(error = %err, "dropping an error detail of an unknown type");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    #[test]
    fn codes_map_to_http_statuses() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::Aborted, 409),
            (Code::FailedPrecondition, 400),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unknown, 500),
            (Code::DataLoss, 500),
        ];
        for (code, http) in cases {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn backend_details_render_with_their_type() {
        let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET).unwrap();
        let mut details = ErrorDetails::new();
        details.set_error_info("CUSTOMER_NOT_FOUND", "profiles.crm", [("name".to_owned(), "customers/x".to_owned())]);
        details.add_bad_request_violation("display_name", "must not be empty");
        let status = tonic::Status::with_error_details(Code::NotFound, "customer not found", details);
        let json = ApiError::from_status(&status, &pool).to_json();
        assert_eq!(json["error"]["code"], 404);
        assert_eq!(json["error"]["status"], "NOT_FOUND");
        assert_eq!(json["error"]["message"], "customer not found");
        let details = json["error"]["details"].as_array().unwrap();
        let info = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo").unwrap();
        assert_eq!(info["reason"], "CUSTOMER_NOT_FOUND");
        assert_eq!(info["metadata"]["name"], "customers/x");
        let bad = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest").unwrap();
        assert_eq!(bad["fieldViolations"][0]["field"], "display_name");
    }

    #[test]
    fn method_not_allowed_lists_the_verbs() {
        let response = ApiError::MethodNotAllowed { method: Method::PUT, allowed: vec![Method::GET, Method::PATCH] }.into_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "GET, PATCH");
    }
}
