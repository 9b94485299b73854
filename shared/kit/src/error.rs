//! The one error type every service handler returns, and its single,
//! exhaustive mapping to `tonic::Status` with google.rpc details.
//!
//! Every non-OK status carries exactly one `ErrorInfo` whose domain is the
//! serving service (set per request by the kit's middleware through
//! [`ERROR_DOMAIN`]), plus the detail that fits the code: `BadRequest` for
//! INVALID_ARGUMENT, `ResourceInfo` for NOT_FOUND/ALREADY_EXISTS/ABORTED,
//! `PreconditionFailure` for FAILED_PRECONDITION and `RetryInfo` where a retry
//! can succeed. Internal causes are logged, never sent.

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

tokio::task_local! {
    /// ErrorInfo domain of the service handling the current request, e.g. "profiles.crm".
    pub static ERROR_DOMAIN: &'static str;
}

/// Domain used when an error is converted outside a request scope.
const FALLBACK_DOMAIN: &str = "crm";

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Dotted path of the field in the request, e.g. `customer.emails[1].address`.
    pub field: String,
    /// Human-readable explanation.
    pub description: String,
    /// UPPER_SNAKE reason, e.g. `INVALID_EMAIL`.
    pub reason: &'static str,
}

impl FieldViolation {
    /// Builds a violation.
    pub fn new(field: impl Into<String>, reason: &'static str, description: impl Into<String>) -> Self {
        Self { field: field.into(), description: description.into(), reason }
    }
}

