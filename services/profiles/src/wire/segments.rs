//! The wire form of segments: requests validated into a [`SegmentDraft`]
//! with its filter checked (every bad field reported), rows back out.

use crm_kit::{Error, FieldViolation, etag, filter::CheckedFilter, time};
use crm_proto::crm::profiles::v1 as pb;

use super::{Violations, enum_short};
use crate::{
    domain::{fields, segment::SegmentDraft},
    resources::SEGMENT,
    store::{customer_filter::CUSTOMER_FILTER, segments::SegmentRow},
};

/// The paths UpdateSegment may change.
pub const WRITABLE: &[&str] = &["display_name", "description", "filter"];

/// Validates segment `s`, its violations named under `prefix`; the draft and its checked filter.
pub fn draft_from_proto(s: &pb::Segment, prefix: &str) -> Result<(SegmentDraft, CheckedFilter), Vec<FieldViolation>> {
    let mut v = Violations { prefix, found: Vec::new() };
    let display_name = v.check("display_name", fields::display_name(&s.display_name));
    let description = v.check("description", fields::short_text(&s.description, 2000));
    let kind = match enum_short(s.kind, |n| pb::SegmentKind::try_from(n).ok(), |e| e.as_str_name(), "SEGMENT_KIND_") {
        Ok(kind) if !kind.is_empty() => Some(kind),
        _ => {
            v.add("kind", "INVALID_KIND", "SEGMENT_KIND_DYNAMIC or SEGMENT_KIND_STATIC");
            None
        }
    };
    let filter = match kind.as_deref() {
        Some("STATIC") if !s.filter.trim().is_empty() => {
            v.add("filter", "FILTER_ON_STATIC", "a static segment has no filter; its members are added by name");
            None
        }
        Some("STATIC") => Some(CheckedFilter::default()),
        _ => match CUSTOMER_FILTER.check(&s.filter) {
            Ok(filter) => Some(filter),
            Err(Error::InvalidArgument { violations }) => {
                for found in violations {
                    v.add("filter", found.reason, found.description);
                }
                None
            }
            Err(_) => {
                v.add("filter", "INVALID_FILTER", "not a filter");
                None
            }
        },
    };
    match (display_name, description, kind, filter) {
        (Some(display_name), Some(description), Some(kind), Some(checked)) if v.found.is_empty() => {
            let filter = if kind == "STATIC" { String::new() } else { s.filter.trim().to_owned() };
            let time_relative = checked.is_time_relative();
            Ok((SegmentDraft { display_name, description, kind, filter, time_relative }, checked))
        }
        _ => Err(v.found),
    }
}

/// A stored segment as the API returns it.
pub fn to_proto(row: &SegmentRow) -> pb::Segment {
    pb::Segment {
        name: SEGMENT.name(row.id),
        display_name: row.display_name.clone(),
        description: row.description.clone(),
        kind: crm_kit::protoenum::number(&row.kind, "SEGMENT_KIND_", |s| pb::SegmentKind::from_str_name(s).map(|e| e as i32)),
        filter: row.filter.clone(),
        member_count: row.member_count,
        create_time: Some(time::to_timestamp(row.create_time)),
        update_time: Some(time::to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
    }
}

crm_kit::mask_fields!(pb::Segment;
    "display_name" => display_name,
    "description" => description,
    "filter" => filter,
);
