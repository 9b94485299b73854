//! Coupons: issued once per source (a request id, a journey run's step)
//! with a fresh code, and redeemed exactly once by a conditional update.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::TenantTx,
    idempotency::{self, IdempotencyKey},
};
use prost::Message;
use uuid::Uuid;

use super::App;
use crate::{
    domain::coupon::{self, State},
    resources::COUPON,
    store::coupons::{self, COUPONS, CouponRow},
};

/// Attempts at a code not yet taken (a clash is one in ~10^17 per coupon; this is for the impossible).
const CODE_ATTEMPTS: usize = 5;

/// A coupon to issue.
#[derive(Debug, Clone)]
pub struct NewCoupon {
    pub customer_id: Uuid,
    pub currency_code: String,
    pub value_minor: i64,
    pub description: String,
    pub valid_from: DateTime<Utc>,
    pub expire_time: DateTime<Utc>,
}

/// Issues `c` in `tx` from `source`: the coupon, or the one this source issued before.
pub async fn issue_in(tx: &mut TenantTx, tenant: Uuid, c: &NewCoupon, source: &str, now: DateTime<Utc>) -> Result<CouponRow, Error> {
    if let Some(issued) = coupons::by_source(tx, tenant, source).await? {
        return same_issue(issued, c);
    }
    for _ in 0..CODE_ATTEMPTS {
        let row = CouponRow {
            id: Uuid::now_v7(),
            code: coupon::new_code(&mut rand::thread_rng()),
            customer_id: c.customer_id,
            currency_code: c.currency_code.clone(),
            value_minor: c.value_minor,
            description: c.description.clone(),
            valid_from: c.valid_from,
            expire_time: c.expire_time,
            redeem_time: None,
            redeem_reference: String::new(),
            source: source.to_owned(),
            create_time: now,
        };
        if let Some(issued) = coupons::insert(tx, tenant, &row).await? {
            return Ok(issued);
        }
        // The source raced another issue of it, or (astronomically rarely) the code was taken.
        if let Some(issued) = coupons::by_source(tx, tenant, source).await? {
            return same_issue(issued, c);
        }
    }
    Err(Error::Conflict)
}

/// The coupon a source issued before, if it is what `c` asks for again; a
/// request id reused (after its idempotency record expired) for another
/// coupon is INVALID_ARGUMENT.
fn same_issue(issued: CouponRow, c: &NewCoupon) -> Result<CouponRow, Error> {
    match issued.customer_id == c.customer_id && issued.currency_code == c.currency_code && issued.value_minor == c.value_minor {
        true => Ok(issued),
        false => Err(Error::invalid("request_id", "REQUEST_ID_REUSED", "this request id was used for another coupon")),
    }
}

/// FAILED_PRECONDITION `reason` about coupon `row`.
fn refused(row: &CouponRow, reason: &'static str, message: &str) -> Error {
    Error::FailedPrecondition { reason, message: message.to_owned(), subject: COUPON.name(row.id) }
}

impl App {
    /// Issues coupon `c` by a call; a retry with the same request id returns the first.
    pub async fn issue_coupon<R: Message + Default>(
        &self,
        tenant: Uuid,
        c: &NewCoupon,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&CouponRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        let source = format!("requests/{}", request.map_or_else(|| Uuid::now_v7().to_string(), |k| k.request_id().to_owned()));
        let issued = issue_in(&mut tx, tenant, c, &source, now).await?;
        let response = respond(&issued);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Coupon `id`, or NOT_FOUND.
    pub async fn coupon(&self, tenant: Uuid, id: Uuid) -> Result<CouponRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let found: Option<CouponRow> = COUPONS.find(&mut tx, tenant, id, false).await?;
        tx.commit().await?;
        found.ok_or_else(|| COUPON.not_found(id))
    }

    /// A page of `customer`'s coupons, newest first.
    pub async fn coupons(&self, tenant: Uuid, customer: Uuid, before: Option<Uuid>, limit: i64) -> Result<Vec<CouponRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = coupons::of_customer(&mut tx, tenant, customer, before, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Redeems the coupon with `code` for `reference`, exactly once; a retry
    /// with the same reference returns it. NOT_FOUND for an unknown code (or
    /// another customer's when `customer` is given); FAILED_PRECONDITION when
    /// it was redeemed for something else, has expired or is not valid yet.
    pub async fn redeem_coupon(
        &self,
        tenant: Uuid,
        code: &str,
        reference: &str,
        customer: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<CouponRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let not_found = || Error::NotFound { resource_type: COUPON.type_name, name: "coupons/-".to_owned() };
        let found = coupons::by_code(&mut tx, tenant, code).await?;
        let Some(row) = found.filter(|r| customer.is_none_or(|c| c == r.customer_id)) else { return Err(not_found()) };
        let row = match coupons::redeem(&mut tx, tenant, code, reference, now).await? {
            Some(redeemed) => redeemed,
            // Redeemed meanwhile (this transaction waited for the other's row lock), or not redeemable now.
            None => coupons::by_code(&mut tx, tenant, code).await?.unwrap_or(row),
        };
        tx.commit().await?;
        match coupon::state(row.redeem_time, row.expire_time, now) {
            State::Redeemed if row.redeem_reference == reference => Ok(row),
            State::Redeemed => Err(refused(&row, "COUPON_ALREADY_REDEEMED", "this coupon was already redeemed")),
            State::Expired => Err(refused(&row, "COUPON_EXPIRED", "this coupon has expired")),
            State::Issued => Err(refused(&row, "COUPON_NOT_YET_VALID", "this coupon is not valid yet")),
        }
    }
}
