//! What a customer sees of a ticket, decided here once: every RPC the
//! `customer` role may call (CreateTicket, GetTicket, ListTickets,
//! AddComment, ListComments) passes its answer through [`ticket`] and
//! [`comment`] with the caller's scope — stored idempotent answers too, as
//! they are replayed — and its filter through [`check_filter`].
//!
//! Staff-only: how the desk triages and works a ticket — priority, category,
//! tags, team, assignee, SLA policy, due times and states, time spent
//! pending, reopen count — and which member of the staff wrote a reply
//! (internal notes are never listed to customers; see `App::comments`).
//! A customer sees the conversation, the status and the times that matter
//! to them (created, first answered, resolved).

use crm_kit::{Error, filter::CheckedFilter};
use crm_proto::crm::tickets::v1 as pb;

use crate::{domain::access::Scope, resources::CUSTOMER};

/// Filter fields a customer may not filter on (they would tell staff-only values).
const STAFF_ONLY_FILTER_FIELDS: &[&str] = &["priority", "category", "tags", "team", "assignee"];

/// `ticket` as `scope` may see it.
pub fn ticket(scope: Scope, ticket: pb::Ticket) -> pb::Ticket {
    match scope {
        Scope::All => ticket,
        Scope::Customer(_) => pb::Ticket {
            priority: pb::Priority::Unspecified as i32,
            category: String::new(),
            tags: Vec::new(),
            assignee: String::new(),
            team: String::new(),
            sla_policy: String::new(),
            first_response_due: None,
            resolution_due: None,
            first_response_sla: pb::SlaState::Unspecified as i32,
            resolution_sla: pb::SlaState::Unspecified as i32,
            pending_duration: None,
            reopen_count: 0,
            ..ticket
        },
    }
}

/// `comment` as `scope` may see it: a customer sees their own name on their
/// replies and no name on the staff's.
pub fn comment(scope: Scope, comment: pb::Comment) -> pb::Comment {
    match scope {
        Scope::Customer(own) if comment.author != CUSTOMER.name(own) => pb::Comment { author: String::new(), ..comment },
        _ => comment,
    }
}

/// PERMISSION_DENIED when a customer's filter names a staff-only field.
pub fn check_filter(scope: Scope, filter: &CheckedFilter) -> Result<(), Error> {
    if let Scope::Customer(_) = scope
        && let Some(field) = STAFF_ONLY_FILTER_FIELDS.iter().find(|f| filter.mentions(f))
    {
        return Err(Error::PermissionDenied { permission: format!("tickets.read (filtering on the staff-only field {field})") });
    }
    Ok(())
}
