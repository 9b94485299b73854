//! Points accounts and entries out; account names in.

use crm_kit::{Error, FieldViolation, resource::parse_id, time::to_timestamp};
use crm_proto::crm::campaigns::v1 as pb;
use uuid::Uuid;

use crate::{
    app::loyalty::Account,
    domain::loyalty_program::{Basis, Program, Tier},
    store::loyalty::{EntryRow, ProgramRow},
};

/// The name of customer `customer`'s points account.
pub fn account_name(customer: Uuid) -> String {
    format!("customers/{customer}/pointsAccount")
}

/// The customer of account name `name` ("customers/{id}/pointsAccount"), or INVALID_ARGUMENT on `field`.
pub fn account_customer(name: &str, field: &str) -> Result<Uuid, Error> {
    match name.strip_suffix("/pointsAccount") {
        Some(customer) => parse_id(customer, "customers", field, "INVALID_NAME"),
        None => Err(Error::invalid(field, "INVALID_NAME", "a points account's name is customers/{id}/pointsAccount")),
    }
}

/// `account` as a response.
pub fn account_to(account: &Account) -> pb::PointsAccount {
    pb::PointsAccount {
        name: account_name(account.customer_id),
        balance: account.balance,
        lifetime_earned: account.lifetime_earned,
        expiring_points: account.expiring_points,
        next_expire_time: account.next_expire_time.map(to_timestamp),
        update_time: account.update_time.map(to_timestamp),
        tier: account.tier.clone(),
        tier_progress: account.tier_progress,
    }
}

/// The singleton name of the loyalty programme.
pub const PROGRAM_NAME: &str = "loyaltyProgram";

/// A stored programme as a response.
pub fn program_to(row: &ProgramRow) -> pb::LoyaltyProgram {
    let p = &row.program.0;
    let basis = match p.basis {
        Basis::Points => pb::MemberTierBasis::Points,
        Basis::Spend => pb::MemberTierBasis::Spend,
    };
    pb::LoyaltyProgram {
        name: PROGRAM_NAME.to_owned(),
        earn_currency_code: p.earn_currency.clone(),
        points_per_unit: p.points_per_unit,
        earned_points_expire_days: p.earned_points_expire_days,
        tier_basis: basis as i32,
        tier_window_days: p.window_days,
        tiers: p
            .tiers
            .iter()
            .map(|t| pb::MemberTier {
                id: t.id.clone(),
                display_name: t.display_name.clone(),
                threshold: t.threshold,
                multiplier_percent: t.multiplier_percent,
            })
            .collect(),
        etag: crm_kit::etag::of_revision(row.revision),
        update_time: row.update_time.map(to_timestamp),
    }
}

/// The programme of a request (every problem at once); `earning_since` is kept from `before`.
pub fn program_from(p: &pb::LoyaltyProgram, before: &Program) -> Result<Program, Error> {
    let basis = match pb::MemberTierBasis::try_from(p.tier_basis) {
        Ok(pb::MemberTierBasis::Spend) => Basis::Spend,
        _ => Basis::Points,
    };
    let program = Program {
        earn_currency: p.earn_currency_code.trim().to_uppercase(),
        points_per_unit: p.points_per_unit,
        earned_points_expire_days: p.earned_points_expire_days,
        basis,
        window_days: if p.tier_window_days == 0 { 365 } else { p.tier_window_days },
        tiers: p
            .tiers
            .iter()
            .map(|t| Tier {
                id: t.id.clone(),
                display_name: t.display_name.trim().to_owned(),
                threshold: t.threshold,
                multiplier_percent: t.multiplier_percent,
            })
            .collect(),
        earning_since: before.earning_since,
    };
    let mut violations: Vec<FieldViolation> =
        program.check().into_iter().map(|(field, reason, message)| FieldViolation::new(field, reason, message)).collect();
    if crm_kit::money::exponent(&program.earn_currency).is_none() {
        violations.push(FieldViolation::new(
            "loyalty_program.earn_currency_code",
            "INVALID_CURRENCY",
            "an ISO 4217 currency with minor units, e.g. CNY",
        ));
    }
    match violations.is_empty() {
        true => Ok(program),
        false => Err(Error::InvalidArgument { violations }),
    }
}

/// `entry` as a response.
pub fn entry_to(entry: &EntryRow) -> pb::PointsEntry {
    let kind = match entry.kind.as_str() {
        "GRANT" => pb::PointsEntryKind::Grant,
        "REDEEM" => pb::PointsEntryKind::Redeem,
        "MOVE_IN" => pb::PointsEntryKind::MoveIn,
        "MOVE_OUT" => pb::PointsEntryKind::MoveOut,
        _ => pb::PointsEntryKind::Expire,
    };
    pb::PointsEntry {
        name: format!("{}/entries/{}", account_name(entry.customer_id), entry.id),
        kind: kind as i32,
        points: entry.points,
        reason: entry.reason.clone(),
        source: entry.source.clone(),
        expire_time: entry.expire_time.map(to_timestamp),
        balance_after: entry.balance_after,
        create_time: Some(to_timestamp(entry.create_time)),
    }
}
