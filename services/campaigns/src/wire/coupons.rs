//! Coupons out.

use chrono::{DateTime, Utc};
use crm_kit::{money::from_minor, time::to_timestamp};
use crm_proto::crm::campaigns::v1 as pb;

use crate::{
    domain::coupon::{self, State},
    resources::{COUPON, CUSTOMER},
    store::coupons::CouponRow,
};

/// A stored coupon as a response, its state as of `now`.
pub fn coupon_to(row: &CouponRow, now: DateTime<Utc>) -> pb::Coupon {
    let state = match coupon::state(row.redeem_time, row.expire_time, now) {
        State::Issued => pb::CouponState::Issued,
        State::Redeemed => pb::CouponState::Redeemed,
        State::Expired => pb::CouponState::Expired,
    };
    pb::Coupon {
        name: COUPON.name(row.id),
        code: row.code.clone(),
        customer: CUSTOMER.name(row.customer_id),
        value: Some(from_minor(&row.currency_code, row.value_minor)),
        description: row.description.clone(),
        valid_from: Some(to_timestamp(row.valid_from)),
        expire_time: Some(to_timestamp(row.expire_time)),
        state: state as i32,
        redeem_time: row.redeem_time.map(to_timestamp),
        redeem_reference: row.redeem_reference.clone(),
        source: row.source.clone(),
        create_time: Some(to_timestamp(row.create_time)),
    }
}
