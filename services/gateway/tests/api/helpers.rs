//! `spawn_gateway()`: the suite behind a gateway, and an HTTP client for it.

use crm_gateway::{config::Config, startup::Application};
use crm_testkit::{
    auth::{jwt_secret, token},
    database::fresh_database,
    init_test_logs,
    process::{ServiceProcess, binary, spawn_service},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Profiles and tickets as real processes, the gateway in-process.
pub struct TestGateway {
    pub base: String,
    pub http: reqwest::Client,
    pub tenant: Uuid,
    pub admin_token: String,
    /// Held so that the process lives (and is killed) with the gateway.
    _profiles: ServiceProcess,
    pub tickets: Option<ServiceProcess>,
    stop: Option<oneshot::Sender<()>>,
}

pub use crm_testkit::rest::Reply;

pub async fn spawn_gateway() -> TestGateway {
    spawn_gateway_with(|_| {}).await
}

pub async fn spawn_gateway_with(customise: impl FnOnce(&mut Config)) -> TestGateway {
    spawn_gateway_with_profiles_env(&[], customise).await
}

/// The suite with `profiles_env` set for the profiles process (e.g. a short
/// import poll), the gateway `customise`d.
pub async fn spawn_gateway_with_profiles_env(profiles_env: &[(&str, String)], customise: impl FnOnce(&mut Config)) -> TestGateway {
    init_test_logs();
    let profiles_db = fresh_database("profiles").await.unwrap();
    let profiles = spawn_service(binary("crm-profiles"), &profiles_db, profiles_env).await;
    let tickets_db = fresh_database("tickets").await.unwrap();
    // Webhook receivers in tests live on loopback.
    let tickets_env = [("CRM_PROFILES_URL", profiles.url.clone()), ("CRM_OUTBOUND_ALLOW_PRIVATE", "true".to_owned())];
    let tickets = spawn_service(binary("crm-tickets"), &tickets_db, &tickets_env).await;
    let mut config = Config::for_tests(&format!("crm.profiles.v1={},crm.tickets.v1={}", profiles.url, tickets.url), &jwt_secret());
    customise(&mut config);
    let app = Application::build(config).await.expect("the gateway builds");
    let port = app.port();
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let tenant = Uuid::now_v7();
    TestGateway {
        base: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        tenant,
        admin_token: token(tenant, &["admin"]),
        _profiles: profiles,
        tickets: Some(tickets),
        stop: Some(stop),
    }
}

impl TestGateway {
    /// Signals shutdown, as SIGTERM does: the drain period starts.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// A token of the gateway's tenant with `roles`.
    pub fn token(&self, roles: &[&str]) -> String {
        token(self.tenant, roles)
    }

    /// Sends `method path` with `body` as JSON (if any) and the admin token.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_with(method, path, body, &[("authorization", format!("Bearer {}", self.admin_token))]).await
    }

    /// Sends a request with exactly the given headers.
    pub async fn call_with(&self, method: Method, path: &str, body: Option<Value>, headers: &[(&str, String)]) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        reply(request.send().await.expect("the gateway answers")).await
    }

    /// Sends a raw body.
    pub async fn call_raw(&self, method: Method, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.admin_token))
            .header("content-type", "application/json")
            .body(body);
        reply(request.send().await.expect("the gateway answers")).await
    }

    /// Creates a customer through the gateway and returns it.
    pub async fn create_customer(&self, display_name: &str, email: &str) -> Value {
        let reply = self
            .call(
                Method::POST,
                "/v1/customers",
                Some(json!({"displayName": display_name, "emails": [{"address": email, "primary": true}]})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:#}", reply.body);
        reply.body.clone()
    }
}

/// Reads a whole response.
pub async fn reply(response: reqwest::Response) -> Reply {
    Reply::read(response).await
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}

/// The path of a resource name: `customers/x` → `/v1/customers/x`.
pub fn path(name: &Value) -> String {
    format!("/v1/{}", name.as_str().expect("a name"))
}
