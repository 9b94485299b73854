//! The builder every service calls: [`Kit::connect`] (config → pool,
//! migrations, auth, page tokens, outbox listener) and [`Kit::serve`] (bind,
//! health, reflection, middleware, graceful shutdown).
//!
//! Shutdown sequence when the shutdown future resolves: health turns
//! NOT_SERVING; the server keeps serving for the drain period so that load
//! balancers notice; event streams end; the listener closes and in-flight
//! calls finish; after the grace period the process stops waiting.

use std::{
    borrow::Cow,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crm_proto::crm::{events::v1::event_service_server::EventServiceServer, webhooks::v1::webhook_service_server::WebhookServiceServer};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{PgPool, migrate::Migrator};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, broadcast, oneshot, watch},
};
use tonic::{service::Routes, transport::server::TcpIncoming};
use tonic_health::{ServingStatus, server::HealthReporter};
use uuid::Uuid;

use crate::{
    auth::Authenticator,
    config::KitConfig,
    db,
    middleware::{MiddlewareLayer, MiddlewareState},
    outbox::{self, EventStreamService},
    pagination::PageTokenCodec,
};

/// The kit's own migrations (outbox, idempotency keys), versions below 1000;
/// services number theirs from 1001.
static KIT_MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What the kit needs to know about a service.
#[derive(Debug)]
pub struct ServiceSpec {
    /// Short name, e.g. "profiles": the event source and the OTel service name.
    pub name: &'static str,
    /// ErrorInfo domain, e.g. "profiles.crm".
    pub error_domain: &'static str,
    /// The service's own migrations.
    pub migrator: &'static Migrator,
    /// Full method paths (e.g. "/crm.tickets.v1.SurveyService/AnswerSurvey")
    /// that carry their own one-time token in the request and so take no
    /// bearer token; everything else needs one.
    pub token_methods: &'static [&'static str],
}

/// Everything a service's handlers share.
pub struct Kit {
    /// The service.
    pub spec: &'static ServiceSpec,
    /// Its settings.
    pub config: KitConfig,
    /// Pool of the service's (non-owner) login role.
    pub pool: PgPool,
    /// Page-token signer.
    pub page_tokens: PageTokenCodec,
    auth: Arc<Authenticator>,
    shutdown: watch::Sender<bool>,
    wakeups: broadcast::Sender<Uuid>,
}

impl Kit {
    /// Validates auth settings, connects to Postgres, runs migrations (kit's and
    /// the service's) as the schema owner, and starts the outbox listener.
    pub async fn connect(spec: &'static ServiceSpec, config: KitConfig) -> anyhow::Result<Self> {
        config.webhooks.check()?;
        let auth = Arc::new(authenticator(&config)?);
        let page_tokens = PageTokenCodec::new(&page_token_key(&config));
        let pool = db::connect(&config).await?;
        // Instruments have no Drop: the callback lives as long as the meter provider.
        let _ = crate::metrics::observe_pool(pool.clone(), spec.name);
        match &config.migration_database_url {
            Some(owner_url) => {
                db::migrate(db::connect_options(owner_url.expose(), &config)?, &with_kit_migrations(spec.migrator), &pool).await?
            }
            None => tracing::info!("CRM_MIGRATION_DATABASE_URL unset: not running migrations"),
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let wakeups = outbox::spawn_listener(pool.clone(), shutdown_rx.clone());
        let kit = Self { spec, config, pool, page_tokens, auth, shutdown, wakeups };
        kit.start_event_jobs(shutdown_rx.clone());
        crate::relay::Relay::start(kit.pool.clone(), spec.name, kit.config.relay.clone(), kit.wakeups.clone(), shutdown_rx).await?;
        Ok(kit)
    }

    /// Starts what every service runs over its outbox: webhook delivery and the retention job.
    fn start_event_jobs(&self, shutdown: watch::Receiver<bool>) {
        let settings = self.config.webhooks.clone();
        crate::webhooks::dispatch::Dispatcher::spawn(
            self.pool.clone(),
            self.spec.name,
            settings.clone(),
            self.config.outbound_allow_private,
            self.secret_cipher(),
            self.wakeups.clone(),
            shutdown.clone(),
        );
        let pool = self.pool.clone();
        let retention = Duration::from_secs(u64::from(settings.outbox_retention_days) * 86_400);
        crate::jobs::every(Duration::from_millis(settings.outbox_prune_poll_ms), shutdown, "outbox-retention", move || {
            let pool = pool.clone();
            async move { crate::retention::prune_round(&pool, retention, chrono::Utc::now()).await.map(drop) }
        });
    }

    /// The cipher of secrets at rest: `CRM_CREDENTIALS_KEY`, else a key
    /// derived from the JWT secret. (The label predates webhooks, whose
    /// secrets share the key: changing it would strand stored credentials.)
    pub fn secret_cipher(&self) -> crate::sealed::SecretCipher {
        match &self.config.credentials_key {
            Some(key) => crate::sealed::SecretCipher::new(key.expose().as_bytes()),
            None => crate::sealed::SecretCipher::new(&derived_key(&self.config, b"crm provider credentials")),
        }
    }

    /// Where this service reads other services' events ([`crate::follow`]):
    /// their JetStream streams with `CRM_FOLLOW_JETSTREAM` (which needs
    /// `CRM_NATS_URL`), else their Subscribe streams.
    pub async fn follow_transport(&self) -> anyhow::Result<crate::follow::Transport> {
        if !self.config.relay.follow_jetstream {
            return Ok(crate::follow::Transport::Subscribe);
        }
        let url = self.config.relay.nats_url.as_deref().ok_or_else(|| anyhow::anyhow!("CRM_FOLLOW_JETSTREAM needs CRM_NATS_URL"))?;
        let client = async_nats::ConnectOptions::new()
            .name(format!("crm-{}-follow", self.spec.name))
            .retry_on_initial_connect()
            .connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("CRM_NATS_URL {url:?}: {e}"))?;
        Ok(crate::follow::Transport::JetStream { context: Box::new(async_nats::jetstream::new(client)), consumer: self.spec.name })
    }

