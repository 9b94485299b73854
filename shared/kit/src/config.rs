//! Settings every service shares, read from flags or `CRM_*` environment
//! variables (12-factor). Secrets are wrapped in [`Secret`] so that they never
//! show up in `Debug` output or logs.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, with trace ids (production).
    Json,
    /// Human-readable lines (local development).
    Pretty,
}

/// Settings shared by every service; flatten it into the service's own config.
#[derive(Debug, Clone, clap::Args)]
pub struct KitConfig {
    /// Postgres URL of the service's login role (not the table owner). Its
    /// `sslmode` is honoured (`disable`, `prefer` — the default —, `require`,
    /// `verify-ca`, `verify-full`), as are `sslrootcert`, `sslcert`, `sslkey`.
    #[arg(long, env = "CRM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Secret,
    /// PEM file of the CA(s) the database server's certificate must chain to,
    /// for both URLs (in place of the URLs' `sslrootcert`); use it with
    /// `sslmode=verify-full`, which also checks the host name.
    #[arg(long, env = "CRM_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// TLS to Postgres for both URLs, in place of their `sslmode`: `disable`,
    /// `allow`, `prefer`, `require`, `verify-ca` or `verify-full` (e.g.
    /// `verify-full` in Kubernetes, where the URLs come from the operator).
    #[arg(long, env = "CRM_DATABASE_SSLMODE")]
    pub database_sslmode: Option<String>,
    /// Postgres URL of the schema owner, used only to run migrations at start-up;
    /// when unset, migrations are not run (apply them out of band).
    #[arg(long, env = "CRM_MIGRATION_DATABASE_URL", hide_env_values = true)]
    pub migration_database_url: Option<Secret>,
    /// Maximum pooled Postgres connections.
    #[arg(long, env = "CRM_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// How long a request waits for a pooled connection before UNAVAILABLE.
    #[arg(long, env = "CRM_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2000)]
    pub db_acquire_timeout_ms: u64,
    /// HS256 secret for bearer tokens (used unless a public key file is given).
    #[arg(long, env = "CRM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,
    /// PEM RSA public key; when set, tokens must be RS256.
    #[arg(long, env = "CRM_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "CRM_JWT_ISSUER", default_value = "crm")]
    pub jwt_issuer: String,
    /// Key that signs page tokens; defaults to one derived from the JWT secret.
    /// Replicas must share it.
    #[arg(long, env = "CRM_PAGE_TOKEN_SECRET", hide_env_values = true)]
    pub page_token_secret: Option<Secret>,
    /// Deadline for a unary call when the client sends none (a shorter `grpc-timeout` wins).
    #[arg(long, env = "CRM_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Calls handled at once; beyond it calls are shed with UNAVAILABLE.
    #[arg(long, env = "CRM_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,
    /// Largest request message accepted, in bytes.
    #[arg(long, env = "CRM_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// HTTP/2 streams per connection.
    #[arg(long, env = "CRM_MAX_CONCURRENT_STREAMS", default_value_t = 256)]
    pub max_concurrent_streams: u32,
    /// After SIGTERM, keep serving this long while health reports NOT_SERVING,
    /// so that load balancers stop routing here before the listener closes.
    #[arg(long, env = "CRM_SHUTDOWN_DRAIN_MS", default_value_t = 1000)]
    pub shutdown_drain_ms: u64,
    /// After draining, how long in-flight calls may take before the process exits anyway.
    #[arg(long, env = "CRM_SHUTDOWN_GRACE_MS", default_value_t = 7000)]
    pub shutdown_grace_ms: u64,
    /// Log format.
    #[arg(long, env = "CRM_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Key that encrypts secrets at rest — providers' credentials, webhooks'
    /// signing secrets (any length; hashed to an AES-256 key). Unset: derived
    /// from CRM_JWT_SECRET. Replicas must share it.
    #[arg(long, env = "CRM_CREDENTIALS_KEY", hide_env_values = true)]
    pub credentials_key: Option<Secret>,
    /// Allow outbound connections (providers, webhooks) to loopback, private
    /// and link-local addresses and plain http (local development and tests);
    /// off in production, against SSRF.
    #[arg(long, env = "CRM_OUTBOUND_ALLOW_PRIVATE", default_value_t = false)]
    pub outbound_allow_private: bool,
    /// Webhook delivery and outbox retention.
    #[command(flatten)]
    pub webhooks: WebhookSettings,
    /// The optional NATS JetStream relay.
    #[command(flatten)]
    pub relay: RelaySettings,
    /// Apply the migrations (needs the migration URL) and exit without serving,
    /// e.g. in a Kubernetes init container before a new version starts.
    #[arg(long, env = "CRM_MIGRATE_ONLY")]
    pub migrate_only: bool,
}

