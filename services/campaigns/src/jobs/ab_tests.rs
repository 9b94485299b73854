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
pub fn spawn(app: App, poll: Duration, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
                _ = tokio::time::sleep(poll) => {}
            }
            let tests = match undecided(app.pool(), Utc::now(), PER_ROUND).await {
                Ok(tests) => tests,
                Err(err) => {
                    tracing::warn!(error = %crm_kit::error::cause_chain(&err), "could not find A/B/n tests to decide; retrying next round");
                    continue;
                }
            };
            for (tenant, journey, version, step) in tests {
                if let Err(err) = app.decide_ab_test(tenant, journey, version, &step, Utc::now()).await {
                    tracing::warn!(error = %crm_kit::error::cause_chain(&err), %tenant, "an A/B/n test could not be decided; retrying next round");
                }
            }
        }
    });
}