    /// Turns true when the service starts shutting down; background jobs stop on it.
    pub fn shutdown_receiver(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The set of gRPC services this process serves, holding the event stream
    /// of its outbox (`crm.events.v1.EventService`) and its webhooks
    /// (`crm.webhooks.v1.WebhookService`) already; add the service's
    /// own with [`register_services!`](crate::register_services).
    pub fn services(&self) -> Services {
        let events = EventServiceServer::new(EventStreamService::new(
            self.pool.clone(),
            self.spec.name,
            self.wakeups.clone(),
            self.shutdown.subscribe(),
        ))
        .max_decoding_message_size(self.config.max_message_bytes);
        let webhooks = WebhookServiceServer::new(crate::webhooks::api::WebhookApi::new(
            self.pool.clone(),
            self.page_tokens.clone(),
            self.secret_cipher(),
            self.config.outbound_allow_private,
        ))
        .max_decoding_message_size(self.config.max_message_bytes);
        let mut services = Services { routes: Routes::default(), names: Vec::new() };
        services.add(events);
        services.add(webhooks);
        services
    }

    /// Binds `addr` (port 0 picks a free port) and prepares to serve
    /// `services` with health, reflection and the middleware.
    pub async fn serve(self, services: Services, addr: SocketAddr) -> anyhow::Result<Server> {
        let Services { routes, names } = services;
        let listener = TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding {addr}: {e}"))?;
        let local_addr = listener.local_addr()?;
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crm_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        let mut reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crm_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        // Advertise only what this process serves, though the descriptor set holds every service.
        let reflection = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"];
        for name in names.iter().chain(&reflection) {
            reflection_v1 = reflection_v1.with_service_name(*name);
            reflection_v1alpha = reflection_v1alpha.with_service_name(*name);
        }
        let routes =
            routes.add_service(health_service).add_service(reflection_v1.build_v1()?).add_service(reflection_v1alpha.build_v1alpha()?);
        let middleware = MiddlewareLayer(Arc::new(MiddlewareState {
            auth: self.auth.clone(),
            in_flight: Arc::new(Semaphore::new(self.config.max_in_flight)),
            error_domain: self.spec.error_domain,
            token_methods: self.spec.token_methods,
            local_addr,
            request_timeout: self.config.request_timeout(),
        }));
        Ok(Server { kit: self, listener, local_addr, routes, middleware, health, names })
    }
}

/// The gRPC services of one process. Every service added here is routed and
/// announced in health and reflection; [`register_services!`](crate::register_services)
/// also applies the kit's message-size limit, so a service cannot forget either.
pub struct Services {
    routes: Routes,
    names: Vec<&'static str>,
}

impl Services {
    /// Routes `service` and lists it for health and reflection. Prefer
    /// [`register_services!`](crate::register_services), which applies the size limit first.
    pub fn add<S>(&mut self, service: S) -> &mut Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>, Error = std::convert::Infallible>
            + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes = std::mem::take(&mut self.routes).add_service(service);
        self.names.push(S::NAME);
        self
    }
}

