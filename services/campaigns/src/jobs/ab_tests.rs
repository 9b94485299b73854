//! Decides A/B/n tests: every poll interval, each undecided test (found
//! across tenants through the `decide_scan` policy) is decided if its
//! sample and significance allow, or its deadline has passed
//! (`App::decide_ab_test`). A decision is written once (`winner = ''` in
//! its update), so replicas racing each other agree.

use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;

use crate::{app::App, store::ab_tests::undecided};

/// Tests looked at per round.
const PER_ROUND: i64 = 1_000;

/// Runs every `poll` until `shutdown` turns true.
pub fn spawn(app: App, poll: Duration, shutdown: watch::Receiver<bool>) {
    super::every(poll, shutdown, "A/B/n decisions", move || {
        let app = app.clone();
        async move {
            for (tenant, journey, version, step) in undecided(app.pool(), Utc::now(), PER_ROUND).await? {
                if let Err(err) = app.decide_ab_test(tenant, journey, version, &step, Utc::now()).await {
                    tracing::warn!(error = %crm_kit::error::cause_chain(&err), %tenant, "an A/B/n test could not be decided; retrying next round");
                }
            }
            Ok(())
        }
    });
}