/// Webhook delivery (see `crm_kit::webhooks`) and how long events are kept.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookSettings {
    /// Webhooks one replica delivers to at once (each gets one request at a
    /// time, in order); the rest wait their turn.
    #[arg(long, env = "CRM_WEBHOOK_CONCURRENCY", default_value_t = 256)]
    pub webhook_concurrency: usize,
    /// Of those, at most this many for one tenant, so that one tenant's slow
    /// endpoints cannot hold every slot.
    #[arg(long, env = "CRM_WEBHOOK_TENANT_CONCURRENCY", default_value_t = 16)]
    pub webhook_tenant_concurrency: usize,
    /// Longest a webhook request may take (connecting included).
    #[arg(long, env = "CRM_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// Delay before the first retry of a failed delivery; doubled per failure, with jitter.
    #[arg(long, env = "CRM_WEBHOOK_RETRY_BASE_MS", default_value_t = 5000)]
    pub webhook_retry_base_ms: u64,
    /// Longest delay between two attempts.
    #[arg(long, env = "CRM_WEBHOOK_RETRY_MAX_MS", default_value_t = 3_600_000)]
    pub webhook_retry_max_ms: u64,
    /// A webhook whose deliveries have failed this long (3 days by default) is
    /// disabled, and a `crm.webhooks.v1.WebhookDisabled` event tells the tenant.
    #[arg(long, env = "CRM_WEBHOOK_DISABLE_AFTER_SECS", default_value_t = 259_200)]
    pub webhook_disable_after_secs: u64,
    /// How long a replica holds a webhook it delivers without renewing; after
    /// a crash, another replica resumes it this long later.
    #[arg(long, env = "CRM_WEBHOOK_LEASE_MS", default_value_t = 15_000)]
    pub webhook_lease_ms: u64,
    /// How often the dispatcher looks for due webhooks when no event woke it.
    #[arg(long, env = "CRM_WEBHOOK_POLL_MS", default_value_t = 1000)]
    pub webhook_poll_ms: u64,
    /// Days events are kept in the outbox (for Subscribe, webhook replays and
    /// the NATS relay); older ones are deleted.
    #[arg(long, env = "CRM_OUTBOX_RETENTION_DAYS", default_value_t = 30)]
    pub outbox_retention_days: u32,
    /// How often the retention job looks for events to delete.
    #[arg(long, env = "CRM_OUTBOX_PRUNE_POLL_MS", default_value_t = 300_000)]
    pub outbox_prune_poll_ms: u64,
}

impl WebhookSettings {
    /// Slack a lease keeps beyond one request: the progress record after it.
    const LEASE_SLACK_MS: u64 = 500;

    /// Refuses settings under which a request can outlive the lease: a worker
    /// renews its lease only between requests, so a request longer than the
    /// lease would let another replica start on the same webhook meanwhile
    /// (events twice, out of order).
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.webhook_lease_ms >= self.webhook_timeout_ms + Self::LEASE_SLACK_MS,
            "CRM_WEBHOOK_LEASE_MS ({}) must be at least CRM_WEBHOOK_TIMEOUT_MS ({}) + {} ms: a request must end within the lease",
            self.webhook_lease_ms,
            self.webhook_timeout_ms,
            Self::LEASE_SLACK_MS
        );
        Ok(())
    }
}

