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

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use chrono::Utc;
use opentelemetry::{KeyValue, metrics::Counter};
use rand::Rng;
use sqlx::postgres::PgListener;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tracing::Instrument;

use crm_kit::{auth::ServiceTokens, client::Caller};
use uuid::Uuid;

use crate::{
    app::{
        App,
        delivery::{Attempted, Begun, Claimed, Dispatch},
    },
    channels::Outgoing,
    domain::{
        channel::{Channel, Purpose},
        customer::Customer,
        delivery::Outcome,
        rules::ContactRules,
    },
    profiles::ProfilesClient,
    store::queue,
};

/// `crm.campaigns.deliveries`: what became of each attempt, by channel and
/// outcome (accepted, temporary, permanent, bounced, throttled — or skipped
/// at dispatch, with the skip reason): the dashboard's throughput, skips and
/// failures.
fn deliveries() -> &'static Counter<u64> {
    static DELIVERIES: OnceLock<Counter<u64>> = OnceLock::new();
    DELIVERIES.get_or_init(|| {
        opentelemetry::global::meter("crm-campaigns")
            .u64_counter("crm.campaigns.deliveries")
            .with_unit("{message}")
            .with_description("Delivery attempts by channel and outcome, and messages skipped at dispatch by reason")
            .build()
    })
}

fn count(channel: Channel, outcome: &'static str, skip_reason: &'static str) {
    let mut attributes = vec![KeyValue::new("channel", channel.as_str()), KeyValue::new("outcome", outcome)];
    if !skip_reason.is_empty() {
        attributes.push(KeyValue::new("skip_reason", skip_reason));
    }
    deliveries().add(1, &attributes);
}

/// How the job runs.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Messages sent at the same time.
    pub concurrency: usize,
    /// Poll interval when nothing wakes the job.
    pub poll: Duration,
}

/// Longest wait for more free slots before a claim.
const GATHER: Duration = Duration::from_millis(10);
/// Tenants looked at per scan.
const TENANTS_PER_SCAN: i64 = 64;

/// What the job reads recipients with: profiles, as the service itself.
#[derive(Clone)]
pub struct Recipients {
    pub profiles: ProfilesClient,
    pub tokens: ServiceTokens,
}

/// An item handed to a batching actor, and where its answer goes.
type Waiting<T, A> = (T, oneshot::Sender<A>);

/// Items handed to a [`Batcher`] in one round, at most.
const BATCH: usize = 64;

/// A batching actor: items that arrive together (up to [`BATCH`]) are
/// handed to its step grouped by tenant — one transaction per tenant for
/// many messages, so a busy replica commits once instead of once each.
struct Batcher<T, A> {
    queue: mpsc::UnboundedSender<(Uuid, T, oneshot::Sender<A>)>,
}

impl<T, A> Clone for Batcher<T, A> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<T: Send + 'static, A: Send + 'static> Batcher<T, A> {
    /// Runs `step` for each tenant's share of every batch; it answers each item.
    fn spawn<F, Fut>(step: F) -> Self
    where
        F: Fn(Uuid, Vec<Waiting<T, A>>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let (queue, mut incoming) = mpsc::unbounded_channel::<(Uuid, T, oneshot::Sender<A>)>();
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match incoming.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let mut by_tenant: HashMap<Uuid, Vec<Waiting<T, A>>> = HashMap::new();
                for (tenant, item, reply) in batch {
                    by_tenant.entry(tenant).or_default().push((item, reply));
                }
                for (tenant, items) in by_tenant {
                    step(tenant, items).await;
                }
            }
        });
        Self { queue }
    }

    /// Hands `item` of `tenant` over; its answer, or None when the actor is gone.
    async fn call(&self, tenant: Uuid, item: T) -> Option<A> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((tenant, item, reply)).ok()?;
        answer.await.ok()
    }
}