/// Errors a service returns to its callers. Each variant says the gRPC code it becomes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// INVALID_ARGUMENT with one `BadRequest` violation per bad field.
    #[error("{}", describe_violations(violations))]
    InvalidArgument {
        /// All the bad fields found, not only the first.
        violations: Vec<FieldViolation>,
    },
    /// NOT_FOUND with `ResourceInfo`.
    #[error("{resource_type} {name:?} was not found")]
    NotFound {
        /// Resource type, e.g. `profiles.crm/Customer`.
        resource_type: &'static str,
        /// Resource name asked for.
        name: String,
    },
    /// ALREADY_EXISTS with `ResourceInfo` and, when a field clashes, a `BadRequest` violation.
    #[error("{message}")]
    AlreadyExists {
        /// UPPER_SNAKE reason.
        reason: &'static str,
        /// Human-readable explanation.
        message: String,
        /// Resource type of the existing resource.
        resource_type: &'static str,
        /// Name of the existing resource, if it may be disclosed.
        name: String,
    },
    /// ABORTED, reason `ETAG_MISMATCH`: the caller's etag is stale; re-read and retry.
    #[error("the etag of {name:?} does not match; re-read it and retry")]
    EtagMismatch {
        /// Resource type.
        resource_type: &'static str,
        /// Resource name.
        name: String,
    },
    /// ABORTED with `RetryInfo`: a concurrent transaction won; retrying can succeed.
    #[error("the request conflicted with a concurrent change; retry it")]
    Conflict,
    /// FAILED_PRECONDITION with a `PreconditionFailure`.
    #[error("{message}")]
    FailedPrecondition {
        /// UPPER_SNAKE reason.
        reason: &'static str,
        /// Human-readable explanation.
        message: String,
        /// Subject the precondition is about, e.g. a resource name.
        subject: String,
    },
    /// OUT_OF_RANGE, e.g. a stream position that no longer exists.
    #[error("{message}")]
    OutOfRange {
        /// UPPER_SNAKE reason.
        reason: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// PERMISSION_DENIED: the caller's roles lack `permission`.
    #[error("the caller lacks the permission {permission:?}")]
    PermissionDenied {
        /// The missing permission, e.g. `customers.update` or a field path.
        permission: String,
    },
    /// UNAUTHENTICATED: no valid credentials.
    #[error("{message}")]
    Unauthenticated {
        /// UPPER_SNAKE reason such as `TOKEN_EXPIRED`.
        reason: &'static str,
        /// Human-readable explanation (never echoes the token).
        message: String,
    },
    /// UNAVAILABLE with `RetryInfo`: a dependency is down or the server is overloaded.
    #[error("{message}")]
    Unavailable {
        /// UPPER_SNAKE reason.
        reason: &'static str,
        /// Human-readable explanation.
        message: String,
        /// When a retry makes sense.
        retry_after: Duration,
    },
    /// INTERNAL: logged with its cause chain; the caller gets a generic message.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// The error and every cause below it, "outer: inner: innermost", for logs:
/// an `Internal` error displays only as "internal error" on its own.
pub fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// "field: problem" for the first violation, and how many more there are.
fn describe_violations(violations: &[FieldViolation]) -> String {
    match violations {
        [] => "the request is invalid".to_owned(),
        [only] => format!("{}: {}", clip(&only.field, MAX_FIELD_CHARS), clip(&only.description, MAX_DESCRIPTION_CHARS)),
        [first, rest @ ..] => format!(
            "{}: {} (and {} more invalid field(s); see BadRequest details)",
            clip(&first.field, MAX_FIELD_CHARS),
            clip(&first.description, MAX_DESCRIPTION_CHARS),
            rest.len()
        ),
    }
}

/// Violations sent in one BadRequest: error details travel in a response
/// header, and HTTP/2 peers refuse header lists over 16 KiB — an answer
/// about a request with thousands of bad fields must still arrive.
const MAX_VIOLATIONS: usize = 25;
/// Longest field path and description sent, in characters (they may quote the request).
const MAX_FIELD_CHARS: usize = 200;
const MAX_DESCRIPTION_CHARS: usize = 300;

/// `text` cut to `max` characters, marked when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

impl Error {
    /// INVALID_ARGUMENT for a single field.
    pub fn invalid(field: impl Into<String>, reason: &'static str, description: impl Into<String>) -> Self {
        Self::InvalidArgument { violations: vec![FieldViolation::new(field, reason, description)] }
    }

    /// INTERNAL from any error, keeping its cause chain for the log.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    /// The gRPC code this error becomes.
    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound { .. } => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::EtagMismatch { .. } | Self::Conflict => Code::Aborted,
            Self::FailedPrecondition { .. } => Code::FailedPrecondition,
            Self::OutOfRange { .. } => Code::OutOfRange,
            Self::PermissionDenied { .. } => Code::PermissionDenied,
            Self::Unauthenticated { .. } => Code::Unauthenticated,
            Self::Unavailable { .. } => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// The ErrorInfo reason of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument { violations } => {
                let first = violations.first().map_or("INVALID_ARGUMENT", |v| v.reason);
                if violations.iter().all(|v| v.reason == first) { first } else { "INVALID_FIELDS" }
            }
            Self::NotFound { .. } => "NOT_FOUND",
            Self::EtagMismatch { .. } => "ETAG_MISMATCH",
            Self::Conflict => "CONCURRENT_UPDATE",
            Self::PermissionDenied { .. } => "PERMISSION_DENIED",
            Self::Internal(_) => "INTERNAL",
            Self::AlreadyExists { reason, .. }
            | Self::FailedPrecondition { reason, .. }
            | Self::OutOfRange { reason, .. }
            | Self::Unauthenticated { reason, .. }
            | Self::Unavailable { reason, .. } => reason,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let domain = ERROR_DOMAIN.try_with(|d| *d).unwrap_or(FALLBACK_DOMAIN);
        let mut details = ErrorDetails::new();
        let mut metadata = HashMap::new();
        let message = match &err {
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal error; the failure has been logged".to_owned()
            }
            other => other.to_string(),
        };
        match &err {
            Error::InvalidArgument { violations } => {
                let mut v: Vec<_> = violations
                    .iter()
                    .take(MAX_VIOLATIONS)
                    .map(|v| tonic_types::FieldViolation {
                        field: clip(&v.field, MAX_FIELD_CHARS),
                        description: clip(&v.description, MAX_DESCRIPTION_CHARS),
                        reason: v.reason.to_owned(),
                        localized_message: None,
                    })
                    .collect();
                if violations.len() > MAX_VIOLATIONS {
                    v.push(tonic_types::FieldViolation {
                        field: String::new(),
                        description: format!("{} more invalid field(s) not listed; fix these first", violations.len() - MAX_VIOLATIONS),
                        reason: "TOO_MANY_VIOLATIONS".to_owned(),
                        localized_message: None,
                    });
                }
                details.set_bad_request(v);
            }
            Error::NotFound { resource_type, name } | Error::EtagMismatch { resource_type, name } => {
                details.set_resource_info(*resource_type, name.clone(), "", "");
            }
            Error::AlreadyExists { resource_type, name, .. } => {
                details.set_resource_info(*resource_type, name.clone(), "", "");
            }
            Error::FailedPrecondition { reason, message, subject } => {
                details.add_precondition_failure_violation(*reason, subject.clone(), message.clone());
            }
            Error::PermissionDenied { permission } => {
                metadata.insert("permission".to_owned(), permission.clone());
            }
            Error::Unavailable { retry_after, .. } => {
                details.set_retry_info(Some(*retry_after));
            }
            Error::Conflict => {
                details.set_retry_info(Some(Duration::from_millis(50)));
            }
            Error::OutOfRange { .. } | Error::Unauthenticated { .. } | Error::Internal(_) => {}
        }
        details.set_error_info(err.reason(), domain, metadata);
        Status::with_error_details(err.code(), message, details)
    }
}

