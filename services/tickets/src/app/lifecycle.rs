//! Status changes: the state machine (in `domain::ticket`) decides whether a
//! move is allowed and what it implies; this module carries the effects out in
//! the caller's transaction — the new status, SLA clocks, the follow-up visit,
//! the survey, the team queue, the timeline entry and the event.

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, db::TenantTx};
use crm_proto::crm::tickets::v1 as pb;
use uuid::Uuid;

use super::{
    context::{App, ensure_live, lock_for_change},
    dispatch::release_capacity,
    events, sla,
};
use crate::{
    domain::{
        status::{InvalidTransition, Status},
        ticket::{FollowUpEffect, Ticket, Transition},
    },
    resources::TICKET,
    store::{self, follow_ups, surveys},
    wire::status_number,
};

/// A requested status change: the target status, who asks, and why (may be empty).
#[derive(Debug, Clone, Copy)]
pub struct Move<'a> {
    pub to: Status,
    pub actor: &'a str,
    pub reason: &'a str,
}

impl App {
    /// Moves a live ticket to another status (FAILED_PRECONDITION
    /// `INVALID_TRANSITION`, naming the allowed moves, when the lifecycle forbids it).
    pub async fn transition(&self, tenant: Uuid, id: Uuid, etag: &str, change: Move<'_>, now: DateTime<Utc>) -> Result<Ticket, Error> {
        let mut tx = self.begin(tenant).await?;
        let ticket = lock_for_change(&mut tx, tenant, id, etag).await?;
        ensure_live(&ticket)?;
        let moved = transition(&mut tx, tenant, ticket, change, self.follow_up_delay, now).await?;
        tx.commit().await?;
        Ok(moved)
    }
}

/// FAILED_PRECONDITION `INVALID_TRANSITION` for ticket `id`.
pub(super) fn refused(id: Uuid, err: InvalidTransition) -> Error {
    Error::FailedPrecondition { reason: "INVALID_TRANSITION", message: err.to_string(), subject: TICKET.name(id) }
}

/// Moves a locked, live ticket, in the caller's transaction.
pub(super) async fn transition(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: Ticket,
    change: Move<'_>,
    follow_up_delay: Duration,
    now: DateTime<Utc>,
) -> Result<Ticket, Error> {
    let Move { to, actor, reason } = change;
    let step = ticket.transition(to, now).map_err(|e| refused(ticket.id, e))?;
    let moved = apply(tx, tenant, &ticket, &step, follow_up_delay, now).await?;
    let detail = if reason.is_empty() { format!("{} → {to}", step.from) } else { format!("{} → {to}: {reason}", step.from) };
    store::append_event(tx, tenant, ticket.id, "STATUS_CHANGED", actor, &detail, now).await?;
    let event = pb::TicketStatusChanged { ticket: Some(events::wire(&moved, now)), previous_status: status_number(step.from) };
    events::emit(tx, tenant, ticket.id, &event).await?;
    Ok(moved)
}

/// Stores a transition's status change and carries out its effects, except
/// draining the team queue when `frees_capacity` is left to the caller
/// (`drain` false: a merge drains each team once, after all duplicates closed).
pub(super) async fn apply_effects(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: Ticket,
    step: &Transition,
    // The service default; the tenant's own setting wins.
    follow_up_delay: Duration,
    drain: bool,
    now: DateTime<Utc>,
) -> Result<Ticket, Error> {
    // The clocks follow every new status (they run only while NEW or OPEN).
    let moved = sla::follow(tx, tenant, ticket, now).await?;
    match step.follow_up {
        FollowUpEffect::Schedule => {
            let delay = super::settings::follow_up_delay(tx, tenant, follow_up_delay).await?;
            follow_ups::schedule(tx, tenant, moved.id, &moved.assignee, now + delay, now).await?
        }
        FollowUpEffect::Cancel => follow_ups::cancel_scheduled(tx, tenant, moved.id).await?,
        FollowUpEffect::Keep => {}
    }
    if step.send_survey {
        surveys::create_once(tx, tenant, moved.id, &moved.assignee, &moved.team, &moved.category, now).await?;
    }
    if drain && step.frees_capacity {
        release_capacity(tx, tenant, &moved.team, &moved.assignee, now).await?;
    }
    Ok(moved)
}

async fn apply(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: &Ticket,
    step: &Transition,
    follow_up_delay: Duration,
    now: DateTime<Utc>,
) -> Result<Ticket, Error> {
    let stored = store::set_status(tx, tenant, ticket.id, &step.change, now).await?;
    apply_effects(tx, tenant, stored, step, follow_up_delay, true, now).await
}
