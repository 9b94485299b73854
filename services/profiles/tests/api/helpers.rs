//! `spawn_app()` and friends.

use crm_kit::config::KitConfig;
use crm_profiles::{config::Config, startup::Application};
use crm_proto::crm::{
    common::v1::EmailAddress,
    events::v1::event_service_client::EventServiceClient,
    profiles::v1::{self as pb, customer_service_client::CustomerServiceClient, segment_service_client::SegmentServiceClient},
};
use crm_testkit::{
    auth::{jwt_secret, token, with_token},
    database::{TestDb, fresh_database},
    init_test_logs,
};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use tokio::{sync::oneshot, task::JoinHandle};
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;
use uuid::Uuid;

/// A running profiles service with clients and an admin token for one tenant.
pub struct TestApp {
    pub db: TestDb,
    pub tenant: Uuid,
    pub admin_token: String,
    pub channel: Channel,
    pub customers: CustomerServiceClient<Channel>,
    pub events: EventServiceClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customise: impl FnOnce(&mut Config)) -> TestApp {
    init_test_logs();
    let db = fresh_database("profiles").await.expect("test database");
    let mut config = Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        verification_poll_ms: 3_600_000,
        grading_poll_ms: 3_600_000,
        segment_sweep_ms: 3_600_000,
        duplicate_scan_ms: 3_600_000,
        import_poll_ms: 50,
        import_lease_ms: 30_000,
        import_max_bytes: 64 << 20,
        import_max_xlsx_bytes: 16 << 20,
        export_concurrency: 4,
        export_stale_secs: 300,
        import_retention_secs: 30 * 86_400,
        kit: KitConfig::for_tests(&db.app_url, &db.owner_url, &jwt_secret()),
    };
    customise(&mut config);
    let app = Application::build(config).await.expect("the service builds");
    let port = app.port();
    let (stop, stopped) = oneshot::channel();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.expect("connects");
    let tenant = Uuid::now_v7();
    TestApp {
        db,
        tenant,
        admin_token: token(tenant, &["admin"]),
        customers: CustomerServiceClient::new(channel.clone()),
        events: EventServiceClient::new(channel.clone()),
        channel,
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    /// `message` with the admin token of the app's tenant.
    pub fn admin<T>(&self, message: T) -> Request<T> {
        with_token(message, &self.admin_token)
    }

    /// `message` with a token of the app's tenant holding `roles`.
    pub fn as_roles<T>(&self, message: T, roles: &[&str]) -> Request<T> {
        with_token(message, &token(self.tenant, roles))
    }

    /// Creates `customer` as admin and returns it.
    pub async fn create(&self, customer: pb::Customer) -> pb::Customer {
        self.customers
            .clone()
            .create_customer(self.admin(pb::CreateCustomerRequest { customer: Some(customer), request_id: String::new() }))
            .await
            .expect("create succeeds")
            .into_inner()
            .customer
            .unwrap()
    }

    /// Gets a customer as admin.
    pub async fn get(&self, name: &str) -> Result<pb::Customer, Status> {
        Ok(self
            .customers
            .clone()
            .get_customer(self.admin(pb::GetCustomerRequest { name: name.into() }))
            .await?
            .into_inner()
            .customer
            .unwrap())
    }

    /// A direct connection as the service's login role (subject to RLS), for SQL-level assertions.
    pub async fn app_connection(&self) -> PgConnection {
        PgConnection::connect(&self.db.app_url).await.expect("app role connects")
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server stops cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A minimal valid customer.
pub fn customer(display_name: &str, email: &str) -> pb::Customer {
    pb::Customer {
        display_name: display_name.into(),
        emails: if email.is_empty() { vec![] } else { vec![EmailAddress { address: email.into(), label: "work".into(), primary: true }] },
        ..Default::default()
    }
}

/// The ErrorInfo reason and domain of a status (every error must carry one).
pub fn error_info(status: &Status) -> (String, String) {
    let info = status.get_error_details().error_info().cloned().unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
    (info.reason, info.domain)
}

/// Asserts the code and ErrorInfo reason of a failed call.
pub fn assert_error<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, reason: &str) -> Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(error_info(&status).0, reason, "{status:?}");
    status
}

/// The BadRequest field violations of a status as (field, reason).
pub fn violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.iter().map(|v| (v.field.clone(), v.reason.clone())).collect())
        .unwrap_or_default()
}

/// The real `crm-profiles` binary, started on a free port against a fresh database.
pub struct BinaryApp {
    pub process: crm_testkit::process::ServiceProcess,
    pub channel: Channel,
    pub admin_token: String,
}

/// Starts the binary with `extra_env` and waits until it accepts connections.
pub async fn spawn_binary(extra_env: &[(&str, String)]) -> BinaryApp {
    let db = fresh_database("profiles").await.unwrap();
    let process = crm_testkit::process::spawn_service(env!("CARGO_BIN_EXE_crm-profiles").into(), &db, extra_env).await;
    let channel = process.channel.clone();
    BinaryApp { process, channel, admin_token: token(Uuid::now_v7(), &["admin"]) }
}

impl BinaryApp {
    /// Sends SIGTERM and waits (at most 10 s) for a clean exit.
    pub async fn terminate(self) -> std::time::Duration {
        self.process.terminate().await
    }
}

/// A static segment named `name` with `members` (customer names), as the admin: its name.
pub async fn static_segment(app: &TestApp, name: &str, members: &[&str]) -> String {
    let segments = SegmentServiceClient::new(app.channel.clone());
    let segment = pb::Segment { display_name: name.into(), kind: pb::SegmentKind::Static as i32, ..Default::default() };
    let created = segments
        .clone()
        .create_segment(app.admin(pb::CreateSegmentRequest { segment: Some(segment), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .segment
        .unwrap();
    let add = pb::AddSegmentMembersRequest { segment: created.name.clone(), customers: members.iter().map(|m| m.to_string()).collect() };
    segments.clone().add_segment_members(app.admin(add)).await.unwrap();
    created.name
}

/// A transaction of the service's login role inside `tenant` (row security applies).
pub async fn inside(pool: &PgPool, tenant: Uuid) -> Transaction<'static, Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(tenant.to_string()).execute(&mut *tx).await.unwrap();
    tx
}
