//! The import worker: every poll interval, runs the import jobs whose lease
//! has run out (just started, or left by a replica that stopped or died),
//! each to its end, a batch per transaction, then deletes the files and
//! refused rows of jobs past their retention. Every replica runs it; a job
//! is held by one lease at a time.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::app::App;

/// Jobs purged per round at most (the rest follow in the next rounds).
const PURGE_BATCH: i64 = 100;

/// Runs the worker every `poll`, holding a job for `lease` from each batch on and purging jobs `retention` after
/// they ended, until `shutdown` turns true (a running job stops between two batches).
pub fn spawn(app: App, poll: Duration, lease: Duration, retention: Duration, shutdown: watch::Receiver<bool>) {
    let stop = shutdown.clone();
    crm_kit::jobs::every(poll, shutdown, "imports", move || {
        let (app, stop) = (app.clone(), stop.clone());
        async move {
            round(&app, lease, stop).await?;
            app.purge_imports(retention, Utc::now(), PURGE_BATCH).await.map(|_| ())
        }
    });
}

async fn round(app: &App, lease: Duration, stop: watch::Receiver<bool>) -> Result<(), crm_kit::Error> {
    for (tenant, job) in app.imports_due(Utc::now()).await? {
        if *stop.borrow() {
            return Ok(());
        }
        // One job's failure must not hold up the others: it is tried again after a short release.
        if let Err(err) = app.run_import(tenant, job, lease, stop.clone()).await {
            tracing::warn!(%tenant, %job, error = %crm_kit::error::cause_chain(&err), "import batch failed; retrying shortly");
        }
    }
    Ok(())
}
