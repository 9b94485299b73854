//! The `rename_settings` and `rename_requests` tables.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{ChildRow, Revisioned, Table, TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::rename::RenameDraft;

/// A stored rename request.
#[derive(Debug, Clone, FromRow)]
pub struct RenameRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub reason: String,
    pub previous_display_name: String,
    pub previous_given_name: String,
    pub previous_family_name: String,
    pub state: String,
    pub requester: String,
    pub reviewer: String,
    pub review_comment: String,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub review_time: Option<DateTime<Utc>>,
}

impl Revisioned for RenameRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

impl ChildRow for RenameRow {
    fn id(&self) -> Uuid {
        self.id
    }

    fn parent_id(&self) -> Uuid {
        self.customer_id
    }
}

const COLUMNS: &str = "id, customer_id, display_name, given_name, family_name, reason, previous_display_name, previous_given_name, \
previous_family_name, state, requester, reviewer, review_comment, revision, create_time, review_time";

/// The `rename_requests` table, for the kit's shared statements.
pub const RENAME_REQUESTS: Table = Table { name: "rename_requests", columns: COLUMNS };

/// Whether the tenant requires approval, and since when (None: never set).
pub async fn settings(tx: &mut TenantTx, tenant: Uuid) -> Result<Option<(bool, DateTime<Utc>)>, Error> {
    Ok(sqlx::query_as("SELECT approval_required, update_time FROM rename_settings WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "rename_settings"))
        .await?)
}

/// Whether renaming needs approval in `tenant` (off until set).
pub async fn approval_required(tx: &mut TenantTx, tenant: Uuid) -> Result<bool, Error> {
    Ok(settings(tx, tenant).await?.is_some_and(|(required, _)| required))
}

/// Stores the tenant's setting.
pub async fn put_settings(tx: &mut TenantTx, tenant: Uuid, approval_required: bool, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO rename_settings (tenant_id, approval_required, update_time) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET approval_required = EXCLUDED.approval_required, update_time = EXCLUDED.update_time",
    )
    .bind(tenant)
    .bind(approval_required)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "rename_settings"))
    .await?;
    Ok(())
}

/// The pending request of `customer`, if any.
pub async fn pending(tx: &mut TenantTx, tenant: Uuid, customer: Uuid) -> Result<Option<RenameRow>, Error> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM rename_requests WHERE tenant_id = $1 AND customer_id = $2 AND state = 'PENDING'"))
        .bind(tenant)
        .bind(customer)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "rename_requests"))
        .await?)
}

/// Stores pending request `id` for `customer`, whose names now are `previous`, asked for by `requester`.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    (customer, id): (Uuid, Uuid),
    d: &RenameDraft,
    previous: [&str; 3],
    requester: &str,
    now: DateTime<Utc>,
) -> Result<RenameRow, Error> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO rename_requests (tenant_id, customer_id, id, display_name, given_name, family_name, reason, previous_display_name,
             previous_given_name, previous_family_name, state, requester, create_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'PENDING', $11, $12) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(id)
    .bind(&d.display_name)
    .bind(&d.given_name)
    .bind(&d.family_name)
    .bind(&d.reason)
    .bind(previous[0])
    .bind(previous[1])
    .bind(previous[2])
    .bind(requester)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "rename_requests"))
    .await?)
}

/// Closes request `id` as `state` (APPROVED or REJECTED) by `reviewer`.
pub async fn review(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    state: &str,
    (reviewer, comment): (&str, &str),
    now: DateTime<Utc>,
) -> Result<RenameRow, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE rename_requests SET state = $3, reviewer = $4, review_comment = $5, review_time = $6, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(state)
    .bind(reviewer)
    .bind(comment)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "rename_requests"))
    .await?)
}

/// A page of requests — of `customer` (None: every customer's), in `state`
/// when given — oldest first, after id `after`.
pub async fn page(
    tx: &mut TenantTx,
    tenant: Uuid,
    (customer, state): (Option<Uuid>, Option<&str>),
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RenameRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rename_requests
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR customer_id = $2) AND ($3::text IS NULL OR state = $3)
           AND ($4::uuid IS NULL OR id > $4)
         ORDER BY id LIMIT $5"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(state)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "rename_requests"))
    .await?)
}