/// Adds generated tonic servers to `kit`'s [`Services`], each with the kit's
/// decoding limit (`CRM_MAX_MESSAGE_BYTES`), and returns the set:
///
/// ```ignore
/// let services = crm_kit::register_services!(kit, TicketServiceServer::new(tickets), TeamServiceServer::new(teams));
/// let server = kit.serve(services, addr).await?;
/// ```
#[macro_export]
macro_rules! register_services {
    ($kit:expr, $($server:expr),+ $(,)?) => {{
        let kit: &$crate::server::Kit = &$kit;
        let mut services = kit.services();
        $( services.add($server.max_decoding_message_size(kit.config.max_message_bytes)); )+
        services
    }};
}

/// A bound, not yet running server.
pub struct Server {
    kit: Kit,
    listener: TcpListener,
    local_addr: SocketAddr,
    routes: Routes,
    middleware: MiddlewareLayer,
    health: HealthReporter,
    names: Vec<&'static str>,
}

impl Server {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// Serves until `shutdown` resolves, then drains and stops (see the module docs).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { kit, listener, local_addr, routes, middleware, health, names } = self;
        let names: Arc<[&'static str]> = names.into();
        let config = &kit.config;
        let draining = Arc::new(AtomicBool::new(false));
        set_health(&health, &names, ServingStatus::Serving).await;
        tokio::spawn(watch_database(kit.pool.clone(), health.clone(), names.clone(), draining.clone(), kit.shutdown.subscribe()));

        let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
        let signal = {
            let health = health.clone();
            let drain = Duration::from_millis(config.shutdown_drain_ms);
            let streams = kit.shutdown.clone();
            let names = names.clone();
            async move {
                shutdown.await;
                tracing::info!(drain_ms = drain.as_millis() as u64, "shutting down: draining");
                draining.store(true, Ordering::SeqCst);
                set_health(&health, &names, ServingStatus::NotServing).await;
                tokio::time::sleep(drain).await;
                let _ = streams.send(true);
                let _ = stopping_tx.send(());
                tracing::info!("closing the listener; finishing in-flight calls");
            }
        };

        tracing::info!(address = %local_addr, service = kit.spec.name, "serving");
        let serve = tonic::transport::Server::builder()
            .max_concurrent_streams(config.max_concurrent_streams)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .layer(middleware)
            .add_routes(routes)
            // A custom listener does not inherit the builder's TCP options: without
            // TCP_NODELAY, Nagle + delayed ACK adds ~40 ms to every small response.
            .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), signal);
        let grace = Duration::from_millis(config.shutdown_grace_ms);
        tokio::select! {
            result = serve => result?,
            _ = async { if stopping_rx.await.is_ok() { tokio::time::sleep(grace).await } else { std::future::pending().await } } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; stopping with calls still in flight");
            }
        }
        let _ = kit.shutdown.send(true);
        kit.pool.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn set_health(health: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    health.set_service_status("", status).await;
    for name in names {
        health.set_service_status(*name, status).await;
    }
}

/// Reports NOT_SERVING while Postgres does not answer, SERVING again when it does (unless draining).
async fn watch_database(
    pool: PgPool,
    health: HealthReporter,
    names: Arc<[&'static str]>,
    draining: Arc<AtomicBool>,
    mut stop: watch::Receiver<bool>,
) {
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if draining.load(Ordering::SeqCst) {
            return;
        }
        let ok = db::ping(&pool, Duration::from_secs(1)).await;
        if ok != healthy {
            healthy = ok;
            if ok {
                tracing::info!("database reachable again: SERVING");
            } else {
                tracing::warn!("database unreachable: NOT_SERVING");
            }
            let status = if ok { ServingStatus::Serving } else { ServingStatus::NotServing };
            if !draining.load(Ordering::SeqCst) {
                set_health(&health, &names, status).await;
            }
        }
    }
}

