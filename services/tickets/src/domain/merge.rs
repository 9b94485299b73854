//! Merging duplicates of one customer's matter into the ticket that stays:
//! which tickets may be merged, the note that keeps what each duplicate said,
//! and the survivor's tags. The duplicates close through the state machine's
//! merge edge ([`Ticket::merge_into`]).

use crm_kit::Error;

use super::ticket::{MAX_TAGS, Ticket};
use crate::resources::TICKET;

fn refuse(ticket: &Ticket, reason: &'static str, message: &str) -> Error {
    Error::FailedPrecondition { reason, message: message.to_owned(), subject: TICKET.name(ticket.id) }
}

/// Checks that the survivor can take duplicates: live and not closed.
pub fn check_survivor(target: &Ticket) -> Result<(), Error> {
    if !target.is_live() {
        return Err(refuse(target, "TICKET_DELETED", "the ticket is deleted; undelete it first"));
    }
    if target.status == super::status::Status::Closed {
        return Err(refuse(target, "TICKET_CLOSED", "nothing can be merged into a closed ticket"));
    }
    Ok(())
}

/// Checks that `source` may be merged into `target`; `Ok(false)` when it already was (a retry).
pub fn mergeable(source: &Ticket, target: &Ticket) -> Result<bool, Error> {
    if source.merged_into == Some(target.id) {
        return Ok(false);
    }
    if !source.is_live() {
        return Err(refuse(source, "TICKET_DELETED", "the ticket is deleted; undelete it first"));
    }
    if source.merged_into.is_some() {
        return Err(refuse(source, "ALREADY_MERGED", "the ticket was already merged into another ticket"));
    }
    if source.customer_id != target.customer_id {
        return Err(refuse(source, "DIFFERENT_CUSTOMER", "only tickets of the same customer can be merged"));
    }
    if !source.status.is_open() {
        return Err(refuse(source, "TICKET_NOT_OPEN", "only NEW, OPEN or PENDING tickets can be merged"));
    }
    Ok(true)
}

/// The internal note on the survivor that keeps what each duplicate said.
pub fn merge_note(merged: &[Ticket]) -> String {
    merged
        .iter()
        .map(|r| format!("Merged {} ({} via {}): {}\n{}", TICKET.name(r.id), r.kind, r.channel.name(), r.subject, r.description))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The survivor's tags followed by the duplicates' new ones, up to the tag limit.
pub fn merged_tags(target: &Ticket, merged: &[Ticket]) -> Vec<String> {
    let mut tags = target.tags.clone();
    for tag in merged.iter().flat_map(|r| &r.tags) {
        if tags.len() < MAX_TAGS && !tags.contains(tag) {
            tags.push(tag.clone());
        }
    }
    tags
}
