//! Carries followed unsubscribe links to profiles: the handler applies each
//! one right away, and this job retries, every few seconds, those profiles
//! did not take (down, slow, contended) until it has them all — at least
//! once, and an opt-out written twice is still one opt-out.

use std::time::Duration;

use chrono::Utc;
use crm_kit::{Error, auth::ServiceTokens, client::Caller};
use tokio::sync::watch;

use crate::{app::App, profiles::ProfilesClient, store::unsubscribes::UnsubscribeRow};

/// How often pending opt-outs are retried.
const RETRY_EVERY: Duration = Duration::from_secs(2);
/// Opt-outs retried per round.
const BATCH: i64 = 200;

/// Writes opt-outs to profiles as the campaigns service itself.
#[derive(Clone)]
pub struct OptOuts {
    app: App,
    profiles: ProfilesClient,
    tokens: ServiceTokens,
}

impl OptOuts {
    /// Opt-outs of `app`'s unsubscribes, written to `profiles` with `tokens`.
    pub fn new(app: App, profiles: ProfilesClient, tokens: ServiceTokens) -> Self {
        Self { app, profiles, tokens }
    }

    /// Withdraws the consent `row` stands for in profiles and notes that it is done.
    pub async fn apply(&self, row: &UnsubscribeRow) -> Result<(), Error> {
        let caller = Caller::service(&self.tokens.mint(row.tenant_id)?)?;
        self.profiles.opt_out(&caller, row.customer_id, row.channel).await?;
        self.app.unsubscribe_applied(row.tenant_id, row.delivery_id, Utc::now()).await
    }

    /// Retries pending opt-outs until `shutdown` turns true.
    pub fn spawn(self, mut shutdown: watch::Receiver<bool>) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
                    _ = tokio::time::sleep(RETRY_EVERY) => {}
                }
                let pending = match self.app.pending_unsubscribes(BATCH).await {
                    Ok(rows) => rows,
                    Err(err) => {
                        tracing::warn!(error = %crm_kit::error::cause_chain(&err), "could not list pending opt-outs");
                        continue;
                    }
                };
                for row in pending {
                    if let Err(err) = self.apply(&row).await {
                        // The rest would likely fail the same way: wait for the next round.
                        tracing::warn!(error = %crm_kit::error::cause_chain(&err), delivery = %row.delivery_id, "an opt-out is still pending");
                        break;
                    }
                }
            }
        });
    }
}
