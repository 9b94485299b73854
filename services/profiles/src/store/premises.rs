//! The `premises` and `occupancies` tables.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::{
    Error,
    db::{ChildRow, Revisioned, Table, TenantTx, db_span},
    error::violated_constraint,
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::premises::PremisesDraft;

/// Stored premises.
#[derive(Debug, Clone, FromRow)]
pub struct PremisesRow {
    pub id: Uuid,
    pub unit_code: String,
    pub building: String,
    pub floor: String,
    pub area: f64,
    pub kind: String,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Revisioned for PremisesRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

/// A stored occupancy.
#[derive(Debug, Clone, FromRow)]
pub struct OccupancyRow {
    pub id: Uuid,
    pub premises_id: Uuid,
    pub customer_id: Uuid,
    pub role: String,
    pub move_in_date: NaiveDate,
    pub move_out_date: Option<NaiveDate>,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Revisioned for OccupancyRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

impl ChildRow for OccupancyRow {
    fn id(&self) -> Uuid {
        self.id
    }

    fn parent_id(&self) -> Uuid {
        self.premises_id
    }
}

const PREMISES_COLUMNS: &str = "id, unit_code, building, floor, area, kind, revision, create_time, update_time";
const OCCUPANCY_COLUMNS: &str = "id, premises_id, customer_id, role, move_in_date, move_out_date, revision, create_time, update_time";

/// The `premises` table, for the kit's shared statements.
pub const PREMISES: Table = Table { name: "premises", columns: PREMISES_COLUMNS };
/// The `occupancies` table, for the kit's shared statements.
pub const OCCUPANCIES: Table = Table { name: "occupancies", columns: OCCUPANCY_COLUMNS };

/// A write refused by the database's rules.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Another premises of the tenant has this unit code.
    UnitCodeTaken,
    /// The role has another holder on some of these dates.
    Overlap,
}

/// `err` as [`Refused`] when one of the tables' constraints said no.
fn refused<T>(err: sqlx::Error) -> Result<Result<T, Refused>, Error> {
    let exclusion = matches!(&err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23P01"));
    match violated_constraint(&err) {
        Some("premises_unit_code_unique") => Ok(Err(Refused::UnitCodeTaken)),
        _ if exclusion => Ok(Err(Refused::Overlap)),
        _ => Err(err.into()),
    }
}

/// Stores `d` as premises `id`.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    d: &PremisesDraft,
    now: DateTime<Utc>,
) -> Result<Result<PremisesRow, Refused>, Error> {
    sqlx::query_as(&format!(
        "INSERT INTO premises (tenant_id, id, unit_code, building, floor, area, kind, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING {PREMISES_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&d.unit_code)
    .bind(&d.building)
    .bind(&d.floor)
    .bind(d.area)
    .bind(&d.kind)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "premises"))
    .await
    .map(Ok)
    .or_else(refused)
}

/// Replaces premises `id`'s writable fields with `d`, bumping its revision.
pub async fn update(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    d: &PremisesDraft,
    now: DateTime<Utc>,
) -> Result<Result<PremisesRow, Refused>, Error> {
    sqlx::query_as(&format!(
        "UPDATE premises SET unit_code = $3, building = $4, floor = $5, area = $6, kind = $7, update_time = $8, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {PREMISES_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&d.unit_code)
    .bind(&d.building)
    .bind(&d.floor)
    .bind(d.area)
    .bind(&d.kind)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "premises"))
    .await
    .map(Ok)
    .or_else(refused)
}

/// A page of premises by unit code, after the key `after`.
pub async fn list(tx: &mut TenantTx, tenant: Uuid, after: Option<(String, Uuid)>, limit: i64) -> Result<Vec<PremisesRow>, Error> {
    let (code, id) = after.unzip();
    Ok(sqlx::query_as(&format!(
        "SELECT {PREMISES_COLUMNS} FROM premises WHERE tenant_id = $1 AND ($2::text IS NULL OR (unit_code, id) > ($2, $3))
         ORDER BY unit_code, id LIMIT $4"
    ))
    .bind(tenant)
    .bind(code)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "premises"))
    .await?)
}

/// Whether premises `id` ever had an occupancy.
pub async fn has_history(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<bool, Error> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM occupancies WHERE tenant_id = $1 AND premises_id = $2)")
        .bind(tenant)
        .bind(id)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "occupancies"))
        .await?)
}

