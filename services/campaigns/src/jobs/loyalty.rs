//! Expires loyalty points: every poll interval, the customers holding lots
//! that expired (found across tenants through the `expiry_scan` policy) get
//! their expiry booked, one customer per transaction. Each lot's expiry has
//! its own source, so a replica racing another, or a round cut short, never
//! books one twice; a redemption books what expired first anyway.
//!
//! And reviews member tiers: the members whose oldest grant in the rolling
//! window has left it (found through the `tier_review_scan` policy) are
//! judged again, one per transaction under their balance row's lock; a
//! judgement sets the next review time, so a member is not looked at again
//! before their progress can change. After a programme's tiers changed, its
//! sweep makes every member due, a batch per transaction (no edit holds
//! every balance row at once); a round goes on while there is work, for up
//! to a few seconds.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::{
    app::App,
    store::loyalty::{due_expiries, due_tier_reviews, pending_tier_sweeps},
};

/// Customers handled per round.
const PER_ROUND: i64 = 500;
/// Members a sweep makes due per transaction.
const SWEEP_BATCH: i64 = 1_000;
/// How long a round of tier reviews goes on while there is more to do.
const REVIEWS_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the expiry and the tier reviews every `poll` until `shutdown` turns true.
pub fn spawn(app: App, poll: Duration, shutdown: watch::Receiver<bool>) {
    let reviewer = app.clone();
    super::every(poll, shutdown.clone(), "member tier reviews", move || {
        let app = reviewer.clone();
        async move {
            let started = std::time::Instant::now();
            for tenant in pending_tier_sweeps(app.pool(), Utc::now(), PER_ROUND).await? {
                while app.sweep_tiers(tenant, SWEEP_BATCH, Utc::now()).await? == SWEEP_BATCH && started.elapsed() < REVIEWS_FOR {}
            }
            loop {
                let due = due_tier_reviews(app.pool(), Utc::now(), PER_ROUND).await?;
                for (tenant, customer) in &due {
                    if let Err(err) = app.review_tier(*tenant, *customer, Utc::now()).await {
                        tracing::warn!(error = %crm_kit::error::cause_chain(&err), %tenant, "a member tier could not be reviewed; retrying next round");
                    }
                }
                if (due.len() as i64) < PER_ROUND || started.elapsed() >= REVIEWS_FOR {
                    return Ok(());
                }
            }
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
