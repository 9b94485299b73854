//! Exports: the audit entries in `data_exports`, and the pages of
//! transactions by occur time that a transaction export reads (customer
//! exports page through `customers::list`).

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx, db_span, scan_due},
};
use sqlx::{FromRow, PgPool, Postgres, QueryBuilder};
use tracing::Instrument;
use uuid::Uuid;

use super::transactions::{TRANSACTIONS, TransactionRow, load_items};

/// A stored export audit entry.
#[derive(Debug, Clone, FromRow)]
pub struct ExportRow {
    pub id: Uuid,
    pub kind: String,
    pub format: String,
    pub actor: String,
    pub filter: String,
    pub segment_id: Option<Uuid>,
    pub order_by: String,
    pub range_start_time: Option<DateTime<Utc>>,
    pub range_end_time: Option<DateTime<Utc>>,
    pub columns: Vec<String>,
    pub personal_data: bool,
    pub state: String,
    pub row_count: i64,
    pub size_bytes: i64,
    pub failure_message: String,
    pub create_time: DateTime<Utc>,
    pub finish_time: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, kind, format, actor, filter, segment_id, order_by, range_start_time, range_end_time, columns, personal_data, \
state, row_count, size_bytes, failure_message, create_time, finish_time";

/// The `data_exports` table, for the kit's shared statements.
pub const EXPORTS: Table = Table { name: "data_exports", columns: COLUMNS };

/// Writes `row` (RUNNING).
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, row: &ExportRow) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO data_exports (tenant_id, id, kind, format, actor, filter, segment_id, order_by, range_start_time, range_end_time,
                                   columns, personal_data, state, create_time, heartbeat_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'RUNNING', $13, $13)",
    )
    .bind(tenant)
    .bind(row.id)
    .bind(&row.kind)
    .bind(&row.format)
    .bind(&row.actor)
    .bind(&row.filter)
    .bind(row.segment_id)
    .bind(&row.order_by)
    .bind(row.range_start_time)
    .bind(row.range_end_time)
    .bind(&row.columns)
    .bind(row.personal_data)
    .bind(row.create_time)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "data_exports"))
    .await?;
    Ok(())
}

/// Ends export `id`: SUCCEEDED, or FAILED with `failure`, with what was sent.
pub async fn finish(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    (rows, bytes): (i64, i64),
    failure: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE data_exports SET state = $3, row_count = $4, size_bytes = $5, failure_message = $6, finish_time = $7
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(if failure.is_some() { "FAILED" } else { "SUCCEEDED" })
    .bind(rows)
    .bind(bytes)
    .bind(failure.unwrap_or_default())
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "data_exports"))
    .await?;
    Ok(())
}

/// Export `id` is still running at `now`.
pub async fn beat(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query("UPDATE data_exports SET heartbeat_time = $3 WHERE tenant_id = $1 AND id = $2 AND state = 'RUNNING'")
        .bind(tenant)
        .bind(id)
        .bind(now)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "data_exports"))
        .await?;
    Ok(())
}

/// Running exports across tenants whose last heartbeat is at or before
/// `before` (their process died), through the `export_sweep` policy.
pub async fn abandoned(pool: &PgPool, before: DateTime<Utc>, limit: i64) -> Result<Vec<(Uuid, Uuid)>, Error> {
    // An entry without a heartbeat was begun by a replica older than heartbeats: its creation stands in.
    let sql = "SELECT tenant_id, id FROM data_exports WHERE state = 'RUNNING' AND coalesce(heartbeat_time, create_time) <= $1
               ORDER BY coalesce(heartbeat_time, create_time) LIMIT $2";
    scan_due(pool, "export-sweep", "data_exports", sql, before, limit).await
}

/// Ends export `id` FAILED with `message` if it is still running without a
/// heartbeat since `before` (checked again under the row's lock); whether it was.
pub async fn end_abandoned(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    before: DateTime<Utc>,
    message: &str,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let ended = sqlx::query(
        "UPDATE data_exports SET state = 'FAILED', failure_message = $4, finish_time = $5
         WHERE tenant_id = $1 AND id = $2 AND state = 'RUNNING' AND coalesce(heartbeat_time, create_time) <= $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(before)
    .bind(message)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "data_exports"))
    .await?
    .rows_affected();
    Ok(ended > 0)
}

/// A page of exports, newest first (ids are UUIDv7), after `after`.
pub async fn page(tx: &mut TenantTx, tenant: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<ExportRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM data_exports WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    ))
    .bind(tenant)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "data_exports"))
    .await?)
}

/// A page of transactions that occurred in [`start`, `end`), oldest first,
/// after the key (occur time, id) of the previous page's last row, with
/// their line items. Only the bounds given are written into the statement,
/// so that every page's plan starts at its key in the (tenant, occur time,
/// id) index (a prepared `$n IS NULL OR …` may get a generic plan that
/// scans from the tenant's first transaction on every page).
pub async fn transactions(
    tx: &mut TenantTx,
    tenant: Uuid,
    (start, end): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<TransactionRow>, Error> {
    let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {} FROM transactions WHERE tenant_id = ", TRANSACTIONS.columns));
    qb.push_bind(tenant);
    if let Some(start) = start {
        qb.push(" AND occur_time >= ").push_bind(start);
    }
    if let Some(end) = end {
        qb.push(" AND occur_time < ").push_bind(end);
    }
    if let Some((time, id)) = after {
        qb.push(" AND (occur_time, id) > (").push_bind(time).push(", ").push_bind(id).push(")");
    }
    qb.push(" ORDER BY occur_time, id LIMIT ").push_bind(limit);
    let mut rows: Vec<TransactionRow> = qb.build_query_as().fetch_all(&mut **tx).instrument(db_span("SELECT", "transactions")).await?;
    load_items(tx, tenant, &mut rows).await?;
    Ok(rows)
}
