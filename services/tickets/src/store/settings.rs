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

/// The tenant's settings, if any was ever set; `lock` holds the row for a change.
pub async fn settings(tx: &mut TenantTx, tenant: Uuid, lock: bool) -> Result<Option<SettingsRow>, Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT follow_up_delay_secs, revision, update_time FROM ticket_settings WHERE tenant_id = $1{lock}");
    Ok(sqlx::query_as(&sql).bind(tenant).fetch_optional(&mut **tx).instrument(db_span("SELECT", "ticket_settings")).await?)
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

/// Stores the tenant's settings and bumps their revision.
pub async fn save_settings(
    tx: &mut TenantTx,
    tenant: Uuid,
    follow_up_delay_secs: Option<i64>,
    now: DateTime<Utc>,
) -> Result<SettingsRow, Error> {
    Ok(sqlx::query_as(
        // Revision 1 is the defaults, never stored: the first save is revision 2.
        "INSERT INTO ticket_settings (tenant_id, follow_up_delay_secs, revision, update_time) VALUES ($1, $2, 2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET follow_up_delay_secs = EXCLUDED.follow_up_delay_secs,
             revision = ticket_settings.revision + 1, update_time = EXCLUDED.update_time
         RETURNING follow_up_delay_secs, revision, update_time",
    )
    .bind(tenant)
    .bind(follow_up_delay_secs)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "ticket_settings"))
    .await?)
}
