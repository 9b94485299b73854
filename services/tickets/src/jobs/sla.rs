//! The SLA job: records warnings and breaches when their instants pass,
//! escalates breached tickets (one priority level up, and to the team lead),
//! writes the timeline and the events.
//!
//! Safe with several replicas: due tickets are found through `sla_timers`,
//! then locked `FOR UPDATE SKIP LOCKED` in a tenant-scoped transaction, and
//! the "recorded" flags change in the same transaction as the escalation, so a
//! step is never recorded or escalated twice, also across restarts.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, begin_tenant},
    outbox,
};
use crm_proto::crm::tickets::v1 as pb;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{
    api::ticket_to_proto,
    domain::classify::PRIORITIES,
    store::{self, TicketRow},
};

/// Tickets handled per round.
const BATCH: i64 = 200;

/// Runs the job every `interval` until `shutdown` turns true.
pub fn spawn(pool: PgPool, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            if let Err(err) = run_once(&pool, Utc::now()).await {
                tracing::warn!(error = %err, "SLA job round failed; retrying next round");
            }
        }
    });
}

/// One round: handles every ticket whose timer is due at `now`; returns the steps recorded.
#[tracing::instrument(skip_all)]
pub async fn run_once(pool: &PgPool, now: DateTime<Utc>) -> Result<usize, Error> {
    let mut by_tenant: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for (tenant, ticket) in store::due_timers(pool, BATCH).await? {
        by_tenant.entry(tenant).or_default().push(ticket);
    }
    let mut recorded = 0;
    for (tenant, ids) in by_tenant {
        let mut tx = begin_tenant(pool, tenant).await?;
        for row in store::lock_many(&mut tx, tenant, &ids).await? {
            recorded += record(&mut tx, tenant, row, now).await?;
        }
        tx.commit().await?;
    }
    Ok(recorded)
}

#[derive(Clone, Copy, PartialEq)]
enum Step {
    Warning,
    Breach,
}

/// Records what is due for one locked ticket.
async fn record(tx: &mut TenantTx, tenant: Uuid, row: TicketRow, now: DateTime<Utc>) -> Result<usize, Error> {
    let mut s = row.sla.clone();
    let mut steps = Vec::new();
    let targets = [
        ("first_response", s.fr_warn_at, s.fr_due, s.fr_breached, &mut s.fr_warn_recorded, &mut s.fr_breach_recorded),
        ("resolution", s.res_warn_at, s.res_due, s.res_breached, &mut s.res_warn_recorded, &mut s.res_breach_recorded),
    ];
    for (target, warn_at, due, breached, warn_recorded, breach_recorded) in targets {
        let missed = breached || due.is_some_and(|d| now >= d);
        if !*warn_recorded && (missed || warn_at.is_some_and(|w| now >= w)) {
            *warn_recorded = true;
            steps.push((Step::Warning, target));
        }
        if missed && !*breach_recorded {
            *breach_recorded = true;
            steps.push((Step::Breach, target));
        }
    }
    // Always rewrite: it also moves or clears the timer.
    let mut row = store::set_sla(tx, tenant, row.id, &s).await?;
    for (step, target) in &steps {
        row = match step {
            Step::Warning => {
                let ratio = (row.sla.sla_warning_ratio * 100.0).round();
                store::append_event(tx, tenant, row.id, "SLA_WARNING", "sla", &format!("{target} at {ratio}% of its target"), now).await?;
                let ticket = ticket_to_proto(&row);
                outbox::append(
                    tx,
                    tenant,
                    &ticket.name,
                    "crm.tickets.v1.SlaWarning",
                    &pb::SlaWarning { ticket: Some(ticket.clone()), target: target.to_string() },
                )
                .await?;
                row
            }
            Step::Breach => escalate(tx, tenant, row, target, now).await?,
        };
    }
    Ok(steps.len())
}

/// `crm.tickets.sla_breaches`: breaches recorded, by target (first_response | resolution).
fn breaches() -> &'static opentelemetry::metrics::Counter<u64> {
    static BREACHES: std::sync::OnceLock<opentelemetry::metrics::Counter<u64>> = std::sync::OnceLock::new();
    BREACHES.get_or_init(|| {
        opentelemetry::global::meter("crm-tickets")
            .u64_counter("crm.tickets.sla_breaches")
            .with_unit("{breach}")
            .with_description("SLA breaches recorded by the SLA job, by target")
            .build()
    })
}

/// One priority level up (URGENT stays) and, when the team has a lead, to the lead.
async fn escalate(tx: &mut TenantTx, tenant: Uuid, row: TicketRow, target: &str, now: DateTime<Utc>) -> Result<TicketRow, Error> {
    let level = PRIORITIES.iter().position(|p| *p == row.priority).unwrap_or(PRIORITIES.len() - 1);
    let priority = PRIORITIES[level.saturating_sub(1)];
    let lead = match crate::api::parse_team_name(&row.team, "team").ok() {
        Some(team) => store::find_team(tx, tenant, team, false).await?.map(|t| t.lead).unwrap_or_default(),
        None => String::new(),
    };
    let assignee = if lead.is_empty() { row.assignee.clone() } else { lead };
    let mut detail = format!("{target} target missed");
    if priority != row.priority {
        detail.push_str(&format!("; priority {} → {priority}", row.priority));
    }
    if assignee != row.assignee {
        let from = if row.assignee.is_empty() { "nobody" } else { &row.assignee };
        detail.push_str(&format!("; reassigned {from} → {assignee} (team lead)"));
    }
    let escalated = store::escalate(tx, tenant, row.id, priority, &assignee, now).await?;
    store::append_event(tx, tenant, row.id, "SLA_BREACHED", "sla", &detail, now).await?;
    breaches().add(1, &[opentelemetry::KeyValue::new("target", target.to_owned())]);
    if assignee != row.assignee && !row.assignee.is_empty() {
        // The agent the lead took over from has capacity again.
        crate::api::drain_queue(tx, tenant, &row.team, now).await?;
    }
    let ticket = ticket_to_proto(&escalated);
    outbox::append(
        tx,
        tenant,
        &ticket.name,
        "crm.tickets.v1.SlaBreached",
        &pb::SlaBreached { ticket: Some(ticket.clone()), target: target.to_owned() },
    )
    .await?;
    Ok(escalated)
}
