//! Test support shared by every service's tests: a fresh Postgres database per
//! test (created by the service's owner role, migrated by the service itself),
//! access tokens, authorised requests, log capture, and a TCP proxy to cut a
//! service off from its database.
//!
//! Environment (written by `scripts/dev-db.sh`, exported by `make test`):
//! `<SERVICE>_DATABASE_URL` (login role) and `<SERVICE>_MIGRATION_DATABASE_URL`
//! (owner role with CREATEDB), e.g. `PROFILES_DATABASE_URL`.
//!
//! # Layout
//! - [`database`]: per-test databases.
//! - [`auth`]: tokens and authorised requests.
//! - [`events`]: reading a service's event stream.
//! - [`bench`]: load with N calls in flight, latency, CPU per call and RSS, pgbench references.
//! - [`process`]: real service processes (and the gateway) on free ports.
//! - [`nats`]: a real nats-server with JetStream; [`jetstream`]: what a stream holds.
//! - [`otlp`]: a real OTLP/gRPC collector that keeps spans and metrics.
//! - [`providers`]: real HTTP peers speaking Twilio's, Aliyun's and a signed webhook's wire formats.
//! - [`proxy`]: a TCP proxy that can drop every connection.
//! - [`rest`]: what a REST call through the gateway returned.
//! - [`smtp`]: a real SMTP server (aiosmtpd) that keeps what it receives.
//! - [`webhooks`]: a real HTTP receiver of webhooks, scripted per test.

pub mod auth;
pub mod bench;
pub mod database;
pub mod events;
pub mod fcm;
pub mod jetstream;
pub mod nats;
pub mod otlp;
mod peer;
pub mod postgres_tls;
pub mod process;
pub mod providers;
pub mod proxy;
pub mod rest;
pub mod smtp;
pub mod webhooks;

/// Installs a log subscriber once: to stdout when `TEST_LOG` is set, else to a sink.
pub fn init_test_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let format = crm_kit::config::LogFormat::Pretty;
        let filter = std::env::var("CRM_LOG").unwrap_or_else(|_| "info,sqlx=warn".into());
        let _ = if std::env::var_os("TEST_LOG").is_some() {
            tracing::subscriber::set_global_default(crm_kit::telemetry::get_subscriber(&filter, format, std::io::stdout, None))
        } else {
            tracing::subscriber::set_global_default(crm_kit::telemetry::get_subscriber(&filter, format, std::io::sink, None))
        };
    });
}
