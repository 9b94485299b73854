//! `MergeTickets`: folding duplicates of one customer into the ticket that
//! stays — comments move, tags are added, an internal note quotes each
//! duplicate, and the duplicates close with a link to the survivor.

use chrono::Utc;
use crm_kit::{Error, FieldViolation, auth::Principal, db::begin_tenant, etag, outbox};
use crm_proto::crm::tickets::v1 as pb;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    convert::{MAX_TAGS, TICKET_TYPE, parse_ticket_name, ticket_name, ticket_to_proto},
    tickets::{ensure_live, not_found, status_change, stored_status},
};
use crate::{
    domain::status::Status,
    store::{self, TicketRow},
};

/// Most duplicates one call merges.
const MAX_SOURCES: usize = 50;
/// Outbox event type.
const MERGED: &str = "crm.tickets.v1.TicketMerged";

/// Parses the duplicates' names: 1-50, distinct, none of them the survivor.
fn parse_sources(names: &[String], target: Uuid) -> Result<Vec<Uuid>, Error> {
    if names.is_empty() || names.len() > MAX_SOURCES {
        return Err(Error::invalid("source_tickets", "INVALID_COUNT", format!("name 1 to {MAX_SOURCES} tickets to merge")));
    }
    let mut violations = Vec::new();
    let mut ids = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let field = format!("source_tickets[{i}]");
        match parse_ticket_name(name, &field) {
            Ok(id) if id == target => violations.push(FieldViolation::new(field, "SAME_TICKET", "a ticket cannot be merged into itself")),
            Ok(id) if ids.contains(&id) => violations.push(FieldViolation::new(field, "DUPLICATE", "named twice")),
            Ok(id) => ids.push(id),
            Err(Error::InvalidArgument { violations: found }) => violations.extend(found),
            Err(other) => return Err(other),
        }
    }
    if violations.is_empty() { Ok(ids) } else { Err(Error::InvalidArgument { violations }) }
}

fn refuse(row: &TicketRow, reason: &'static str, message: impl Into<String>) -> Error {
    Error::FailedPrecondition { reason, message: message.into(), subject: ticket_name(row.id) }
}

/// Checks that `row` may be merged into `target`; `Ok(false)` when it already was (a retry).
fn mergeable(row: &TicketRow, target: &TicketRow) -> Result<bool, Error> {
    if row.merged_into == Some(target.id) {
        return Ok(false);
    }
    ensure_live(row)?;
    if row.merged_into.is_some() {
        return Err(refuse(row, "ALREADY_MERGED", "the ticket was already merged into another ticket"));
    }
    if row.customer_id != target.customer_id {
        return Err(refuse(row, "DIFFERENT_CUSTOMER", "only tickets of the same customer can be merged"));
    }
    if !stored_status(row)?.is_open() {
        return Err(refuse(row, "TICKET_NOT_OPEN", "only NEW, OPEN or PENDING tickets can be merged"));
    }
    Ok(true)
}

