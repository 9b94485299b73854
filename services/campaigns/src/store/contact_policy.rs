//! The `contact_policies` table and the counts frequency caps need.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::channel::Channel;

/// A stored cap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCap {
    pub channel: String,
    pub per_day: u32,
    pub per_week: u32,
}

/// A tenant's stored contact rules.
#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct ContactPolicyRow {
    pub time_zone: String,
    /// Minutes after local midnight.
    pub quiet_start: Option<i32>,
    pub quiet_end: Option<i32>,
    pub caps: Json<Vec<StoredCap>>,
    /// 0 for the defaults of a tenant that never stored a policy.
    pub revision: i64,
    pub update_time: Option<DateTime<Utc>>,
}

impl Default for ContactPolicyRow {
    fn default() -> Self {
        Self { time_zone: String::new(), quiet_start: None, quiet_end: None, caps: Json(Vec::new()), revision: 0, update_time: None }
    }
}

impl crm_kit::db::Revisioned for ContactPolicyRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

/// The tenant's policy (the defaults when none is stored); `lock` holds it for a change.
pub async fn get(tx: &mut TenantTx, tenant: Uuid, lock: bool) -> Result<ContactPolicyRow, Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql =
        format!("SELECT time_zone, quiet_start, quiet_end, caps, revision, update_time FROM contact_policies WHERE tenant_id = $1{lock}");
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "contact_policies"))
        .await?
        .unwrap_or_default())
}

/// Stores the tenant's policy, one revision on.
pub async fn put(tx: &mut TenantTx, tenant: Uuid, p: &ContactPolicyRow, now: DateTime<Utc>) -> Result<ContactPolicyRow, Error> {
    Ok(sqlx::query_as(
        "INSERT INTO contact_policies (tenant_id, time_zone, quiet_start, quiet_end, caps, update_time) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id) DO UPDATE SET time_zone = EXCLUDED.time_zone, quiet_start = EXCLUDED.quiet_start,
             quiet_end = EXCLUDED.quiet_end, caps = EXCLUDED.caps, update_time = EXCLUDED.update_time,
             revision = contact_policies.revision + 1
         RETURNING time_zone, quiet_start, quiet_end, caps, revision, update_time",
    )
    .bind(tenant)
    .bind(&p.time_zone)
    .bind(p.quiet_start)
    .bind(p.quiet_end)
    .bind(&p.caps)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "contact_policies"))
    .await?)
}

/// Serialises the cap checks of one customer across transactions and replicas
/// until `tx` ends, so that two messages cannot both take the last slot.
pub async fn lock_customer(tx: &mut TenantTx, tenant: Uuid, customer: Uuid) -> Result<(), Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text || $2::text, 7))")
        .bind(tenant)
        .bind(customer)
        .execute(&mut **tx)
        .instrument(db_span("SELECT", "pg_advisory_xact_lock"))
        .await?;
    Ok(())
}

/// Marketing messages sent (or being sent) to `customer` on `channel` since `day` and since `week`.
pub async fn marketing_sent(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    channel: Channel,
    day: DateTime<Utc>,
    week: DateTime<Utc>,
) -> Result<(i64, i64), Error> {
    Ok(sqlx::query_as(
        "SELECT count(*) FILTER (WHERE coalesce(send_time, update_time) >= $4), count(*) FROM deliveries
         WHERE tenant_id = $1 AND customer_id = $2 AND channel = $3 AND purpose = 'MARKETING' AND status IN ('SENT', 'SUBMITTING')
           AND coalesce(send_time, update_time) >= $5",
    )
    .bind(tenant)
    .bind(customer)
    .bind(channel.as_str())
    .bind(day)
    .bind(week)
    .fetch_one(&mut **tx)
    .instrument(db_span("SELECT", "deliveries"))
    .await?)
}

/// What stops a message to `customer` at `address` on `channel` beyond
/// their record, in one round trip: the address bounced hard before (any
/// purpose), and for marketing an open complaint ticket and an unsubscribe
/// link followed that profiles has not recorded yet (once it has, the
/// consent says so).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Stops {
    pub suppressed: bool,
    pub open_complaint: bool,
    pub unsubscribed: bool,
}

/// The [`Stops`] of one message.
pub async fn dispatch_stops(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, channel: Channel, address: &str) -> Result<Stops, Error> {
    Ok(sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM suppressions WHERE tenant_id = $1 AND channel = $3 AND address = $4) AS suppressed,
                EXISTS (SELECT 1 FROM complaint_tickets WHERE tenant_id = $1 AND customer_id = $2 AND open) AS open_complaint,
                EXISTS (SELECT 1 FROM unsubscribes WHERE tenant_id = $1 AND customer_id = $2 AND channel = $3 AND apply_time IS NULL)
                    AS unsubscribed",
    )
    .bind(tenant)
    .bind(customer)
    .bind(channel.as_str())
    .bind(address)
    .fetch_one(&mut **tx)
    .instrument(db_span("SELECT", "suppressions"))
    .await?)
}

/// Suppresses `address` on `channel` after `delivery` bounced hard (no-op if it is already).
pub async fn suppress(
    tx: &mut TenantTx,
    tenant: Uuid,
    channel: Channel,
    address: &str,
    delivery: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO suppressions (tenant_id, channel, address, delivery_id, reason, create_time) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(channel.as_str())
    .bind(address)
    .bind(delivery)
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "suppressions"))
    .await?;
    Ok(())
}

/// Which of `addresses` are suppressed on `channel`.
pub async fn suppressed_among(
    tx: &mut TenantTx,
    tenant: Uuid,
    channel: Channel,
    addresses: &[String],
) -> Result<std::collections::HashSet<String>, Error> {
    let found: Vec<String> =
        sqlx::query_scalar("SELECT address FROM suppressions WHERE tenant_id = $1 AND channel = $2 AND address = ANY($3)")
            .bind(tenant)
            .bind(channel.as_str())
            .bind(addresses)
            .fetch_all(&mut **tx)
            .instrument(db_span("SELECT", "suppressions"))
            .await?;
    Ok(found.into_iter().collect())
}
