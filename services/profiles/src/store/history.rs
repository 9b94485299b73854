//! The `field_changes` table: one row per field changed.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx, db_span},
    history::{FieldChange, Origin},
};
use sqlx::{FromRow, types::Json};
use tracing::Instrument;
use uuid::Uuid;

/// A stored field change.
#[derive(Debug, Clone, FromRow)]
pub struct ChangeRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub record: String,
    pub operation: String,
    pub field_path: String,
    pub old_value: Json<serde_json::Value>,
    pub new_value: Json<serde_json::Value>,
    pub old_masked: Json<serde_json::Value>,
    pub new_masked: Json<serde_json::Value>,
    pub actor: String,
    pub request_id: String,
    pub change_time: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, customer_id, record, operation, field_path, old_value, new_value, old_masked, new_masked, actor, request_id, change_time";

/// The `field_changes` table, for the kit's shared statements.
pub const FIELD_CHANGES: Table = Table { name: "field_changes", columns: COLUMNS };

/// Stores `changes` of `record` (of `customer`) in one statement.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    (customer, record, operation): (Uuid, &str, &str),
    changes: &[FieldChange],
    origin: &Origin,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let ids: Vec<Uuid> = changes.iter().map(|_| Uuid::now_v7()).collect();
    let text = |f: fn(&FieldChange) -> &serde_json::Value| changes.iter().map(|c| f(c).to_string()).collect::<Vec<_>>();
    let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
    sqlx::query(
        "INSERT INTO field_changes (tenant_id, customer_id, id, record, operation, field_path, old_value, new_value, old_masked,
                                    new_masked, actor, request_id, change_time)
         SELECT $1, $2, id, $3, $4, field, old::jsonb, new::jsonb, old_masked::jsonb, new_masked::jsonb, $10, $11, $12
         FROM unnest($5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $13::text[]) AS c(id, field, old, new, old_masked, new_masked)",
    )
    .bind(tenant)
    .bind(customer)
    .bind(record)
    .bind(operation)
    .bind(&ids)
    .bind(&fields)
    .bind(text(|c| &c.old))
    .bind(text(|c| &c.new))
    .bind(text(|c| &c.old_masked))
    .bind(&origin.actor)
    .bind(&origin.request_id)
    .bind(now)
    .bind(text(|c| &c.new_masked))
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "field_changes"))
    .await?;
    Ok(())
}

/// A page of `customer`'s changes (of `record` and `field`, when given), newest first, before id `after`.
pub async fn page(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    (record, field): (Option<&str>, Option<&str>),
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ChangeRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM field_changes
         WHERE tenant_id = $1 AND customer_id = $2 AND ($3::text IS NULL OR record = $3) AND ($4::text IS NULL OR field_path = $4)
           AND ($5::uuid IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(record)
    .bind(field)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "field_changes"))
    .await?)
}
