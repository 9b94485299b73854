//! Background jobs' common loop: a round now, then one every poll interval
//! until shutdown; a failed round is logged and the next one tries again.
//! Every replica runs every job, so a round must be safe to run beside
//! another replica's (the jobs claim their work with locks or leases).

use std::time::Duration;

use tokio::sync::watch;

use crate::Error;

/// Runs `round` now and then every `poll` until `shutdown` turns true; a
/// failed round is logged (`what` names the job) and the next one tries again.
pub fn every<F, Fut>(poll: Duration, mut shutdown: watch::Receiver<bool>, what: &'static str, mut round: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), Error>> + Send,
{
    tokio::spawn(async move {
        loop {
            if let Err(err) = round().await {
                tracing::warn!(error = %crate::error::cause_chain(&err), job = what, "a background round failed; retrying next round");
            }
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
                _ = tokio::time::sleep(poll) => {}
            }
        }
    });
}
