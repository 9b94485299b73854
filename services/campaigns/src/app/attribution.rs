//! Conversions and attribution: a goal a customer reached is recorded once
//! per source and attributed to the last message sent to them within the
//! window (last touch); a campaign's or a journey's report sums what its
//! messages earned.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::TenantTx,
    idempotency::{self, IdempotencyKey},
};
use prost::Message;
use uuid::Uuid;

use super::App;
use crate::store::conversions::{self, ConversionRow, Earned, Goal, Sender};

/// How long after a message a goal is still attributed to it, unless its campaign says otherwise.
pub const WINDOW_DAYS: i64 = 7;

/// The goal of a purchase recorded in profiles.
pub const PURCHASE: &str = "PURCHASE";
/// The goal of a customer's ticket resolved in tickets.
pub const TICKET_RESOLVED: &str = "TICKET_RESOLVED";

/// Records `goal` in `tx`, attributed, and wakes the customer's runs waiting
/// for it; None when its source was recorded before.
pub async fn record_in(tx: &mut TenantTx, tenant: Uuid, goal: &Goal<'_>, now: DateTime<Utc>) -> Result<Option<ConversionRow>, Error> {
    let recorded = conversions::record(tx, tenant, goal, WINDOW_DAYS as i32, now).await?;
    if recorded.is_some() {
        // Runs waiting for this goal go on now (the runner finds it reached).
        conversions::wake_waiting(tx, tenant, goal.customer_id, goal.goal, now).await?;
    }
    Ok(recorded)
}

impl App {
    /// Records a custom goal (source `requests/{request id}`): the
    /// conversion, or the one this request recorded before.
    pub async fn record_conversion<R: Message + Default>(
        &self,
        tenant: Uuid,
        goal: &Goal<'_>,
        key: &IdempotencyKey,
        now: DateTime<Utc>,
        respond: impl FnOnce(&ConversionRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(Some(key), &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        let recorded = match record_in(&mut tx, tenant, goal, now).await? {
            Some(row) => row,
            None => conversions::by_source(&mut tx, tenant, goal.source).await?.ok_or(Error::Conflict)?,
        };
        let same = recorded.customer_id == goal.customer_id && recorded.goal == goal.goal && recorded.revenue_minor == goal.revenue_minor;
        if !same {
            return Err(Error::invalid("request_id", "REQUEST_ID_REUSED", "this request id was used for another conversion"));
        }
        let response = respond(&recorded);
        idempotency::remember(Some(key), &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// What `sender`'s messages earned.
    pub async fn attribution(&self, tenant: Uuid, sender: Sender) -> Result<Earned, Error> {
        let mut tx = self.begin(tenant).await?;
        let earned = conversions::earned(&mut tx, tenant, sender).await?;
        tx.commit().await?;
        Ok(earned)
    }
}
