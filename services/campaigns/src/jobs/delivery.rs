//! The delivery job: finds due messages (woken by `NOTIFY crm_deliveries`
//! when one is queued, else every poll interval), claims as many as it has
//! free send slots, sends each through its provider and records the outcome
//! (`app::delivery`). Several replicas share the work: claims skip rows
//! another replica holds, and a message whose sender died is due again when
//! its lease ends.
//!
//! A message found SUBMITTING again was handed to the provider by a sender
//! that stopped before recording the answer. It is *reconciled*, not
//! dropped: a provider with a status query (Twilio's message list, Aliyun's
//! QuerySendDetails by OutId) is asked first, and a message it has is
//! recorded, not sent again; otherwise it is submitted again under the same
//! idempotency key (SMTP's Message-ID, the webhook's Idempotency-Key).

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use rand::Rng;
use sqlx::postgres::PgListener;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::{
    app::{App, delivery::Claimed},
    channels::Outgoing,
    domain::delivery::Outcome,
    store::queue,
};

/// How the job runs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Messages sent at the same time.
    pub concurrency: usize,
    /// Poll interval when nothing wakes the job.
    pub poll: Duration,
}

/// Tenants looked at per scan.
const TENANTS_PER_SCAN: i64 = 64;

/// Runs the job until `shutdown` turns true; sends in flight then finish on their own.
pub fn spawn(app: App, settings: Settings, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let mut listener = listen(&app).await;
        loop {
            if let Err(err) = drain(&app, &slots).await {
                tracing::warn!(error = %crm_kit::error::cause_chain(&err), "delivery round failed; retrying next round");
            }
            let woken = async {
                match listener.as_mut() {
                    Some(l) => l.recv().await.map(drop).map_err(drop),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() { return },
                _ = tokio::time::sleep(settings.poll) => {}
                result = woken => if result.is_err() {
                    // The listener's connection broke: poll until a new one is up.
                    listener = listen(&app).await;
                },
            }
        }
    });
}

async fn listen(app: &App) -> Option<PgListener> {
    let mut listener = PgListener::connect_with(app.pool()).await.ok()?;
    listener.listen(queue::NOTIFY_CHANNEL).await.ok()?;
    Some(listener)
}

/// Claims and starts sending due messages until none is due or every slot is busy.
async fn drain(app: &App, slots: &Arc<Semaphore>) -> Result<(), crm_kit::Error> {
    loop {
        // Wait for at least one free slot before claiming: a claim starts its lease.
        drop(slots.clone().acquire_owned().await.expect("never closed"));
        let tenants = queue::due_tenants(app.pool(), Utc::now(), TENANTS_PER_SCAN).await?;
        let mut started = 0;
        for tenant in tenants {
            let free = slots.available_permits();
            if free == 0 {
                break;
            }
            for claimed in app.claim_due(tenant, Utc::now(), i64::try_from(free).unwrap_or(i64::MAX)).await? {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let app = app.clone();
                started += 1;
                tokio::spawn(async move {
                    send(&app, tenant, claimed).await;
                    drop(permit);
                });
            }
        }
        if started == 0 {
            return Ok(());
        }
    }
}

/// Sends one claimed message and records the outcome: waits for the
/// provider's rate, marks the attempt, hands the message over, records.
async fn send(app: &App, tenant: uuid::Uuid, claimed: Claimed) {
    let d = &claimed.delivery;
    let span =
        tracing::info_span!("delivery.send", delivery.id = %d.id, delivery.channel = %d.channel, delivery.attempt = tracing::field::Empty);
    async {
        if claimed.resumed {
            tracing::info!("reconciling a message whose sender stopped mid-send");
        }
        let sender = match &claimed.provider {
            None => Err(Outcome::Temporary { error: format!("no {} provider is configured", d.channel) }),
            Some(provider) => app.senders().get(tenant, provider).await,
        };
        let _slot = match &sender {
            Ok(sender) => Some(sender.ready().await),
            Err(_) => None,
        };
        let provider = claimed.provider.as_ref().map(|p| p.id);
        let attempt = match app.begin_attempt(tenant, d.id, d.attempts, provider, Utc::now()).await {
            Ok(Some(attempt)) => attempt,
            Ok(None) => {
                tracing::info!("another sender took this message over; leaving it");
                return;
            }
            Err(err) => {
                // Nothing was handed over: the message is due again when the lease ends.
                tracing::warn!(error = %crm_kit::error::cause_chain(&err), "could not mark the attempt; the message waits for its lease to end");
                return;
            }
        };
        tracing::Span::current().record("delivery.attempt", attempt);
        let message = Outgoing {
            delivery: d.id,
            channel: d.channel,
            recipient: &d.recipient,
            subject: &d.subject,
            body: &d.body,
            html_body: &d.html_body,
            data: &d.data.0,
            variables: &d.variables.0,
        };
        let outcome = match sender {
            Err(outcome) => outcome,
            Ok(sender) => {
                // Give up well before the lease ends, so no other replica takes it over while this one still sends.
                let budget = app.lease().mul_f64(0.8);
                let found = match claimed.resumed {
                    // Handed over before, answer unknown: does the provider have it?
                    true => tokio::time::timeout(budget / 2, sender.find(message, d.update_time)).await.ok().flatten(),
                    false => None,
                };
                match found {
                    Some(outcome) => {
                        tracing::info!("the provider had the message already: recorded, not sent again");
                        outcome
                    }
                    None => match tokio::time::timeout(budget, sender.send(message)).await {
                        Ok(outcome) => outcome,
                        Err(_) => Outcome::Temporary { error: "the provider did not answer in time".into() },
                    },
                }
            }
        };
        if let Outcome::Temporary { error } | Outcome::Permanent { error } | Outcome::Throttled { error, .. } = &outcome {
            tracing::info!(error = %error, "attempt failed");
        }
        // Recording is retried: a lost record would send the message again when the lease ends.
        let mut delay = Duration::from_millis(100);
        for _ in 0..6 {
            let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
            match app.record_attempt(tenant, d.id, attempt, outcome.clone(), Utc::now(), jitter).await {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(error = %crm_kit::error::cause_chain(&err), "recording a delivery attempt failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        tracing::error!("the outcome of a delivery attempt could not be recorded; it will be reconciled when its lease ends");
    }
    .instrument(span)
    .await;
}
