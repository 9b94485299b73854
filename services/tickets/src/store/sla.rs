//! The `business_calendars` and `sla_policies` tables.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx, db_span},
    error::violated_constraint,
};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, Postgres, postgres::PgArguments, query::QueryAs, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::calendar::{BusinessCalendar, CalendarError, Hours};

/// One opening interval as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHours {
    /// 1 = Monday … 7 = Sunday.
    pub day: u32,
    /// Opening minute.
    pub start: u32,
    /// Closing minute (≤ 1440).
    pub end: u32,
}

/// A stored calendar.
#[derive(Debug, Clone, FromRow)]
pub struct CalendarRow {
    pub id: Uuid,
    pub display_name: String,
    pub time_zone: String,
    pub opening_hours: Json<Vec<StoredHours>>,
    pub holidays: Vec<NaiveDate>,
    pub create_time: DateTime<Utc>,
    /// Incremented by every edit; the etag (ignored on insert).
    pub revision: i64,
}

impl CalendarRow {
    /// The business calendar this row describes.
    pub fn calendar(&self) -> Result<BusinessCalendar, CalendarError> {
        let tz = self.time_zone.parse().unwrap_or(chrono_tz::UTC);
        let mut week: [Vec<Hours>; 7] = Default::default();
        for h in &self.opening_hours.0 {
            week[(h.day as usize).clamp(1, 7) - 1].push(Hours { start: h.start, end: h.end });
        }
        BusinessCalendar::new(tz, week, self.holidays.iter().copied())
    }
}

const CALENDAR_COLUMNS: &str = "id, display_name, time_zone, opening_hours, holidays, create_time, revision";
const CALENDARS: Table = Table { name: "business_calendars", columns: CALENDAR_COLUMNS };

/// Inserts a calendar.
pub async fn insert_calendar(tx: &mut TenantTx, tenant: Uuid, c: &CalendarRow) -> Result<CalendarRow, Error> {
    let sql = format!(
        "INSERT INTO business_calendars (tenant_id, id, display_name, time_zone, opening_hours, holidays, create_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CALENDAR_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(c.id)
        .bind(&c.display_name)
        .bind(&c.time_zone)
        .bind(&c.opening_hours)
        .bind(&c.holidays)
        .bind(c.create_time)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "business_calendars"))
        .await?)
}

/// One calendar.
pub async fn find_calendar(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<Option<CalendarRow>, Error> {
    CALENDARS.find(tx, tenant, id, false).await
}

/// A page of the tenant's calendars by display name, after the (display name, id) key `after`.
pub async fn list_calendars(tx: &mut TenantTx, tenant: Uuid, after: Option<(String, Uuid)>, limit: i64) -> Result<Vec<CalendarRow>, Error> {
    CALENDARS.page_by_display_name(tx, tenant, after, limit).await
}

/// Stores a calendar's new values and bumps its revision.
pub async fn update_calendar(tx: &mut TenantTx, tenant: Uuid, c: &CalendarRow) -> Result<CalendarRow, Error> {
    let sql = format!(
        "UPDATE business_calendars SET display_name = $3, time_zone = $4, opening_hours = $5, holidays = $6, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {CALENDAR_COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(c.id)
        .bind(&c.display_name)
        .bind(&c.time_zone)
        .bind(&c.opening_hours)
        .bind(&c.holidays)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "business_calendars"))
        .await?)
}

/// One calendar, locked against concurrent changes.
pub async fn lock_calendar(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<Option<CalendarRow>, Error> {
    CALENDARS.find(tx, tenant, id, true).await
}

/// What still uses a calendar: (SLA policies, open tickets).
pub async fn calendar_users(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(i64, i64), Error> {
    Ok(sqlx::query_as(
        "SELECT (SELECT count(*) FROM sla_policies WHERE tenant_id = $1 AND calendar_id = $2),
                (SELECT count(*) FROM tickets WHERE tenant_id = $1 AND sla_calendar_id = $2 AND status IN ('NEW', 'OPEN', 'PENDING'))",
    )
    .bind(tenant)
    .bind(id)
    .fetch_one(&mut **tx)
    .instrument(db_span("SELECT", "sla_policies"))
    .await?)
}

/// Deletes a calendar.
pub async fn delete_calendar(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM business_calendars WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "business_calendars"))
        .await?;
    Ok(())
}

/// A stored SLA policy.
#[derive(Debug, Clone, FromRow)]
pub struct PolicyRow {
    pub id: Uuid,
    pub display_name: String,
    pub priority: String,
    pub customer_category: String,
    pub calendar_id: Option<Uuid>,
    pub first_response_ms: i64,
    pub resolution_ms: i64,
    pub warning_ratio: f64,
    pub create_time: DateTime<Utc>,
    /// Incremented by every edit; the etag (ignored on insert).
    pub revision: i64,
}

