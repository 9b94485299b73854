//! The `communications` table.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::{
    Error,
    db::{ChildRow, Revisioned, Table, TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::communication::CommunicationDraft;

/// A stored communication record.
#[derive(Debug, Clone, FromRow)]
pub struct CommunicationRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub kind: String,
    pub direction: String,
    pub subject: String,
    pub content: String,
    pub occur_time: DateTime<Utc>,
    pub duration_seconds: Option<i32>,
    pub agent: String,
    pub outcome: String,
    pub next_contact_date: Option<NaiveDate>,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Revisioned for CommunicationRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

impl ChildRow for CommunicationRow {
    fn id(&self) -> Uuid {
        self.id
    }

    fn parent_id(&self) -> Uuid {
        self.customer_id
    }
}

const COLUMNS: &str = "id, customer_id, kind, direction, subject, content, occur_time, duration_seconds, agent, outcome, \
next_contact_date, revision, create_time, update_time";

/// The `communications` table, for the kit's shared statements.
pub const COMMUNICATIONS: Table = Table { name: "communications", columns: COLUMNS };

/// Stores `d` as record `id` of `customer`.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    id: Uuid,
    d: &CommunicationDraft,
    now: DateTime<Utc>,
) -> Result<CommunicationRow, Error> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO communications (tenant_id, customer_id, id, kind, direction, subject, content, occur_time, duration_seconds,
             agent, outcome, next_contact_date, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(id)
    .bind(&d.kind)
    .bind(&d.direction)
    .bind(&d.subject)
    .bind(&d.content)
    .bind(d.occur_time)
    .bind(d.duration_seconds)
    .bind(&d.agent)
    .bind(&d.outcome)
    .bind(d.next_contact_date)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "communications"))
    .await?)
}

/// Replaces record `id`'s writable fields with `d`, bumping its revision.
pub async fn update(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    d: &CommunicationDraft,
    now: DateTime<Utc>,
) -> Result<CommunicationRow, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE communications SET kind = $3, direction = $4, subject = $5, content = $6, occur_time = $7, duration_seconds = $8,
             agent = $9, outcome = $10, next_contact_date = $11, update_time = $12, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&d.kind)
    .bind(&d.direction)
    .bind(&d.subject)
    .bind(&d.content)
    .bind(d.occur_time)
    .bind(d.duration_seconds)
    .bind(&d.agent)
    .bind(&d.outcome)
    .bind(d.next_contact_date)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "communications"))
    .await?)
}

/// A page of due follow-ups — next contact on or before `due_by` — of
/// `agent` (None: everyone's), earliest first, after the key `after`.
pub async fn due(
    tx: &mut TenantTx,
    tenant: Uuid,
    agent: Option<&str>,
    due_by: NaiveDate,
    after: Option<(NaiveDate, Uuid)>,
    limit: i64,
) -> Result<Vec<CommunicationRow>, Error> {
    let (after_date, after_id) = after.unzip();
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM communications
         WHERE tenant_id = $1 AND ($2::text IS NULL OR agent = $2) AND next_contact_date <= $3
           AND ($4::date IS NULL OR (next_contact_date, id) > ($4, $5))
         ORDER BY next_contact_date, id LIMIT $6"
    ))
    .bind(tenant)
    .bind(agent)
    .bind(due_by)
    .bind(after_date)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "communications"))
    .await?)
}
