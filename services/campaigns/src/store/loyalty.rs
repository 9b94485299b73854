//! The `points_entries` ledger and `points_balances`: entries booked under
//! the customer's balance row lock, lots consumed, due lots found for expiry.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span, scan_due, scan_due_ids},
};
use sqlx::{FromRow, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use sqlx::types::Json;

use crate::domain::{
    loyalty::Lot,
    loyalty_program::{Basis, Program},
};

/// A ledger entry.
#[derive(Debug, Clone, FromRow)]
pub struct EntryRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// GRANT, REDEEM, EXPIRE, MOVE_IN or MOVE_OUT.
    pub kind: String,
    pub points: i64,
    pub source: String,
    pub reason: String,
    pub expire_time: Option<DateTime<Utc>>,
    pub balance_after: i64,
    pub create_time: DateTime<Utc>,
}

const ENTRY_COLUMNS: &str = "id, customer_id, kind, points, source, reason, expire_time, balance_after, create_time";

/// A customer's balance.
#[derive(Debug, Clone, Default, FromRow)]
pub struct BalanceRow {
    pub balance: i64,
    pub lifetime_earned: i64,
    pub update_time: Option<DateTime<Utc>>,
    /// The member tier's id; empty below the first.
    pub tier: String,
    pub tier_progress: i64,
}

/// An entry to book.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub customer_id: Uuid,
    pub kind: &'static str,
    /// Signed: positive for a grant.
    pub points: i64,
    pub source: &'a str,
    pub reason: &'a str,
    pub expire_time: Option<DateTime<Utc>>,
    /// For a move with a merge: the merge, and (moving in) the lot the points came from.
    pub merge_id: Option<Uuid>,
    pub moved_from: Option<Uuid>,
    /// For a purchase's earning: the spend it came from, in minor units of the programme's currency.
    pub spend_minor: i64,
}

/// Locks customer `customer`'s balance row (creating it at zero) and returns
/// the balance, in one round trip: the upsert's no-op update takes the row lock.
pub async fn lock_balance(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, now: DateTime<Utc>) -> Result<i64, Error> {
    Ok(sqlx::query_scalar(
        "INSERT INTO points_balances (tenant_id, customer_id, balance, update_time) VALUES ($1, $2, 0, $3)
         ON CONFLICT (tenant_id, customer_id) DO UPDATE SET balance = points_balances.balance
         RETURNING balance",
    )
    .bind(tenant)
    .bind(customer)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "points_balances"))
    .await?)
}

/// The entry booked for `source` of `customer`, if any (a retry or a replay).
pub async fn entry_by_source(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, source: &str) -> Result<Option<EntryRow>, Error> {
    Ok(sqlx::query_as(&format!("SELECT {ENTRY_COLUMNS} FROM points_entries WHERE tenant_id = $1 AND customer_id = $2 AND source = $3"))
        .bind(tenant)
        .bind(customer)
        .bind(source)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "points_entries"))
        .await?)
}

/// Books `e` with the balance it leaves (the balance row must be locked) and moves the balance.
pub async fn book(tx: &mut TenantTx, tenant: Uuid, e: &NewEntry<'_>, balance_after: i64, now: DateTime<Utc>) -> Result<EntryRow, Error> {
    let remaining = if e.points > 0 { e.points } else { 0 };
    let row = sqlx::query_as(&format!(
        "WITH moved AS (
             UPDATE points_balances SET balance = $9, lifetime_earned = lifetime_earned + CASE WHEN $4 = 'GRANT' THEN $5 ELSE 0 END, update_time = $10
             WHERE tenant_id = $1 AND customer_id = $3)
         INSERT INTO points_entries (tenant_id, id, customer_id, kind, points, source, reason, expire_time, remaining, balance_after,
                                     create_time, merge_id, moved_from, spend_minor)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $11, $9, $10, $12, $13, $14) RETURNING {ENTRY_COLUMNS}"
    ))
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(e.customer_id)
    .bind(e.kind)
    .bind(e.points)
    .bind(e.source)
    .bind(e.reason)
    .bind(e.expire_time)
    .bind(balance_after)
    .bind(now)
    .bind(remaining)
    .bind(e.merge_id)
    .bind(e.moved_from)
    .bind(e.spend_minor)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "points_entries"))
    .await?;
    Ok(row)
}

