//! Assignment within a team, automatic and manual. An agent's load counts
//! their open tickets of every team, held to one capacity across teams (the
//! lowest set on their memberships). Automatic assignment takes the tenant's
//! dispatch lock, then the team row, for the rest of the transaction, so
//! concurrent intakes — in one team or in several — decide one after the
//! other, each seeing the loads the previous ones committed: no agent is
//! ever given more than their capacity.

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx};
use uuid::Uuid;

use super::{
    context::{App, ensure_live, lock_for_change},
    events,
};
use crate::{
    domain::{
        dispatch::{Candidate, Strategy, choose},
        status::Status,
        ticket::Ticket,
    },
    resources::{TEAM, TICKET},
    store::{self, MemberRow, TeamRow},
};

/// Who auto-assignments are attributed to in the timeline.
const DISPATCH_ACTOR: &str = "dispatch";
/// Queue entries examined per round when capacity frees up.
const QUEUE_BATCH: i64 = 50;

/// INVALID_ARGUMENT on `field` unless `team` is empty or a team of the tenant.
pub async fn ensure_team(tx: &mut TenantTx, tenant: Uuid, team: &str, field: &str) -> Result<(), Error> {
    if team.is_empty() {
        return Ok(());
    }
    let id = TEAM.parse_as(team, field, "INVALID_TEAM")?;
    match store::find_team(tx, tenant, id, false).await? {
        Some(_) => Ok(()),
        None => Err(Error::invalid(field, "UNKNOWN_TEAM", format!("{team:?} is not a team of this tenant"))),
    }
}

/// Locks the tenant's dispatch and the team a ticket names, if it names one that exists.
async fn lock_team(tx: &mut TenantTx, tenant: Uuid, team: &str) -> Result<Option<TeamRow>, Error> {
    if team.is_empty() {
        return Ok(None);
    }
    let id = TEAM.parse_as(team, "ticket.team", "INVALID_TEAM")?;
    store::lock_dispatch(tx, tenant).await?;
    store::find_team(tx, tenant, id, true).await
}

/// Assigns `ticket` within the locked `team`; `None` when nobody fits.
async fn assign_locked(
    tx: &mut TenantTx,
    tenant: Uuid,
    team: &TeamRow,
    ticket: &Ticket,
    now: DateTime<Utc>,
) -> Result<Option<Ticket>, Error> {
    let strategy = Strategy::parse(&team.strategy).unwrap_or(Strategy::RoundRobin);
    let candidates: Vec<Candidate> = store::members(tx, tenant, team.id)
        .await?
        .into_iter()
        .map(|m| Candidate { agent: m.agent, capacity: m.agent_capacity.into(), load: m.load, skills: m.skills, available: m.available })
        .collect();
    let Some(agent) = choose(strategy, &candidates, &ticket.category, &team.last_assigned) else { return Ok(None) };
    let agent = agent.to_owned();
    let assigned = store::set_assignment(tx, tenant, ticket.id, &agent, &ticket.team, now).await?;
    store::set_last_assigned(tx, tenant, team.id, &agent).await?;
    store::append_event(tx, tenant, ticket.id, "ASSIGNED", DISPATCH_ACTOR, &format!("nobody → {agent} ({})", strategy.name()), now).await?;
    events::assigned(tx, tenant, &assigned, "", now).await?;
    Ok(Some(assigned))
}

/// Assigns a new, unassigned ticket of a team if a member fits; otherwise it waits in the queue.
pub(super) async fn assign_new(tx: &mut TenantTx, tenant: Uuid, ticket: Ticket, now: DateTime<Utc>) -> Result<Ticket, Error> {
    if !ticket.assignee.is_empty() {
        return Ok(ticket);
    }
    let Some(team) = lock_team(tx, tenant, &ticket.team).await? else { return Ok(ticket) };
    Ok(assign_locked(tx, tenant, &team, &ticket, now).await?.unwrap_or(ticket))
}