/// The holders of `premises` on `day`: (premises, role, customer), for billing parties.
pub async fn holders_on(tx: &mut TenantTx, tenant: Uuid, premises: &[Uuid], day: NaiveDate) -> Result<Vec<(Uuid, String, Uuid)>, Error> {
    Ok(sqlx::query_as(
        "SELECT premises_id, role, customer_id FROM occupancies
         WHERE tenant_id = $1 AND premises_id = ANY($2) AND move_in_date <= $3 AND (move_out_date IS NULL OR move_out_date > $3)",
    )
    .bind(tenant)
    .bind(premises)
    .bind(day)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "occupancies"))
    .await?)
}

/// The occupancy of `role` at `premises` that has not ended, locked for the move that ends it.
pub async fn current_holder(tx: &mut TenantTx, tenant: Uuid, premises: Uuid, role: &str) -> Result<Option<OccupancyRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {OCCUPANCY_COLUMNS} FROM occupancies
         WHERE tenant_id = $1 AND premises_id = $2 AND role = $3 AND move_out_date IS NULL FOR UPDATE"
    ))
    .bind(tenant)
    .bind(premises)
    .bind(role)
    .fetch_optional(&mut **tx)
    .instrument(db_span("SELECT", "occupancies"))
    .await?)
}

/// What a move-in stores.
#[derive(Debug, Clone)]
pub struct MoveIn {
    pub premises: Uuid,
    pub customer: Uuid,
    pub role: String,
    pub date: NaiveDate,
    /// A past stay's move-out, stored with it (an open stay would overlap the stays after it).
    pub move_out: Option<NaiveDate>,
}

/// Stores occupancy `id` from `m`; [`Refused::Overlap`] when the role has a holder on those dates.
pub async fn insert_occupancy(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    m: &MoveIn,
    now: DateTime<Utc>,
) -> Result<Result<OccupancyRow, Refused>, Error> {
    sqlx::query_as(&format!(
        "INSERT INTO occupancies (tenant_id, premises_id, id, customer_id, role, move_in_date, move_out_date, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $8, $7, $7) RETURNING {OCCUPANCY_COLUMNS}"
    ))
    .bind(tenant)
    .bind(m.premises)
    .bind(id)
    .bind(m.customer)
    .bind(&m.role)
    .bind(m.date)
    .bind(now)
    .bind(m.move_out)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "occupancies"))
    .await
    .map(Ok)
    .or_else(refused)
}

/// Ends occupancy `id` on `date`, bumping its revision.
pub async fn end_occupancy(tx: &mut TenantTx, tenant: Uuid, id: Uuid, date: NaiveDate, now: DateTime<Utc>) -> Result<OccupancyRow, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE occupancies SET move_out_date = $3, update_time = $4, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {OCCUPANCY_COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(date)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "occupancies"))
    .await?)
}

/// A page of the occupancies whose `column` (`premises_id` or `customer_id`)
/// is `parent`, latest move-in first, after the key `after`.
pub async fn history(
    tx: &mut TenantTx,
    tenant: Uuid,
    column: &str,
    parent: Uuid,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> Result<Vec<OccupancyRow>, Error> {
    let (date, id) = after.unzip();
    Ok(sqlx::query_as(&format!(
        "SELECT {OCCUPANCY_COLUMNS} FROM occupancies WHERE tenant_id = $1 AND {column} = $2
           AND ($3::date IS NULL OR (move_in_date, id) < ($3, $4))
         ORDER BY move_in_date DESC, id DESC LIMIT $5"
    ))
    .bind(tenant)
    .bind(parent)
    .bind(date)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "occupancies"))
    .await?)
}

/// The premises with one of `codes` as unit code: (code, premises).
pub async fn ids_by_unit_code(tx: &mut TenantTx, tenant: Uuid, codes: &[String]) -> Result<Vec<(String, Uuid)>, Error> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT unit_code, id FROM premises WHERE tenant_id = $1 AND unit_code = ANY($2)")
        .bind(tenant)
        .bind(codes)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "premises"))
        .await?)
}

/// The premises among `ids` that exist, locked for moves (in id order, so
/// that two writers of the same premises queue up instead of deadlocking).
pub async fn lock_many(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<Uuid>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar("SELECT id FROM premises WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE")
        .bind(tenant)
        .bind(ids)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "premises"))
        .await?)
}

/// Every occupancy of `premises`, ended or not.
pub async fn stays_of(tx: &mut TenantTx, tenant: Uuid, premises: &[Uuid]) -> Result<Vec<OccupancyRow>, Error> {
    if premises.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(&format!("SELECT {OCCUPANCY_COLUMNS} FROM occupancies WHERE tenant_id = $1 AND premises_id = ANY($2)"))
        .bind(tenant)
        .bind(premises)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "occupancies"))
        .await?)
}
