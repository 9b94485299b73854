//! `ListCustomerTimeline` (of CustomerService): everything that happened
//! with a customer, newest first, each entry with its record as that
//! record's own Get shows it to the caller (masked alike). `archive.read`;
//! a customer reads their own timeline without field changes, which name
//! the staff behind them.

use crm_kit::{
    Error,
    auth::Principal,
    pagination::{PageTokenCodec, Pager},
    protoenum, time,
};
use crm_proto::crm::profiles::v1::{self as pb, timeline_item::Detail};
use uuid::Uuid;

use super::{archive::shown, authorization::authorize};
use crate::{
    app::{App, communications::Communications, occurrences::Occurrences, timeline::TimelineEntry},
    domain::access::sees_pii,
    permissions,
    resources::{COMMUNICATION, CUSTOMER, OCCUPANCY, OCCURRENCE, TRANSACTION},
    store::timeline::{KINDS, TimelineKey},
    wire::{changes, premises::occupancy_to, transactions},
};

/// A page of the timeline `request` asks for.
pub(super) async fn list(
    app: &App,
    page_tokens: &PageTokenCodec,
    principal: &Principal,
    request: &pb::ListCustomerTimelineRequest,
) -> Result<pb::ListCustomerTimelineResponse, Error> {
    let customer = CUSTOMER.parse(&request.parent, "parent")?;
    authorize(principal, customer, permissions::ARCHIVE_READ)?;
    let kinds = kinds(principal, &request.kinds)?;
    let pager = Pager::new(page_tokens);
    let mut query = vec!["ListCustomerTimeline", request.parent.as_str()];
    query.extend(kinds.iter().copied());
    let page = pager.start::<(chrono::DateTime<chrono::Utc>, String, Uuid)>(request.page_size, &request.page_token, &query)?;
    let after = page.after.clone().map(|(time, kind, id)| TimelineKey { time, kind, id });
    let entries = app.timeline(principal.tenant, customer, &kinds, after.as_ref(), page.fetch_limit()).await?;
    let (entries, next_page_token) = pager.finish(&page, entries, |(key, _)| (key.time, key.kind.clone(), key.id));
    let masked = !sees_pii(principal, customer);
    Ok(pb::ListCustomerTimelineResponse {
        items: entries.iter().map(|(key, entry)| item(principal, key, entry, masked)).collect(),
        next_page_token,
    })
}

/// The kinds asked for (all when none), as stored names; field changes only for staff.
fn kinds(principal: &Principal, asked: &[i32]) -> Result<Vec<&'static str>, Error> {
    let staff = principal.customer().is_none();
    if asked.is_empty() {
        return Ok(KINDS.iter().copied().filter(|kind| staff || *kind != "FIELD_CHANGE").collect());
    }
    let mut kinds = Vec::with_capacity(asked.len());
    for (i, value) in asked.iter().enumerate() {
        let name = protoenum::short_name(*value, |n| pb::TimelineKind::try_from(n).ok().map(|k| k.as_str_name()), "TIMELINE_KIND_")
            .ok()
            .and_then(|short| KINDS.iter().copied().find(|kind| *kind == short))
            .ok_or_else(|| Error::invalid(format!("kinds[{i}]"), "INVALID_KIND", "a TimelineKind other than UNSPECIFIED"))?;
        if name == "FIELD_CHANGE" && !staff {
            return Err(Error::PermissionDenied { permission: permissions::ARCHIVE_READ.name().to_owned() });
        }
        if !kinds.contains(&name) {
            kinds.push(name);
        }
    }
    Ok(kinds)
}

/// One entry as the caller may see it.
fn item(principal: &Principal, key: &TimelineKey, entry: &TimelineEntry, masked: bool) -> pb::TimelineItem {
    let (kind, record, detail) = match entry {
        TimelineEntry::Communication(row) => (
            pb::TimelineKind::Communication,
            COMMUNICATION.name(row.customer_id, row.id),
            Detail::Communication(shown::<Communications>(principal, row)),
        ),
        TimelineEntry::Transaction(row) => {
            (pb::TimelineKind::Transaction, TRANSACTION.name(row.customer_id, row.id), Detail::Transaction(transactions::to_proto(row)))
        }
        TimelineEntry::Occurrence(row) => (
            pb::TimelineKind::Occurrence,
            OCCURRENCE.name(row.customer_id, row.id),
            Detail::Occurrence(shown::<Occurrences>(principal, row)),
        ),
        TimelineEntry::MoveIn(row) => {
            (pb::TimelineKind::MoveIn, OCCUPANCY.name(row.premises_id, row.id), Detail::Occupancy(occupancy_to(row)))
        }
        TimelineEntry::MoveOut(row) => {
            (pb::TimelineKind::MoveOut, OCCUPANCY.name(row.premises_id, row.id), Detail::Occupancy(occupancy_to(row)))
        }
        TimelineEntry::FieldChange(row) => {
            (pb::TimelineKind::FieldChange, row.record.clone(), Detail::Change(changes::to_proto(row, masked)))
        }
    };
    pb::TimelineItem { kind: kind as i32, time: Some(time::to_timestamp(key.time)), record, detail: Some(detail) }
}
