//! The `occurrences` table.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::{
    Error,
    db::{ChildRow, Revisioned, Table, TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::occurrence::OccurrenceDraft;

/// A stored occurrence.
#[derive(Debug, Clone, FromRow)]
pub struct OccurrenceRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub category: String,
    pub occur_date: NaiveDate,
    pub premises_id: Option<Uuid>,
    pub handler: String,
    pub description: String,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Revisioned for OccurrenceRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

impl ChildRow for OccurrenceRow {
    fn id(&self) -> Uuid {
        self.id
    }

    fn parent_id(&self) -> Uuid {
        self.customer_id
    }
}

const COLUMNS: &str = "id, customer_id, category, occur_date, premises_id, handler, description, revision, create_time, update_time";

/// The `occurrences` table, for the kit's shared statements.
pub const OCCURRENCES: Table = Table { name: "occurrences", columns: COLUMNS };

/// Stores `d` as occurrence `id` of `customer`.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    id: Uuid,
    d: &OccurrenceDraft,
    now: DateTime<Utc>,
) -> Result<OccurrenceRow, Error> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO occurrences (tenant_id, customer_id, id, category, occur_date, premises_id, handler, description, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(id)
    .bind(&d.category)
    .bind(d.occur_date)
    .bind(d.premises)
    .bind(&d.handler)
    .bind(&d.description)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "occurrences"))
    .await?)
}

/// Replaces occurrence `id`'s writable fields with `d`, bumping its revision.
pub async fn update(tx: &mut TenantTx, tenant: Uuid, id: Uuid, d: &OccurrenceDraft, now: DateTime<Utc>) -> Result<OccurrenceRow, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE occurrences SET category = $3, occur_date = $4, premises_id = $5, handler = $6, description = $7,
             update_time = $8, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&d.category)
    .bind(d.occur_date)
    .bind(d.premises)
    .bind(&d.handler)
    .bind(&d.description)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "occurrences"))
    .await?)
}
