//! Settings of the campaigns service: its own plus the kit's shared ones.

use std::net::SocketAddr;

use crm_kit::config::KitConfig;

/// Command-line flags and `CRM_*` environment variables.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "crm-campaigns", about = "The CRM campaigns service: templates, notices and their delivery over gRPC.")]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CRM_LISTEN_ADDR", default_value = "127.0.0.1:50053")]
    pub listen_addr: SocketAddr,
    /// gRPC URL of the profiles service (customer records, contact details and consent).
    #[arg(long, env = "CRM_PROFILES_URL", default_value = "http://127.0.0.1:50051")]
    pub profiles_url: String,
    /// Deadline of a call to profiles.
    #[arg(long, env = "CRM_PROFILES_TIMEOUT_MS", default_value_t = 2000)]
    pub profiles_timeout_ms: u64,
    /// gRPC URL of the tickets service (its event stream: open complaints stop marketing).
    #[arg(long, env = "CRM_TICKETS_URL", default_value = "http://127.0.0.1:50052")]
    pub tickets_url: String,
    /// Messages one replica has claimed and is working on at the same time
    /// (each provider still gets at most 8 at once; the rest wait, QUEUED).
    #[arg(long, env = "CRM_DELIVERY_CONCURRENCY", default_value_t = 256)]
    pub delivery_concurrency: usize,
    /// How long a claimed message is reserved for the replica that claimed it;
    /// after that another replica reconciles it.
    #[arg(long, env = "CRM_DELIVERY_LEASE_MS", default_value_t = 60_000)]
    pub delivery_lease_ms: u64,
    /// How often the delivery worker looks for due messages when nothing woke it.
    #[arg(long, env = "CRM_DELIVERY_POLL_MS", default_value_t = 1000)]
    pub delivery_poll_ms: u64,
    /// Attempts before a temporarily failing message is recorded as FAILED.
    #[arg(long, env = "CRM_DELIVERY_MAX_ATTEMPTS", default_value_t = 5)]
    pub delivery_max_attempts: i32,
    /// Delay before the first retry; doubled per attempt (with jitter), at most 10 minutes.
    #[arg(long, env = "CRM_DELIVERY_RETRY_BASE_MS", default_value_t = 5000)]
    pub delivery_retry_base_ms: u64,
    /// How often expired loyalty points are booked out of their balances (a
    /// redemption books what expired first, whatever this says).
    #[arg(long, env = "CRM_LOYALTY_EXPIRY_POLL_MS", default_value_t = 60_000)]
    pub loyalty_expiry_poll_ms: u64,
    /// How often the journey runner looks for runs due to take a step.
    #[arg(long, env = "CRM_JOURNEY_POLL_MS", default_value_t = 1000)]
    pub journey_poll_ms: u64,
    /// How often birthday and holiday journeys look for occasions of today
    /// and tomorrow to schedule (a pass runs once per occasion).
    #[arg(long, env = "CRM_OCCASION_POLL_MS", default_value_t = 60_000)]
    pub occasion_poll_ms: u64,
    /// The gateway's URL as the recipients' mail clients reach it (e.g.
    /// `https://crm.example.com`): unsubscribe links point there. Unset:
    /// marketing email goes out without a `List-Unsubscribe` link.
    #[arg(long, env = "CRM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Shared settings.
    #[command(flatten)]
    pub kit: KitConfig,
}