const POLICY_COLUMNS: &str =
    "id, display_name, priority, customer_category, calendar_id, first_response_ms, resolution_ms, warning_ratio, create_time, revision";
const POLICIES: Table = Table { name: "sla_policies", columns: POLICY_COLUMNS };

fn policy_exists(err: sqlx::Error, p: &PolicyRow) -> Error {
    match violated_constraint(&err) {
        Some("sla_policies_one_per_scope") => Error::AlreadyExists {
            reason: "SLA_POLICY_EXISTS",
            message: format!("a policy for priority {} and customer category {:?} already exists", p.priority, p.customer_category),
            resource_type: "tickets.crm/SlaPolicy",
            name: String::new(),
        },
        _ => err.into(),
    }
}

/// Binds $1 tenant, $2 id and $3-$9 the policy's fields, in the order of its columns.
fn bind_policy<'q>(
    query: QueryAs<'q, Postgres, PolicyRow, PgArguments>,
    tenant: Uuid,
    p: &'q PolicyRow,
) -> QueryAs<'q, Postgres, PolicyRow, PgArguments> {
    query
        .bind(tenant)
        .bind(p.id)
        .bind(&p.display_name)
        .bind(&p.priority)
        .bind(&p.customer_category)
        .bind(p.calendar_id)
        .bind(p.first_response_ms)
        .bind(p.resolution_ms)
        .bind(p.warning_ratio)
}

/// Inserts a policy; one per (priority, customer category): ALREADY_EXISTS otherwise.
pub async fn insert_policy(tx: &mut TenantTx, tenant: Uuid, p: &PolicyRow) -> Result<PolicyRow, Error> {
    let sql = format!(
        "INSERT INTO sla_policies (tenant_id, id, display_name, priority, customer_category, calendar_id, first_response_ms, resolution_ms,
         warning_ratio, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {POLICY_COLUMNS}"
    );
    bind_policy(sqlx::query_as(&sql), tenant, p)
        .bind(p.create_time)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "sla_policies"))
        .await
        .map_err(|err| policy_exists(err, p))
}

/// Replaces a policy's values and bumps its revision; ALREADY_EXISTS if it
/// now clashes with another policy's (priority, customer category).
pub async fn update_policy(tx: &mut TenantTx, tenant: Uuid, p: &PolicyRow) -> Result<PolicyRow, Error> {
    let sql = format!(
        "UPDATE sla_policies SET display_name = $3, priority = $4, customer_category = $5, calendar_id = $6, first_response_ms = $7,
         resolution_ms = $8, warning_ratio = $9, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {POLICY_COLUMNS}"
    );
    bind_policy(sqlx::query_as(&sql), tenant, p)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "sla_policies"))
        .await
        .map_err(|err| policy_exists(err, p))
}

/// One policy; `lock` holds it until the transaction ends.
pub async fn find_policy(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<Option<PolicyRow>, Error> {
    POLICIES.find(tx, tenant, id, lock).await
}

/// A page of the tenant's policies by (priority, customer category, id), after `after`.
pub async fn list_policies(
    tx: &mut TenantTx,
    tenant: Uuid,
    after: Option<(String, String, Uuid)>,
    limit: i64,
) -> Result<Vec<PolicyRow>, Error> {
    let (priority, category, id) = match after {
        Some((p, c, id)) => (Some(p), Some(c), Some(id)),
        None => (None, None, None),
    };
    let sql = format!(
        "SELECT {POLICY_COLUMNS} FROM sla_policies WHERE tenant_id = $1
         AND ($2::text IS NULL OR (priority, customer_category, id) > ($2, $3, $4))
         ORDER BY priority, customer_category, id LIMIT $5"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(priority)
        .bind(category)
        .bind(id)
        .bind(limit)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "sla_policies"))
        .await?)
}

/// Deletes a policy; false if there was none.
pub async fn delete_policy(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<bool, Error> {
    let done = sqlx::query("DELETE FROM sla_policies WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "sla_policies"))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The policy for `priority` and the customer's category: a category-specific
/// policy wins over the generic one.
pub async fn policy_for(tx: &mut TenantTx, tenant: Uuid, priority: &str, customer_category: &str) -> Result<Option<PolicyRow>, Error> {
    let sql = format!(
        "SELECT {POLICY_COLUMNS} FROM sla_policies WHERE tenant_id = $1 AND priority = $2 AND customer_category IN ($3, '')
         ORDER BY customer_category DESC LIMIT 1"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(priority)
        .bind(customer_category)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "sla_policies"))
        .await?)
}
