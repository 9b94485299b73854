//! Unsubscribe links: minted for every marketing delivery, followed without a
//! login. Following one records the unsubscribe in the ledger's database
//! first — from then on dispatch skips marketing to the customer on that
//! channel — and then withdraws the consent in profiles (by the handler right
//! away, by the unsubscribe job until profiles has it): the link's answer
//! never depends on profiles being up, and nothing it promised is lost.

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx};
use crm_proto::crm::campaigns::v1 as pb;
use uuid::Uuid;

use super::{App, emit};
use crate::{
    links::invalid_link,
    resources::{CAMPAIGN, CUSTOMER, DELIVERY},
    store::{
        campaigns,
        deliveries::{DELIVERIES, DeliveryRow},
        unsubscribes::{self, UnsubscribeRow},
    },
    wire::channel_to,
};

impl App {
    /// The delivery behind a link and, if it was followed, when.
    pub async fn unsubscribe_link(&self, tenant: Uuid, delivery: Uuid) -> Result<(DeliveryRow, Option<UnsubscribeRow>), Error> {
        let mut tx = self.begin(tenant).await?;
        let row = DELIVERIES.find(&mut tx, tenant, delivery, false).await?.ok_or_else(invalid_link)?;
        let followed = unsubscribes::get(&mut tx, tenant, delivery).await?;
        tx.commit().await?;
        Ok((row, followed))
    }

    /// Follows the link of `delivery`: records the unsubscribe (once: a
    /// repeat returns the first), counts it on the delivery's campaign and
    /// emits `CustomerUnsubscribed`, in one transaction.
    pub async fn unsubscribe(&self, tenant: Uuid, delivery: Uuid, now: DateTime<Utc>) -> Result<(DeliveryRow, UnsubscribeRow), Error> {
        let mut tx = self.begin(tenant).await?;
        let row = DELIVERIES.find(&mut tx, tenant, delivery, false).await?.ok_or_else(invalid_link)?;
        let followed = match record_unsubscribe(&mut tx, tenant, &row, now).await? {
            Some(new) => new,
            None => unsubscribes::get(&mut tx, tenant, delivery)
                .await?
                .ok_or_else(|| Error::internal(anyhow::anyhow!("the unsubscribe just found in conflict is missing")))?,
        };
        tx.commit().await?;
        Ok((row, followed))
    }

    /// Notes that profiles has recorded the opt-out of `delivery`'s unsubscribe.
    pub async fn unsubscribe_applied(&self, tenant: Uuid, delivery: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        unsubscribes::mark_applied(&mut tx, tenant, delivery, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Unsubscribes profiles has not recorded yet, oldest first, across tenants.
    pub async fn pending_unsubscribes(&self, limit: i64) -> Result<Vec<UnsubscribeRow>, Error> {
        unsubscribes::pending(self.pool(), limit).await
    }
}

/// Records an unsubscribe from `row`'s channel in `tx` — counted on its
/// campaign, `CustomerUnsubscribed` emitted — unless one was recorded for
/// that delivery already (None).
pub(super) async fn record_unsubscribe(
    tx: &mut TenantTx,
    tenant: Uuid,
    row: &DeliveryRow,
    now: DateTime<Utc>,
) -> Result<Option<UnsubscribeRow>, Error> {
    let Some(new) = unsubscribes::insert(tx, tenant, row, now).await? else {
        return Ok(None);
    };
    if let Some(campaign) = row.campaign_id {
        let deltas = [(("UNSUBSCRIBED", ""), 1)].into_iter().collect();
        campaigns::add_counts(tx, tenant, campaign, &deltas).await?;
    }
    let event = pb::CustomerUnsubscribed {
        customer: CUSTOMER.name(row.customer_id),
        channel: channel_to(row.channel).into(),
        delivery: DELIVERY.name(row.id),
        campaign: row.campaign_id.map(|c| CAMPAIGN.name(c)).unwrap_or_default(),
    };
    emit(tx, tenant, &CUSTOMER.name(row.customer_id), &event).await?;
    Ok(Some(new))
}
