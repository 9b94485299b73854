//! Completing follow-up visits (回访): the outcome is recorded on the visit
//! and the ticket's timeline; an unsatisfied customer reopens a resolved ticket.

use chrono::{DateTime, Utc};
use crm_kit::Error;
use crm_proto::crm::tickets::v1 as pb;
use uuid::Uuid;

use super::{
    context::App,
    events,
    lifecycle::{self, Move},
};
use crate::{
    domain::{status::Status, ticket::Ticket},
    resources::FOLLOW_UP,
    store::{
        self,
        follow_ups::{self, FollowUpRow, Outcome},
    },
};

/// What the agent found out on a visit.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    pub reached: bool,
    /// Only meaningful when reached.
    pub satisfied: bool,
    pub notes: &'a str,
}

impl App {
    /// Completes a scheduled follow-up with the visit's outcome.
    pub async fn complete_follow_up(
        &self,
        tenant: Uuid,
        id: Uuid,
        visit: Visit<'_>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<FollowUpRow, Error> {
        let satisfied = visit.reached && visit.satisfied;
        let mut tx = self.begin(tenant).await?;
        let follow_up = follow_ups::lock(&mut tx, tenant, id).await?.ok_or_else(|| FOLLOW_UP.not_found(id))?;
        if follow_up.state != "SCHEDULED" {
            return Err(Error::FailedPrecondition {
                reason: "FOLLOW_UP_CLOSED",
                message: format!("this follow-up is {}; only scheduled ones can be completed", follow_up.state.to_lowercase()),
                subject: FOLLOW_UP.name(id),
            });
        }
        let done =
            follow_ups::complete(&mut tx, tenant, id, Outcome { reached: visit.reached, satisfied, notes: visit.notes, by: actor }, now)
                .await?;
        let ticket: Ticket = store::TICKETS
            .find(&mut tx, tenant, follow_up.ticket_id, true)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("follow-up without ticket")))?;
        let outcome = match (visit.reached, satisfied) {
            (false, _) => "customer not reached",
            (true, true) => "customer satisfied",
            (true, false) => "customer NOT satisfied",
        };
        let detail = if visit.notes.is_empty() { outcome.to_owned() } else { format!("{outcome}: {}", visit.notes) };
        store::append_event(&mut tx, tenant, ticket.id, "FOLLOW_UP_COMPLETED", actor, &detail, now).await?;
        // An unsatisfied customer reopens a resolved ticket; a closed one stays closed (the outcome is on record).
        let ticket = if visit.reached && !satisfied && ticket.status == Status::Resolved && ticket.is_live() {
            let reopen = Move { to: Status::Open, actor, reason: "customer not satisfied at follow-up" };
            lifecycle::transition(&mut tx, tenant, ticket, reopen, self.follow_up_delay, now).await?
        } else {
            ticket
        };
        let event = pb::FollowUpCompleted {
            follow_up: FOLLOW_UP.name(id),
            ticket: Some(events::wire(&ticket, now)),
            reached: visit.reached,
            satisfied,
        };
        events::emit(&mut tx, tenant, ticket.id, &event).await?;
        tx.commit().await?;
        Ok(done)
    }
}
