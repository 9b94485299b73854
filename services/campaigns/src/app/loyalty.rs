//! Loyalty points: grants, redemptions and expiry booked in the customer's
//! ledger under the balance row's lock, each exactly once per source.

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, db::TenantTx};
use uuid::Uuid;

use super::App;
use crate::{
    domain::loyalty::consume,
    store::loyalty::{self, EntryRow, NewEntry, expire_due},
};

/// How far ahead an account's "expiring soon" looks.
pub const EXPIRING_WITHIN_DAYS: i64 = 30;

/// A customer's points account.
#[derive(Debug, Clone, Default)]
pub struct Account {
    pub customer_id: Uuid,
    pub balance: i64,
    pub lifetime_earned: i64,
    /// Points of lots expiring within [`EXPIRING_WITHIN_DAYS`].
    pub expiring_points: i64,
    pub next_expire_time: Option<DateTime<Utc>>,
    pub update_time: Option<DateTime<Utc>>,
}

/// A booking asked for: its source (e.g. `requests/{id}`) makes it happen once.
#[derive(Debug, Clone)]
pub struct Booking<'a> {
    pub customer_id: Uuid,
    pub points: i64,
    pub reason: &'a str,
    pub source: &'a str,
}

/// The entry booked before for this source, if it is the same booking; INVALID_ARGUMENT if the source was used for another.
fn replayed(
    found: Option<EntryRow>,
    kind: &str,
    b: &Booking<'_>,
    points: i64,
    expire_time: Option<DateTime<Utc>>,
) -> Result<Option<EntryRow>, Error> {
    let same = |e: &EntryRow| e.kind == kind && e.points == points && e.reason == b.reason && e.expire_time == expire_time;
    match found {
        Some(entry) if same(&entry) => Ok(Some(entry)),
        Some(_) => Err(Error::invalid("request_id", "REQUEST_ID_REUSED", "this request id was used for another booking")),
        None => Ok(None),
    }
}

impl App {
    /// Grants `b.points` (> 0), expiring at `expire_time` (None: never); a retry of the same source returns the first entry.
    pub async fn grant_points(
        &self,
        tenant: Uuid,
        b: &Booking<'_>,
        expire_time: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(EntryRow, Account), Error> {
        let mut tx = self.begin(tenant).await?;
        let entry = grant_in(&mut tx, tenant, b, expire_time, now).await?;
        let account = account_in(&mut tx, tenant, b.customer_id, now).await?;
        tx.commit().await?;
        Ok((entry, account))
    }

    /// Redeems `b.points` (> 0) from the lots soonest to expire; FAILED_PRECONDITION
    /// `INSUFFICIENT_POINTS` when the balance is short. A retry of the same source returns the first entry.
    pub async fn redeem_points(&self, tenant: Uuid, b: &Booking<'_>, now: DateTime<Utc>) -> Result<(EntryRow, Account), Error> {
        let mut tx = self.begin(tenant).await?;
        let balance = loyalty::lock_balance(&mut tx, tenant, b.customer_id, now).await?;
        let entry = match replayed(loyalty::entry_by_source(&mut tx, tenant, b.customer_id, b.source).await?, "REDEEM", b, -b.points, None)?
        {
            Some(entry) => entry,
            None => {
                // Points that expired are gone before anything is redeemed from them.
                let balance = expire_due(&mut tx, tenant, b.customer_id, balance, now).await?;
                let lots = loyalty::open_lots(&mut tx, tenant, b.customer_id).await?;
                let Some(taken) = consume(&lots, b.points) else {
                    // What expired is booked even though the redemption fails.
                    tx.commit().await?;
                    return Err(Error::FailedPrecondition {
                        reason: "INSUFFICIENT_POINTS",
                        message: format!("the balance is {balance} points; {} cannot be redeemed", b.points),
                        subject: format!("customers/{}/pointsAccount", b.customer_id),
                    });
                };
                loyalty::take_from_lots(&mut tx, tenant, &taken).await?;
                let entry = NewEntry {
                    customer_id: b.customer_id,
                    kind: "REDEEM",
                    points: -b.points,
                    source: b.source,
                    reason: b.reason,
                    expire_time: None,
                    merge_id: None,
                    moved_from: None,
                };
                loyalty::book(&mut tx, tenant, &entry, balance - b.points, now).await?
            }
        };
        let account = account_in(&mut tx, tenant, b.customer_id, now).await?;
        tx.commit().await?;
        Ok((entry, account))
    }

    /// Books the expiry of `customer`'s lots that expired by `now`.
    pub async fn expire_points(&self, tenant: Uuid, customer: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let balance = loyalty::lock_balance(&mut tx, tenant, customer, now).await?;
        expire_due(&mut tx, tenant, customer, balance, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The customer's account (a customer with no bookings has an empty one).
    pub async fn points_account(&self, tenant: Uuid, customer: Uuid, now: DateTime<Utc>) -> Result<Account, Error> {
        let mut tx = self.begin(tenant).await?;
        let account = account_in(&mut tx, tenant, customer, now).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// A page of the customer's entries, newest first.
    pub async fn points_entries(&self, tenant: Uuid, customer: Uuid, before: Option<Uuid>, limit: i64) -> Result<Vec<EntryRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = loyalty::entries(&mut tx, tenant, customer, before, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

async fn account_in(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, now: DateTime<Utc>) -> Result<Account, Error> {
    let balance = loyalty::balance(tx, tenant, customer).await?;
    let expiry = loyalty::expiry(tx, tenant, customer, now, now + Duration::days(EXPIRING_WITHIN_DAYS)).await?;
    Ok(Account {
        customer_id: customer,
        // Points already expired are not available, even before the job books their expiry.
        balance: balance.balance - expiry.expired,
        lifetime_earned: balance.lifetime_earned,
        expiring_points: expiry.expiring,
        next_expire_time: expiry.next_expire_time,
        update_time: balance.update_time,
    })
}

/// Grants `b.points` in `tx` (see [`App::grant_points`]): the entry booked, or the one this source booked before.
pub async fn grant_in(
    tx: &mut TenantTx,
    tenant: Uuid,
    b: &Booking<'_>,
    expire_time: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<EntryRow, Error> {
    let balance = loyalty::lock_balance(tx, tenant, b.customer_id, now).await?;
    let entry = match replayed(loyalty::entry_by_source(tx, tenant, b.customer_id, b.source).await?, "GRANT", b, b.points, expire_time)? {
        Some(entry) => entry,
        None => {
            // A tenant with points follows profiles' stream, so that an erasure reaches its ledger
            // (a sending tenant follows it from its first provider already).
            crm_kit::follow::follow_tenant(tx, tenant, crate::store::streams::PROFILES).await?;
            let balance = expire_due(tx, tenant, b.customer_id, balance, now).await?;
            let entry = NewEntry {
                customer_id: b.customer_id,
                kind: "GRANT",
                points: b.points,
                source: b.source,
                reason: b.reason,
                expire_time,
                merge_id: None,
                moved_from: None,
            };
            loyalty::book(tx, tenant, &entry, balance + b.points, now).await?
        }
    };
    Ok(entry)
}
