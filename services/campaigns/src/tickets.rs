//! The tickets service as seen from campaigns: its event stream, read with
//! the service's own token per tenant, turned into what the contact policy
//! needs — which tickets are open complaints of which customer.

use crm_proto::crm::tickets::v1 as pb;
use prost::Name;
use uuid::Uuid;

use crate::{
    domain::{journey::EventTrigger, journey_run::CustomerEvent},
    resources::CUSTOMER,
};

/// What one ticket says for the contact policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketFacts {
    pub id: Uuid,
    pub customer: Uuid,
    /// A complaint (TICKET_TYPE_COMPLAINT).
    pub complaint: bool,
    /// Live and neither resolved nor closed.
    pub open: bool,
}

/// The event types whose payload carries tickets, by full name.
pub fn event_types() -> Vec<String> {
    vec![
        pb::TicketCreated::full_name(),
        pb::TicketStatusChanged::full_name(),
        pb::TicketUpdated::full_name(),
        pb::TicketDeleted::full_name(),
        pb::TicketUndeleted::full_name(),
        pb::TicketMerged::full_name(),
    ]
}

fn facts(t: &pb::Ticket) -> Option<TicketFacts> {
    let id = Uuid::parse_str(t.name.strip_prefix("tickets/")?).ok()?;
    let customer = CUSTOMER.id_of(&t.customer)?;
    let closed = matches!(pb::Status::try_from(t.status), Ok(pb::Status::Resolved | pb::Status::Closed));
    Some(TicketFacts { id, customer, complaint: t.r#type == pb::TicketType::Complaint as i32, open: !closed && t.delete_time.is_none() })
}

/// The tickets an event of type `type_name` carries (empty for other events).
pub fn tickets_in(type_name: &str, data: &[u8]) -> Vec<TicketFacts> {
    use prost::Message;
    let tickets: Vec<pb::Ticket> = match type_name {
        t if t == pb::TicketCreated::full_name() => pb::TicketCreated::decode(data).ok().and_then(|e| e.ticket).into_iter().collect(),
        t if t == pb::TicketStatusChanged::full_name() => {
            pb::TicketStatusChanged::decode(data).ok().and_then(|e| e.ticket).into_iter().collect()
        }
        t if t == pb::TicketUpdated::full_name() => pb::TicketUpdated::decode(data).ok().and_then(|e| e.ticket).into_iter().collect(),
        t if t == pb::TicketDeleted::full_name() => pb::TicketDeleted::decode(data).ok().and_then(|e| e.ticket).into_iter().collect(),
        t if t == pb::TicketUndeleted::full_name() => pb::TicketUndeleted::decode(data).ok().and_then(|e| e.ticket).into_iter().collect(),
        t if t == pb::TicketMerged::full_name() => {
            pb::TicketMerged::decode(data).ok().map(|e| e.ticket.into_iter().chain(e.merged_tickets).collect()).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    tickets.iter().filter_map(facts).collect()
}

/// What an event of tickets' stream says happened to a customer, as
/// journeys start on it: a ticket resolved (its status moved to RESOLVED), a
/// complaint opened (created as a complaint).
pub fn customer_events(type_name: &str, data: &[u8]) -> Vec<CustomerEvent> {
    use prost::Message;
    let customer = |t: &pb::Ticket| CUSTOMER.id_of(&t.customer);
    let found = if type_name == pb::TicketStatusChanged::full_name() {
        pb::TicketStatusChanged::decode(data)
            .ok()
            .filter(|e| e.previous_status != pb::Status::Resolved as i32)
            .and_then(|e| e.ticket)
            .filter(|t| t.status == pb::Status::Resolved as i32)
            .and_then(|t| customer(&t))
            .map(|c| CustomerEvent { customer: c, event: EventTrigger::TicketResolved })
    } else if type_name == pb::TicketCreated::full_name() {
        pb::TicketCreated::decode(data)
            .ok()
            .and_then(|e| e.ticket)
            .filter(|t| t.r#type == pb::TicketType::Complaint as i32)
            .and_then(|t| customer(&t))
            .map(|c| CustomerEvent { customer: c, event: EventTrigger::ComplaintOpened })
    } else {
        None
    };
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    fn ticket(status: pb::Status, kind: pb::TicketType) -> pb::Ticket {
        pb::Ticket {
            name: format!("tickets/{}", Uuid::now_v7()),
            customer: format!("customers/{}", Uuid::now_v7()),
            status: status as i32,
            r#type: kind as i32,
            ..Default::default()
        }
    }

    #[test]
    fn complaints_are_open_until_resolved_or_closed() {
        let open = ticket(pb::Status::Open, pb::TicketType::Complaint);
        let facts = tickets_in(&pb::TicketCreated::full_name(), &pb::TicketCreated { ticket: Some(open) }.encode_to_vec());
        assert_eq!((facts[0].complaint, facts[0].open), (true, true));
        let resolved = ticket(pb::Status::Resolved, pb::TicketType::Complaint);
        let event = pb::TicketStatusChanged { ticket: Some(resolved), previous_status: pb::Status::Open as i32 };
        let facts = tickets_in(&pb::TicketStatusChanged::full_name(), &event.encode_to_vec());
        assert_eq!((facts[0].complaint, facts[0].open), (true, false));
        let question = ticket(pb::Status::New, pb::TicketType::Question);
        let facts = tickets_in(&pb::TicketCreated::full_name(), &pb::TicketCreated { ticket: Some(question) }.encode_to_vec());
        assert!(!facts[0].complaint);
        assert!(tickets_in("crm.tickets.v1.TicketCommented", &[]).is_empty());
    }

    #[test]
    fn a_resolution_and_a_new_complaint_are_journey_events() {
        let resolved = ticket(pb::Status::Resolved, pb::TicketType::Question);
        let customer = CUSTOMER.id_of(&resolved.customer).unwrap();
        let event = pb::TicketStatusChanged { ticket: Some(resolved.clone()), previous_status: pb::Status::Open as i32 };
        assert_eq!(
            customer_events(&pb::TicketStatusChanged::full_name(), &event.encode_to_vec()),
            [CustomerEvent { customer, event: EventTrigger::TicketResolved }]
        );
        // Resolved again (an edit of a resolved ticket) is no new resolution.
        let again = pb::TicketStatusChanged { ticket: Some(resolved), previous_status: pb::Status::Resolved as i32 };
        assert!(customer_events(&pb::TicketStatusChanged::full_name(), &again.encode_to_vec()).is_empty());
        let complaint = ticket(pb::Status::New, pb::TicketType::Complaint);
        let created = pb::TicketCreated { ticket: Some(complaint) }.encode_to_vec();
        assert_eq!(customer_events(&pb::TicketCreated::full_name(), &created)[0].event, EventTrigger::ComplaintOpened);
        let question = pb::TicketCreated { ticket: Some(ticket(pb::Status::New, pb::TicketType::Question)) }.encode_to_vec();
        assert!(customer_events(&pb::TicketCreated::full_name(), &question).is_empty());
    }
}
