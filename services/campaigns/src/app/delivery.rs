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
use crm_kit::{Error, filter::CheckedFilter};
use crm_proto::crm::campaigns::v1 as pb;
use uuid::Uuid;

use super::{App, emit};
use crate::{
    domain::{
        channel::Channel,
        delivery::{Next, Outcome, Status},
    },
    resources::DELIVERY,
    store::{
        campaigns,
        deliveries::{self, AttemptRecord, DELIVERIES, DeliveryRow},
        providers::{self, ProviderRow},
        queue,
    },
    wire::{View, delivery_to, status_number},
};

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

    /// Marks claimed delivery `id` (read at `attempts`) SUBMITTING through
    /// `provider`, right before it is handed over; the attempt number, or
    /// `None` when it is no longer this claim's.
    pub async fn begin_attempt(
        &self,
        tenant: Uuid,
        id: Uuid,
        attempts: i32,
        provider: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<Option<i32>, Error> {
        let mut tx = self.begin(tenant).await?;
        let attempt = deliveries::mark_submitting(&mut tx, tenant, id, attempts, provider, now).await?;
        tx.commit().await?;
        Ok(attempt)
    }

    /// Records the outcome of attempt `attempt` of delivery `id`: SENT,
    /// FAILED (both final: the queue row goes, an event is written) or QUEUED
    /// again until its retry. Nothing happens when the row is no longer that
    /// claim. `jitter` in [-1, 1] spreads the retry.
    pub async fn record_attempt(
        &self,
        tenant: Uuid,
        id: Uuid,
        attempt: i32,
        outcome: Outcome,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let Some(before) = deliveries::lock_many(&mut tx, tenant, &[id]).await?.pop() else {
            tx.commit().await?;
            return Ok(());
        };
        if before.status != Status::Submitting || before.attempts != attempt {
            tracing::info!(delivery = %id, attempt, "an outcome arrived for a claim that is no longer current; ignored");
            tx.commit().await?;
            return Ok(());
        }
        let mut uncounted = false;
        let record = match self.retry.next(outcome, attempt, now, jitter) {
            Next::Sent { message_id } => {
                queue::remove(&mut tx, tenant, id).await?;
                (Status::Sent, message_id, String::new(), Some(now), None)
            }
            Next::Failed { error } => {
                queue::remove(&mut tx, tenant, id).await?;
                (Status::Failed, String::new(), error, None, None)
            }
            Next::Retry { at, error } => {
                queue::reschedule(&mut tx, tenant, id, at).await?;
                (Status::Queued, String::new(), error, None, Some(at))
            }
            Next::Throttled { at, error } => {
                queue::reschedule(&mut tx, tenant, id, at).await?;
                uncounted = true;
                (Status::Queued, String::new(), error, None, Some(at))
            }
        };
        let (status, message_id, error, send_time, next_attempt_time) = record;
        let record = AttemptRecord { status, provider_message_id: &message_id, error: &error, send_time, next_attempt_time, uncounted };
        let row = deliveries::record_attempt(&mut tx, tenant, id, &record, now).await?;
        if let (Some(campaign), Status::Sent | Status::Failed) = (row.campaign_id, status) {
            let deltas = [(("QUEUED", ""), -1), ((status.as_str(), ""), 1)].into_iter().collect();
            campaigns::add_counts(&mut tx, tenant, campaign, &deltas).await?;
        }
        if status != Status::Queued {
            let event = pb::DeliveryStatusChanged {
                delivery: Some(delivery_to(&row, View::WithoutContent)),
                previous_status: status_number(before.status),
            };
            emit(&mut tx, tenant, &DELIVERY.name(id), &event).await?;
        }
        tx.commit().await?;
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
