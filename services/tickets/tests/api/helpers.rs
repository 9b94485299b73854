//! `spawn_app()`: a real profiles process plus the tickets service in-process.

use crm_kit::config::KitConfig;
use crm_proto::crm::{
    profiles::v1::{self as profiles, customer_service_client::CustomerServiceClient},
    tickets::v1::{self as pb, ticket_service_client::TicketServiceClient},
};
use crm_testkit::{
    auth::{jwt_secret, token, with_token},
    database::fresh_database,
    init_test_logs,
    process::{ServiceProcess, binary, spawn_service},
};
use crm_tickets::{config::Config, startup::Application};
use tokio::sync::oneshot;
use tonic::{Code, Request, Status, transport::Channel};
use tonic_types::StatusExt;
use uuid::Uuid;

/// Tickets (in-process) and profiles (a real process) for one tenant.
pub struct TestApp {
    pub tenant: Uuid,
    pub admin_token: String,
    pub tickets: TicketServiceClient<Channel>,
    /// Channel to the tickets service (for other clients such as TeamService).
    pub channel: Channel,
    pub customers: CustomerServiceClient<Channel>,
    /// Channel to the profiles service (for its other clients, such as MergeService).
    pub profiles: Channel,
    /// The tickets database and the profiles URL, for extra replicas.
    db: crm_testkit::database::TestDb,
    profiles_url: String,
    /// Held so that the profiles process lives (and is killed) with the suite.
    _profiles: Option<ServiceProcess>,
    stop: Option<oneshot::Sender<()>>,
}

pub async fn spawn_app() -> TestApp {
    let profiles_db = fresh_database("profiles").await.unwrap();
    let profiles = spawn_service(binary("crm-profiles"), &profiles_db, &[]).await;
    let url = profiles.url.clone();
    spawn_tickets(Some(profiles), url).await
}

/// Tickets pointed at `profiles_url`, with `profiles` kept alive alongside.
pub async fn spawn_tickets(profiles: Option<ServiceProcess>, profiles_url: String) -> TestApp {
    init_test_logs();
    let db = fresh_database("tickets").await.unwrap();
    let config = Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        profiles_url: profiles_url.clone(),
        profiles_timeout_ms: 1000,
        sla_check_interval_ms: 100,
        follow_up_delay_minutes: 0,
        kit: KitConfig::for_tests(&db.app_url, &db.owner_url, &jwt_secret()),
    };
    let app = Application::build(config).await.expect("tickets builds");
    let port = app.port();
    let (stop, stopped) = oneshot::channel();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
    let customers_channel = match &profiles {
        Some(p) => p.channel.clone(),
        None => channel.clone(),
    };
    let tenant = Uuid::now_v7();
    TestApp {
        tenant,
        admin_token: token(tenant, &["admin"]),
        tickets: TicketServiceClient::new(channel.clone()),
        channel,
        customers: CustomerServiceClient::new(customers_channel.clone()),
        profiles: customers_channel,
        db,
        profiles_url,
        _profiles: profiles,
        stop: Some(stop),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestApp {
    /// URL of the tickets service's login role on its test database (for SQL-level checks).
    pub fn app_database_url(&self) -> &str {
        &self.db.app_url
    }

    /// Starts another tickets replica on the same database (its jobs compete with the first's).
    pub async fn replica(&self) -> oneshot::Sender<()> {
        let config = Config {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            profiles_url: self.profiles_url.clone(),
            profiles_timeout_ms: 1000,
            sla_check_interval_ms: 100,
            follow_up_delay_minutes: 0,
            kit: KitConfig::for_tests(&self.db.app_url, &self.db.owner_url, &jwt_secret()),
        };
        let app = Application::build(config).await.expect("replica builds");
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        stop
    }

    pub fn admin<T>(&self, message: T) -> Request<T> {
        with_token(message, &self.admin_token)
    }

    pub fn as_roles<T>(&self, message: T, roles: &[&str]) -> Request<T> {
        with_token(message, &token(self.tenant, roles))
    }

    /// Creates a customer in profiles and returns its name.
    pub async fn customer(&self, name: &str) -> String {
        self.customer_in(name, profiles::CustomerCategory::Unspecified).await
    }

    /// Creates a customer of `category` in profiles and returns its name.
    pub async fn customer_in(&self, name: &str, category: profiles::CustomerCategory) -> String {
        let request = self.admin(profiles::CreateCustomerRequest {
            customer: Some(profiles::Customer { display_name: name.into(), category: category as i32, ..Default::default() }),
            request_id: String::new(),
        });
        self.customers.clone().create_customer(request).await.unwrap().into_inner().customer.unwrap().name
    }

    /// Opens a ticket for `customer` as admin.
    pub async fn open(&self, customer: &str, subject: &str) -> pb::Ticket {
        let ticket = pb::Ticket { customer: customer.into(), subject: subject.into(), ..Default::default() };
        self.tickets
            .clone()
            .create_ticket(self.admin(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }))
            .await
            .unwrap()
            .into_inner()
            .ticket
            .unwrap()
    }

    /// Gets a ticket as admin.
    pub async fn get(&self, name: &str) -> pb::Ticket {
        self.tickets.clone().get_ticket(self.admin(pb::GetTicketRequest { name: name.into() })).await.unwrap().into_inner().ticket.unwrap()
    }

    /// A ticket's timeline, as admin.
    pub async fn timeline(&self, name: &str) -> Vec<pb::TicketEvent> {
        self.tickets
            .clone()
            .list_ticket_events(self.admin(pb::ListTicketEventsRequest { page_size: 0, page_token: String::new(), parent: name.into() }))
            .await
            .unwrap()
            .into_inner()
            .events
    }

    /// Adds a public reply (or an internal note) as admin.
    pub async fn comment(&self, name: &str, body: &str, public: bool) {
        let comment = pb::Comment { body: body.into(), public, ..Default::default() };
        self.tickets
            .clone()
            .add_comment(self.admin(pb::AddCommentRequest { request_id: String::new(), parent: name.into(), comment: Some(comment) }))
            .await
            .unwrap();
    }

    /// A ticket's comments (internal notes included), as admin.
    pub async fn comments(&self, name: &str) -> Vec<pb::Comment> {
        let request =
            self.admin(pb::ListCommentsRequest { page_size: 0, page_token: String::new(), parent: name.into(), include_internal: true });
        self.tickets.clone().list_comments(request).await.unwrap().into_inner().comments
    }

    /// Moves a ticket as admin.
    pub async fn transition(&self, name: &str, status: pb::Status) -> Result<pb::Ticket, Status> {
        let request = self.admin(pb::TransitionTicketRequest {
            name: name.into(),
            status: status as i32,
            etag: String::new(),
            reason: String::new(),
        });
        Ok(self.tickets.clone().transition_ticket(request).await?.into_inner().ticket.unwrap())
    }
}

/// Asserts the code and ErrorInfo reason of a failed call.
pub fn assert_error<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, reason: &str) -> Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "{status:?}");
    let info = status.get_error_details().error_info().cloned().unwrap_or_else(|| panic!("no ErrorInfo on {status:?}"));
    assert_eq!(info.reason, reason, "{status:?}");
    assert_eq!(info.domain, "tickets.crm");
    status
}