fn authenticator(config: &KitConfig) -> anyhow::Result<Authenticator> {
    Authenticator::from_settings(
        config.jwt_secret.as_ref().map(crate::config::Secret::expose),
        config.jwt_public_key_file.as_deref(),
        &config.jwt_issuer,
    )
}

/// The page-token key: configured, else derived from the JWT secret.
fn page_token_key(config: &KitConfig) -> Vec<u8> {
    match &config.page_token_secret {
        Some(secret) => secret.expose().as_bytes().to_vec(),
        None => derived_key(config, b"crm page tokens"),
    }
}

/// A signing key for `label` derived from the JWT secret, so that replicas
/// agree without one more secret to distribute; random per process (valid on
/// this replica only) when there is no shared secret (RS256 deployments).
pub fn derived_key(config: &KitConfig, label: &[u8]) -> Vec<u8> {
    match &config.jwt_secret {
        Some(jwt) => {
            let mut mac = Hmac::<Sha256>::new_from_slice(jwt.expose().as_bytes()).expect("any key length");
            mac.update(label);
            mac.finalize().into_bytes().to_vec()
        }
        None => {
            tracing::warn!(label = %String::from_utf8_lossy(label), "no shared secret: keys derived for this label are valid on this replica only");
            Uuid::new_v4().into_bytes().to_vec()
        }
    }
}

/// Applies the kit's and the service's migrations as the schema owner and
/// grants the login role DML, without serving.
async fn migrate_only(spec: &ServiceSpec, kit: &KitConfig) -> anyhow::Result<()> {
    let owner_url =
        kit.migration_database_url.as_ref().ok_or_else(|| anyhow::anyhow!("--migrate-only needs CRM_MIGRATION_DATABASE_URL"))?;
    let pool = db::connect(kit).await?;
    db::migrate(db::connect_options(owner_url.expose(), kit)?, &with_kit_migrations(spec.migrator), &pool).await?;
    pool.close().await;
    tracing::info!(service = spec.name, "migrations applied; exiting (--migrate-only)");
    Ok(())
}

/// The kit's migrations followed by the service's, in version order.
pub fn with_kit_migrations(service: &Migrator) -> Migrator {
    let mut all: Vec<_> = KIT_MIGRATOR.iter().chain(service.iter()).cloned().collect();
    all.sort_by_key(|m| m.version);
    Migrator { migrations: Cow::Owned(all), ..Migrator::DEFAULT }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

/// A service's whole `main`: parse `$config` (flags and `CRM_*`, with the
/// kit's settings flattened in as `kit`), then [`run_main`] with `$build`
/// (which returns the bound [`Server`]) served until SIGTERM or Ctrl-C.
///
/// ```ignore
/// crm_kit::service_main!(crm_tickets::config::Config, crm_tickets::startup::SPEC, crm_tickets::startup::Application::build);
/// ```
#[macro_export]
macro_rules! service_main {
    ($config:ty, $spec:expr, $build:path) => {
        #[tokio::main]
        async fn main() -> anyhow::Result<()> {
            let config = <$config as clap::Parser>::parse();
            let kit = config.kit.clone();
            $crate::server::run_main(&$spec, &kit, || async {
                $build(config).await?.run_until_stopped($crate::server::shutdown_signal()).await
            })
            .await
        }
    };
}

/// The body of every service's `main`: installs telemetry, runs `run` (build
/// and serve until SIGTERM/Ctrl-C) or only the migrations with
/// `--migrate-only`, logs a failure with its cause chain, and flushes
/// telemetry whatever happened.
pub async fn run_main<Fut>(spec: &ServiceSpec, kit: &KitConfig, run: impl FnOnce() -> Fut) -> anyhow::Result<()>
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    let telemetry = crate::telemetry::init(spec.name, kit.log_format)?;
    let result = if kit.migrate_only { migrate_only(spec, kit).await } else { run().await };
    if let Err(err) = &result {
        tracing::error!(error = ?err, service = spec.name, "service failed");
    }
    telemetry.shutdown();
    result
}
