//! The gateway's settings, from flags or `CRM_*` environment variables. The
//! JWT settings are the services' own (same variables, same rules), so one
//! secret or key validates tokens at both layers.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use crm_kit::{
    auth::Authenticator,
    config::{LogFormat, Secret},
};

use crate::{ratelimit::Limits, routes::BackendMap};

/// Backends when `CRM_BACKENDS` is unset: the `make run` addresses.
pub const DEFAULT_BACKENDS: &str =
    "crm.profiles.v1=http://127.0.0.1:50051,crm.tickets.v1=http://127.0.0.1:50052,crm.campaigns.v1=http://127.0.0.1:50053";

/// Gateway settings.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "crm-gateway", about = "REST/JSON gateway in front of the CRM gRPC services")]
pub struct Config {
    /// HTTP listen address (HTTP/1.1 and h2c).
    #[arg(long, env = "CRM_LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen_addr: SocketAddr,
    /// `package=url` pairs, comma-separated; a key may also be a fully-qualified
    /// service name. Services of packages without a backend are not routed.
    #[arg(long, env = "CRM_BACKENDS", default_value = DEFAULT_BACKENDS)]
    pub backends: String,
    /// Deadline sent to backends when the client sends none (`X-Request-Timeout`/`grpc-timeout`).
    #[arg(long, env = "CRM_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// How long connecting to a backend may take before the call fails with 503.
    #[arg(long, env = "CRM_BACKEND_CONNECT_TIMEOUT_MS", default_value_t = 2_000)]
    pub backend_connect_timeout_ms: u64,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "CRM_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest backend response passed on, in bytes; larger ones get 502.
    #[arg(long, env = "CRM_MAX_RESPONSE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// gRPC methods that take no bearer token (they carry their own one-time token).
    #[arg(
        long,
        env = "CRM_PUBLIC_METHODS",
        value_delimiter = ',',
        default_value = "/crm.tickets.v1.SurveyService/AnswerSurvey,/crm.campaigns.v1.UnsubscribeService/GetUnsubscribeLink,/crm.campaigns.v1.UnsubscribeService/Unsubscribe,/crm.campaigns.v1.ProviderCallbackService/ReceiveProviderCallback,/crm.campaigns.v1.TrackingService/OpenTrackingPixel,/crm.campaigns.v1.TrackingService/FollowTrackedLink"
    )]
    pub public_methods: Vec<String>,
    /// Origins allowed by CORS, comma-separated (`*` for any); none: no CORS headers.
    #[arg(long, env = "CRM_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Rate limits per caller (token subject; client address for token-less
    /// methods): `read=rate/burst,write=…,search=…` per second, or `off`.
    #[arg(long, env = "CRM_RATE_LIMIT_PER_SUBJECT", default_value = "read=50/100,write=10/20,search=5/10")]
    pub rate_limit_per_subject: Limits,
    /// Rate limits per tenant (all its callers together), same syntax.
    #[arg(long, env = "CRM_RATE_LIMIT_PER_TENANT", default_value = "read=500/1000,write=100/200,search=50/100")]
    pub rate_limit_per_tenant: Limits,
    /// Header holding the client's address when the gateway sits behind a
    /// proxy it trusts (e.g. `x-forwarded-for`, first address wins); unset:
    /// the TCP peer. Used to rate-limit token-less methods per client.
    #[arg(long, env = "CRM_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
    /// Largest `pageSize` passed to a service; larger ones are lowered to it (AIP-158).
    #[arg(long, env = "CRM_MAX_PAGE_SIZE", default_value_t = 200)]
    pub max_page_size: i32,
    /// HS256 secret for bearer tokens (used unless a public key file is given).
    #[arg(long, env = "CRM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// PEM RSA public key; when set, tokens must be RS256.
    #[arg(long, env = "CRM_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "CRM_JWT_ISSUER", default_value = "crm")]
    pub jwt_issuer: String,
    /// After SIGTERM, how long to keep serving while `/readyz` answers 503,
    /// so that load balancers stop sending requests before the listener closes.
    #[arg(long, env = "CRM_SHUTDOWN_DRAIN_MS", default_value_t = 1000)]
    pub shutdown_drain_ms: u64,
    /// Then how long in-flight requests may take before the process exits anyway.
    #[arg(long, env = "CRM_SHUTDOWN_GRACE_MS", default_value_t = 7000)]
    pub shutdown_grace_ms: u64,
    /// Log format.
    #[arg(long, env = "CRM_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
}

impl Config {
    /// A config for tests: port 0, the given backends and JWT secret, defaults otherwise.
    pub fn for_tests(backends: &str, jwt_secret: &str) -> Self {
        Self {
            listen_addr: "127.0.0.1:0".parse().expect("valid address"),
            backends: backends.to_owned(),
            request_timeout_ms: 10_000,
            backend_connect_timeout_ms: 1_000,
            max_body_bytes: 1024 * 1024,
            max_response_bytes: 4 * 1024 * 1024,
            public_methods: [
                "/crm.tickets.v1.SurveyService/AnswerSurvey",
                "/crm.campaigns.v1.UnsubscribeService/GetUnsubscribeLink",
                "/crm.campaigns.v1.UnsubscribeService/Unsubscribe",
                "/crm.campaigns.v1.ProviderCallbackService/ReceiveProviderCallback",
                "/crm.campaigns.v1.TrackingService/OpenTrackingPixel",
                "/crm.campaigns.v1.TrackingService/FollowTrackedLink",
            ]
            .map(str::to_owned)
            .to_vec(),
            cors_origins: Vec::new(),
            rate_limit_per_subject: Limits::default(),
            rate_limit_per_tenant: Limits::default(),
            max_page_size: 200,
            client_ip_header: None,
            jwt_secret: Some(jwt_secret.into()),
            jwt_public_key_file: None,
            jwt_issuer: "crm".to_owned(),
            shutdown_drain_ms: 0,
            shutdown_grace_ms: 5000,
            log_format: LogFormat::Json,
        }
    }

    /// The parsed backend map.
    pub fn backend_map(&self) -> anyhow::Result<BackendMap> {
        BackendMap::parse(&self.backends).map_err(|e| anyhow::anyhow!("CRM_BACKENDS: {e}"))
    }

    /// Default backend deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The token validator, by the services' own rule (same settings, same code).
    pub fn authenticator(&self) -> anyhow::Result<Authenticator> {
        Authenticator::from_settings(self.jwt_secret.as_ref().map(Secret::expose), self.jwt_public_key_file.as_deref(), &self.jwt_issuer)
    }
}