/// The customer's lots with points left.
pub async fn open_lots(tx: &mut TenantTx, tenant: Uuid, customer: Uuid) -> Result<Vec<Lot>, Error> {
    let rows: Vec<(Uuid, i64, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT id, remaining, expire_time FROM points_entries WHERE tenant_id = $1 AND customer_id = $2 AND remaining > 0")
            .bind(tenant)
            .bind(customer)
            .fetch_all(&mut **tx)
            .instrument(db_span("SELECT", "points_entries"))
            .await?;
    Ok(rows.into_iter().map(|(id, remaining, expire_time)| Lot { id, remaining, expire_time }).collect())
}

/// Takes `taken` (lot, points) from the lots.
pub async fn take_from_lots(tx: &mut TenantTx, tenant: Uuid, taken: &[(Uuid, i64)]) -> Result<(), Error> {
    let (ids, points): (Vec<Uuid>, Vec<i64>) = taken.iter().copied().unzip();
    sqlx::query(
        "UPDATE points_entries e SET remaining = e.remaining - t.points
         FROM unnest($2::uuid[], $3::bigint[]) AS t(id, points) WHERE e.tenant_id = $1 AND e.id = t.id",
    )
    .bind(tenant)
    .bind(ids)
    .bind(points)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "points_entries"))
    .await?;
    Ok(())
}

/// The customer's balance (zero before any booking).
pub async fn balance(tx: &mut TenantTx, tenant: Uuid, customer: Uuid) -> Result<BalanceRow, Error> {
    let row = sqlx::query_as(
        "SELECT balance, lifetime_earned, update_time, tier, tier_progress FROM points_balances WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_optional(&mut **tx)
    .instrument(db_span("SELECT", "points_balances"))
    .await?;
    Ok(row.unwrap_or_default())
}

/// The customer's lots by expiry at `now`.
#[derive(Debug, Clone, Copy, Default, FromRow)]
pub struct Expiry {
    /// Points that expired by `now` whose expiry the job has not booked yet.
    pub expired: i64,
    /// Points expiring after `now` and before `until`.
    pub expiring: i64,
    /// The soonest expiry after `now`.
    pub next_expire_time: Option<DateTime<Utc>>,
}

/// How the customer's lots stand against expiry at `now`, looking ahead to `until`.
pub async fn expiry(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<Expiry, Error> {
    Ok(sqlx::query_as(
        "SELECT coalesce(sum(remaining) FILTER (WHERE expire_time <= $3), 0)::bigint AS expired,
                coalesce(sum(remaining) FILTER (WHERE expire_time > $3 AND expire_time < $4), 0)::bigint AS expiring,
                min(expire_time) FILTER (WHERE expire_time > $3) AS next_expire_time
         FROM points_entries WHERE tenant_id = $1 AND customer_id = $2 AND remaining > 0",
    )
    .bind(tenant)
    .bind(customer)
    .bind(now)
    .bind(until)
    .fetch_one(&mut **tx)
    .instrument(db_span("SELECT", "points_entries"))
    .await?)
}

/// A page of the customer's entries, newest first, before `before`.
pub async fn entries(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, before: Option<Uuid>, limit: i64) -> Result<Vec<EntryRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM points_entries WHERE tenant_id = $1 AND customer_id = $2 AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "points_entries"))
    .await?)
}

/// The customer's lots that expired by `now` with points left, by expiry.
pub async fn expired_lots(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, now: DateTime<Utc>) -> Result<Vec<(Uuid, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, remaining FROM points_entries
         WHERE tenant_id = $1 AND customer_id = $2 AND remaining > 0 AND expire_time <= $3 ORDER BY expire_time, id",
    )
    .bind(tenant)
    .bind(customer)
    .bind(now)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "points_entries"))
    .await?)
}

/// A lot a merge moved in.
#[derive(Debug, Clone, FromRow)]
pub struct MovedLot {
    /// The MOVE_IN entry (a lot of the survivor).
    pub id: Uuid,
    pub survivor: Uuid,
    /// Points left of it.
    pub remaining: i64,
    pub expire_time: Option<DateTime<Utc>>,
    /// The customer its points came from.
    pub owner: Uuid,
}