/// The internal note on the survivor that keeps what each duplicate said.
fn merge_note(merged: &[TicketRow]) -> String {
    merged
        .iter()
        .map(|r| format!("Merged {} ({} via {}): {}\n{}", ticket_name(r.id), r.kind, r.channel, r.subject, r.description))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The survivor's tags followed by the duplicates' new ones, up to the tag limit.
fn merged_tags(target: &TicketRow, merged: &[TicketRow]) -> Vec<String> {
    let mut tags = target.tags.clone();
    for tag in merged.iter().flat_map(|r| &r.tags) {
        if tags.len() < MAX_TAGS && !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    tags
}

/// Merges `request.source_tickets` into `request.name` in one transaction.
pub(crate) async fn merge(
    pool: &PgPool,
    principal: &Principal,
    request: &pb::MergeTicketsRequest,
) -> Result<pb::MergeTicketsResponse, Error> {
    let target_id = parse_ticket_name(&request.name, "name")?;
    let sources = parse_sources(&request.source_tickets, target_id)?;
    let expected_revision = etag::parse(&request.etag, "etag")?;
    let tenant = principal.tenant;
    let mut tx = begin_tenant(pool, tenant).await?;
    let locked = store::lock_in_order(&mut tx, tenant, &[sources.as_slice(), &[target_id]].concat()).await?;
    let row = |id: Uuid| locked.iter().find(|r| r.id == id).cloned().ok_or_else(|| not_found(id));

    let target = row(target_id)?;
    if expected_revision.is_some_and(|r| r != target.revision) {
        return Err(Error::EtagMismatch { resource_type: TICKET_TYPE, name: ticket_name(target_id) });
    }
    ensure_live(&target)?;
    if stored_status(&target)? == Status::Closed {
        return Err(refuse(&target, "TICKET_CLOSED", "nothing can be merged into a closed ticket"));
    }
    let (mut merging, mut done) = (Vec::new(), Vec::new());
    for id in sources {
        let source = row(id)?;
        if mergeable(&source, &target)? { merging.push(source) } else { done.push(source) }
    }
    if merging.is_empty() {
        tx.commit().await?;
        return Ok(pb::MergeTicketsResponse {
            ticket: Some(ticket_to_proto(&target)),
            merged_tickets: done.iter().map(ticket_to_proto).collect(),
        });
    }

    let now = Utc::now();
    let merging_ids: Vec<Uuid> = merging.iter().map(|r| r.id).collect();
    store::move_comments(&mut tx, tenant, &merging_ids, target_id).await?;
    store::insert_comment(&mut tx, tenant, target_id, &merge_note(&merging), false, &principal.subject, &[], now).await?;
    let survivor = store::set_tags(&mut tx, tenant, target_id, &merged_tags(&target, &merging), now).await?;
    let names: Vec<String> = merging_ids.iter().copied().map(ticket_name).collect();
    store::append_event(&mut tx, tenant, target_id, "MERGED", &principal.subject, &format!("merged {}", names.join(", ")), now).await?;

    let mut teams_with_capacity = Vec::new();
    for source in &merging {
        let from = stored_status(source)?;
        let banked = status_change(source, from, Status::Closed, now).pending_ms;
        let closed = store::set_merged(&mut tx, tenant, source.id, target_id, banked, now).await?;
        // CLOSED stops the SLA clocks and clears the timer.
        done.push(super::sla_tracking::follow(&mut tx, tenant, closed, now).await?);
        let detail = format!("{from} → CLOSED: merged into {}", ticket_name(target_id));
        store::append_event(&mut tx, tenant, source.id, "MERGED_INTO", &principal.subject, &detail, now).await?;
        if !source.assignee.is_empty() && !teams_with_capacity.contains(&source.team) {
            teams_with_capacity.push(source.team.clone());
        }
    }
    for team in &teams_with_capacity {
        super::dispatch::drain_queue(&mut tx, tenant, team, now).await?;
    }
    let response =
        pb::MergeTicketsResponse { ticket: Some(ticket_to_proto(&survivor)), merged_tickets: done.iter().map(ticket_to_proto).collect() };
    let event = pb::TicketMerged { ticket: response.ticket.clone(), merged_tickets: response.merged_tickets.clone() };
    outbox::append(&mut tx, tenant, &ticket_name(target_id), MERGED, &event).await?;
    tx.commit().await?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_checked_one_violation_each() {
        let target = Uuid::now_v7();
        let other = Uuid::now_v7();
        let names = vec![ticket_name(other), ticket_name(target), ticket_name(other), "tickets/nope".to_owned()];
        let Err(Error::InvalidArgument { violations }) = parse_sources(&names, target) else { panic!("invalid") };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["source_tickets[1]", "source_tickets[2]", "source_tickets[3]"]);
        assert!(parse_sources(&[], target).is_err());
        assert_eq!(parse_sources(&[ticket_name(other)], target).unwrap(), vec![other]);
    }
}