/// Hands queued tickets of `team` (a resource name) to members with spare
/// capacity, oldest first, until nobody fits. Returns how many were assigned.
pub(super) async fn drain_queue(tx: &mut TenantTx, tenant: Uuid, team: &str, now: DateTime<Utc>) -> Result<usize, Error> {
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

/// `agent` has capacity again (a ticket of `team` left them): hands out what
/// waits in the queue of `team`, then in those of the agent's other teams.
pub(super) async fn release_capacity(tx: &mut TenantTx, tenant: Uuid, team: &str, agent: &str, now: DateTime<Utc>) -> Result<(), Error> {
    drain_queue(tx, tenant, team, now).await?;
    if agent.is_empty() {
        return Ok(());
    }
    for other in store::teams_of(tx, tenant, agent).await? {
        let other = TEAM.name(other);
        if other != team {
            drain_queue(tx, tenant, &other, now).await?;
        }
    }
    Ok(())
}

/// A manual assignment: who works on the ticket, and in which team (empty: the ticket's own).
#[derive(Debug, Clone, Copy)]
pub struct Assignment<'a> {
    pub assignee: &'a str,
    pub team: &'a str,
}

/// A team member as set by an admin.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub agent: &'a str,
    pub capacity: i32,
    pub skills: &'a [String],
    pub available: bool,
}

impl App {
    /// Assigns a live, not closed ticket by hand. The previous assignee's
    /// capacity goes to the team's queue. Assigning it as it is changes nothing.
    pub async fn assign(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        to: Assignment<'_>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Ticket, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = lock_for_change(&mut tx, tenant, id, etag).await?;
        ensure_live(&row)?;
        if row.status == Status::Closed {
            return Err(Error::FailedPrecondition {
                reason: "TICKET_CLOSED",
                message: "a closed ticket cannot be assigned".to_owned(),
                subject: TICKET.name(id),
            });
        }
        ensure_team(&mut tx, tenant, to.team, "team").await?;
        let (assignee, team) = (to.assignee, if to.team.is_empty() { row.team.as_str() } else { to.team });
        if assignee == row.assignee && team == row.team {
            tx.commit().await?;
            return Ok(row);
        }
        let updated = store::set_assignment(&mut tx, tenant, id, assignee, team, now).await?;
        let who = |s: &str| if s.is_empty() { "nobody".to_owned() } else { s.to_owned() };
        let detail = format!(
            "{} → {}{}",
            who(&row.assignee),
            who(assignee),
            if team == row.team { String::new() } else { format!(" (team {})", who(team)) }
        );
        store::append_event(&mut tx, tenant, id, "ASSIGNED", actor, &detail, now).await?;
        if !row.assignee.is_empty() && row.assignee != assignee {
            release_capacity(&mut tx, tenant, &row.team, &row.assignee, now).await?;
        }
        events::assigned(&mut tx, tenant, &updated, &row.assignee, now).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Removes `agent` from a team; false when they were not a member. Their
    /// lowest capacity may rise with it: their other teams' queues are served.
    pub async fn remove_team_member(&self, tenant: Uuid, team: Uuid, agent: &str, now: DateTime<Utc>) -> Result<bool, Error> {
        let mut tx = self.begin(tenant).await?;
        store::lock_dispatch(&mut tx, tenant).await?;
        if !store::delete_member(&mut tx, tenant, team, agent).await? {
            return Ok(false);
        }
        release_capacity(&mut tx, tenant, &TEAM.name(team), agent, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Adds or changes a member of a team; more capacity or a member back at
    /// work hands out what waits in the queues of the agent's teams.
    pub async fn set_team_member(&self, tenant: Uuid, team: Uuid, member: Member<'_>, now: DateTime<Utc>) -> Result<MemberRow, Error> {
        let mut tx = self.begin(tenant).await?;
        // The dispatch lock before the team's row, in the order dispatch takes them.
        store::lock_dispatch(&mut tx, tenant).await?;
        store::find_team(&mut tx, tenant, team, true).await?.ok_or_else(|| TEAM.not_found(team))?;
        store::upsert_member(&mut tx, tenant, team, member.agent, member.capacity, member.skills, member.available).await?;
        release_capacity(&mut tx, tenant, &TEAM.name(team), member.agent, now).await?;
        let stored = store::members(&mut tx, tenant, team)
            .await?
            .into_iter()
            .find(|m| m.agent == member.agent)
            .ok_or_else(|| Error::internal(anyhow::anyhow!("the member just stored is missing")))?;
        tx.commit().await?;
        Ok(stored)
    }
}
