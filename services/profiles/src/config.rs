//! Settings of the profiles service: its own plus the kit's shared ones.

use std::net::SocketAddr;

use crm_kit::config::KitConfig;

/// Command-line flags and `CRM_*` environment variables.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "crm-profiles", about = "The CRM profiles service: the customer archive over gRPC.")]
pub struct Config {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "CRM_LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub listen_addr: SocketAddr,
    /// How often the verification job looks for customers whose data went stale.
    #[arg(long, env = "CRM_VERIFICATION_POLL_MS", default_value_t = 3_600_000)]
    pub verification_poll_ms: u64,
    /// How often the grading job looks for tenants due for a regrade.
    #[arg(long, env = "CRM_GRADING_POLL_MS", default_value_t = 60_000)]
    pub grading_poll_ms: u64,
    /// How often segments whose filter is relative to the current time are refilled.
    #[arg(long, env = "CRM_SEGMENT_SWEEP_MS", default_value_t = 60_000)]
    pub segment_sweep_ms: u64,
    /// How often the duplicate scan looks for created and changed customers.
    #[arg(long, env = "CRM_DUPLICATE_SCAN_MS", default_value_t = 5_000)]
    pub duplicate_scan_ms: u64,
    /// How often the import worker looks for import jobs to run (started, or left by a replica that died).
    #[arg(long, env = "CRM_IMPORT_POLL_MS", default_value_t = 1_000)]
    pub import_poll_ms: u64,
    /// How long a replica holds a running import from each batch on: a replica that dies leaves its job to another after this.
    #[arg(long, env = "CRM_IMPORT_LEASE_MS", default_value_t = 30_000)]
    pub import_lease_ms: u64,
    /// The largest file UploadImportFile accepts, in bytes (default 512 MiB: about 5 million customer rows).
    #[arg(long, env = "CRM_IMPORT_MAX_BYTES", default_value_t = 512 << 20)]
    pub import_max_bytes: u64,
    /// The largest XLSX file UploadImportFile accepts, in bytes: an XLSX is read whole, in memory
    /// (default 36 MiB: about a million rows of a customer list, read in under 150 MB).
    #[arg(long, env = "CRM_IMPORT_MAX_XLSX_BYTES", default_value_t = 36 << 20)]
    pub import_max_xlsx_bytes: u64,
    /// How long an import job keeps its stored file and refused rows (personal data) after it ended, or after its
    /// upload if it never started, in seconds (default 30 days); then they are deleted and the job keeps its counts.
    #[arg(long, env = "CRM_IMPORT_RETENTION_SECS", default_value_t = 30 * 86_400)]
    pub import_retention_secs: u64,
    /// Exports streamed at once by this process; more are refused with UNAVAILABLE (retry later). Each holds a
    /// few pages of rows (about 5 MB) and a blocking thread formatting them.
    #[arg(long, env = "CRM_EXPORT_CONCURRENCY", default_value_t = 4)]
    pub export_concurrency: usize,
    /// After how long without a heartbeat (a running export beats every tenth of it) an export's audit entry is
    /// ended FAILED by a sweep on any replica: its process died mid-export (default 5 minutes).
    #[arg(long, env = "CRM_EXPORT_STALE_SECS", default_value_t = 300)]
    pub export_stale_secs: u64,
    /// Shared settings.
    #[command(flatten)]
    pub kit: KitConfig,
}
