//! RED metrics and connection-pool gauges through the global OpenTelemetry
//! meter provider: exported over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
//! (see [`crate::telemetry::init`]), a no-op otherwise. Names and attributes
//! follow semantic conventions v1.34.0:
//!
//! - `rpc.server.duration` (histogram, ms): `rpc.system`, `rpc.service`,
//!   `rpc.method`, `rpc.grpc.status_code` — request rate, errors by code and
//!   latency per method in one instrument;
//! - `http.server.request.duration` (histogram, s, the gateway): `http.request.method`,
//!   `http.route`, `http.response.status_code`;
//! - `crm.outbox.lag` (histogram, s): how long an event waited between its
//!   commit and its first delivery to a subscriber;
//! - `db.client.connection.count` (gauge): `db.client.connection.state`
//!   (`used` | `idle`), `db.client.connection.pool.name`.
//! - `db.client.connection.pending_requests` (gauge): callers waiting for a
//!   pooled connection (counted around the acquire), `db.client.connection.pool.name`.

use std::{sync::OnceLock, time::Duration};

use opentelemetry::{
    KeyValue, global,
    metrics::{Histogram, ObservableGauge},
};
use sqlx::PgPool;

/// Bucket bounds in ms: fine below 10 ms where most calls land, up to the default deadline.
const DURATION_BOUNDS_MS: [f64; 14] = [0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0];

fn rpc_duration() -> &'static Histogram<f64> {
    // Created on first use, which is after `telemetry::init` installed the provider.
    static DURATION: OnceLock<Histogram<f64>> = OnceLock::new();
    DURATION.get_or_init(|| {
        global::meter("crm-kit")
            .f64_histogram("rpc.server.duration")
            .with_unit("ms")
            .with_description("Duration of inbound RPCs, by method and gRPC status code")
            .with_boundaries(DURATION_BOUNDS_MS.to_vec())
            .build()
    })
}

/// Records one finished (or rejected) call of `path` ("/pkg.Service/Method").
pub fn record_rpc(path: &str, code: i32, elapsed: Duration) {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    rpc_duration().record(
        elapsed.as_secs_f64() * 1000.0,
        &[
            KeyValue::new("rpc.system", "grpc"),
            KeyValue::new("rpc.service", service.to_owned()),
            KeyValue::new("rpc.method", method.to_owned()),
            KeyValue::new("rpc.grpc.status_code", i64::from(code)),
        ],
    );
}

fn http_duration() -> &'static Histogram<f64> {
    static DURATION: OnceLock<Histogram<f64>> = OnceLock::new();
    DURATION.get_or_init(|| {
        global::meter("crm-kit")
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of inbound HTTP requests, by route and status")
            .with_boundaries(DURATION_BOUNDS_MS.iter().map(|ms| ms / 1000.0).collect())
            .build()
    })
}

/// Records one HTTP request answered for `route` (the template, never the raw path).
pub fn record_http(method: &str, route: &str, status: u16, elapsed: Duration) {
    http_duration().record(
        elapsed.as_secs_f64(),
        &[
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("http.route", route.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ],
    );
}

fn outbox_lag() -> &'static Histogram<f64> {
    static LAG: OnceLock<Histogram<f64>> = OnceLock::new();
    LAG.get_or_init(|| {
        global::meter("crm-kit")
            .f64_histogram("crm.outbox.lag")
            .with_unit("s")
            .with_description("Time from an event's commit to its first delivery to a subscriber")
            .with_boundaries(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, 3600.0])
            .build()
    })
}

/// Records the wait of events first delivered now.
pub fn record_outbox_lag(waits_seconds: &[f64]) {
    for wait in waits_seconds {
        outbox_lag().record(wait.max(0.0), &[]);
    }
}

/// Reports the pool's used and idle connections, and the callers waiting
/// for one, at every collection; keep the returned gauges as long as the pool lives.
pub fn observe_pool(pool: PgPool, name: &'static str) -> (ObservableGauge<i64>, ObservableGauge<i64>) {
    let meter = global::meter("crm-kit");
    let connections = meter
        .i64_observable_gauge("db.client.connection.count")
        .with_unit("{connection}")
        .with_description("Connections of the service's Postgres pool, by state")
        .with_callback(move |observer| {
            let (size, idle) = (i64::from(pool.size()), pool.num_idle() as i64);
            let pool_name = KeyValue::new("db.client.connection.pool.name", name);
            observer.observe(size - idle, &[KeyValue::new("db.client.connection.state", "used"), pool_name.clone()]);
            observer.observe(idle, &[KeyValue::new("db.client.connection.state", "idle"), pool_name]);
        })
        .build();
    // Above zero for long: the pool is too small for the load (or connections are held too long).
    let waiting = meter
        .i64_observable_gauge("db.client.connection.pending_requests")
        .with_unit("{request}")
        .with_description("Callers waiting for a connection of the service's Postgres pool")
        .with_callback(move |observer| {
            observer.observe(crate::db::waiting_for_connection(), &[KeyValue::new("db.client.connection.pool.name", name)]);
        })
        .build();
    (connections, waiting)
}
