//! Expires loyalty points: every poll interval, the customers holding lots
//! that expired (found across tenants through the `expiry_scan` policy) get
//! their expiry booked, one customer per transaction. Each lot's expiry has
//! its own source, so a replica racing another, or a round cut short, never
//! books one twice; a redemption books what expired first anyway.
//!
//! And reviews member tiers: the members whose oldest grant in the rolling
//! window has left it, or whose programme changed (found through the
//! `tier_review_scan` policy), are judged again, one per transaction under
//! their balance row's lock; a judgement sets the next review time, so a
//! member is not looked at again before their progress can change.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::{
    app::App,
    store::loyalty::{due_expiries, due_tier_reviews},
};

/// Customers handled per round.
const PER_ROUND: i64 = 500;

/// Runs the expiry and the tier reviews every `poll` until `shutdown` turns true.
pub fn spawn(app: App, poll: Duration, shutdown: watch::Receiver<bool>) {
    let reviewer = app.clone();
    super::every(poll, shutdown.clone(), "member tier reviews", move || {
        let app = reviewer.clone();
        async move {
            for (tenant, customer) in due_tier_reviews(app.pool(), Utc::now(), PER_ROUND).await? {
                if let Err(err) = app.review_tier(tenant, customer, Utc::now()).await {
                    tracing::warn!(error = %crm_kit::error::cause_chain(&err), %tenant, "a member tier could not be reviewed; retrying next round");
                }
            }
            Ok(())
        }
    });
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