/// The lots merge `merge` moved in, with the customer each came from.
pub async fn moved_in(tx: &mut TenantTx, tenant: Uuid, merge: Uuid) -> Result<Vec<MovedLot>, Error> {
    Ok(sqlx::query_as(
        "SELECT e.id, e.customer_id AS survivor, e.remaining, e.expire_time, o.customer_id AS owner
         FROM points_entries e JOIN points_entries o ON o.tenant_id = e.tenant_id AND o.id = e.moved_from
         WHERE e.tenant_id = $1 AND e.merge_id = $2 AND e.kind = 'MOVE_IN' ORDER BY e.id",
    )
    .bind(tenant)
    .bind(merge)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "points_entries"))
    .await?)
}

/// Customers (with their tenants) holding lots that expired by `now`, at most `limit`.
/// Reads across tenants through the `expiry_scan` policy.
pub async fn due_expiries(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<(Uuid, Uuid)>, Error> {
    let sql = "SELECT DISTINCT tenant_id, customer_id FROM
                   (SELECT tenant_id, customer_id FROM points_entries
                    WHERE remaining > 0 AND expire_time IS NOT NULL AND expire_time <= $1 ORDER BY expire_time LIMIT $2) due";
    scan_due(pool, "points-expiry-scan", "points_entries", sql, now, limit).await
}

/// Books the expiry of every lot of `customer` that expired by `now` (the balance row locked); the balance left.
pub async fn expire_due(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, mut balance: i64, now: DateTime<Utc>) -> Result<i64, Error> {
    for (lot, remaining) in expired_lots(tx, tenant, customer, now).await? {
        let source = format!("expiries/{lot}");
        balance -= remaining;
        let entry = NewEntry {
            customer_id: customer,
            kind: "EXPIRE",
            points: -remaining,
            source: &source,
            reason: "expired",
            expire_time: None,
            merge_id: None,
            moved_from: None,
            spend_minor: 0,
        };
        take_from_lots(tx, tenant, &[(lot, remaining)]).await?;
        book(tx, tenant, &entry, balance, now).await?;
    }
    Ok(balance)
}

/// Locks the balance rows of `customers` in one order (as every booking
/// takes them one at a time: no deadlock) and books what expired in them; the
/// balances left.
async fn lock_balances(tx: &mut TenantTx, tenant: Uuid, mut customers: Vec<Uuid>, now: DateTime<Utc>) -> Result<HashMap<Uuid, i64>, Error> {
    customers.sort();
    customers.dedup();
    let mut balances = HashMap::with_capacity(customers.len());
    for customer in customers {
        let balance = lock_balance(tx, tenant, customer, now).await?;
        balances.insert(customer, expire_due(tx, tenant, customer, balance, now).await?);
    }
    Ok(balances)
}

/// One lot's points moving between two locked accounts under `source`.
struct Move<'a> {
    lot: Uuid,
    points: i64,
    expire_time: Option<DateTime<Utc>>,
    from: Uuid,
    to: Uuid,
    source: &'a str,
    /// Kept on the moved-out entry (and, for a merge, on the lot moved in, which an unmerge looks for).
    merge: Uuid,
    into_merge: Option<Uuid>,
}

/// Books `m`: MOVE_OUT of the lot's points from `from` (consuming the lot),
/// MOVE_IN of a lot of the same points and expiry into `to`.
async fn transfer(
    tx: &mut TenantTx,
    tenant: Uuid,
    m: Move<'_>,
    balances: &mut HashMap<Uuid, i64>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let out = balances.get_mut(&m.from).expect("locked");
    *out -= m.points;
    let reason = format!("moved to customers/{}", m.to);
    let entry = NewEntry {
        customer_id: m.from,
        kind: "MOVE_OUT",
        points: -m.points,
        source: m.source,
        reason: &reason,
        expire_time: None,
        merge_id: Some(m.merge),
        moved_from: None,
        spend_minor: 0,
    };
    take_from_lots(tx, tenant, &[(m.lot, m.points)]).await?;
    book(tx, tenant, &entry, *out, now).await?;
    let into = balances.get_mut(&m.to).expect("locked");
    *into += m.points;
    let reason = format!("moved from customers/{}", m.from);
    let entry = NewEntry {
        customer_id: m.to,
        kind: "MOVE_IN",
        points: m.points,
        source: m.source,
        reason: &reason,
        expire_time: m.expire_time,
        merge_id: m.into_merge,
        moved_from: Some(m.lot),
        spend_minor: 0,
    };
    book(tx, tenant, &entry, *into, now).await?;
    Ok(())
}

