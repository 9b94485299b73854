//! Automatic assignment within a team. The team row is locked for the rest of
//! the transaction, so concurrent intakes for one team decide one after the
//! other, each seeing the loads the previous ones committed: no agent is ever
//! given more than their capacity.

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx, outbox};
use crm_proto::crm::tickets::v1 as pb;
use uuid::Uuid;

use super::convert::{parse_team_name, ticket_to_proto};
use crate::{
    domain::dispatch::{Candidate, Strategy, choose},
    store::{self, TeamRow, TicketRow},
};

/// Who auto-assignments are attributed to in the timeline.
const DISPATCH_ACTOR: &str = "dispatch";
/// Queue entries examined per round when capacity frees up.
const QUEUE_BATCH: i64 = 50;

/// Locks the team a ticket names, if it names one that exists.
async fn lock_team(tx: &mut TenantTx, tenant: Uuid, team: &str) -> Result<Option<TeamRow>, Error> {
    if team.is_empty() {
        return Ok(None);
    }
    let id = parse_team_name(team, "ticket.team")?;
    store::find_team(tx, tenant, id, true).await
}

/// Assigns `ticket` within the locked `team`; `None` when nobody fits.
async fn assign_locked(
    tx: &mut TenantTx,
    tenant: Uuid,
    team: &TeamRow,
    ticket: &TicketRow,
    now: DateTime<Utc>,
) -> Result<Option<TicketRow>, Error> {
    let strategy = Strategy::parse(&team.strategy).unwrap_or(Strategy::RoundRobin);
    let candidates: Vec<Candidate> = store::members(tx, tenant, team.id)
        .await?
        .into_iter()
        .map(|m| Candidate { agent: m.agent, capacity: m.capacity.into(), load: m.load, skills: m.skills, available: m.available })
        .collect();
    let Some(agent) = choose(strategy, &candidates, &ticket.category, &team.last_assigned) else { return Ok(None) };
    let agent = agent.to_owned();
    let assigned = store::set_assignment(tx, tenant, ticket.id, &agent, &ticket.team, now).await?;
    store::set_last_assigned(tx, tenant, team.id, &agent).await?;
    store::append_event(tx, tenant, ticket.id, "ASSIGNED", DISPATCH_ACTOR, &format!("nobody → {agent} ({})", strategy.name()), now).await?;
    let proto = ticket_to_proto(&assigned);
    let event = pb::TicketAssigned { ticket: Some(proto.clone()), previous_assignee: String::new() };
    outbox::append(tx, tenant, &proto.name, "crm.tickets.v1.TicketAssigned", &event).await?;
    Ok(Some(assigned))
}

/// Assigns a new, unassigned ticket of a team if a member fits; otherwise it waits in the queue.
pub async fn assign_new(tx: &mut TenantTx, tenant: Uuid, ticket: TicketRow, now: DateTime<Utc>) -> Result<TicketRow, Error> {
    if !ticket.assignee.is_empty() {
        return Ok(ticket);
    }
    let Some(team) = lock_team(tx, tenant, &ticket.team).await? else { return Ok(ticket) };
    Ok(assign_locked(tx, tenant, &team, &ticket, now).await?.unwrap_or(ticket))
}

/// Hands queued tickets of `team` (a resource name) to members with spare
/// capacity, oldest first, until nobody fits. Returns how many were assigned.
pub async fn drain_queue(tx: &mut TenantTx, tenant: Uuid, team: &str, now: DateTime<Utc>) -> Result<usize, Error> {
    let Some(mut team_row) = lock_team(tx, tenant, team).await? else { return Ok(0) };
    let mut assigned = 0;
    loop {
        let queue = store::queued(tx, tenant, team, QUEUE_BATCH).await?;
        let batch = queue.len();
        let mut progressed = false;
        for ticket in queue {
            if let Some(row) = assign_locked(tx, tenant, &team_row, &ticket, now).await? {
                // Round robin continues after this agent (as stored by assign_locked).
                team_row.last_assigned = row.assignee;
                assigned += 1;
                progressed = true;
            }
        }
        if !progressed || (batch as i64) < QUEUE_BATCH {
            return Ok(assigned);
        }
    }
}
