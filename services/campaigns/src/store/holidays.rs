//! The `holidays` table: a tenant's own holidays, and its changes to the
//! built-in ones (a name, disabled); the built-ins themselves live in code.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::holidays::Rule;

/// A holiday rule as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StoredRule {
    Gregorian { month: u8, day: u8 },
    Lunar { month: u8, day: u8 },
    LunarNewYearsEve,
    SolarTerm { degrees: u16 },
}

impl From<Rule> for StoredRule {
    fn from(rule: Rule) -> Self {
        match rule {
            Rule::Gregorian { month, day } => Self::Gregorian { month, day },
            Rule::Lunar { month, day } => Self::Lunar { month, day },
            Rule::LunarNewYearsEve => Self::LunarNewYearsEve,
            Rule::SolarTerm { degrees } => Self::SolarTerm { degrees },
        }
    }
}

impl From<StoredRule> for Rule {
    fn from(rule: StoredRule) -> Self {
        match rule {
            StoredRule::Gregorian { month, day } => Self::Gregorian { month, day },
            StoredRule::Lunar { month, day } => Self::Lunar { month, day },
            StoredRule::LunarNewYearsEve => Self::LunarNewYearsEve,
            StoredRule::SolarTerm { degrees } => Self::SolarTerm { degrees },
        }
    }
}

/// A stored holiday: the tenant's own (with a rule) or its change to a built-in (no rule).
#[derive(Debug, Clone, FromRow)]
pub struct HolidayRow {
    pub id: String,
    pub display_name: String,
    pub rule: Option<Json<StoredRule>>,
    pub disabled: bool,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

const COLUMNS: &str = "id, display_name, rule, disabled, revision, create_time, update_time";

/// Every stored holiday of the tenant.
pub async fn all(tx: &mut TenantTx, tenant: Uuid) -> Result<Vec<HolidayRow>, Error> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM holidays WHERE tenant_id = $1 ORDER BY id"))
        .bind(tenant)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "holidays"))
        .await?)
}

/// Holiday `id`; `lock` holds it until the transaction ends.
pub async fn find(tx: &mut TenantTx, tenant: Uuid, id: &str, lock: bool) -> Result<Option<HolidayRow>, Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM holidays WHERE tenant_id = $1 AND id = $2{lock}"))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "holidays"))
        .await?)
}

/// Holds the tenant's calendar against concurrent creations until the transaction ends.
pub async fn lock_calendar(tx: &mut TenantTx, tenant: Uuid) -> Result<(), Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('holidays:' || $1::text, 0))")
        .bind(tenant)
        .execute(&mut **tx)
        .instrument(db_span("SELECT", "holidays"))
        .await?;
    Ok(())
}

/// How many holidays of its own the tenant has.
pub async fn count_own(tx: &mut TenantTx, tenant: Uuid) -> Result<i64, Error> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM holidays WHERE tenant_id = $1 AND rule IS NOT NULL")
        .bind(tenant)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "holidays"))
        .await?)
}

/// Inserts a holiday, or (a built-in's first change) the row of its
/// changes; None when a row with this id exists already.
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, row: &HolidayRow) -> Result<Option<HolidayRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO holidays (tenant_id, id, display_name, rule, disabled, revision, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id, id) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(&row.id)
    .bind(&row.display_name)
    .bind(row.rule)
    .bind(row.disabled)
    .bind(row.revision)
    .bind(row.create_time)
    .bind(row.update_time)
    .fetch_optional(&mut **tx)
    .instrument(db_span("INSERT", "holidays"))
    .await?)
}

/// Writes a changed holiday and bumps its revision.
pub async fn update(tx: &mut TenantTx, tenant: Uuid, row: &HolidayRow, now: DateTime<Utc>) -> Result<HolidayRow, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE holidays SET display_name = $3, rule = $4, disabled = $5, revision = revision + 1, update_time = $6
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(&row.id)
    .bind(&row.display_name)
    .bind(row.rule)
    .bind(row.disabled)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "holidays"))
    .await?)
}

/// Deletes holiday `id`; whether there was one.
pub async fn delete(tx: &mut TenantTx, tenant: Uuid, id: &str) -> Result<bool, Error> {
    let deleted = sqlx::query("DELETE FROM holidays WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "holidays"))
        .await?;
    Ok(deleted.rows_affected() == 1)
}
