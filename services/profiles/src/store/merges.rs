//! Merges in Postgres: the involved customers locked in id order, their
//! rows as JSON (kept to restore them exactly), records moved between
//! customers and back, spending recomputed from the transactions, and the
//! merge log.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use super::{CustomerRow, customers::COLUMNS};

/// The kinds of record a merge moves, as the merge log names them.
pub const KINDS: [&str; 7] =
    ["transactions", "communications", "relatedPersons", "paymentAccounts", "occupancies", "occurrences", "linkedPersons"];

/// A record moved to the survivor: where it came from and its revision after the move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moved {
    pub kind: String,
    pub id: Uuid,
    pub from: Uuid,
    /// 0 for transactions, which never change.
    pub revision: i64,
    /// Payment accounts only: whether it was its customer's primary (moved ones are not).
    #[serde(default)]
    pub was_primary: bool,
}

/// A merge log.
#[derive(Debug, Clone, FromRow)]
pub struct MergeRow {
    pub id: Uuid,
    pub survivor_id: Uuid,
    pub merged_ids: Vec<Uuid>,
    pub field_sources: Json<Vec<(String, Uuid)>>,
    pub snapshots: Json<Vec<serde_json::Value>>,
    pub survivor_revision: i64,
    pub moved: Json<Vec<Moved>>,
    pub static_joined: Vec<Uuid>,
    pub static_left: Json<Vec<(Uuid, Uuid)>>,
    pub actor: String,
    pub merge_time: DateTime<Utc>,
    pub unmerge_time: Option<DateTime<Utc>>,
}

const MERGE_COLUMNS: &str = "id, survivor_id, merged_ids, field_sources, snapshots, survivor_revision, moved, static_joined, static_left, \
actor, merge_time, unmerge_time";

/// The customers `ids` (deleted or not), locked in id order so that
/// concurrent merges touching the same customers queue instead of deadlocking.
pub async fn lock(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<CustomerRow>, Error> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM customers WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE"))
        .bind(tenant)
        .bind(ids)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "customers"))
        .await?)
}

/// The rows of customers `ids` as JSON, exactly as stored.
pub async fn snapshots(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<serde_json::Value>, Error> {
    Ok(sqlx::query_scalar("SELECT to_jsonb(c) FROM customers c WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id")
        .bind(tenant)
        .bind(ids)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "customers"))
        .await?)
}

/// The columns an unmerge puts back from a snapshot: every one but the
/// identity, the creation and the revision (which moves on). Grades come
/// back too; those of customers with purchases are then recomputed.
const RESTORED: &str = "display_name, given_name, family_name, kind, emails, phones, addresses, company, job_title, industry, company_size, \
source_channel, birthday_year, birthday_month, birthday_day, time_zone, locale, tags, attributes, owner, category, consent, verify_time, \
delete_time, disable_time, disable_reason, merged_into, match_keys, value_tier, lifecycle_stage, lifecycle_time, recency_score, \
frequency_score, monetary_score, churn_risk, probability_alive, expected_purchases, expected_value_minor, expected_value_currency";

/// Puts a customer back as `snapshot` had it; the row after.
pub async fn restore(tx: &mut TenantTx, tenant: Uuid, snapshot: &serde_json::Value, now: DateTime<Utc>) -> Result<CustomerRow, Error> {
    let restored: Vec<String> = RESTORED.split(", ").map(|c| format!("s.{c}")).collect();
    Ok(sqlx::query_as(&format!(
        "UPDATE customers c SET ({RESTORED}) = ({}), revision = c.revision + 1, update_time = $3
         FROM jsonb_populate_record(NULL::customers, $2) s
         WHERE c.tenant_id = $1 AND c.id = s.id
         RETURNING {}",
        restored.join(", "),
        COLUMNS.split(", ").map(|c| format!("c.{c}")).collect::<Vec<_>>().join(", ")
    ))
    .bind(tenant)
    .bind(snapshot)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "customers"))
    .await?)
}

/// Marks `losers` merged into `survivor` (and deleted, if they were not); the rows after.
pub async fn mark_merged(
    tx: &mut TenantTx,
    tenant: Uuid,
    losers: &[Uuid],
    survivor: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<CustomerRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE customers SET merged_into = $3, delete_time = coalesce(delete_time, $4), revision = revision + 1, update_time = $4
         WHERE tenant_id = $1 AND id = ANY($2) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(losers)
    .bind(survivor)
    .bind(now)
    .fetch_all(&mut **tx)
    .instrument(db_span("UPDATE", "customers"))
    .await?)
}