/// Moves the open lots of the `merged` customers into `survivor`'s account
/// under merge `merge` (in the caller's transaction, which applies profiles'
/// CustomersMerged): each lot is booked out of its account (MOVE_OUT) and
/// into the survivor's as a lot of the same points and expiry (MOVE_IN).
/// Sources `merges/{merge}/{lot}` make a replay book nothing twice. How many lots moved.
pub async fn move_for_merge(
    tx: &mut TenantTx,
    tenant: Uuid,
    merge: Uuid,
    survivor: Uuid,
    merged: &[Uuid],
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    let mut balances = lock_balances(tx, tenant, merged.iter().copied().chain([survivor]).collect(), now).await?;
    let mut moved = 0;
    for from in merged.iter().filter(|c| **c != survivor) {
        for lot in open_lots(tx, tenant, *from).await? {
            let source = format!("merges/{merge}/{}", lot.id);
            if entry_by_source(tx, tenant, *from, &source).await?.is_some() {
                continue;
            }
            let m = Move {
                lot: lot.id,
                points: lot.remaining,
                expire_time: lot.expire_time,
                from: *from,
                to: survivor,
                source: &source,
                merge,
                into_merge: Some(merge),
            };
            transfer(tx, tenant, m, &mut balances, now).await?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Undoes merge `merge`'s moves (profiles' CustomersUnmerged): what is left
/// of each lot it moved in goes back to the customer it came from (what the
/// survivor used meanwhile stays used). Sources `unmerges/{merge}/{lot}`.
/// How many lots moved back.
pub async fn move_back_for_unmerge(tx: &mut TenantTx, tenant: Uuid, merge: Uuid, now: DateTime<Utc>) -> Result<u64, Error> {
    let involved = moved_in(tx, tenant, merge).await?.iter().flat_map(|l| [l.survivor, l.owner]).collect();
    let mut balances = lock_balances(tx, tenant, involved, now).await?;
    let mut moved = 0;
    // Read again under the locks: the expiries just booked may have emptied some lots.
    for lot in moved_in(tx, tenant, merge).await? {
        let source = format!("unmerges/{merge}/{}", lot.id);
        if lot.remaining == 0 || entry_by_source(tx, tenant, lot.survivor, &source).await?.is_some() {
            continue;
        }
        let m = Move {
            lot: lot.id,
            points: lot.remaining,
            expire_time: lot.expire_time,
            from: lot.survivor,
            to: lot.owner,
            source: &source,
            merge,
            into_merge: None,
        };
        transfer(tx, tenant, m, &mut balances, now).await?;
        moved += 1;
    }
    Ok(moved)
}

/// The tenant's stored loyalty programme.
#[derive(Debug, Clone, FromRow)]
pub struct ProgramRow {
    pub program: Json<Program>,
    /// 0 for the defaults of a tenant that never stored one.
    pub revision: i64,
    pub update_time: Option<DateTime<Utc>>,
}

impl Default for ProgramRow {
    fn default() -> Self {
        Self { program: Json(Program::default()), revision: 0, update_time: None }
    }
}

/// The tenant's programme (the defaults when none is stored); `lock` holds it for a change.
pub async fn program(tx: &mut TenantTx, tenant: Uuid, lock: bool) -> Result<ProgramRow, Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT program, revision, update_time FROM loyalty_programs WHERE tenant_id = $1{lock}");
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "loyalty_programs"))
        .await?
        .unwrap_or_default())
}

/// Stores the tenant's programme, bumping its revision.
pub async fn put_program(tx: &mut TenantTx, tenant: Uuid, program: &Program, now: DateTime<Utc>) -> Result<ProgramRow, Error> {
    Ok(sqlx::query_as(
        "INSERT INTO loyalty_programs (tenant_id, program, update_time) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET program = EXCLUDED.program, revision = loyalty_programs.revision + 1,
                                               update_time = EXCLUDED.update_time
         RETURNING program, revision, update_time",
    )
    .bind(tenant)
    .bind(Json(program))
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "loyalty_programs"))
    .await?)
}

