//! The ledger's worker steps and the sent log's reads.
//!
//! A worker *claims* due deliveries (their queue rows' due time moves to the
//! end of a lease), then for each one, right before handing it to the
//! provider, *marks* it SUBMITTING with one more attempt — so SUBMITTING means
//! "handed over, answer not recorded", never "waiting for its turn" — and
//! *records* the outcome afterwards, checking that the row is still its
//! claim (same attempt number, still SUBMITTING): a worker that outlived its
//! lease cannot overwrite what another recorded.

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx, filter::CheckedFilter};
use crm_proto::crm::campaigns::v1 as pb;
use uuid::Uuid;

use super::{App, emit};
use crate::{
    domain::{
        channel::{Channel, Purpose},
        customer::Customer,
        delivery::{Next, Outcome, Status},
        policy::{self, SkipReason},
        rules::{self, ContactRules},
    },
    resources::DELIVERY,
    store::{
        campaigns, contact_policy,
        deliveries::{self, AttemptRecord, DELIVERIES, DeliveryRow},
        providers::{self, ProviderRow},
        queue,
    },
    wire::{View, delivery_to, status_number},
};

/// What the dispatch step made of a claimed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begun {
    /// Marked SUBMITTING as this attempt number: hand it over now.
    Attempt(i32),
    /// The contact policy stopped it: SKIPPED.
    Skipped(SkipReason),
    /// Quiet hours: it waits until then, QUEUED.
    Postponed(DateTime<Utc>),
    /// No longer this claim's (another sender took it, its campaign was paused or cancelled).
    Gone,
}

/// The outcome of one attempt, to record.
#[derive(Debug, Clone)]
pub struct Attempted {
    pub id: Uuid,
    /// The attempt number the dispatch step gave it.
    pub attempt: i32,
    pub outcome: Outcome,
    /// In [-1, 1]: spreads a retry.
    pub jitter: f64,
}

/// One message's dispatch step, as the job hands it over for a batch.
#[derive(Debug, Clone)]
pub struct Dispatch {
    pub delivery: DeliveryRow,
    pub provider: Option<Uuid>,
    /// The recipient as profiles has them now; None when profiles could not be asked.
    pub customer: Option<Customer>,
    pub rules: std::sync::Arc<ContactRules>,
    /// Push through FCM and the customer has no registered device.
    pub no_device: bool,
}

/// The recipient as profiles has them at dispatch time.
#[derive(Debug, Clone, Copy)]
pub enum Fresh<'a> {
    /// Read just now.
    Customer(&'a Customer),
    /// Profiles could not be asked.
    Unavailable,
}

/// A delivery claimed for sending.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The row as claimed.
    pub delivery: DeliveryRow,
    /// The provider to send through; `None` when the channel has none now.
    pub provider: Option<ProviderRow>,
    /// Whether it was found SUBMITTING: an earlier sender stopped mid-send.
    pub resumed: bool,
}

