//! The segment sweep: every poll interval, refills the dynamic segments
//! whose filter compares against the current time (`last_purchase_time <
//! now - 90d`), which change as time passes and not only as customers do.
//! Every replica runs it; a segment's refill is held by one at a time
//! (`FOR UPDATE SKIP LOCKED`), the others skip it.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::app::App;

/// Runs the sweep every `poll` until `shutdown` turns true; each segment is refilled once per `poll`.
pub fn spawn(app: App, poll: Duration, shutdown: watch::Receiver<bool>) {
    let every = chrono::Duration::from_std(poll).unwrap_or(chrono::Duration::minutes(1));
    crm_kit::jobs::every(poll, shutdown, "segment sweep", move || {
        let app = app.clone();
        async move { round(&app, every).await }
    });
}

async fn round(app: &App, every: chrono::Duration) -> Result<(), crm_kit::Error> {
    for (tenant, segment) in app.segments_due(Utc::now()).await? {
        // One segment's failure must not hold up the others: it is tried again next round.
        match app.sweep_segment(tenant, segment, every, Utc::now()).await {
            Ok(Some(moved)) if moved > 0 => tracing::info!(%tenant, %segment, moved, "time-relative segment refilled"),
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(%tenant, %segment, error = %crm_kit::error::cause_chain(&err), "segment refill failed; retrying next round")
            }
        }
    }
    Ok(())
}
