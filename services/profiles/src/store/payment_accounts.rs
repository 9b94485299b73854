//! The `payment_accounts` table.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{ChildRow, Revisioned, Table, TenantTx, db_span},
    error::violated_constraint,
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::payment_account::PaymentAccountDraft;

/// A stored payment account.
#[derive(Debug, Clone, FromRow)]
pub struct PaymentAccountRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub holder_name: String,
    pub bank: String,
    pub branch: String,
    pub account_number: String,
    pub is_primary: bool,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Revisioned for PaymentAccountRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

impl ChildRow for PaymentAccountRow {
    fn id(&self) -> Uuid {
        self.id
    }

    fn parent_id(&self) -> Uuid {
        self.customer_id
    }
}

const COLUMNS: &str = "id, customer_id, holder_name, bank, branch, account_number, is_primary, revision, create_time, update_time";

/// The `payment_accounts` table, for the kit's shared statements.
pub const PAYMENT_ACCOUNTS: Table = Table { name: "payment_accounts", columns: COLUMNS };

/// A write that would give the customer a second primary account.
#[derive(Debug)]
pub struct SecondPrimary;

/// `err` as [`SecondPrimary`] when the one-primary index refused it.
fn second_primary(err: sqlx::Error) -> Result<Result<PaymentAccountRow, SecondPrimary>, Error> {
    match violated_constraint(&err) {
        Some("payment_accounts_one_primary") => Ok(Err(SecondPrimary)),
        _ => Err(err.into()),
    }
}

/// Stores `d` as account `id` of `customer`; [`SecondPrimary`] when the customer has a primary one already.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    id: Uuid,
    d: &PaymentAccountDraft,
    now: DateTime<Utc>,
) -> Result<Result<PaymentAccountRow, SecondPrimary>, Error> {
    let inserted = sqlx::query_as(&format!(
        "INSERT INTO payment_accounts (tenant_id, customer_id, id, holder_name, bank, branch, account_number, is_primary, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(id)
    .bind(&d.holder_name)
    .bind(&d.bank)
    .bind(&d.branch)
    .bind(&d.account_number)
    .bind(d.primary)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "payment_accounts"))
    .await;
    inserted.map(Ok).or_else(second_primary)
}

/// Replaces account `id`'s writable fields with `d`, bumping its revision; [`SecondPrimary`] as for insert.
pub async fn update(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    d: &PaymentAccountDraft,
    now: DateTime<Utc>,
) -> Result<Result<PaymentAccountRow, SecondPrimary>, Error> {
    let updated = sqlx::query_as(&format!(
        "UPDATE payment_accounts SET holder_name = $3, bank = $4, branch = $5, account_number = $6, is_primary = $7,
             update_time = $8, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(&d.holder_name)
    .bind(&d.bank)
    .bind(&d.branch)
    .bind(&d.account_number)
    .bind(d.primary)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "payment_accounts"))
    .await;
    updated.map(Ok).or_else(second_primary)
}

/// The customer's primary account, if any.
pub async fn primary_of(tx: &mut TenantTx, tenant: Uuid, customer: Uuid) -> Result<Option<Uuid>, Error> {
    Ok(sqlx::query_scalar("SELECT id FROM payment_accounts WHERE tenant_id = $1 AND customer_id = $2 AND is_primary")
        .bind(tenant)
        .bind(customer)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "payment_accounts"))
        .await?)
}