/// The table and customer column a kind of record lives in, and what else a move sets.
fn place(kind: &str) -> (&'static str, &'static str, &'static str) {
    match kind {
        "transactions" => ("transactions", "customer_id", ""),
        "communications" => ("communications", "customer_id", ", revision = t.revision + 1, update_time = $4"),
        "relatedPersons" => ("related_persons", "customer_id", ", revision = t.revision + 1, update_time = $4"),
        "paymentAccounts" => ("payment_accounts", "customer_id", ", revision = t.revision + 1, update_time = $4, is_primary = false"),
        "occupancies" => ("occupancies", "customer_id", ", revision = t.revision + 1, update_time = $4"),
        "occurrences" => ("occurrences", "customer_id", ", revision = t.revision + 1, update_time = $4"),
        _ => ("related_persons", "linked_customer_id", ", revision = t.revision + 1, update_time = $4"),
    }
}

/// Moves every record of `kind` of `from` to `to`; what moved.
pub async fn move_records(
    tx: &mut TenantTx,
    tenant: Uuid,
    kind: &str,
    from: &[Uuid],
    to: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<Moved>, Error> {
    let (table, column, also) = place(kind);
    let revision = if table == "transactions" { "0::bigint" } else { "t.revision" };
    let primary = if table == "payment_accounts" { "o.is_primary" } else { "false" };
    let rows: Vec<(Uuid, Uuid, i64, bool)> = sqlx::query_as(&format!(
        "UPDATE {table} t SET {column} = $3{also}
         FROM (SELECT id, {column} AS from_id, {primary} AS was_primary FROM {table} o
               WHERE o.tenant_id = $1 AND o.{column} = ANY($2) ORDER BY id FOR UPDATE) o
         WHERE t.tenant_id = $1 AND t.id = o.id
         RETURNING t.id, o.from_id, {revision}, o.was_primary"
    ))
    .bind(tenant)
    .bind(from)
    .bind(to)
    .bind(now)
    .fetch_all(&mut **tx)
    .instrument(db_span("UPDATE", table))
    .await?;
    Ok(rows.into_iter().map(|(id, from, revision, was_primary)| Moved { kind: kind.to_owned(), id, from, revision, was_primary }).collect())
}

/// The current revision of each of `moved` still there (transactions: 0).
pub async fn revisions(tx: &mut TenantTx, tenant: Uuid, kind: &str, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, Error> {
    let (table, _, _) = place(kind);
    let revision = if table == "transactions" { "0::bigint" } else { "revision" };
    Ok(sqlx::query_as(&format!("SELECT id, {revision} FROM {table} WHERE tenant_id = $1 AND id = ANY($2)"))
        .bind(tenant)
        .bind(ids)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", table))
        .await?)
}

/// Moves records of `kind` back where they came from (payment accounts regain their primary flag).
pub async fn move_back(tx: &mut TenantTx, tenant: Uuid, kind: &str, moved: &[&Moved], now: DateTime<Utc>) -> Result<(), Error> {
    let (table, column, also) = place(kind);
    let also = also.replace(", is_primary = false", ", is_primary = m.was_primary");
    let ids: Vec<Uuid> = moved.iter().map(|m| m.id).collect();
    let froms: Vec<Uuid> = moved.iter().map(|m| m.from).collect();
    let primaries: Vec<bool> = moved.iter().map(|m| m.was_primary).collect();
    let also = also.replace("$4", "$5");
    sqlx::query(&format!(
        "UPDATE {table} t SET {column} = m.from_id{also}
         FROM unnest($2::uuid[], $3::uuid[], $4::bool[]) AS m(id, from_id, was_primary)
         WHERE t.tenant_id = $1 AND t.id = m.id"
    ))
    .bind(tenant)
    .bind(&ids)
    .bind(&froms)
    .bind(&primaries)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", table))
    .await?;
    Ok(())
}

/// Recomputes the spending of `customers` from their transactions.
pub async fn recompute_spending(tx: &mut TenantTx, tenant: Uuid, customers: &[Uuid]) -> Result<(), Error> {
    sqlx::query("DELETE FROM customer_spending WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(customers)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "customer_spending"))
        .await?;
    sqlx::query(
        "INSERT INTO customer_spending (tenant_id, customer_id, currency_code, purchase_count, refund_count, purchase_minor, refund_minor,
                                        first_purchase_time, last_purchase_time)
         SELECT $1, customer_id, currency_code,
                count(*) FILTER (WHERE kind = 'PURCHASE'), count(*) FILTER (WHERE kind = 'REFUND'),
                coalesce(sum(amount_minor) FILTER (WHERE kind = 'PURCHASE'), 0),
                coalesce(sum(amount_minor) FILTER (WHERE kind = 'REFUND'), 0),
                min(occur_time) FILTER (WHERE kind = 'PURCHASE'), max(occur_time) FILTER (WHERE kind = 'PURCHASE')
         FROM transactions WHERE tenant_id = $1 AND customer_id = ANY($2)
         GROUP BY customer_id, currency_code ORDER BY customer_id, currency_code",
    )
    .bind(tenant)
    .bind(customers)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "customer_spending"))
    .await?;
    Ok(())
}

