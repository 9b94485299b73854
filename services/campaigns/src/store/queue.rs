//! The `delivery_queue` table: which deliveries wait for a worker, and when
//! each may next be taken.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span, scan_due_ids},
};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

/// Notices: served first, so bulk campaigns never starve them.
pub const NOTICE_LANE: i16 = 0;
/// Campaign messages.
pub const CAMPAIGN_LANE: i16 = 1;

/// Postgres channel on which new work is announced (payload: tenant id).
pub const NOTIFY_CHANNEL: &str = "crm_deliveries";

/// Queues delivery `id` in `lane`, due at `due`, and wakes the workers on commit.
pub async fn enqueue(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lane: i16, due: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query(
        "WITH queued AS (INSERT INTO delivery_queue (tenant_id, delivery_id, lane, due_time) VALUES ($1, $2, $3, $4))
         SELECT pg_notify($5, $1::text)",
    )
    .bind(tenant)
    .bind(id)
    .bind(lane)
    .bind(due)
    .bind(NOTIFY_CHANNEL)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "delivery_queue"))
    .await?;
    Ok(())
}

/// Tenants with due work, those with due notices first, at most `limit`.
/// Reads across tenants through the `due_scan` policy (ids and instants only).
pub async fn due_tenants(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>, Error> {
    let sql = "SELECT tenant_id FROM delivery_queue WHERE due_time <= $1 GROUP BY tenant_id ORDER BY min(lane), min(due_time) LIMIT $2";
    scan_due_ids(pool, "delivery-scan", "delivery_queue", sql, now, limit).await
}

/// Claims up to `limit` of the tenant's due deliveries, notices first, by
/// pushing their due time to `lease_until`; rows another replica is claiming
/// right now are skipped, not waited for.
pub async fn claim(
    tx: &mut TenantTx,
    tenant: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Uuid>, Error> {
    Ok(sqlx::query_scalar(
        "WITH due AS (
             SELECT delivery_id FROM delivery_queue WHERE tenant_id = $1 AND due_time <= $2
             ORDER BY lane, due_time LIMIT $4 FOR UPDATE SKIP LOCKED
         )
         UPDATE delivery_queue q SET due_time = $3 FROM due WHERE q.tenant_id = $1 AND q.delivery_id = due.delivery_id
         RETURNING q.delivery_id",
    )
    .bind(tenant)
    .bind(now)
    .bind(lease_until)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("UPDATE", "delivery_queue"))
    .await?)
}

/// Locks delivery `id`'s queue row (if it has one) until the transaction
/// ends. Every transaction that changes both a queue row and its delivery
/// takes the queue row first — the order the claim takes them in — so that
/// none waits on another in a circle.
pub async fn lock(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    sqlx::query("SELECT 1 FROM delivery_queue WHERE tenant_id = $1 AND delivery_id = $2 FOR UPDATE")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("SELECT", "delivery_queue"))
        .await?;
    Ok(())
}

/// Sets delivery `id`'s next due time (a retry).
pub async fn reschedule(tx: &mut TenantTx, tenant: Uuid, id: Uuid, due: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query("UPDATE delivery_queue SET due_time = $3 WHERE tenant_id = $1 AND delivery_id = $2")
        .bind(tenant)
        .bind(id)
        .bind(due)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "delivery_queue"))
        .await?;
    Ok(())
}

/// Removes delivery `id` from the queue (it reached a final status).
pub async fn remove(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM delivery_queue WHERE tenant_id = $1 AND delivery_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "delivery_queue"))
        .await?;
    Ok(())
}
