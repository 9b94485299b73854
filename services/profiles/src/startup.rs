//! Builds the profiles service: the kit's runtime plus CustomerService and the
//! event stream.

use crm_kit::server::{Kit, Server, ServiceSpec};
use crm_proto::crm::profiles::v1::customer_service_server::CustomerServiceServer;
use sqlx::migrate::Migrator;

use crate::{api::CustomerApi, app::App, config::Config};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What the kit needs to know about this service.
pub static SPEC: ServiceSpec = ServiceSpec { name: "profiles", error_domain: "profiles.crm", migrator: &MIGRATOR, token_methods: &[] };

/// A built, bound profiles service.
pub struct Application {
    server: Server,
}

impl Application {
    /// Connects, migrates and binds; the server starts with [`Application::run_until_stopped`].
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let kit = Kit::connect(&SPEC, config.kit).await?;
        let app = App::new(kit.pool.clone());
        let services = crm_kit::register_services!(kit, CustomerServiceServer::new(CustomerApi::new(app, kit.page_tokens.clone())));
        let server = kit.serve(services, config.listen_addr).await?;
        Ok(Self { server })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Serves until `shutdown` resolves, then drains gracefully.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        self.server.run_until_stopped(shutdown).await
    }
}
