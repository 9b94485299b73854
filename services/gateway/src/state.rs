//! [`Gateway`]: what every request needs, built once at start-up and shared
//! by the REST handler, the gRPC(-Web) proxy and the health endpoints, and
//! the admission check (bearer token, then rate limits) that REST, gRPC-Web
//! and gRPC requests all pass before any backend is called.

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use axum::extract::ConnectInfo;
use crm_kit::auth::Authenticator;
use http::{HeaderMap, header};
use prost_reflect::DescriptorPool;
use tokio::sync::watch;

use crate::{
    errors::ApiError,
    forward::Backends,
    overview::Overview,
    ratelimit::{RateLimiter, RouteClass},
    routes::{BackendMap, RouteTable},
};

/// Everything a request needs, built once at start-up.
pub struct Gateway {
    /// The routes.
    pub routes: RouteTable,
    /// Channels to the backends.
    pub backends: Backends,
    /// The descriptor pool (error details are decoded with it).
    pub pool: DescriptorPool,
    /// Token validator.
    pub auth: Authenticator,
    /// gRPC paths that take no bearer token.
    pub public_methods: HashSet<String>,
    /// Body size limit.
    pub max_body_bytes: usize,
    /// Default deadline for unary calls.
    pub request_timeout: Duration,
    /// Turns true at SIGTERM: `/readyz` answers 503 from then on, while
    /// requests are still served for the drain period.
    pub draining: watch::Receiver<bool>,
    /// Turns true at shutdown, after the drain; open NDJSON streams end on it.
    pub shutdown: watch::Receiver<bool>,
    /// The configured backends (readiness names them).
    pub backend_map: BackendMap,
    /// Token buckets per caller and tenant.
    pub limiter: RateLimiter,
    /// The customer 360's backends.
    pub overview: Overview,
    /// Largest `page_size` passed on.
    pub max_page_size: i32,
    /// Header naming the client's address behind a trusted proxy.
    pub client_ip_header: Option<http::HeaderName>,
}

impl Gateway {
    /// Admits a call of `grpc_path` — REST, gRPC-Web or gRPC alike: checks the
    /// bearer token (so a bad one never costs a backend call; the backend
    /// still checks it and its permissions) unless the method is public, then
    /// charges the caller's and the tenant's buckets for `class`.
    pub fn admit(&self, grpc_path: &str, class: RouteClass, headers: &HeaderMap, extensions: &http::Extensions) -> Result<(), ApiError> {
        let (subject, tenant) = if self.public_methods.contains(grpc_path) {
            // No token: the client's address is the caller.
            (format!("address:{}", self.client_address(headers, extensions)), "public".to_owned())
        } else {
            let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            let principal = self
                .auth
                .authenticate(authorization)
                .map_err(|e| ApiError::Unauthenticated { reason: e.reason(), message: e.to_string() })?;
            (principal.subject, principal.tenant.to_string())
        };
        self.limiter.check(&subject, &tenant, class).map_err(ApiError::RateLimited)
    }

    /// The client's address: from the trusted proxy's header when configured
    /// (first entry of a comma list), else the TCP peer.
    pub fn client_address(&self, headers: &HeaderMap, extensions: &http::Extensions) -> String {
        let forwarded = self.client_ip_header.as_ref().and_then(|name| headers.get(name)).and_then(|v| v.to_str().ok());
        if let Some(first) = forwarded.and_then(|v| v.split(',').next()).map(str::trim).filter(|v| !v.is_empty()) {
            return first.to_owned();
        }
        extensions.get::<ConnectInfo<SocketAddr>>().map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
    }

    /// The configured keys (packages or services) served by backend `url`.
    pub fn backend_keys(&self, url: &str) -> Vec<&str> {
        self.backend_map.entries().iter().filter(|(_, u)| u == url).map(|(k, _)| k.as_str()).collect()
    }
}
