//! SLA tracking on tickets: the policy chosen at intake, clocks that run only
//! while a ticket is NEW or OPEN (and, for first response, until the first
//! public reply), due instants recomputed on every change, states at read time.

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, db::TenantTx};
use uuid::Uuid;

use super::sla::calendar_of;
use crate::{
    domain::{
        calendar::BusinessCalendar,
        sla::{SlaClock, SlaState, Tracked},
        status::Status,
    },
    store::{self, SlaColumns, TicketRow},
};

fn tracked(target_ms: Option<i64>, consumed_ms: i64, since: Option<DateTime<Utc>>, breached: bool, ratio: f64) -> Option<Tracked> {
    Some(Tracked {
        target: Duration::milliseconds(target_ms?),
        warn_ratio: ratio,
        clock: SlaClock { consumed: Duration::milliseconds(consumed_ms), running_since: since },
        breached,
    })
}

/// The (first response, resolution) targets tracked for a ticket, if it has a policy.
fn targets(s: &SlaColumns) -> (Option<Tracked>, Option<Tracked>) {
    (
        tracked(s.fr_target_ms, s.fr_consumed_ms, s.fr_since, s.fr_breached, s.sla_warning_ratio),
        tracked(s.res_target_ms, s.res_consumed_ms, s.res_since, s.res_breached, s.sla_warning_ratio),
    )
}

/// Writes both targets back, with their due and warning instants.
fn columns(base: &SlaColumns, calendar: &BusinessCalendar, fr: Option<Tracked>, res: Option<Tracked>) -> SlaColumns {
    let mut s = base.clone();
    if let Some(t) = fr {
        let (due, warn) = t.instants(calendar);
        (s.fr_consumed_ms, s.fr_since, s.fr_due, s.fr_warn_at, s.fr_breached) =
            (t.clock.consumed.num_milliseconds(), t.clock.running_since, due, warn, t.breached);
    }
    if let Some(t) = res {
        let (due, warn) = t.instants(calendar);
        (s.res_consumed_ms, s.res_since, s.res_due, s.res_warn_at, s.res_breached) =
            (t.clock.consumed.num_milliseconds(), t.clock.running_since, due, warn, t.breached);
    }
    s
}

async fn calendar(tx: &mut TenantTx, tenant: Uuid, id: Option<Uuid>) -> Result<BusinessCalendar, Error> {
    let around_the_clock = || BusinessCalendar::always_open(chrono_tz::UTC);
    let Some(id) = id else { return Ok(around_the_clock()) };
    match store::find_calendar(tx, tenant, id).await? {
        Some(row) => calendar_of(&row).map_err(Error::internal),
        None => Ok(around_the_clock()),
    }
}

/// Chooses the policy for a new ticket and starts its clocks.
pub async fn start(
    tx: &mut TenantTx,
    tenant: Uuid,
    row: TicketRow,
    customer_category: &str,
    now: DateTime<Utc>,
) -> Result<TicketRow, Error> {
    let Some(policy) = store::policy_for(tx, tenant, &row.priority, customer_category).await? else { return Ok(row) };
    let calendar = calendar(tx, tenant, policy.calendar_id).await?;
    let base = SlaColumns {
        sla_policy_id: Some(policy.id),
        sla_calendar_id: policy.calendar_id,
        sla_warning_ratio: policy.warning_ratio,
        fr_target_ms: Some(policy.first_response_ms),
        res_target_ms: Some(policy.resolution_ms),
        ..SlaColumns::default()
    };
    let fr = Tracked::start(Duration::milliseconds(policy.first_response_ms), policy.warning_ratio, now);
    let res = Tracked::start(Duration::milliseconds(policy.resolution_ms), policy.warning_ratio, now);
    store::set_sla(tx, tenant, row.id, &columns(&base, &calendar, Some(fr), Some(res))).await
}

/// Pauses or resumes the clocks to match the ticket's status and first response.
pub async fn follow(tx: &mut TenantTx, tenant: Uuid, row: TicketRow, now: DateTime<Utc>) -> Result<TicketRow, Error> {
    if row.sla.sla_policy_id.is_none() {
        return Ok(row);
    }
    let runs = Status::parse(&row.status).is_some_and(Status::sla_clock_runs);
    let calendar = calendar(tx, tenant, row.sla.sla_calendar_id).await?;
    let (mut fr, mut res) = targets(&row.sla);
    for (target, should_run) in [(&mut fr, runs && row.first_response_time.is_none()), (&mut res, runs)] {
        if let Some(t) = target {
            match (t.clock.running_since.is_some(), should_run) {
                (true, false) => t.pause(&calendar, now),
                (false, true) => t.resume(now),
                _ => {}
            }
        }
    }
    let updated = columns(&row.sla, &calendar, fr, res);
    if updated == row.sla { Ok(row) } else { store::set_sla(tx, tenant, row.id, &updated).await }
}

/// Moves a ticket's running clocks from calendar `old` to `new` at `now`: the
/// business time used so far is banked under `old`, the rest runs on `new`.
pub async fn rebase(
    tx: &mut TenantTx,
    tenant: Uuid,
    row: TicketRow,
    old: &BusinessCalendar,
    new: &BusinessCalendar,
    now: DateTime<Utc>,
) -> Result<TicketRow, Error> {
    let (mut fr, mut res) = targets(&row.sla);
    for t in [&mut fr, &mut res].into_iter().flatten() {
        if t.clock.running_since.is_some() {
            t.pause(old, now);
            t.resume(now);
        }
    }
    store::set_sla(tx, tenant, row.id, &columns(&row.sla, new, fr, res)).await
}

/// (first response, resolution) states at `now`, from stored columns only.
pub fn states(s: &SlaColumns, now: DateTime<Utc>) -> (Option<SlaState>, Option<SlaState>) {
    let (fr, res) = targets(s);
    (fr.map(|t| t.state_at(now, s.fr_due, s.fr_warn_at)), res.map(|t| t.state_at(now, s.res_due, s.res_warn_at)))
}
