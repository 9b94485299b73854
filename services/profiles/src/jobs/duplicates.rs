//! The duplicate scan: every poll interval, each tenant's customers changed
//! since its position are keyed and compared, a batch per transaction,
//! until it is caught up. Every replica runs it; a tenant's step is held by
//! one replica at a time (`FOR UPDATE SKIP LOCKED` on its scan row).

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::app::{App, duplicates::SCAN_BATCH};

/// Runs the scan every `poll` until `shutdown` turns true.
pub fn spawn(app: App, poll: Duration, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        match app.start_missing_duplicate_scans().await {
            Ok(0) => {}
            Ok(started) => tracing::info!(started, "duplicate scans started for tenants with customers"),
            Err(err) => tracing::warn!(error = %crm_kit::error::cause_chain(&err), "could not start the missing duplicate scans"),
        }
        loop {
            if let Err(err) = round(&app, &shutdown).await {
                tracing::warn!(error = %crm_kit::error::cause_chain(&err), "duplicate scan failed; retrying next round");
            }
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
                _ = tokio::time::sleep(poll) => {}
            }
        }
    });
}

async fn round(app: &App, shutdown: &watch::Receiver<bool>) -> Result<(), crm_kit::Error> {
    for tenant in app.duplicate_scan_tenants().await? {
        let started = std::time::Instant::now();
        let mut scanned = 0;
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            // One tenant's failure must not hold up the others: it is tried again next round.
            match app.scan_duplicates(tenant, Utc::now()).await {
                Ok(n) => {
                    scanned += n;
                    if n < usize::try_from(SCAN_BATCH).unwrap_or(usize::MAX) {
                        break;
                    }
                }
                Err(err) => {
                    tracing::warn!(%tenant, error = %crm_kit::error::cause_chain(&err), "duplicate scan step failed; retrying next round");
                    break;
                }
            }
        }
        if scanned > 0 {
            tracing::info!(%tenant, scanned, elapsed_ms = started.elapsed().as_millis(), "customers scanned for duplicates");
        }
    }
    Ok(())
}