/// The customer's tier progress since `since`: points granted, or spend on purchases.
pub async fn progress(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    basis: Basis,
    since: DateTime<Utc>,
) -> Result<(i64, Option<DateTime<Utc>>), Error> {
    let sum = match basis {
        Basis::Points => "points",
        Basis::Spend => "spend_minor",
    };
    let sql = format!(
        "SELECT coalesce(sum({sum}), 0)::bigint, min(create_time) FILTER (WHERE {sum} > 0) FROM points_entries
         WHERE tenant_id = $1 AND customer_id = $2 AND kind = 'GRANT' AND create_time >= $3"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(customer)
        .bind(since)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "points_entries"))
        .await?)
}

/// Records the customer's tier, the progress it was judged on, and when to
/// judge it again without a booking (the balance row must exist).
pub async fn set_tier(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    tier: &str,
    progress: i64,
    review_time: Option<DateTime<Utc>>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE points_balances SET tier = $3, tier_progress = $4, tier_review_time = $5 WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(customer)
    .bind(tier)
    .bind(progress)
    .bind(review_time)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "points_balances"))
    .await?;
    Ok(())
}

/// Every member of the tenant is to be judged again (the programme
/// changed): a sweep from the first customer on, by [`sweep_tiers`].
pub async fn start_tier_sweep(tx: &mut TenantTx, tenant: Uuid) -> Result<(), Error> {
    sqlx::query("UPDATE loyalty_programs SET tier_sweep_cursor = $2 WHERE tenant_id = $1")
        .bind(tenant)
        .bind(Uuid::nil())
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "loyalty_programs"))
        .await?;
    Ok(())
}

/// Makes the next `batch` members of the tenant's pending sweep due at
/// `now` and moves the sweep on (or ends it after the last); how many.
pub async fn sweep_tiers(tx: &mut TenantTx, tenant: Uuid, batch: i64, now: DateTime<Utc>) -> Result<i64, Error> {
    let cursor: Option<Uuid> = sqlx::query_scalar(
        "SELECT tier_sweep_cursor FROM loyalty_programs WHERE tenant_id = $1 AND tier_sweep_cursor IS NOT NULL FOR UPDATE",
    )
    .bind(tenant)
    .fetch_optional(&mut **tx)
    .instrument(db_span("SELECT", "loyalty_programs"))
    .await?;
    let Some(cursor) = cursor else { return Ok(0) };
    let marked: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE points_balances SET tier_review_time = $3 WHERE tenant_id = $1 AND customer_id IN (
             SELECT customer_id FROM points_balances WHERE tenant_id = $1 AND customer_id > $2 ORDER BY customer_id LIMIT $4)
         RETURNING customer_id",
    )
    .bind(tenant)
    .bind(cursor)
    .bind(now)
    .bind(batch)
    .fetch_all(&mut **tx)
    .instrument(db_span("UPDATE", "points_balances"))
    .await?;
    let next = if (marked.len() as i64) < batch { None } else { marked.iter().max().copied() };
    sqlx::query("UPDATE loyalty_programs SET tier_sweep_cursor = $2 WHERE tenant_id = $1")
        .bind(tenant)
        .bind(next)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "loyalty_programs"))
        .await?;
    Ok(marked.len() as i64)
}

/// Tenants with a pending tier sweep (through the `tier_sweep_scan` policy; `now` unused).
pub async fn pending_tier_sweeps(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>, Error> {
    let sql = "SELECT tenant_id FROM loyalty_programs WHERE tier_sweep_cursor IS NOT NULL AND $1::timestamptz IS NOT NULL LIMIT $2";
    scan_due_ids(pool, "tier-sweep-scan", "loyalty_programs", sql, now, limit).await
}

/// Members due to have their tier judged again, across tenants (through the `tier_review_scan` policy).
pub async fn due_tier_reviews(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<(Uuid, Uuid)>, Error> {
    let sql = "SELECT tenant_id, customer_id FROM points_balances WHERE tier_review_time <= $1 ORDER BY tier_review_time LIMIT $2";
    scan_due(pool, "tier-review-scan", "points_balances", sql, now, limit).await
}