impl From<sqlx::Error> for Error {
    /// Serialisation failures and deadlocks are retryable conflicts; text the
    /// database cannot store (NUL) is the caller's invalid argument; a pool
    /// that cannot hand out a connection means the database is unavailable;
    /// a lock not had within `lock_timeout` is UNAVAILABLE `BUSY` (retryable);
    /// anything else is internal. Unique violations that mean ALREADY_EXISTS
    /// are mapped by the store, which knows its constraint names.
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if matches!(db.code().as_deref(), Some("40001" | "40P01")) => Self::Conflict,
            sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03") => Self::Unavailable {
                reason: "BUSY",
                message: "other changes hold what this one needs; retry shortly".to_owned(),
                retry_after: Duration::from_secs(1),
            },
            // Postgres text cannot hold U+0000; whichever field carried it, it is the caller's input.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("22021") => Self::InvalidArgument {
                violations: vec![FieldViolation::new("*", "INVALID_CHARACTERS", "text fields cannot contain NUL (U+0000) characters")],
            },
            // A connection that drops while TLS is negotiated is reported as a
            // TLS error, or as a protocol error about the SSLRequest's answer.
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Self::database_unavailable(&err)
            }
            sqlx::Error::Protocol(message) if message.contains("SSLRequest") => Self::database_unavailable(&err),
            _ => Self::Internal(anyhow::Error::new(err).context("database error")),
        }
    }
}

