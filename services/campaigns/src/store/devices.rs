//! The `devices` table: push tokens by customer.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

/// The most devices one push goes to: the customer's most recently registered.
pub const PUSH_FAN_OUT: i64 = 10;

/// A registered device.
#[derive(Debug, Clone, FromRow)]
pub struct DeviceRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub token: String,
    /// ANDROID, IOS or WEB.
    pub platform: String,
    pub app_version: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

const COLUMNS: &str = "id, customer_id, token, platform, app_version, create_time, update_time";

/// What RegisterDevice writes.
#[derive(Debug, Clone)]
pub struct Registration {
    pub customer_id: Uuid,
    pub token: String,
    pub platform: &'static str,
    pub app_version: String,
}

/// Inserts `r` as device `id`, or — its token being registered already —
/// updates that device. The row, and the customer it belonged to before
/// (None when it is new).
pub async fn register(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    r: &Registration,
    now: DateTime<Utc>,
) -> Result<(DeviceRow, Option<Uuid>), Error> {
    // The previous owner, read under the row lock the upsert takes anyway.
    let before: Option<(Uuid,)> = sqlx::query_as("SELECT customer_id FROM devices WHERE tenant_id = $1 AND token = $2 FOR UPDATE")
        .bind(tenant)
        .bind(&r.token)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "devices"))
        .await?;
    let row = sqlx::query_as(&format!(
        "INSERT INTO devices (tenant_id, id, customer_id, token, platform, app_version, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (tenant_id, token) DO UPDATE
            SET customer_id = EXCLUDED.customer_id, platform = EXCLUDED.platform,
                app_version = EXCLUDED.app_version, update_time = EXCLUDED.update_time
         RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(r.customer_id)
    .bind(&r.token)
    .bind(r.platform)
    .bind(&r.app_version)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "devices"))
    .await?;
    Ok((row, before.map(|(c,)| c)))
}

/// Device `id`.
pub async fn get(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<Option<DeviceRow>, Error> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM devices WHERE tenant_id = $1 AND id = $2"))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "devices"))
        .await?)
}

/// A page of devices (of `customer`, or all), most recently registered first, after `after`.
pub async fn list(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<DeviceRow>, Error> {
    let (after_time, after_id) = after.map_or((None, None), |(t, id)| (Some(t), Some(id)));
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM devices
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR customer_id = $2)
           AND ($3::timestamptz IS NULL OR (update_time, id) < ($3, $4))
         ORDER BY update_time DESC, id DESC LIMIT $5"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "devices"))
    .await?)
}

/// The tokens a push to `customer` goes to: their [`PUSH_FAN_OUT`] most recently registered.
pub async fn push_tokens(tx: &mut TenantTx, tenant: Uuid, customer: Uuid) -> Result<Vec<String>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT token FROM devices WHERE tenant_id = $1 AND customer_id = $2 ORDER BY update_time DESC, id DESC LIMIT $3",
    )
    .bind(tenant)
    .bind(customer)
    .bind(PUSH_FAN_OUT)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "devices"))
    .await?)
}

/// Those of `customers` with at least one registered device.
pub async fn customers_with_devices(tx: &mut TenantTx, tenant: Uuid, customers: &[Uuid]) -> Result<HashSet<Uuid>, Error> {
    let found: Vec<Uuid> = sqlx::query_scalar("SELECT DISTINCT customer_id FROM devices WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(customers)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "devices"))
        .await?;
    Ok(found.into_iter().collect())
}

/// Removes device `id`; the row removed, if there was one.
pub async fn delete(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<Option<DeviceRow>, Error> {
    Ok(sqlx::query_as(&format!("DELETE FROM devices WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut **tx)
        .instrument(db_span("DELETE", "devices"))
        .await?)
}

/// Removes the devices holding `tokens` (FCM said they are unregistered); the rows removed.
pub async fn forget_tokens(tx: &mut TenantTx, tenant: Uuid, tokens: &[String]) -> Result<Vec<DeviceRow>, Error> {
    Ok(sqlx::query_as(&format!("DELETE FROM devices WHERE tenant_id = $1 AND token = ANY($2) RETURNING {COLUMNS}"))
        .bind(tenant)
        .bind(tokens)
        .fetch_all(&mut **tx)
        .instrument(db_span("DELETE", "devices"))
        .await?)
}