/// Those of `customers` with purchases or refunds on record.
pub async fn with_spending(tx: &mut TenantTx, tenant: Uuid, customers: &[Uuid]) -> Result<Vec<Uuid>, Error> {
    Ok(sqlx::query_scalar("SELECT DISTINCT customer_id FROM customer_spending WHERE tenant_id = $1 AND customer_id = ANY($2) ORDER BY 1")
        .bind(tenant)
        .bind(customers)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "customer_spending"))
        .await?)
}

/// The static segments `customers` belong to: (customer, segment) pairs.
pub async fn static_memberships(tx: &mut TenantTx, tenant: Uuid, customers: &[Uuid]) -> Result<Vec<(Uuid, Uuid)>, Error> {
    Ok(sqlx::query_as(
        "SELECT m.customer_id, m.segment_id FROM segment_members m JOIN segments s ON s.tenant_id = m.tenant_id AND s.id = m.segment_id
         WHERE m.tenant_id = $1 AND m.customer_id = ANY($2) AND s.kind = 'STATIC' ORDER BY m.segment_id, m.customer_id",
    )
    .bind(tenant)
    .bind(customers)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "segment_members"))
    .await?)
}

/// Whether a rename request of one of `customers` is pending.
pub async fn rename_pending(tx: &mut TenantTx, tenant: Uuid, customers: &[Uuid]) -> Result<Option<Uuid>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT customer_id FROM rename_requests WHERE tenant_id = $1 AND customer_id = ANY($2) AND state = 'PENDING' LIMIT 1",
    )
    .bind(tenant)
    .bind(customers)
    .fetch_optional(&mut **tx)
    .instrument(db_span("SELECT", "rename_requests"))
    .await?)
}

/// Writes a merge log.
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, m: &MergeRow) -> Result<(), Error> {
    sqlx::query(&format!(
        "INSERT INTO customer_merges (tenant_id, {MERGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(tenant)
    .bind(m.id)
    .bind(m.survivor_id)
    .bind(&m.merged_ids)
    .bind(&m.field_sources)
    .bind(&m.snapshots)
    .bind(m.survivor_revision)
    .bind(&m.moved)
    .bind(&m.static_joined)
    .bind(&m.static_left)
    .bind(&m.actor)
    .bind(m.merge_time)
    .bind(m.unmerge_time)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "customer_merges"))
    .await?;
    Ok(())
}

/// A merge log, locked for an unmerge when `lock`.
pub async fn find(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<Option<MergeRow>, Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(sqlx::query_as(&format!("SELECT {MERGE_COLUMNS} FROM customer_merges WHERE tenant_id = $1 AND id = $2{lock}"))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "customer_merges"))
        .await?)
}

/// Drops the customer rows kept by the merges involving `customer` (its
/// personal data is being erased); those merges cannot be undone any more.
pub async fn forget(tx: &mut TenantTx, tenant: Uuid, customer: Uuid) -> Result<(), Error> {
    sqlx::query("UPDATE customer_merges SET snapshots = '[]' WHERE tenant_id = $1 AND (survivor_id = $2 OR $2 = ANY(merged_ids))")
        .bind(tenant)
        .bind(customer)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "customer_merges"))
        .await?;
    Ok(())
}

/// Marks a merge undone.
pub async fn set_unmerged(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query("UPDATE customer_merges SET unmerge_time = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "customer_merges"))
        .await?;
    Ok(())
}
