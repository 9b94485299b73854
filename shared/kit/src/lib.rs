//! `crm-kit`: what every CRM service gets by calling one builder, so that all
//! services behave the same — config, Postgres with RLS tenancy, auth, errors,
//! telemetry, paging, filtering, idempotency and the event outbox.
//!
//! # Layout
//! - [`server`]: `Kit::connect` + `Kit::serve` (health, reflection, middleware, shutdown).
//! - [`config`]: shared `CRM_*` settings.
//! - [`db`]: pool, migrations, grants, tenant transactions, DB spans.
//! - [`auth`]: JWT validation, roles, permissions.
//! - [`client`]: calls to other services (deadline, token, trace, retries with a budget).
//! - [`egress`]: outbound connections to tenant-configured hosts, safe from SSRF.
//! - [`resource`]: resource names and the errors that name a resource.
//! - [`error`]: the error type and its one mapping to `tonic::Status`.
//! - [`telemetry`]: JSON logs, OTLP span and metric export, trace-context helpers.
//! - [`metrics`]: RED metrics per RPC and pool gauges (semconv names).
//! - [`pagination`], [`etag`], [`fieldmask`], [`filter`]: AIP request helpers.
//! - [`link`]: signed tokens for links followed without a login (surveys, unsubscribe).
//! - [`mask`]: personal data masked for callers without `pii` and for logs.
//! - [`sealed`]: secrets encrypted at rest (provider credentials, webhook secrets).
//! - [`idempotency`], [`outbox`]: request ids and the transactional outbox/event stream.
//! - [`retention`]: how long the outbox keeps events.
//! - [`relay`]: the optional NATS JetStream relay of every committed event.
//! - [`webhooks`]: the service's events delivered to tenants' URLs, signed, with replay.

pub mod auth;
pub mod client;
pub mod config;
pub mod customer_changes;
pub mod db;
pub mod egress;
pub mod error;
pub mod etag;
pub mod fieldmask;
pub mod filter;
pub mod follow;
pub mod history;
pub mod idempotency;
pub mod jobs;
pub mod leased;
pub mod link;
pub mod mask;
pub mod metrics;
mod middleware;
pub mod money;
pub mod outbox;
pub mod pagination;
pub mod protoenum;
pub mod relay;
pub mod resource;
pub mod retention;
pub mod sealed;
pub mod server;
mod status_body;
pub mod telemetry;
pub mod time;
pub mod webhooks;

pub use error::{Error, FieldViolation, Result, required, respond};
