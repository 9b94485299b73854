//! Background work of the campaigns service.

pub mod ab_tests;
pub mod campaigns;
pub mod complaints;
pub mod delivery;
pub mod erasure;
pub mod journeys;
pub mod loyalty;
pub mod occasions;
pub mod ticket_answers;
pub mod unsubscribes;

use std::time::Duration;

use tokio::sync::watch;

/// Runs `round` every `poll` until `shutdown` turns true; a failed round is
/// logged (`what` says which job) and the next one tries again.
pub fn every<F, Fut>(poll: Duration, mut shutdown: watch::Receiver<bool>, what: &'static str, mut round: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), crm_kit::Error>> + Send,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
                _ = tokio::time::sleep(poll) => {}
            }
            if let Err(err) = round().await {
                tracing::warn!(error = %crm_kit::error::cause_chain(&err), job = what, "a background round failed; retrying next round");
            }
        }
    });
}
