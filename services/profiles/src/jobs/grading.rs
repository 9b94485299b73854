//! The grading job: every poll interval, regrades each tenant that is due
//! (its cut points, then every customer's scores, tier and stage). Every
//! replica runs it; a tenant's run is held by one replica at a time
//! (`FOR UPDATE SKIP LOCKED` on its grading state), the others skip it.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::app::App;

/// Runs the job every `poll` until `shutdown` turns true.
pub fn spawn(app: App, poll: Duration, shutdown: watch::Receiver<bool>) {
    crm_kit::jobs::every(poll, shutdown, "grading", move || {
        let app = app.clone();
        async move { round(&app).await }
    });
}

async fn round(app: &App) -> Result<(), crm_kit::Error> {
    for tenant in app.grading_due(Utc::now()).await? {
        let started = std::time::Instant::now();
        // One tenant's failure must not hold up the others: it is tried again next round.
        match app.regrade(tenant, true, Utc::now()).await {
            Ok(Some((cuts, changed))) => {
                let elapsed_ms = started.elapsed().as_millis();
                tracing::info!(%tenant, graded = cuts.graded_customers, changed, elapsed_ms, "customers regraded");
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(%tenant, error = %crm_kit::error::cause_chain(&err), "regrade failed; retrying next round"),
        }
    }
    Ok(())
}
