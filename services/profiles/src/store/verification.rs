//! The `verification_settings` and `verification_notices` tables.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

/// The tenant's fresh period in days (0: off) and when it last changed.
pub async fn get(tx: &mut TenantTx, tenant: Uuid) -> Result<Option<(i32, DateTime<Utc>)>, Error> {
    Ok(sqlx::query_as("SELECT fresh_days, update_time FROM verification_settings WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "verification_settings"))
        .await?)
}

/// Stores the tenant's fresh period.
pub async fn put(tx: &mut TenantTx, tenant: Uuid, fresh_days: i32, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO verification_settings (tenant_id, fresh_days, update_time) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET fresh_days = EXCLUDED.fresh_days, update_time = EXCLUDED.update_time",
    )
    .bind(tenant)
    .bind(fresh_days)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "verification_settings"))
    .await?;
    Ok(())
}

/// Tenants that verify and their fresh period, across tenants (the `verification_scan` policy).
pub async fn verifying_tenants(pool: &PgPool) -> Result<Vec<(Uuid, i32)>, Error> {
    let mut tx = pool.begin_with("BEGIN READ ONLY; SELECT set_config('crm.scope', 'verification-scan', true)").await?;
    let tenants = sqlx::query_as("SELECT tenant_id, fresh_days FROM verification_settings WHERE fresh_days > 0")
        .fetch_all(&mut *tx)
        .instrument(db_span("SELECT", "verification_settings"))
        .await?;
    tx.commit().await?;
    Ok(tenants)
}

/// Records a notice for every live, enabled customer of `tenant` whose data
/// is older than `fresh_days` at `now` and who has none for that last
/// confirmation and period yet; returns (customer, period) of the new ones.
/// The primary key makes concurrent runs (replicas) record each once.
pub async fn record_due(tx: &mut TenantTx, tenant: Uuid, fresh_days: i32, now: DateTime<Utc>) -> Result<Vec<(Uuid, i32)>, Error> {
    Ok(sqlx::query_as(
        "INSERT INTO verification_notices (tenant_id, customer_id, base_time, period, create_time)
         SELECT $1, c.id, coalesce(c.verify_time, c.create_time),
                floor(extract(epoch FROM ($3 - coalesce(c.verify_time, c.create_time))) / ($2 * 86400.0))::int, $3
         FROM customers c
         WHERE c.tenant_id = $1 AND c.delete_time IS NULL AND c.disable_time IS NULL
           AND coalesce(c.verify_time, c.create_time) <= $3 - make_interval(days => $2)
         ON CONFLICT DO NOTHING
         RETURNING customer_id, period",
    )
    .bind(tenant)
    .bind(fresh_days)
    .bind(now)
    .fetch_all(&mut **tx)
    .instrument(db_span("INSERT", "verification_notices"))
    .await?)
}
