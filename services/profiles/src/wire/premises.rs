//! The wire form of premises and occupancies: requests validated (every bad
//! field reported), rows back out, and the per-path copy and compare of
//! premises updates.

use crm_kit::{FieldViolation, etag, protoenum::number as enum_number, time};
use crm_proto::crm::profiles::v1 as pb;

use super::{Violations, date_to, enum_short};
use crate::{
    domain::{fields, premises::PremisesDraft},
    resources::{CUSTOMER, OCCUPANCY, PREMISES},
    store::premises::{OccupancyRow, PremisesRow},
};

/// The paths UpdatePremises may change.
pub const WRITABLE: &[&str] = &["unit_code", "building", "floor", "area", "kind"];

/// Validates incoming premises; on failure, one violation per bad field.
pub fn draft_from_proto(p: &pb::Premises, prefix: &str) -> Result<PremisesDraft, Vec<FieldViolation>> {
    let mut v = Violations { prefix, found: Vec::new() };
    let unit_code = match v.check("unit_code", fields::short_text(&p.unit_code, 50)) {
        Some(code) if code.is_empty() => {
            v.add("unit_code", "REQUIRED", "is required");
            None
        }
        other => other,
    };
    let building = v.check("building", fields::short_text(&p.building, 100));
    let floor = v.check("floor", fields::short_text(&p.floor, 20));
    let area = if p.area.is_finite() && (0.0..=1_000_000.0).contains(&p.area) {
        Some(p.area)
    } else {
        v.add("area", "INVALID_AREA", "square metres, 0 (unknown) to 1 000 000");
        None
    };
    let kind = v.check("kind", enum_short(p.kind, |n| pb::PremisesKind::try_from(n).ok(), |e| e.as_str_name(), "PREMISES_KIND_"));
    let draft = (|| Some(PremisesDraft { unit_code: unit_code?, building: building?, floor: floor?, area: area?, kind: kind? }))();
    match draft {
        Some(draft) if v.found.is_empty() => Ok(draft),
        _ => Err(v.found),
    }
}

/// The role of a request (`field`), or INVALID_ARGUMENT.
pub fn role_from(value: i32, field: &str) -> Result<&'static str, crm_kit::Error> {
    match pb::OccupancyRole::try_from(value) {
        Ok(pb::OccupancyRole::Owner) => Ok("OWNER"),
        Ok(pb::OccupancyRole::Tenant) => Ok("TENANT"),
        Ok(pb::OccupancyRole::Resident) => Ok("RESIDENT"),
        _ => Err(crm_kit::Error::invalid(field, "INVALID_ROLE", "one of OCCUPANCY_ROLE_OWNER, _TENANT, _RESIDENT")),
    }
}

fn role_to(role: &str) -> i32 {
    enum_number(role, "OCCUPANCY_ROLE_", |s| pb::OccupancyRole::from_str_name(s).map(|e| e as i32))
}

/// Stored premises as the API returns them, with today's billing party (role, customer), if any.
pub fn premises_to(row: &PremisesRow, billing: Option<(&str, uuid::Uuid)>) -> pb::Premises {
    pb::Premises {
        name: PREMISES.name(row.id),
        unit_code: row.unit_code.clone(),
        building: row.building.clone(),
        floor: row.floor.clone(),
        area: row.area,
        kind: enum_number(&row.kind, "PREMISES_KIND_", |s| pb::PremisesKind::from_str_name(s).map(|e| e as i32)),
        billing_party: billing.map(|(_, c)| CUSTOMER.name(c)).unwrap_or_default(),
        billing_role: billing.map_or(0, |(role, _)| role_to(role)),
        create_time: Some(time::to_timestamp(row.create_time)),
        update_time: Some(time::to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
    }
}

/// A stored occupancy as the API returns it.
pub fn occupancy_to(row: &OccupancyRow) -> pb::Occupancy {
    pb::Occupancy {
        name: OCCUPANCY.name(row.premises_id, row.id),
        customer: CUSTOMER.name(row.customer_id),
        role: role_to(&row.role),
        move_in_date: Some(date_to(row.move_in_date)),
        move_out_date: row.move_out_date.map(date_to),
        create_time: Some(time::to_timestamp(row.create_time)),
        update_time: Some(time::to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
    }
}

/// The writable paths whose value `after` has otherwise than `before`, compared in wire form.
pub fn changed_paths(before: &pb::Premises, after: &pb::Premises) -> Vec<String> {
    WRITABLE.iter().filter(|p| !same_field(before, after, p)).map(|p| (*p).to_owned()).collect()
}

crm_kit::mask_fields!(pb::Premises;
    "unit_code" => unit_code,
    "building" => building,
    "floor" => floor,
    "area" => area,
    "kind" => kind,
);
