//! The `journeys` and `journey_versions` tables: each journey's editable
//! draft and state, and the definitions published from it (never updated).

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Revisioned, Table, TenantTx, db_span},
};
use sqlx::{FromRow, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::journey::Definition;

/// A stored journey.
#[derive(Debug, Clone, FromRow)]
pub struct JourneyRow {
    pub id: Uuid,
    pub display_name: String,
    pub draft: Json<Definition>,
    /// DRAFT, ACTIVE or PAUSED.
    pub state: String,
    /// 0 until published.
    pub published_version: i32,
    /// Whether the draft differs from the published version's definition.
    pub has_unpublished_changes: bool,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub publish_time: Option<DateTime<Utc>>,
}

impl Revisioned for JourneyRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

/// The journeys table for find and lock; `has_unpublished_changes` compares the draft with the published version.
pub const JOURNEYS: Table = Table {
    name: "journeys",
    columns: "id, display_name, draft, state, published_version,
        draft IS DISTINCT FROM (SELECT v.definition FROM journey_versions v
                                WHERE v.tenant_id = journeys.tenant_id AND v.journey_id = journeys.id
                                  AND v.version = journeys.published_version) AS has_unpublished_changes,
        revision, create_time, update_time, publish_time",
};

/// Inserts a DRAFT journey.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    display_name: &str,
    draft: &Definition,
    now: DateTime<Utc>,
) -> Result<JourneyRow, Error> {
    let sql = "INSERT INTO journeys (tenant_id, id, display_name, draft, state, create_time, update_time)
               VALUES ($1, $2, $3, $4, 'DRAFT', $5, $5)";
    write_draft(tx, ("INSERT", sql), tenant, id, display_name, draft, now).await
}

/// Replaces journey `id`'s display name and draft and bumps its revision.
pub async fn update_draft(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    display_name: &str,
    draft: &Definition,
    now: DateTime<Utc>,
) -> Result<JourneyRow, Error> {
    let sql =
        "UPDATE journeys SET display_name = $3, draft = $4, revision = revision + 1, update_time = $5 WHERE tenant_id = $1 AND id = $2";
    write_draft(tx, ("UPDATE", sql), tenant, id, display_name, draft, now).await
}

/// Runs `statement` (an operation and its SQL over $1 tenant, $2 id, $3
/// display name, $4 draft, $5 now) and returns the journey it wrote.
async fn write_draft(
    tx: &mut TenantTx,
    (operation, statement): (&'static str, &str),
    tenant: Uuid,
    id: Uuid,
    display_name: &str,
    draft: &Definition,
    now: DateTime<Utc>,
) -> Result<JourneyRow, Error> {
    let sql = format!("{statement} RETURNING {}", JOURNEYS.columns);
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(display_name)
        .bind(Json(draft))
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span(operation, "journeys"))
        .await?)
}

/// Stores the draft as version `published_version + 1` and makes the journey ACTIVE on it (a PAUSED one stays paused).
pub async fn publish(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<JourneyRow, Error> {
    sqlx::query(
        "WITH published AS (
             UPDATE journeys SET published_version = published_version + 1, publish_time = $3,
                                 state = CASE WHEN state = 'PAUSED' THEN 'PAUSED' ELSE 'ACTIVE' END,
                                 revision = revision + 1, update_time = $3
             WHERE tenant_id = $1 AND id = $2 RETURNING published_version, draft)
         INSERT INTO journey_versions (tenant_id, journey_id, version, definition, publish_time)
         SELECT $1, $2, published_version, draft, $3 FROM published",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "journeys"))
    .await?;
    // Read after the statement: its own RETURNING would not see the version row it inserts.
    JOURNEYS.find(tx, tenant, id, false).await?.ok_or(Error::Conflict)
}

/// Sets journey `id`'s state (ACTIVE or PAUSED) and bumps its revision.
pub async fn set_state(tx: &mut TenantTx, tenant: Uuid, id: Uuid, state: &str, now: DateTime<Utc>) -> Result<JourneyRow, Error> {
    let sql = format!(
        "UPDATE journeys SET state = $3, revision = revision + 1, update_time = $4 WHERE tenant_id = $1 AND id = $2 RETURNING {}",
        JOURNEYS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(state)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "journeys"))
        .await?)
}

/// A page of journeys, newest first, before `before`.
pub async fn list(tx: &mut TenantTx, tenant: Uuid, before: Option<Uuid>, limit: i64) -> Result<Vec<JourneyRow>, Error> {
    let sql = format!(
        "SELECT {} FROM journeys WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        JOURNEYS.columns
    );
    Ok(sqlx::query_as(&sql).bind(tenant).bind(before).bind(limit).fetch_all(&mut **tx).instrument(db_span("SELECT", "journeys")).await?)
}

/// The definition of version `version` of journey `id`.
pub async fn version(tx: &mut TenantTx, tenant: Uuid, id: Uuid, version: i32) -> Result<Option<Definition>, Error> {
    let found: Option<Json<Definition>> =
        sqlx::query_scalar("SELECT definition FROM journey_versions WHERE tenant_id = $1 AND journey_id = $2 AND version = $3")
            .bind(tenant)
            .bind(id)
            .bind(version)
            .fetch_optional(&mut **tx)
            .instrument(db_span("SELECT", "journey_versions"))
            .await?;
    Ok(found.map(|Json(d)| d))
}
