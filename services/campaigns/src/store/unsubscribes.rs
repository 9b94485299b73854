//! The `unsubscribes` table: links followed, and whether profiles has the opt-out yet.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::{FromRow, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use super::deliveries::DeliveryRow;
use crate::domain::channel::Channel;

/// A followed link.
#[derive(Debug, Clone, FromRow)]
pub struct UnsubscribeRow {
    pub tenant_id: Uuid,
    pub delivery_id: Uuid,
    pub customer_id: Uuid,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    pub create_time: DateTime<Utc>,
    /// When profiles recorded the opt-out; None until then.
    pub apply_time: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "tenant_id, delivery_id, customer_id, channel, create_time, apply_time";

/// The unsubscribe of `delivery`, if its link was followed.
pub async fn get(tx: &mut TenantTx, tenant: Uuid, delivery: Uuid) -> Result<Option<UnsubscribeRow>, Error> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM unsubscribes WHERE tenant_id = $1 AND delivery_id = $2"))
        .bind(tenant)
        .bind(delivery)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "unsubscribes"))
        .await?)
}

/// Records that `delivery`'s link was followed at `now`; None when it already was.
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, delivery: &DeliveryRow, now: DateTime<Utc>) -> Result<Option<UnsubscribeRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO unsubscribes (tenant_id, delivery_id, customer_id, channel, campaign_id, create_time) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, delivery_id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(delivery.id)
    .bind(delivery.customer_id)
    .bind(delivery.channel.as_str())
    .bind(delivery.campaign_id)
    .bind(now)
    .fetch_optional(&mut **tx)
    .instrument(db_span("INSERT", "unsubscribes"))
    .await?)
}

/// Makes `delivery`'s unsubscribe pending again (a new opt-out by the same
/// customer, who may have opted in since): dispatch honours it and the job
/// writes it to profiles once more. The row, if there is one.
pub async fn reopen(tx: &mut TenantTx, tenant: Uuid, delivery: Uuid) -> Result<Option<UnsubscribeRow>, Error> {
    Ok(sqlx::query_as(&format!("UPDATE unsubscribes SET apply_time = NULL WHERE tenant_id = $1 AND delivery_id = $2 RETURNING {COLUMNS}"))
        .bind(tenant)
        .bind(delivery)
        .fetch_optional(&mut **tx)
        .instrument(db_span("UPDATE", "unsubscribes"))
        .await?)
}

/// Profiles has recorded the opt-out of `delivery`'s unsubscribe.
pub async fn mark_applied(tx: &mut TenantTx, tenant: Uuid, delivery: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query("UPDATE unsubscribes SET apply_time = $3 WHERE tenant_id = $1 AND delivery_id = $2 AND apply_time IS NULL")
        .bind(tenant)
        .bind(delivery)
        .bind(now)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "unsubscribes"))
        .await?;
    Ok(())
}

/// Up to `limit` unsubscribes profiles does not have yet, oldest first,
/// across tenants through the `unsubscribe_scan` policy.
pub async fn pending(pool: &PgPool, limit: i64) -> Result<Vec<UnsubscribeRow>, Error> {
    let mut tx = pool.begin_with("BEGIN READ ONLY; SELECT set_config('crm.scope', 'unsubscribe-scan', true)").await?;
    let rows = sqlx::query_as(&format!("SELECT {COLUMNS} FROM unsubscribes WHERE apply_time IS NULL ORDER BY create_time LIMIT $1"))
        .bind(limit)
        .fetch_all(&mut *tx)
        .instrument(db_span("SELECT", "unsubscribes"))
        .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Which of `customers` have an unsubscribe from `channel` that profiles does not have yet.
pub async fn pending_among(
    tx: &mut TenantTx,
    tenant: Uuid,
    channel: Channel,
    customers: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, Error> {
    let found: Vec<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT customer_id FROM unsubscribes WHERE tenant_id = $1 AND channel = $2 AND customer_id = ANY($3) AND apply_time IS NULL",
    )
    .bind(tenant)
    .bind(channel.as_str())
    .bind(customers)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "unsubscribes"))
    .await?;
    Ok(found.into_iter().collect())
}
