//! The `related_persons` table.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{ChildRow, Revisioned, Table, TenantTx, db_span},
};
use sqlx::{FromRow, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{
    customer::{EmailEntry, PhoneEntry},
    related_person::RelatedPersonDraft,
};

/// A stored related person.
#[derive(Debug, Clone, FromRow)]
pub struct RelatedPersonRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub relation: String,
    pub display_name: String,
    pub phones: Json<Vec<PhoneEntry>>,
    pub emails: Json<Vec<EmailEntry>>,
    pub gender: String,
    pub birthday_year: Option<i32>,
    pub birthday_month: Option<i32>,
    pub birthday_day: Option<i32>,
    pub note: String,
    pub linked_customer_id: Option<Uuid>,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Revisioned for RelatedPersonRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

impl ChildRow for RelatedPersonRow {
    fn id(&self) -> Uuid {
        self.id
    }

    fn parent_id(&self) -> Uuid {
        self.customer_id
    }
}

const COLUMNS: &str = "id, customer_id, relation, display_name, phones, emails, gender, birthday_year, birthday_month, birthday_day, \
note, linked_customer_id, revision, create_time, update_time";

/// The `related_persons` table, for the kit's shared statements.
pub const RELATED_PERSONS: Table = Table { name: "related_persons", columns: COLUMNS };

/// The birthday columns of `d`.
fn birthday(d: &RelatedPersonDraft) -> (Option<i32>, Option<i32>, Option<i32>) {
    match &d.birthday {
        Some(b) => (b.year, i32::try_from(b.month).ok(), i32::try_from(b.day).ok()),
        None => (None, None, None),
    }
}

/// Stores `d` as related person `id` of `customer`.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    id: Uuid,
    d: &RelatedPersonDraft,
    now: DateTime<Utc>,
) -> Result<RelatedPersonRow, Error> {
    let (year, month, day) = birthday(d);
    Ok(sqlx::query_as(&format!(
        "INSERT INTO related_persons (tenant_id, customer_id, id, relation, display_name, phones, emails, gender,
             birthday_year, birthday_month, birthday_day, note, linked_customer_id, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(id)
    .bind(&d.relation)
    .bind(&d.display_name)
    .bind(Json(&d.phones))
    .bind(Json(&d.emails))
    .bind(&d.gender)
    .bind(year)
    .bind(month)
    .bind(day)
    .bind(&d.note)
    .bind(d.linked_customer)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "related_persons"))
    .await?)
}

/// Replaces related person `id`'s writable fields with `d`, bumping its revision.
pub async fn update(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    d: &RelatedPersonDraft,
    now: DateTime<Utc>,
) -> Result<RelatedPersonRow, Error> {
    let (year, month, day) = birthday(d);
    Ok(sqlx::query_as(&format!(
        "UPDATE related_persons SET relation = $3, display_name = $4, phones = $5, emails = $6, gender = $7,
             birthday_year = $8, birthday_month = $9, birthday_day = $10, note = $11, linked_customer_id = $12,
             update_time = $13, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&d.relation)
    .bind(&d.display_name)
    .bind(Json(&d.phones))
    .bind(Json(&d.emails))
    .bind(&d.gender)
    .bind(year)
    .bind(month)
    .bind(day)
    .bind(&d.note)
    .bind(d.linked_customer)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "related_persons"))
    .await?)
}

/// The customers among `ids` that exist (live or not), for links to them.
pub async fn existing_customers(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<Uuid>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar("SELECT id FROM customers WHERE tenant_id = $1 AND id = ANY($2)")
        .bind(tenant)
        .bind(ids)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "customers"))
        .await?)
}

/// Who the related persons of `customers` are: (customer, relation, display name).
pub async fn identities(tx: &mut TenantTx, tenant: Uuid, customers: &[Uuid]) -> Result<Vec<(Uuid, String, String)>, Error> {
    if customers.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as("SELECT customer_id, relation, display_name FROM related_persons WHERE tenant_id = $1 AND customer_id = ANY($2)")
        .bind(tenant)
        .bind(customers)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "related_persons"))
        .await?)
}
