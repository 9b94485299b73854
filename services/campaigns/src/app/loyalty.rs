//! Loyalty points: grants, redemptions and expiry booked in the customer's
//! ledger under the balance row's lock, each exactly once per source.

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, db::TenantTx};
use crm_proto::crm::campaigns::v1 as pb;
use uuid::Uuid;

use super::{App, emit};
use crate::{
    domain::{
        loyalty::consume,
        loyalty_program::{Program, Purchase},
    },
    store::loyalty::{self, EntryRow, NewEntry, ProgramRow, expire_due},
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
    /// The member tier's id; empty below the first.
    pub tier: String,
    pub tier_progress: i64,
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
                    spend_minor: 0,
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

    /// Makes the next batch of the tenant's members due for a tier review
    /// (the programme changed); how many.
    pub async fn sweep_tiers(&self, tenant: Uuid, batch: i64, now: DateTime<Utc>) -> Result<i64, Error> {
        let mut tx = self.begin(tenant).await?;
        let marked = loyalty::sweep_tiers(&mut tx, tenant, batch, now).await?;
        tx.commit().await?;
        Ok(marked)
    }

    /// Judges `customer`'s member tier again (their window moved on, or the programme changed).
    pub async fn review_tier(&self, tenant: Uuid, customer: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        loyalty::lock_balance(&mut tx, tenant, customer, now).await?;
        let program = loyalty::program(&mut tx, tenant, false).await?.program.0;
        judge_tier(&mut tx, tenant, &program, customer, now).await?;
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
        tier: balance.tier,
        tier_progress: balance.tier_progress,
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
    grant_for_spend(tx, tenant, b, expire_time, 0, now).await
}

/// Grants `b.points` in `tx`, earned by a purchase of `spend_minor` (0 for
/// a plain grant), and judges the customer's member tier again.
async fn grant_for_spend(
    tx: &mut TenantTx,
    tenant: Uuid,
    b: &Booking<'_>,
    expire_time: Option<DateTime<Utc>>,
    spend_minor: i64,
    now: DateTime<Utc>,
) -> Result<EntryRow, Error> {
    let balance = loyalty::lock_balance(tx, tenant, b.customer_id, now).await?;
    if let Some(entry) = replayed(loyalty::entry_by_source(tx, tenant, b.customer_id, b.source).await?, "GRANT", b, b.points, expire_time)?
    {
        return Ok(entry);
    }
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
        spend_minor,
    };
    let booked = loyalty::book(tx, tenant, &entry, balance + b.points, now).await?;
    let program = loyalty::program(tx, tenant, false).await?.program.0;
    judge_tier(tx, tenant, &program, b.customer_id, now).await?;
    Ok(booked)
}

/// Judges `customer`'s member tier on their progress over the programme's
/// window and records it, with when to judge it again (when the oldest
/// grant in the window leaves it); a change writes `MemberTierChanged`. The
/// balance row must be locked.
async fn judge_tier(tx: &mut TenantTx, tenant: Uuid, program: &Program, customer: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
    let before = loyalty::balance(tx, tenant, customer).await?;
    if program.tiers.is_empty() && before.tier.is_empty() {
        // No tiers to judge (a review due from an earlier programme is dropped).
        return loyalty::set_tier(tx, tenant, customer, "", before.tier_progress, None).await;
    }
    let window = Duration::days(i64::from(program.window_days));
    let (progress, oldest) = loyalty::progress(tx, tenant, customer, program.basis, now - window).await?;
    let tier = program.tier_for(progress).map_or("", |t| t.id.as_str());
    let review_time = oldest.filter(|_| !program.tiers.is_empty()).map(|t| t + window);
    loyalty::set_tier(tx, tenant, customer, tier, progress, review_time).await?;
    if before.tier != tier {
        let event = pb::MemberTierChanged {
            points_account: format!("customers/{customer}/pointsAccount"),
            tier: tier.to_owned(),
            previous_tier: before.tier,
            tier_progress: progress,
        };
        emit(tx, tenant, &event.points_account.clone(), &event).await?;
    }
    Ok(())
}

/// Books what `purchase` earns under `program` in `tx` (source
/// "transactions/{id}": a replayed event earns nothing twice); the points.
pub async fn earn_in(tx: &mut TenantTx, tenant: Uuid, program: &Program, purchase: &Purchase, now: DateTime<Utc>) -> Result<i64, Error> {
    let Some(exponent) = crm_kit::money::exponent(&purchase.currency) else { return Ok(0) };
    let tier = loyalty::balance(tx, tenant, purchase.customer).await?.tier;
    let points = program.earned(&purchase.currency, purchase.minor, exponent, &tier);
    if points <= 0 {
        return Ok(0);
    }
    let source = format!("transactions/{}", purchase.transaction);
    let booking = Booking { customer_id: purchase.customer, points, reason: "Purchase", source: &source };
    let expire_time = (program.earned_points_expire_days > 0).then(|| now + Duration::days(i64::from(program.earned_points_expire_days)));
    let spend = if purchase.currency == program.earn_currency { purchase.minor } else { 0 };
    grant_for_spend(tx, tenant, &booking, expire_time, spend, now).await?;
    Ok(points)
}

impl App {
    /// The tenant's loyalty programme (defaults, revision 0, when never stored).
    pub async fn loyalty_program(&self, tenant: Uuid) -> Result<ProgramRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = loyalty::program(&mut tx, tenant, false).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Replaces the programme with what `edit` makes of the stored one (after the etag check).
    pub async fn update_loyalty_program(
        &self,
        tenant: Uuid,
        etag: &str,
        edit: impl FnOnce(&Program) -> Result<Program, Error>,
        now: DateTime<Utc>,
    ) -> Result<ProgramRow, Error> {
        let expected = crm_kit::etag::parse(etag, "loyalty_program.etag")?;
        let mut tx = self.begin(tenant).await?;
        let before = loyalty::program(&mut tx, tenant, true).await?;
        if expected.is_some_and(|e| e != before.revision) {
            return Err(Error::EtagMismatch { resource_type: "campaigns.crm/LoyaltyProgram", name: "loyaltyProgram".into() });
        }
        let program = edit(&before.program.0)?.changed_from(&before.program.0, now);
        let row = loyalty::put_program(&mut tx, tenant, &program, now).await?;
        let old = &before.program.0;
        let rules_moved = program.basis != old.basis || program.window_days != old.window_days;
        if program.tiers != old.tiers || (!program.tiers.is_empty() && rules_moved) {
            // Tiers judged under other rules: everyone is judged again, by the tier-review job's sweep.
            loyalty::start_tier_sweep(&mut tx, tenant).await?;
        }
        // Purchases earn from profiles' stream: from now on the tenant's is read.
        crm_kit::follow::follow_tenant(&mut tx, tenant, crate::store::streams::PROFILES).await?;
        tx.commit().await?;
        Ok(row)
    }
}
