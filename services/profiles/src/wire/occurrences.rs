//! The wire form of occurrences: requests validated into an
//! [`OccurrenceDraft`] (every bad field reported), rows back out as
//! `Occurrence`, masking, and the per-path copy and compare of updates.

use chrono::{DateTime, Utc};
use crm_kit::{FieldViolation, etag, time};
use crm_proto::crm::profiles::v1 as pb;

use super::{Violations, date_from, date_to};
use crate::{
    domain::{
        fields,
        occurrence::{OccurrenceDraft, is_category},
    },
    resources::{OCCURRENCE, PREMISES},
    store::occurrences::OccurrenceRow,
};

/// The paths UpdateOccurrence may change.
pub const WRITABLE: &[&str] = &["category", "occur_date", "premises", "handler", "description"];

/// Validates an incoming occurrence at `now`; `caller` handles it when none is given.
pub fn draft_from_proto(
    o: &pb::Occurrence,
    prefix: &str,
    caller: &str,
    now: DateTime<Utc>,
) -> Result<OccurrenceDraft, Vec<FieldViolation>> {
    let mut v = Violations { prefix, found: Vec::new() };
    let category = o.category.trim();
    let category = if is_category(category) {
        Some(category.to_owned())
    } else {
        v.add("category", "INVALID_CATEGORY", "1-50 letters, digits, '_' or '-'");
        None
    };
    let occur_date = match o.occur_date.as_ref().and_then(date_from) {
        Some(d) if d <= now.date_naive() => Some(d),
        _ => {
            v.add("occur_date", "INVALID_DATE", "required: a real date, not in the future");
            None
        }
    };
    let premises = match o.premises.as_str() {
        "" => Some(None),
        name => match PREMISES.id_of(name) {
            Some(id) => Some(Some(id)),
            None => {
                v.add("premises", "INVALID_NAME", format!("{name:?} is not a name like \"premises/<uuid>\""));
                None
            }
        },
    };
    let handler = match v.check("handler", fields::short_text(&o.handler, 200)) {
        Some(handler) if handler.is_empty() => Some(caller.chars().take(200).collect()),
        other => other,
    };
    let description = v.check("description", fields::short_text(&o.description, 4000));
    let draft = (|| {
        Some(OccurrenceDraft {
            category: category?,
            occur_date: occur_date?,
            premises: premises?,
            handler: handler?,
            description: description?,
        })
    })();
    match draft {
        Some(draft) if v.found.is_empty() => Ok(draft),
        _ => Err(v.found),
    }
}

/// A stored occurrence as the API returns it (unmasked).
pub fn to_proto(row: &OccurrenceRow) -> pb::Occurrence {
    pb::Occurrence {
        name: OCCURRENCE.name(row.customer_id, row.id),
        category: row.category.clone(),
        occur_date: Some(date_to(row.occur_date)),
        premises: row.premises_id.map(|p| PREMISES.name(p)).unwrap_or_default(),
        handler: row.handler.clone(),
        description: row.description.clone(),
        create_time: Some(time::to_timestamp(row.create_time)),
        update_time: Some(time::to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
    }
}

/// Masks digits and email addresses in the description for callers without `pii`.
pub fn mask_pii(o: &mut pb::Occurrence) {
    o.description = crm_kit::mask::text(&o.description);
}

/// The writable paths whose value `after` has otherwise than `before`, compared in wire form.
pub fn changed_paths(before: &pb::Occurrence, after: &pb::Occurrence) -> Vec<String> {
    WRITABLE.iter().filter(|p| !same_field(before, after, p)).map(|p| (*p).to_owned()).collect()
}

crm_kit::mask_fields!(pb::Occurrence;
    "category" => category,
    "occur_date" => occur_date,
    "premises" => premises,
    "handler" => handler,
    "description" => description,
);