impl App {
    /// Claims up to `limit` of `tenant`'s due deliveries, notices first.
    pub async fn claim_due(&self, tenant: Uuid, now: DateTime<Utc>, limit: i64) -> Result<Vec<Claimed>, Error> {
        let lease_until = now + chrono::Duration::from_std(self.lease).map_err(Error::internal)?;
        let mut tx = self.begin(tenant).await?;
        let ids = queue::claim(&mut tx, tenant, now, lease_until, limit).await?;
        if ids.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let rows = deliveries::lock_many(&mut tx, tenant, &ids).await?;
        let mut providers_by_channel: Vec<(Channel, Option<ProviderRow>)> = Vec::new();
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let provider = match providers_by_channel.iter().find(|(c, _)| *c == row.channel) {
                Some((_, p)) => p.clone(),
                None => {
                    let p = providers::for_channel(&mut tx, tenant, row.channel).await?;
                    providers_by_channel.push((row.channel, p.clone()));
                    p
                }
            };
            let resumed = row.status == Status::Submitting;
            claimed.push(Claimed { delivery: row, provider, resumed });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// The dispatch step of several messages of one tenant in one
    /// transaction (one commit for all: the delivery job batches messages
    /// that become ready together), in id order so that concurrent batches
    /// never wait on each other in a circle. Returns each message's verdict.
    pub async fn begin_attempts(&self, tenant: Uuid, items: &[Dispatch], now: DateTime<Utc>) -> Result<Vec<(Uuid, Begun)>, Error> {
        let mut sorted: Vec<&Dispatch> = items.iter().collect();
        sorted.sort_by_key(|i| i.delivery.id);
        let mut tx = self.begin(tenant).await?;
        let mut verdicts = Vec::with_capacity(items.len());
        for i in sorted {
            let customer = match &i.customer {
                Some(c) => Fresh::Customer(c),
                None => Fresh::Unavailable,
            };
            let begun = self.begin_in(&mut tx, tenant, i, customer, now).await?;
            verdicts.push((i.delivery.id, begun));
        }
        tx.commit().await?;
        Ok(verdicts)
    }

    /// The dispatch step of claimed delivery `d` (read at `d.attempts`) in `tx`,
    /// right before it is handed to `provider`: the contact policy once more
    /// with the customer as profiles has them now (when profiles cannot say,
    /// marketing waits a little and transactional messages go), then
    /// for marketing the tenant's quiet hours (it waits) and frequency caps
    /// (counted under a per-customer lock, so concurrent senders cannot both
    /// take the last slot). A message that may go is marked SUBMITTING with
    /// one more attempt, in the same transaction.
    async fn begin_in(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        item: &Dispatch,
        customer: Fresh<'_>,
        now: DateTime<Utc>,
    ) -> Result<Begun, Error> {
        let d = &item.delivery;
        queue::lock(tx, tenant, d.id).await?;
        Ok(match self.dispatch_checks(tx, tenant, item, customer, now).await? {
            Some(other) => other,
            None => match deliveries::mark_submitting(tx, tenant, d.id, d.attempts, item.provider, now).await? {
                Some(attempt) => Begun::Attempt(attempt),
                None => Begun::Gone,
            },
        })
    }

    /// The policy's verdict on `d` when it stops the message; None when it may go.
    async fn dispatch_checks(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        item: &Dispatch,
        customer: Fresh<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Begun>, Error> {
        let (d, rules) = (&item.delivery, &item.rules);
        if d.status != Status::Queued {
            // Handed over once already: the policy let it go then; it is reconciled, not judged again.
            return Ok(None);
        }
        let customer = match customer {
            Fresh::Customer(c) => Some(c),
            Fresh::Unavailable if d.purpose == Purpose::Marketing => {
                let until = now + chrono::Duration::seconds(5);
                if deliveries::postpone(tx, tenant, d.id, d.attempts, until, now).await? {
                    queue::reschedule(tx, tenant, d.id, until).await?;
                    return Ok(Some(Begun::Postponed(until)));
                }
                return Ok(Some(Begun::Gone));
            }
            Fresh::Unavailable => None,
        };
        if let Some(reason) = customer.and_then(|c| policy::address(c, d.channel, d.purpose).err()) {
            return self.skip_at_dispatch(tx, tenant, d, reason, now).await;
        }
        if item.no_device {
            // FCM reaches a customer only through a registered device.
            return self.skip_at_dispatch(tx, tenant, d, SkipReason::NoAddress, now).await;
        }
        let stops = contact_policy::dispatch_stops(tx, tenant, d.customer_id, d.channel, &d.recipient).await?;
        if let Err(reason) = policy::beyond_record(d.purpose, stops.suppressed, stops.unsubscribed, stops.open_complaint) {
            return self.skip_at_dispatch(tx, tenant, d, reason, now).await;
        }
        if d.purpose != Purpose::Marketing {
            return Ok(None);
        }
        let zone = rules.zone_of(customer.map_or("", |c| c.fields.time_zone.as_str()));
        if let Some(until) = rules.quiet_until(zone, now) {
            if deliveries::postpone(tx, tenant, d.id, d.attempts, until, now).await? {
                queue::reschedule(tx, tenant, d.id, until).await?;
                return Ok(Some(Begun::Postponed(until)));
            }
            return Ok(Some(Begun::Gone));
        }
        if let Some(cap) = rules.cap(d.channel) {
            contact_policy::lock_customer(tx, tenant, d.customer_id).await?;
            let (day, week) = rules::counting_windows(zone, now);
            let (today, this_week) = contact_policy::marketing_sent(tx, tenant, d.customer_id, d.channel, day, week).await?;
            if rules::over_cap(cap, today, this_week) {
                return self.skip_at_dispatch(tx, tenant, d, SkipReason::FrequencyCap, now).await;
            }
        }
        Ok(None)
    }

    async fn skip_at_dispatch(
        &self,
        tx: &mut TenantTx,
        tenant: Uuid,
        d: &DeliveryRow,
        reason: SkipReason,
        now: DateTime<Utc>,
    ) -> Result<Option<Begun>, Error> {
        let Some(row) = deliveries::skip_queued(tx, tenant, d.id, d.attempts, reason.as_str(), now).await? else {
            return Ok(Some(Begun::Gone));
        };
        queue::remove(tx, tenant, d.id).await?;
        if let Some(campaign) = row.campaign_id {
            let deltas = [(("QUEUED", ""), -1), (("SKIPPED", reason.as_str()), 1)].into_iter().collect();
            campaigns::add_counts(tx, tenant, campaign, &deltas).await?;
        }
        let event = pb::DeliveryStatusChanged {
            delivery: Some(delivery_to(&row, View::WithoutContent)),
            previous_status: status_number(Status::Queued),
        };
        emit(tx, tenant, &DELIVERY.name(d.id), &event).await?;
        Ok(Some(Begun::Skipped(reason)))
    }

    /// Records several outcomes of one tenant in one transaction (one commit
    /// for many messages: the delivery job batches what finishes together).
    /// Rows are taken in id order, so concurrent batches never wait on each
    /// other in a circle.
    pub async fn record_attempts(&self, tenant: Uuid, outcomes: &[Attempted], now: DateTime<Utc>) -> Result<(), Error> {
        let mut sorted: Vec<&Attempted> = outcomes.iter().collect();
        sorted.sort_by_key(|a| a.id);
        let mut tx = self.begin(tenant).await?;
        for a in sorted {
            self.record_in(&mut tx, tenant, a, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the outcome of one attempt in `tx`: SENT,
    /// FAILED (both final: the queue row goes, an event is written) or QUEUED
    /// again until its retry. Nothing happens when the row is no longer that
    /// claim.
    async fn record_in(&self, tx: &mut TenantTx, tenant: Uuid, a: &Attempted, now: DateTime<Utc>) -> Result<(), Error> {
        let (id, attempt) = (a.id, a.attempt);
        queue::lock(tx, tenant, id).await?;
        let Some(before) = deliveries::lock_many(tx, tenant, &[id]).await?.pop() else {
            return Ok(());
        };
        if before.status != Status::Submitting || before.attempts != attempt {
            tracing::info!(delivery = %id, attempt, "an outcome arrived for a claim that is no longer current; ignored");
            return Ok(());
        }
        let mut uncounted = false;
        // A hard bounce is counted apart among the failures.
        let mut count_reason = "";
        let record = match self.retry.next(a.outcome.clone(), attempt, now, a.jitter) {
            Next::Sent { message_id } => {
                queue::remove(tx, tenant, id).await?;
                (Status::Sent, message_id, String::new(), Some(now), None)
            }
            Next::Failed { error, bounced } => {
                queue::remove(tx, tenant, id).await?;
                if bounced {
                    contact_policy::suppress(tx, tenant, before.channel, &before.recipient, id, &error, now).await?;
                    count_reason = "BOUNCED";
                }
                (Status::Failed, String::new(), error, None, None)
            }
            Next::Retry { at, error } => {
                queue::reschedule(tx, tenant, id, at).await?;
                (Status::Queued, String::new(), error, None, Some(at))
            }
            Next::Throttled { at, error } => {
                queue::reschedule(tx, tenant, id, at).await?;
                uncounted = true;
                (Status::Queued, String::new(), error, None, Some(at))
            }
        };
        let (status, message_id, error, send_time, next_attempt_time) = record;
        let record = AttemptRecord { status, provider_message_id: &message_id, error: &error, send_time, next_attempt_time, uncounted };
        let row = deliveries::record_attempt(tx, tenant, id, &record, now).await?;
        if let (Some(campaign), Status::Sent | Status::Failed) = (row.campaign_id, status) {
            let deltas = [(("QUEUED", ""), -1), ((status.as_str(), count_reason), 1)].into_iter().collect();
            campaigns::add_counts(tx, tenant, campaign, &deltas).await?;
        }
        if status != Status::Queued {
            let event = pb::DeliveryStatusChanged {
                delivery: Some(delivery_to(&row, View::WithoutContent)),
                previous_status: status_number(before.status),
            };
            emit(tx, tenant, &DELIVERY.name(id), &event).await?;
        }
        Ok(())
    }

    /// Delivery `id`, or NOT_FOUND.
    pub async fn delivery(&self, tenant: Uuid, id: Uuid) -> Result<DeliveryRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = DELIVERIES.find(&mut tx, tenant, id, false).await?.ok_or_else(|| DELIVERY.not_found(id))?;
        tx.commit().await?;
        Ok(row)
    }

    /// A page of the sent log, newest first, before `before`.
    pub async fn deliveries(
        &self,
        tenant: Uuid,
        filter: &CheckedFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = deliveries::list(&mut tx, tenant, filter, before, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
