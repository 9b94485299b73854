//! `Application::build(config)`: decodes the descriptor set and builds the
//! route table (once), opens lazy channels to the backends (the customer 360
//! calls over the same ones), binds the listener (port 0 in tests);
//! `run_until_stopped` serves HTTP/1.1 and h2c until the shutdown future
//! resolves.

use std::{collections::HashSet, sync::Arc, time::Duration};

use axum::{Router, middleware, routing::get, serve::ListenerExt};
use http::{Extensions, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use prost_reflect::DescriptorPool;
use tokio::{net::TcpListener, sync::watch};
use tower_http::{
    compression::{
        CompressionLayer,
        predicate::{NotForContentType, Predicate, SizeAbove},
    },
    cors::{AllowOrigin, CorsLayer},
};

use crate::{
    config::Config,
    download::Uncompressed,
    forward::Backends,
    handler::{self, REQUEST_ID, REQUEST_TIMEOUT},
    health,
    overview::Overview,
    ratelimit::RateLimiter,
    routes::RouteTable,
    state::Gateway,
};

/// A bound, not yet serving gateway.
pub struct Application {
    listener: TcpListener,
    router: Router,
    port: u16,
    drain: Duration,
    grace: Duration,
    draining: watch::Sender<bool>,
    shutdown: watch::Sender<bool>,
    routes: usize,
}

impl Application {
    /// Builds the routes and binds `config.listen_addr`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(crm_proto::FILE_DESCRIPTOR_SET)?;
        let backend_map = config.backend_map()?;
        let routes = RouteTable::from_pool(&pool, &backend_map)?;
        let backends = Backends::new(&backend_map, Duration::from_millis(config.backend_connect_timeout_ms), config.max_response_bytes)?;
        let overview = Overview::new(&pool, &backend_map, &backends, config.request_timeout());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (draining, draining_rx) = watch::channel(false);
        let gateway = Arc::new(Gateway {
            routes,
            backends,
            pool,
            auth: config.authenticator()?,
            public_methods: config.public_methods.iter().map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect::<HashSet<_>>(),
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout(),
            draining: draining_rx,
            shutdown: shutdown_rx,
            backend_map,
            limiter: RateLimiter::new(config.rate_limit_per_subject.clone(), config.rate_limit_per_tenant.clone()),
            overview,
            max_page_size: config.max_page_size.max(1),
            client_ip_header: config
                .client_ip_header
                .as_deref()
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| http::HeaderName::from_bytes(h.as_bytes()))
                .transpose()
                .map_err(|e| anyhow::anyhow!("CRM_CLIENT_IP_HEADER: {e}"))?,
        });
        let route_count = gateway.routes.routes().len();
        let router = router(gateway, &config)?;
        let listener = TcpListener::bind(config.listen_addr).await.map_err(|e| anyhow::anyhow!("binding {}: {e}", config.listen_addr))?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            listener,
            router,
            port,
            drain: Duration::from_millis(config.shutdown_drain_ms),
            grace: Duration::from_millis(config.shutdown_grace_ms),
            draining,
            shutdown,
            routes: route_count,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves; then keeps serving for the drain
    /// period with `/readyz` answering 503, then stops accepting, ends open
    /// streams, and lets in-flight requests finish within the grace period.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Self { listener, router, port, drain, grace, draining, shutdown: streams, routes } = self;
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!(drain_ms = drain.as_millis() as u64, "shutting down: draining (readiness fails, requests still served)");
            let _ = draining.send(true);
            tokio::time::sleep(drain).await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = streams.send(true);
            let _ = stopping_tx.send(());
        };
        tracing::info!(port, routes, "serving");
        // Without TCP_NODELAY, Nagle + delayed ACK adds ~40 ms to small responses.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        // The client's address is the caller of token-less methods for rate limiting.
        let serve =
            axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>()).with_graceful_shutdown(signal);
        tokio::select! {
            result = serve => result?,
            _ = async { if stopping_rx.await.is_ok() { tokio::time::sleep(grace).await } else { std::future::pending().await } } => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; stopping with requests in flight");
            }
        }
        tracing::info!("stopped");
        Ok(())
    }
}

fn router(gateway: Arc<Gateway>, config: &Config) -> anyhow::Result<Router> {
    // NDJSON streams are not compressed: the encoder would hold events back until its buffer fills;
    // nor are streamed files (`Uncompressed`). Nor are bodies under 1 KiB (a single resource, an
    // error): compressing them costs more CPU than the bytes it saves on the wire (tower-http's
    // default threshold is 32 bytes).
    let not_marked = |_: StatusCode, _: Version, _: &HeaderMap, extensions: &Extensions| extensions.get::<Uncompressed>().is_none();
    let compression = CompressionLayer::new().compress_when(
        SizeAbove::new(1024)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE)
            .and(NotForContentType::new("application/x-ndjson"))
            .and(not_marked),
    );
    let grpc = crate::grpcweb::service(gateway.clone());
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(crate::docs::router(&crate::openapi::document(&gateway.pool, &gateway.routes, &gateway.public_methods)))
        .fallback(handler::handle)
        .with_state(gateway)
        .layer(compression)
        .layer(middleware::from_fn(handler::request_id))
        // Outside compression: gRPC framing is left to the gRPC codecs.
        .layer(middleware::from_fn_with_state(grpc, crate::grpcweb::route));
    if let Some(cors) = cors(&config.cors_origins)? {
        router = router.layer(cors);
    }
    Ok(router)
}

/// CORS for the configured origins; none configured → no CORS headers at all.
fn cors(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    let origins: Vec<&str> = origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let values = origins.iter().map(|o| HeaderValue::from_str(o)).collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::PUT, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                HeaderName::from_static(REQUEST_ID),
                HeaderName::from_static(REQUEST_TIMEOUT),
                HeaderName::from_static("traceparent"),
                HeaderName::from_static("tracestate"),
                HeaderName::from_static("x-grpc-web"),
                HeaderName::from_static("x-user-agent"),
                HeaderName::from_static("grpc-timeout"),
            ])
            .expose_headers([
                header::ETAG,
                HeaderName::from_static(REQUEST_ID),
                HeaderName::from_static("grpc-status"),
                HeaderName::from_static("grpc-message"),
                HeaderName::from_static("grpc-status-details-bin"),
            ])
            .max_age(Duration::from_secs(600)),
    ))
}
