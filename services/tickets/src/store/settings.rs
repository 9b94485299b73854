//! The `ticket_settings` table: a tenant's own values, where set.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

/// A tenant's stored settings (`None`: the service default).
#[derive(Debug, Clone, FromRow)]
pub struct SettingsRow {
    pub follow_up_delay_secs: Option<i64>,
    pub revision: i64,
    pub update_time: DateTime<Utc>,
}

/// The tenant's settings, if any was ever set.
pub async fn settings(tx: &mut TenantTx, tenant: Uuid) -> Result<Option<SettingsRow>, Error> {
    Ok(sqlx::query_as("SELECT follow_up_delay_secs, revision, update_time FROM ticket_settings WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "ticket_settings"))
        .await?)
}

/// The tenant's settings row, locked for a change; created first (the
/// defaults, revision 1) when there is none, so that two first writes queue
/// on one row and the second sees the first's revision.
pub async fn lock_settings(tx: &mut TenantTx, tenant: Uuid, now: DateTime<Utc>) -> Result<SettingsRow, Error> {
    sqlx::query("INSERT INTO ticket_settings (tenant_id, revision, update_time) VALUES ($1, 1, $2) ON CONFLICT (tenant_id) DO NOTHING")
        .bind(tenant)
        .bind(now)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "ticket_settings"))
        .await?;
    Ok(sqlx::query_as("SELECT follow_up_delay_secs, revision, update_time FROM ticket_settings WHERE tenant_id = $1 FOR UPDATE")
        .bind(tenant)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "ticket_settings"))
        .await?)
}

/// The tenant's own follow-up delay in seconds, if set.
pub async fn follow_up_delay_secs(tx: &mut TenantTx, tenant: Uuid) -> Result<Option<i64>, Error> {
    Ok(sqlx::query_scalar("SELECT follow_up_delay_secs FROM ticket_settings WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "ticket_settings"))
        .await?
        .flatten())
}

/// Stores the tenant's settings (locked by [`lock_settings`]) and bumps their revision.
pub async fn save_settings(
    tx: &mut TenantTx,
    tenant: Uuid,
    follow_up_delay_secs: Option<i64>,
    now: DateTime<Utc>,
) -> Result<SettingsRow, Error> {
    Ok(sqlx::query_as(
        "UPDATE ticket_settings SET follow_up_delay_secs = $2, revision = revision + 1, update_time = $3 WHERE tenant_id = $1
         RETURNING follow_up_delay_secs, revision, update_time",
    )
    .bind(tenant)
    .bind(follow_up_delay_secs)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "ticket_settings"))
    .await?)
}