impl Error {
    /// UNAVAILABLE `DATABASE_UNAVAILABLE`, retryable, for a connection-level failure.
    fn database_unavailable(err: &sqlx::Error) -> Self {
        tracing::warn!(error = %err, "database unavailable");
        Self::Unavailable {
            reason: "DATABASE_UNAVAILABLE",
            message: "the database is unavailable; retry later".to_owned(),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// The name of the unique/exclusion constraint a database error violated, if any.
pub fn violated_constraint(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => db.constraint(),
        _ => None,
    }
}

/// Result alias for service code.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The value of a REQUIRED message field, or INVALID_ARGUMENT `REQUIRED` naming it.
pub fn required<T>(value: Option<T>, field: &str) -> Result<T> {
    value.ok_or_else(|| Error::invalid(field, "REQUIRED", format!("{field} is required")))
}

/// Runs a gRPC handler body written against the kit's [`Result`] and converts
/// its outcome to the wire once, so handlers use `?` on every step and never
/// map errors by hand:
///
/// ```ignore
/// async fn get_team(&self, request: Request<pb::GetTeamRequest>) -> Result<Response<pb::GetTeamResponse>, Status> {
///     respond(async move { ... Ok(pb::GetTeamResponse { .. }) }).await
/// }
/// ```
pub async fn respond<T>(body: impl Future<Output = Result<T>>) -> std::result::Result<tonic::Response<T>, Status> {
    body.await.map(tonic::Response::new).map_err(Status::from)
}

/// A converter of the errors a response stream raises after its handler
/// returned (a download's later pages), into statuses of the domain of the
/// call that started it: those items are polled outside the request's scope.
pub fn stream_status() -> impl Fn(Error) -> Status + Send + Sync + Clone + 'static {
    let domain = ERROR_DOMAIN.try_with(|d| *d).unwrap_or(FALLBACK_DOMAIN);
    move |error| ERROR_DOMAIN.sync_scope(domain, || Status::from(error))
}

#[cfg(test)]
mod violation_limits {
    use tonic::Code;
    use tonic_types::StatusExt;

    use super::*;

    #[test]
    fn thousands_of_long_violations_still_make_a_small_status() {
        let violations =
            (0..2000).map(|i| FieldViolation::new(format!("items[{i}].{}", "x".repeat(500)), "BAD", "y".repeat(5000))).collect();
        let status: Status = Error::InvalidArgument { violations }.into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.details().len() < 16_000, "{} bytes of details", status.details().len());
        assert!(status.message().len() < 1_000);
        let listed = status.get_error_details().bad_request().unwrap().field_violations.clone();
        assert_eq!(listed.len(), MAX_VIOLATIONS + 1);
        assert_eq!(listed.last().unwrap().reason, "TOO_MANY_VIOLATIONS");
        assert!(listed[0].description.ends_with('…'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(err: Error) -> (Status, ErrorDetails) {
        let status: Status = err.into();
        let details = status.get_error_details();
        (status, details)
    }

    #[test]
    fn the_cause_chain_names_every_cause() {
        let err = Error::internal(anyhow::anyhow!("connection refused").context("loading the calendar"));
        assert_eq!(cause_chain(&err), "internal error: loading the calendar: connection refused");
    }

    #[test]
    fn every_status_carries_one_error_info_with_the_request_domain() {
        let status = futures::executor::block_on(ERROR_DOMAIN.scope("profiles.crm", async {
            Status::from(Error::NotFound { resource_type: "profiles.crm/Customer", name: "customers/x".into() })
        }));
        let info = status.get_error_details().error_info().cloned().expect("error info");
        assert_eq!(info.domain, "profiles.crm");
        assert_eq!(info.reason, "NOT_FOUND");
        assert_eq!(status.code(), Code::NotFound);
    }

    #[test]
    fn invalid_argument_lists_every_violation_with_its_reason() {
        let (status, details) = details(Error::InvalidArgument {
            violations: vec![
                FieldViolation::new("customer.display_name", "REQUIRED", "must not be empty"),
                FieldViolation::new("customer.emails[0].address", "INVALID_EMAIL", "not an address"),
            ],
        });
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = details.bad_request().expect("bad request");
        assert_eq!(bad.field_violations.len(), 2);
        assert_eq!(bad.field_violations[1].reason, "INVALID_EMAIL");
        assert_eq!(details.error_info().unwrap().reason, "INVALID_FIELDS");
        assert_eq!(status.message(), "customer.display_name: must not be empty (and 1 more invalid field(s); see BadRequest details)");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let (status, _) = details(Error::internal(anyhow::anyhow!("password=hunter2 leaked")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }

    #[test]
    fn unavailable_carries_retry_info() {
        let (status, details) =
            details(Error::Unavailable { reason: "DATABASE_UNAVAILABLE", message: "down".into(), retry_after: Duration::from_secs(2) });
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(details.retry_info().unwrap().retry_delay, Some(Duration::from_secs(2)));
    }
}