/// Records outcomes of messages that finish together, per tenant in one transaction.
fn recorder(app: App) -> Batcher<Attempted, bool> {
    Batcher::spawn(move |tenant, items: Vec<Waiting<Attempted, bool>>| {
        let app = app.clone();
        async move {
            let outcomes: Vec<Attempted> = items.iter().map(|(a, _)| a.clone()).collect();
            let recorded = app.record_attempts(tenant, &outcomes, Utc::now()).await;
            if let Err(err) = &recorded {
                tracing::warn!(error = %crm_kit::error::cause_chain(err), count = outcomes.len(), "recording delivery attempts failed; each is retried");
            }
            for (_, reply) in items {
                let _ = reply.send(recorded.is_ok());
            }
        }
    })
}

/// Runs the dispatch step (policy, then SUBMITTING) of messages that became
/// ready together, per tenant in one transaction: a message is marked only
/// once its connection slot and the provider's rate allow it, and those
/// slots free up in bursts, so one commit serves several messages.
fn marker(app: App) -> Batcher<Dispatch, Option<Begun>> {
    Batcher::spawn(move |tenant, items: Vec<Waiting<Dispatch, Option<Begun>>>| {
        let app = app.clone();
        async move {
            let dispatches: Vec<Dispatch> = items.iter().map(|(d, _)| d.clone()).collect();
            match app.begin_attempts(tenant, &dispatches, Utc::now()).await {
                Ok(verdicts) => {
                    let verdicts: HashMap<Uuid, Begun> = verdicts.into_iter().collect();
                    for (item, reply) in items {
                        let _ = reply.send(verdicts.get(&item.delivery.id).copied());
                    }
                }
                Err(err) => {
                    // Nothing was marked: the messages wait for their lease to end.
                    tracing::warn!(error = %crm_kit::error::cause_chain(&err), count = dispatches.len(), "the dispatch step failed");
                    for (_, reply) in items {
                        let _ = reply.send(None);
                    }
                }
            }
        }
    })
}

/// The batching actors a send uses.
#[derive(Clone)]
struct Batches {
    marker: Batcher<Dispatch, Option<Begun>>,
    recorder: Batcher<Attempted, bool>,
}

