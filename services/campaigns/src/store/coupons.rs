//! The `coupons` table: single-use coupons, unique per code and per source.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

/// A stored coupon.
#[derive(Debug, Clone, FromRow)]
pub struct CouponRow {
    pub id: Uuid,
    pub code: String,
    pub customer_id: Uuid,
    pub currency_code: String,
    pub value_minor: i64,
    pub description: String,
    pub valid_from: DateTime<Utc>,
    pub expire_time: DateTime<Utc>,
    pub redeem_time: Option<DateTime<Utc>>,
    pub redeem_reference: String,
    pub source: String,
    pub create_time: DateTime<Utc>,
}

/// The coupons table for find.
pub const COUPONS: Table = Table {
    name: "coupons",
    columns: "id, code, customer_id, currency_code, value_minor, description, valid_from, expire_time, redeem_time, redeem_reference, source, create_time",
};

/// Inserts `row`; None when its code is taken (or its source was used: the caller looks it up first).
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, row: &CouponRow) -> Result<Option<CouponRow>, Error> {
    let sql = format!(
        "INSERT INTO coupons (tenant_id, {}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, '', $10, $11)
         ON CONFLICT DO NOTHING RETURNING {}",
        COUPONS.columns, COUPONS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(row.id)
        .bind(&row.code)
        .bind(row.customer_id)
        .bind(&row.currency_code)
        .bind(row.value_minor)
        .bind(&row.description)
        .bind(row.valid_from)
        .bind(row.expire_time)
        .bind(&row.source)
        .bind(row.create_time)
        .fetch_optional(&mut **tx)
        .instrument(db_span("INSERT", "coupons"))
        .await?)
}

/// The coupon issued from `source`, if any.
pub async fn by_source(tx: &mut TenantTx, tenant: Uuid, source: &str) -> Result<Option<CouponRow>, Error> {
    let sql = format!("SELECT {} FROM coupons WHERE tenant_id = $1 AND source = $2", COUPONS.columns);
    Ok(sqlx::query_as(&sql).bind(tenant).bind(source).fetch_optional(&mut **tx).instrument(db_span("SELECT", "coupons")).await?)
}

/// The coupon with `code`, if any.
pub async fn by_code(tx: &mut TenantTx, tenant: Uuid, code: &str) -> Result<Option<CouponRow>, Error> {
    let sql = format!("SELECT {} FROM coupons WHERE tenant_id = $1 AND code = $2", COUPONS.columns);
    Ok(sqlx::query_as(&sql).bind(tenant).bind(code).fetch_optional(&mut **tx).instrument(db_span("SELECT", "coupons")).await?)
}

/// Marks the coupon with `code` redeemed for `reference` if it is unredeemed
/// and valid at `now`; None otherwise. Concurrent calls: the row lock makes
/// the second see the first's redemption.
pub async fn redeem(tx: &mut TenantTx, tenant: Uuid, code: &str, reference: &str, now: DateTime<Utc>) -> Result<Option<CouponRow>, Error> {
    let sql = format!(
        "UPDATE coupons SET redeem_time = $4, redeem_reference = $3
         WHERE tenant_id = $1 AND code = $2 AND redeem_time IS NULL AND valid_from <= $4 AND expire_time > $4
         RETURNING {}",
        COUPONS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(code)
        .bind(reference)
        .bind(now)
        .fetch_optional(&mut **tx)
        .instrument(db_span("UPDATE", "coupons"))
        .await?)
}

/// A page of `customer`'s coupons, newest first, before `before`.
pub async fn of_customer(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CouponRow>, Error> {
    let sql = format!(
        "SELECT {} FROM coupons WHERE tenant_id = $1 AND customer_id = $2 AND ($3::uuid IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        COUPONS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(customer)
        .bind(before)
        .bind(limit)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "coupons"))
        .await?)
}
