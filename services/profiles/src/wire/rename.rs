//! The wire form of rename requests: requests validated into a
//! [`RenameDraft`] (every bad field reported), rows back out.

use crm_kit::{FieldViolation, etag, time};
use crm_proto::crm::profiles::v1 as pb;

use super::Violations;
use crate::{
    domain::{fields, rename::RenameDraft},
    resources::RENAME_REQUEST,
    store::rename::RenameRow,
};

/// Validates the names and reason of request `r`, its violations named under `prefix`.
pub fn draft_from_proto(r: &pb::RenameRequest, prefix: &str) -> Result<RenameDraft, Vec<FieldViolation>> {
    let mut v = Violations { prefix, found: Vec::new() };
    let display_name = v.check("display_name", fields::display_name(&r.display_name));
    let given_name = v.check("given_name", fields::short_text(&r.given_name, 100));
    let family_name = v.check("family_name", fields::short_text(&r.family_name, 100));
    let reason = v.check("reason", fields::short_text(&r.reason, 500));
    match (display_name, given_name, family_name, reason) {
        (Some(display_name), Some(given_name), Some(family_name), Some(reason)) if v.found.is_empty() => {
            Ok(RenameDraft { display_name, given_name, family_name, reason })
        }
        _ => Err(v.found),
    }
}

/// A stored request as the API returns it.
pub fn to_proto(row: &RenameRow) -> pb::RenameRequest {
    pb::RenameRequest {
        name: RENAME_REQUEST.name(row.customer_id, row.id),
        display_name: row.display_name.clone(),
        given_name: row.given_name.clone(),
        family_name: row.family_name.clone(),
        reason: row.reason.clone(),
        previous_display_name: row.previous_display_name.clone(),
        previous_given_name: row.previous_given_name.clone(),
        previous_family_name: row.previous_family_name.clone(),
        state: crm_kit::protoenum::number(&row.state, "RENAME_REQUEST_STATE_", |s| {
            pb::RenameRequestState::from_str_name(s).map(|e| e as i32)
        }),
        requester: row.requester.clone(),
        reviewer: row.reviewer.clone(),
        review_comment: row.review_comment.clone(),
        create_time: Some(time::to_timestamp(row.create_time)),
        review_time: row.review_time.map(time::to_timestamp),
        etag: etag::of_revision(row.revision),
    }
}
