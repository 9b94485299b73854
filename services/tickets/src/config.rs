//! Settings of the tickets service: its own plus the kit's shared ones.

use std::net::SocketAddr;

use crm_kit::config::KitConfig;

/// Command-line flags and `CRM_*` environment variables.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "crm-tickets", about = "The CRM tickets service: intake and handling of customer problems over gRPC.")]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CRM_LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    pub listen_addr: SocketAddr,
    /// gRPC URL of the profiles service (customer checks).
    #[arg(long, env = "CRM_PROFILES_URL", default_value = "http://127.0.0.1:50051")]
    pub profiles_url: String,
    /// Deadline of a call to profiles.
    #[arg(long, env = "CRM_PROFILES_TIMEOUT_MS", default_value_t = 2000)]
    pub profiles_timeout_ms: u64,
    /// How often the SLA job looks for warnings and breaches to record.
    #[arg(long, env = "CRM_SLA_CHECK_INTERVAL_MS", default_value_t = 5000)]
    pub sla_check_interval_ms: u64,
    /// Delay between resolving a ticket and its follow-up visit, in minutes.
    #[arg(long, env = "CRM_FOLLOW_UP_DELAY_MINUTES", default_value_t = 1440)]
    pub follow_up_delay_minutes: i64,
    /// Shared settings.
    #[command(flatten)]
    pub kit: KitConfig,
}
