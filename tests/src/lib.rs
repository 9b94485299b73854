//! Cross-service scenarios against the suite as real processes: the
//! crm-profiles, crm-tickets, crm-campaigns and crm-gateway binaries of the workspace, each
//! service on a fresh database, the gateway reached over plain HTTP the way a
//! mobile app reaches it. Nothing runs in-process, so a scenario sees exactly
//! what a deployed suite would do with the same requests.
//!
//! The binaries are looked up next to the test executable
//! ([`crm_testkit::process::binary`]): `make test` builds them (it runs
//! `cargo test --workspace --all-targets`); `cargo test -p crm-e2e` alone does
//! not, so run `cargo build --bins` first.
//!
//! # Layout
//! - [`spawn_suite`], [`spawn_suite_with`]: start the three processes.
//! - [`Suite`]: the running suite, tokens of its tenant and REST calls.
//! - [`Reply`]: what a REST call returned, with its error details (the testkit's).
//! - [`path`]: the REST path of a resource name.
//! - [`marketing`]: profiles, campaigns and a gateway for marketing scenarios.

pub mod marketing;

pub use crm_testkit::rest::Reply;
use crm_testkit::{
    auth::{claims, token_with},
    database::fresh_database,
    process::{ServiceProcess, binary, spawn_gateway, spawn_service, terminate},
};
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

/// The suite as three processes; every one is killed when this is dropped.
pub struct Suite {
    /// The gateway's base URL, e.g. `http://127.0.0.1:40123`.
    pub base: String,
    /// A client for [`Suite::base`].
    pub http: reqwest::Client,
    /// The tenant every token of [`Suite::token`] belongs to (tenants need no set-up).
    pub tenant: Uuid,
    /// The gateway process.
    pub gateway: tokio::process::Child,
    /// The tickets process (its channel reaches its gRPC API directly, e.g. the event stream).
    pub tickets: ServiceProcess,
    /// The profiles process.
    pub profiles: ServiceProcess,
}

/// Starts the suite with its defaults.
pub async fn spawn_suite() -> Suite {
    spawn_suite_with(&[]).await
}

/// Starts profiles, tickets (calling that profiles) and a gateway in front of
/// both, every process with `extra_env` on top of what the suite needs, and
/// waits until the gateway reports every backend ready.
pub async fn spawn_suite_with(extra_env: &[(&str, String)]) -> Suite {
    let profiles = spawn_service(binary("crm-profiles"), &fresh_database("profiles").await.expect("a profiles database"), extra_env).await;
    let mut tickets_env = extra_env.to_vec();
    tickets_env.push(("CRM_PROFILES_URL", profiles.url.clone()));
    let tickets = spawn_service(binary("crm-tickets"), &fresh_database("tickets").await.expect("a tickets database"), &tickets_env).await;
    let backends = format!("crm.profiles.v1={},crm.tickets.v1={}", profiles.url, tickets.url);
    let (gateway, base) = spawn_gateway(&backends, extra_env).await;
    Suite { base, http: reqwest::Client::new(), tenant: Uuid::now_v7(), gateway, tickets, profiles }
}

impl Suite {
    /// A token of the suite's tenant for `subject` with `roles`.
    pub fn token(&self, subject: &str, roles: &[&str]) -> String {
        token_with(&claims(subject, self.tenant, roles))
    }

    /// The token a customer app holds: role `customer`, subject `customer` (`customers/{id}`).
    pub fn customer_token(&self, customer: &str) -> String {
        self.token(customer, &["customer"])
    }

    /// Sends `method path` with `token` as the bearer (none for a public
    /// method) and `body` as JSON (if any).
    pub async fn call(&self, token: Option<&str>, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        Reply::read(request.send().await.expect("the gateway answers")).await
    }

    /// `GET path` as the holder of `token`.
    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.call(Some(token), Method::GET, path, None).await
    }

    /// `POST path` with `body` as the holder of `token`.
    pub async fn post(&self, token: &str, path: &str, body: &Value) -> Reply {
        self.call(Some(token), Method::POST, path, Some(body)).await
    }

    /// Stops the gateway, then tickets, then profiles with SIGTERM, each
    /// waited for: callers go first so that no call is cut off, and a clean
    /// exit is when a process flushes its telemetry.
    pub async fn terminate(self) {
        terminate(self.gateway).await;
        self.tickets.terminate().await;
        self.profiles.terminate().await;
    }
}

/// Fails the test, with the body, unless the reply is a 200.
#[track_caller]
pub fn assert_ok(reply: &Reply) {
    assert_eq!(reply.status, reqwest::StatusCode::OK, "{:#}", reply.body);
}

/// The REST path of a resource name: `customers/x` → `/v1/customers/x`.
pub fn path(name: &Value) -> String {
    format!("/v1/{}", name.as_str().unwrap_or_else(|| panic!("a resource name, not {name}")))
}
