//! The tickets service as seen from campaigns: its event stream, read with
//! the service's own token per tenant, turned into what the contact policy
//! needs — which tickets are open complaints of which customer — and what
//! journeys start on; and its SurveyService, which takes the answers of
//! surveys about a ticket.

use crm_kit::{
    Error,
    client::{Caller, Peer, Retry},
};
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

/// The id of ticket `t`.
fn ticket_id(t: &pb::Ticket) -> Option<Uuid> {
    Uuid::parse_str(t.name.strip_prefix("tickets/")?).ok()
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
            .and_then(|t| Some(CustomerEvent { customer: customer(&t)?, event: EventTrigger::TicketResolved, ticket: ticket_id(&t) }))
    } else if type_name == pb::TicketCreated::full_name() {
        pb::TicketCreated::decode(data)
            .ok()
            .and_then(|e| e.ticket)
            .filter(|t| t.r#type == pb::TicketType::Complaint as i32)
            .and_then(|t| Some(CustomerEvent { customer: customer(&t)?, event: EventTrigger::ComplaintOpened, ticket: ticket_id(&t) }))
    } else {
        None
    };
    found.into_iter().collect()
}

/// Client of tickets' `crm.tickets.v1.SurveyService`: a ticket's
/// satisfaction survey answered with what a campaigns questionnaire learnt.
#[derive(Clone)]
pub struct TicketSurveys {
    peer: Peer,
}

/// What tickets answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded now, or answered before (by the customer or an earlier try).
    Done,
    /// The ticket has no survey (never resolved, or deleted): nothing to record.
    NoSurvey,
}

impl TicketSurveys {
    /// A lazily connecting client of the tickets service at `url`.
    pub fn new(url: &str, timeout: std::time::Duration) -> anyhow::Result<Self> {
        Ok(Self { peer: Peer::connect_lazy("crm.tickets.v1.SurveyService", url, timeout)? })
    }

    /// Answers ticket `ticket`'s survey with `csat` (1-5), `nps` and `comment`.
    pub async fn answer(&self, caller: &Caller, ticket: Uuid, csat: i32, nps: Option<i32>, comment: &str) -> Result<Recorded, Error> {
        let request = pb::GetTicketSurveyRequest { ticket: format!("tickets/{ticket}") };
        let survey = self
            .peer
            .call("GetTicketSurvey", caller, Retry::Idempotent, request, |channel, request| async move {
                pb::survey_service_client::SurveyServiceClient::new(channel).get_ticket_survey(request).await
            })
            .await;
        let token = match survey {
            Ok(found) => found.survey.unwrap_or_default().answer_token,
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(Recorded::NoSurvey),
            Err(status) => return Err(unavailable(status.message())),
        };
        let request = pb::AnswerSurveyRequest { token, csat, nps, comment: comment.chars().take(2000).collect() };
        let answered = self
            .peer
            .call("AnswerSurvey", caller, Retry::Once, request, |channel, request| async move {
                pb::survey_service_client::SurveyServiceClient::new(channel).answer_survey(request).await
            })
            .await;
        match answered {
            Ok(_) => Ok(Recorded::Done),
            Err(status) if status.code() == tonic::Code::FailedPrecondition => Ok(Recorded::Done),
            Err(status) => Err(unavailable(status.message())),
        }
    }
}

fn unavailable(message: &str) -> Error {
    Error::Unavailable {
        reason: "TICKETS_UNAVAILABLE",
        message: format!("tickets did not take the survey answer: {message}"),
        retry_after: std::time::Duration::from_secs(5),
    }
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
        assert!(ticket_id(&resolved).is_some());
        assert_eq!(
            customer_events(&pb::TicketStatusChanged::full_name(), &event.encode_to_vec()),
            [CustomerEvent { customer, event: EventTrigger::TicketResolved, ticket: ticket_id(&resolved) }]
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
