//! The wire form of field history: stored changes as `CustomerChange`.

use crm_kit::{history::to_value, time};
use crm_proto::crm::profiles::v1 as pb;

use crate::{resources::CUSTOMER_CHANGE, store::history::ChangeRow};

/// A stored change as the API returns it; `masked`: its values as callers without `pii` see them.
pub fn to_proto(row: &ChangeRow, masked: bool) -> pb::CustomerChange {
    let (old, new) = if masked { (&row.old_masked, &row.new_masked) } else { (&row.old_value, &row.new_value) };
    pb::CustomerChange {
        name: CUSTOMER_CHANGE.name(row.customer_id, row.id),
        record: row.record.clone(),
        operation: pb::ChangeOperation::from_str_name(&format!("CHANGE_OPERATION_{}", row.operation)).map_or(0, |o| o as i32),
        field_path: row.field_path.clone(),
        old_value: Some(to_value(old)),
        new_value: Some(to_value(new)),
        actor: row.actor.clone(),
        request_id: row.request_id.clone(),
        change_time: Some(time::to_timestamp(row.change_time)),
    }
}