/// Runs the job until `shutdown` turns true; sends in flight then finish on their own.
pub fn spawn(app: App, recipients: Recipients, settings: Settings, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let batches = Batches { marker: marker(app.clone()), recorder: recorder(app.clone()) };
        let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        let mut listener = listen(&app).await;
        loop {
            if let Err(err) = drain(&app, &recipients, &batches, &slots, settings.concurrency.max(1)).await {
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

/// How old a recipient read may be when its message leaves; a message that
/// waited longer for its provider's rate reads its recipient again.
const FRESH_FOR: Duration = Duration::from_millis(500);

/// Recipients as profiles had them when read.
struct Fresh {
    read_at: std::time::Instant,
    /// None when profiles could not be asked.
    customers: Option<HashMap<Uuid, Customer>>,
}

impl Fresh {
    /// The claimed messages' recipients (the ones already handed over once
    /// are not judged again), in one batch.
    async fn read(recipients: &Recipients, tenant: Uuid, claimed: &[Claimed]) -> Self {
        let mut ids: Vec<Uuid> = claimed.iter().filter(|c| !c.resumed).map(|c| c.delivery.customer_id).collect();
        ids.sort();
        ids.dedup();
        Self { read_at: std::time::Instant::now(), customers: read_customers(recipients, tenant, &ids).await }
    }
}

async fn read_customers(recipients: &Recipients, tenant: Uuid, ids: &[Uuid]) -> Option<HashMap<Uuid, Customer>> {
    if ids.is_empty() {
        return Some(HashMap::new());
    }
    let caller = Caller::service(&recipients.tokens.mint(tenant).ok()?).ok()?;
    match recipients.profiles.customers_by_id(&caller, ids).await {
        Ok(found) => Some(found),
        Err(err) => {
            tracing::warn!(error = %crm_kit::error::cause_chain(&err), "recipients could not be read at dispatch; marketing waits");
            None
        }
    }
}

/// Claims and starts sending due messages until none is due or every slot is busy.
async fn drain(
    app: &App,
    recipients: &Recipients,
    batches: &Batches,
    slots: &Arc<Semaphore>,
    concurrency: usize,
) -> Result<(), crm_kit::Error> {
    loop {
        // Wait for at least one free slot before claiming: a claim starts its lease.
        drop(slots.clone().acquire_owned().await.expect("never closed"));
        // A claim costs a few round trips (the claim, the recipients' batch
        // read, the rules): let freed slots gather for a moment, so that one
        // claim serves many messages instead of one each.
        let gather_until = std::time::Instant::now() + GATHER;
        while slots.available_permits() < (concurrency / 4).max(1) && std::time::Instant::now() < gather_until {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let tenants = queue::due_tenants(app.pool(), Utc::now(), TENANTS_PER_SCAN).await?;
        let mut started = 0;
        for tenant in tenants {
            let free = slots.available_permits();
            if free == 0 {
                break;
            }
            let claimed = app.claim_due(tenant, Utc::now(), i64::try_from(free).unwrap_or(i64::MAX)).await?;
            if claimed.is_empty() {
                continue;
            }
            let fresh = Arc::new(Fresh::read(recipients, tenant, &claimed).await);
            let rules = Arc::new(app.contact_rules(tenant).await?);
            for claimed in claimed {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let (app, fresh, rules, recipients, batches) =
                    (app.clone(), fresh.clone(), rules.clone(), recipients.clone(), batches.clone());
                started += 1;
                tokio::spawn(async move {
                    send(&app, &recipients, &batches, tenant, claimed, &fresh, &rules).await;
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
/// provider's rate, applies the contact policy and marks the attempt, hands
/// the message over, records.
async fn send(
    app: &App,
    recipients: &Recipients,
    batches: &Batches,
    tenant: Uuid,
    claimed: Claimed,
    fresh: &Fresh,
    rules: &Arc<ContactRules>,
) {
    let d = &claimed.delivery;
    let span =
        tracing::info_span!("delivery.send", delivery.id = %d.id, delivery.channel = %d.channel, delivery.attempt = tracing::field::Empty);
    // A child of SendNotice's or StartCampaign's trace, however long the message waited.
    crm_kit::telemetry::continue_trace(&span, &d.traceparent);
    async {
        if claimed.resumed {
            tracing::info!("reconciling a message whose sender stopped mid-send");
        }
        let sender = match &claimed.provider {
            None => Err(Outcome::Temporary { error: format!("no {} provider is configured", d.channel) }),
            Some(provider) => app.senders().get(tenant, provider).await,
        };
        // FCM pushes go to the devices registered here; the customer's are read before the provider's turn comes.
        let devices = match &sender {
            Ok(sender) if sender.pushes_to_devices() => match app.push_tokens(tenant, d.customer_id).await {
                Ok(tokens) => tokens,
                Err(e) => {
                    // Nothing was handed over: the message is due again when the lease ends.
                    tracing::warn!(error = %e, "the customer's devices could not be read");
                    return;
                }
            },
            _ => Vec::new(),
        };
        let no_device = sender.as_ref().is_ok_and(|s| s.pushes_to_devices()) && devices.is_empty();
        let slot = match &sender {
            Ok(sender) => Some(sender.ready().await),
            Err(_) => None,
        };
        let provider = claimed.provider.as_ref().map(|p| p.id);
        // The batch read is stale when this message waited long for its turn: read its recipient again.
        let reread = match fresh.read_at.elapsed() > FRESH_FOR && !claimed.resumed {
            true => Some(read_customers(recipients, tenant, &[d.customer_id]).await),
            false => None,
        };
        let found = reread.as_ref().unwrap_or(&fresh.customers);
        let customer = found.as_ref().and_then(|found| found.get(&d.customer_id).cloned());
        let item = Dispatch { delivery: d.clone(), provider, customer, rules: rules.clone(), no_device };
        let attempt = match batches.marker.call(tenant, item).await.flatten() {
            Some(Begun::Attempt(attempt)) => attempt,
            Some(Begun::Skipped(reason)) => {
                tracing::info!(reason = reason.as_str(), "skipped at dispatch by the contact policy");
                count(d.channel, "skipped", reason.as_str());
                return;
            }
            Some(Begun::Postponed(until)) => {
                tracing::info!(until = %until, "postponed at dispatch (quiet hours, or consent could not be checked)");
                return;
            }
            Some(Begun::Gone) => {
                tracing::info!("no longer this claim's (taken over, paused or cancelled); leaving it");
                return;
            }
            // Nothing was handed over: the message is due again when the lease ends.
            None => return,
        };
        tracing::Span::current().record("delivery.attempt", attempt);
        let unsubscribe_url = match (d.purpose, d.channel) {
            (Purpose::Marketing, Channel::Email) => app.links().unsubscribe_url(tenant, d.id),
            _ => None,
        };
        // Marketing email is sent with its opens and clicks tracked; the ledger keeps it as rendered.
        let tracked_html = match (d.purpose, d.channel, d.html_body.is_empty()) {
            (Purpose::Marketing, Channel::Email, false) => app.links().tracked_html(tenant, d.id, &d.html_body, unsubscribe_url.as_deref()),
            _ => None,
        };
        let callback_url = match (d.channel, provider) {
            (Channel::Sms | Channel::Push, Some(provider)) => app.links().callback_url(tenant, provider),
            _ => None,
        };
        let message = Outgoing {
            delivery: d.id,
            channel: d.channel,
            recipient: &d.recipient,
            subject: &d.subject,
            body: &d.body,
            html_body: tracked_html.as_deref().unwrap_or(&d.html_body),
            data: &d.data.0,
            variables: &d.variables.0,
            unsubscribe_url: unsubscribe_url.as_deref(),
            callback_url: callback_url.as_deref(),
            devices: &devices,
        };
        let handover = match sender {
            Err(outcome) => outcome.into(),
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
                        outcome.into()
                    }
                    None => match tokio::time::timeout(budget, sender.send(message)).await {
                        Ok(handover) => handover,
                        Err(_) => Outcome::Temporary { error: "the provider did not answer in time".into() }.into(),
                    },
                }
            }
        };
        if !handover.unregistered_devices.is_empty() {
            tracing::info!(devices = handover.unregistered_devices.len(), "FCM called devices unregistered: forgetting them");
            if let Err(e) = app.forget_push_tokens(tenant, &handover.unregistered_devices).await {
                // They are called unregistered again on the next push.
                tracing::warn!(error = %e, "unregistered devices could not be forgotten");
            }
        }
        let outcome = handover.outcome;
        count(d.channel, outcome.kind(), "");
        if let Outcome::Temporary { error } | Outcome::Permanent { error } | Outcome::Bounced { error } | Outcome::Throttled { error, .. } =
            &outcome
        {
            tracing::info!(error = %error, "attempt failed");
        }
        // Recording is retried: a lost record would send the message again when the lease ends.
        let mut delay = Duration::from_millis(100);
        let mut recorded = false;
        for tries_left in (0..6).rev() {
            let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
            recorded =
                batches.recorder.call(tenant, Attempted { id: d.id, attempt, outcome: outcome.clone(), jitter }).await.unwrap_or(false);
            if recorded || tries_left == 0 {
                break;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        if !recorded {
            tracing::error!("the outcome of a delivery attempt could not be recorded; it will be reconciled when its lease ends");
        }
        // The slot is held until the outcome is recorded, not just until the
        // provider answered: a message handed over but not yet recorded is
        // one a crash would re-submit, and the slots are what bounds those.
        drop(slot);
    }
    .instrument(span)
    .await;
}
