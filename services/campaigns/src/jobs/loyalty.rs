//! Expires loyalty points: every poll interval, the customers holding lots
//! that expired (found across tenants through the `expiry_scan` policy) get
//! their expiry booked, one customer per transaction. Each lot's expiry has
//! its own source, so a replica racing another, or a round cut short, never
//! books one twice; a redemption books what expired first anyway.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::{app::App, store::loyalty::due_expiries};

/// Customers handled per round.
const PER_ROUND: i64 = 500;

/// Runs the expiry every `poll` until `shutdown` turns true.
pub fn spawn(app: App, poll: Duration, shutdown: watch::Receiver<bool>) {
    super::every(poll, shutdown, "points expiry", move || {
        let app = app.clone();
        async move {
            for (tenant, customer) in due_expiries(app.pool(), Utc::now(), PER_ROUND).await? {
                if let Err(err) = app.expire_points(tenant, customer, Utc::now()).await {
                    tracing::warn!(error = %crm_kit::error::cause_chain(&err), %tenant, "points could not be expired; retrying next round");
                }
            }
            Ok(())
        }
    });
}
