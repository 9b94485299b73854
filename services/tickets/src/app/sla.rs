//! SLA tracking on tickets: the policy chosen at intake, clocks that run only
//! while a ticket is NEW or OPEN (first response only until the first public
//! reply), due instants recomputed on every change, and the SLA job's round:
//! record warnings and breaches once, escalate breached tickets.
//!
//! The job is safe with several replicas: due tickets are found through
//! `sla_timers`, then locked `FOR UPDATE SKIP LOCKED` in a tenant-scoped
//! transaction, and the "recorded" flags change in the same transaction as
//! the escalation, so a step is never recorded or escalated twice, also
//! across restarts.

use std::{collections::BTreeMap, sync::OnceLock};

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, db::TenantTx};
use crm_proto::crm::tickets::v1 as pb;
use opentelemetry::metrics::Counter;
use uuid::Uuid;

use super::{context::App, dispatch::release_capacity, events};
use crate::{
    domain::{
        calendar::{BusinessCalendar, CalendarError},
        sla::{SlaStep, SlaTarget, Tracked, clocks_should_run, due_steps, escalation},
        ticket::{SlaTracking, Ticket},
    },
    resources::TEAM,
    store::{self, CalendarRow},
};

/// Tickets the job handles per round.
const BATCH: i64 = 200;

async fn calendar(tx: &mut TenantTx, tenant: Uuid, id: Option<Uuid>) -> Result<BusinessCalendar, Error> {
    let around_the_clock = || BusinessCalendar::always_open(chrono_tz::UTC);
    let Some(id) = id else { return Ok(around_the_clock()) };
    match store::find_calendar(tx, tenant, id).await? {
        Some(row) => row.calendar().map_err(Error::internal),
        None => Ok(around_the_clock()),
    }
}

