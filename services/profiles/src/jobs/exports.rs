//! The export sweep: every half of the stale period, ends FAILED the audit
//! entries of exports whose process died mid-stream (no heartbeat for the
//! stale period), so that no entry stays RUNNING for ever. Every replica
//! runs it; ending an entry is checked again under its row lock.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::app::App;

/// Entries ended per round at most (the rest follow in the next rounds).
const SWEEP_BATCH: i64 = 100;

/// Sweeps every `stale / 2` until `shutdown` turns true.
pub fn spawn(app: App, stale: Duration, shutdown: watch::Receiver<bool>) {
    crm_kit::jobs::every(stale / 2, shutdown, "exports", move || {
        let app = app.clone();
        async move { app.end_abandoned_exports(stale, Utc::now(), SWEEP_BATCH).await.map(|_| ()) }
    });
}