/// The NATS JetStream relay (see `crm_kit::relay`): off unless `CRM_NATS_URL` is set.
#[derive(Debug, Clone, clap::Args)]
pub struct RelaySettings {
    /// NATS server(s) to relay every committed event to, e.g.
    /// `nats://nats:4222` (comma-separated for a cluster). Unset: no relay.
    #[arg(long, env = "CRM_NATS_URL")]
    pub nats_url: Option<String>,
    /// How long JetStream remembers a message id to drop a duplicate: longer
    /// than a relay can take to resume after a crash.
    #[arg(long, env = "CRM_NATS_DUPLICATE_WINDOW_SECS", default_value_t = 600)]
    pub nats_duplicate_window_secs: u64,
    /// How long a replica holds a tenant's relay without renewing; after a
    /// crash, another replica resumes it this long later.
    #[arg(long, env = "CRM_RELAY_LEASE_MS", default_value_t = 15_000)]
    pub relay_lease_ms: u64,
    /// How often the relay looks for tenants with events to publish when no event woke it.
    #[arg(long, env = "CRM_RELAY_POLL_MS", default_value_t = 1000)]
    pub relay_poll_ms: u64,
    /// Read other services' events (campaigns: profiles' and tickets';
    /// tickets: profiles') from their JetStream streams at CRM_NATS_URL
    /// instead of their Subscribe streams.
    #[arg(long, env = "CRM_FOLLOW_JETSTREAM", default_value_t = false)]
    pub follow_jetstream: bool,
}

impl KitConfig {
    /// Default request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// A config for tests: everything default but the database and the JWT secret.
    pub fn for_tests(database_url: &str, migration_database_url: &str, jwt_secret: &str) -> Self {
        Self {
            database_url: database_url.into(),
            database_ca_file: None,
            database_sslmode: None,
            migration_database_url: Some(migration_database_url.into()),
            db_max_connections: 8,
            db_acquire_timeout_ms: 5000,
            jwt_secret: Some(jwt_secret.into()),
            jwt_public_key_file: None,
            jwt_issuer: "crm".into(),
            page_token_secret: None,
            request_timeout_ms: 10_000,
            max_in_flight: 512,
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 256,
            shutdown_drain_ms: 0,
            shutdown_grace_ms: 5000,
            log_format: LogFormat::Json,
            migrate_only: false,
            credentials_key: None,
            outbound_allow_private: true,
            webhooks: WebhookSettings {
                webhook_concurrency: 64,
                webhook_tenant_concurrency: 16,
                webhook_timeout_ms: 2000,
                webhook_retry_base_ms: 50,
                webhook_retry_max_ms: 1000,
                webhook_disable_after_secs: 259_200,
                webhook_lease_ms: 3000,
                webhook_poll_ms: 200,
                outbox_retention_days: 30,
                outbox_prune_poll_ms: 300_000,
            },
            relay: RelaySettings {
                nats_url: None,
                nats_duplicate_window_secs: 600,
                relay_lease_ms: 3000,
                relay_poll_ms: 200,
                follow_jetstream: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_request_must_end_within_the_lease() {
        let mut settings =
            KitConfig::for_tests("postgres://app@db/crm", "postgres://owner@db/crm", "a-test-secret-0123456789abcdef").webhooks;
        assert!(settings.check().is_ok(), "the test defaults: 2 s requests, 3 s leases");
        settings.webhook_timeout_ms = 2600;
        let refused = settings.check().unwrap_err().to_string();
        assert!(refused.contains("CRM_WEBHOOK_LEASE_MS (3000)") && refused.contains("CRM_WEBHOOK_TIMEOUT_MS (2600)"), "{refused}");
    }
}