/// Chooses the policy for a new ticket and starts its clocks.
pub(super) async fn start(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: Ticket,
    customer_category: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, Error> {
    let Some(policy) = store::policy_for(tx, tenant, ticket.priority.name(), customer_category).await? else { return Ok(ticket) };
    let calendar = calendar(tx, tenant, policy.calendar_id).await?;
    let base = SlaTracking {
        sla_policy_id: Some(policy.id),
        sla_calendar_id: policy.calendar_id,
        sla_warning_ratio: policy.warning_ratio,
        fr_target_ms: Some(policy.first_response_ms),
        res_target_ms: Some(policy.resolution_ms),
        ..SlaTracking::default()
    };
    let fr = Tracked::start(Duration::milliseconds(policy.first_response_ms), policy.warning_ratio, now);
    let res = Tracked::start(Duration::milliseconds(policy.resolution_ms), policy.warning_ratio, now);
    store::set_sla(tx, tenant, ticket.id, &base.with_targets(&calendar, Some(fr), Some(res))).await
}

/// Pauses or resumes the clocks to match the ticket's status and first response.
pub(super) async fn follow(tx: &mut TenantTx, tenant: Uuid, ticket: Ticket, now: DateTime<Utc>) -> Result<Ticket, Error> {
    if ticket.sla.sla_policy_id.is_none() {
        return Ok(ticket);
    }
    let calendar = calendar(tx, tenant, ticket.sla.sla_calendar_id).await?;
    let updated = ticket.sla.followed(&calendar, clocks_should_run(ticket.status, ticket.first_response_time.is_some()), now);
    if updated == ticket.sla { Ok(ticket) } else { store::set_sla(tx, tenant, ticket.id, &updated).await }
}

impl App {
    /// Replaces a business calendar with what `edit` makes of the stored one
    /// and moves the running clocks of every ticket on it to the new hours:
    /// business time used so far is banked under the old hours. Returns the
    /// stored calendar and how many tickets were rescheduled.
    pub async fn update_calendar(
        &self,
        tenant: Uuid,
        id: Uuid,
        edit: impl FnOnce(&CalendarRow) -> Result<CalendarRow, Error>,
        now: DateTime<Utc>,
    ) -> Result<(CalendarRow, usize), Error> {
        let mut tx = self.begin(tenant).await?;
        let current = store::lock_calendar(&mut tx, tenant, id).await?.ok_or_else(|| crate::resources::CALENDAR.not_found(id))?;
        let row = edit(&current)?;
        let (old, new) = (internal(current.calendar())?, internal(row.calendar())?);
        let stored = store::update_calendar(&mut tx, tenant, &row).await?;
        let running = store::running_on_calendar(&mut tx, tenant, id).await?;
        let rescheduled = running.len();
        for ticket in running {
            store::set_sla(&mut tx, tenant, ticket.id, &ticket.sla.rebased(&old, &new, now)).await?;
        }
        tx.commit().await?;
        Ok((stored, rescheduled))
    }

    /// One round of the SLA job: records every warning and breach due at
    /// `now`, escalating breached tickets. Returns the steps recorded.
    #[tracing::instrument(skip_all)]
    pub async fn record_due_sla_steps(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let mut by_tenant: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
        for (tenant, ticket) in store::due_timers(&self.pool, BATCH).await? {
            by_tenant.entry(tenant).or_default().push(ticket);
        }
        let mut recorded = 0;
        for (tenant, ids) in by_tenant {
            let mut tx = self.begin(tenant).await?;
            for ticket in store::lock_many(&mut tx, tenant, &ids).await? {
                recorded += record(&mut tx, tenant, ticket, now).await?;
            }
            tx.commit().await?;
        }
        Ok(recorded)
    }
}

fn internal(calendar: Result<BusinessCalendar, CalendarError>) -> Result<BusinessCalendar, Error> {
    calendar.map_err(Error::internal)
}

/// Records what is due for one locked ticket.
async fn record(tx: &mut TenantTx, tenant: Uuid, ticket: Ticket, now: DateTime<Utc>) -> Result<usize, Error> {
    let (tracking, steps) = due_steps(&ticket.sla, now);
    // Always rewrite: it also moves or clears the timer.
    let mut ticket = store::set_sla(tx, tenant, ticket.id, &tracking).await?;
    for (step, target) in &steps {
        ticket = match step {
            SlaStep::Warning => {
                let ratio = (ticket.sla.sla_warning_ratio * 100.0).round();
                let detail = format!("{} at {ratio}% of its target", target.name());
                store::append_event(tx, tenant, ticket.id, "SLA_WARNING", "sla", &detail, now).await?;
                let event = pb::SlaWarning { ticket: Some(events::wire(&ticket, now)), target: target.name().to_owned() };
                events::emit(tx, tenant, ticket.id, &event).await?;
                ticket
            }
            SlaStep::Breach => escalate(tx, tenant, ticket, *target, now).await?,
        };
    }
    Ok(steps.len())
}

/// `crm.tickets.sla_breaches`: breaches recorded, by target (first_response | resolution).
fn breaches() -> &'static Counter<u64> {
    static BREACHES: OnceLock<Counter<u64>> = OnceLock::new();
    BREACHES.get_or_init(|| {
        opentelemetry::global::meter("crm-tickets")
            .u64_counter("crm.tickets.sla_breaches")
            .with_unit("{breach}")
            .with_description("SLA breaches recorded by the SLA job, by target")
            .build()
    })
}

/// Carries out the escalation the domain decides for a breached ticket.
async fn escalate(tx: &mut TenantTx, tenant: Uuid, ticket: Ticket, target: SlaTarget, now: DateTime<Utc>) -> Result<Ticket, Error> {
    let lead = match TEAM.id_of(&ticket.team) {
        Some(team) => store::find_team(tx, tenant, team, false).await?.map(|t| t.lead).unwrap_or_default(),
        None => String::new(),
    };
    let step = escalation(&ticket, target, &lead);
    let escalated = store::escalate(tx, tenant, ticket.id, step.priority, &step.assignee, now).await?;
    store::append_event(tx, tenant, ticket.id, "SLA_BREACHED", "sla", &step.detail, now).await?;
    breaches().add(1, &[opentelemetry::KeyValue::new("target", target.name())]);
    if step.frees_capacity {
        // The agent the lead took over from has capacity again.
        release_capacity(tx, tenant, &ticket.team, &ticket.assignee, now).await?;
    }
    let event = pb::SlaBreached { ticket: Some(events::wire(&escalated, now)), target: target.name().to_owned() };
    events::emit(tx, tenant, ticket.id, &event).await?;
    Ok(escalated)
}
