//! Points accounts and entries out; account names in.

use crm_kit::{Error, resource::parse_id, time::to_timestamp};
use crm_proto::crm::campaigns::v1 as pb;
use uuid::Uuid;

use crate::{app::loyalty::Account, store::loyalty::EntryRow};

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
