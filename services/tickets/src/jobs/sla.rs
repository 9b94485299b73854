//! The SLA job: every interval, records the SLA warnings and breaches that
//! came due and escalates breached tickets (`App::record_due_sla_steps`, safe
//! with several replicas). A failed round is logged with its whole cause
//! chain and retried next round.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::app::App;

/// Runs the job every `interval` until `shutdown` turns true.
pub fn spawn(app: App, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            if let Err(err) = app.record_due_sla_steps(Utc::now()).await {
                // `Error::Internal` displays as "internal error"; the chain says why.
                tracing::warn!(error = %crm_kit::error::cause_chain(&err), "SLA job round failed; retrying next round");
            }
        }
    });
}
