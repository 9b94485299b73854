//! Service metrics over `tickets` and `surveys`, aggregated in one SQL pass.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::status::Status;

/// The column tickets are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    None,
    Team,
    Agent,
    Category,
    Channel,
    Priority,
}

impl Grouping {
    /// The SQL expression of the group key; fixed strings, never from input.
    fn key(self) -> &'static str {
        match self {
            Grouping::None => "''::text",
            Grouping::Team => "t.team",
            Grouping::Agent => "t.assignee",
            Grouping::Category => "t.category",
            Grouping::Channel => "t.channel",
            Grouping::Priority => "t.priority",
        }
    }
}

/// One group's figures; `overall` marks the roll-up row over every group.
#[derive(Debug, Clone, FromRow, PartialEq)]
pub struct MetricsRow {
    pub grp: String,
    pub overall: bool,
    pub opened: i64,
    pub resolved: i64,
    pub backlog: i64,
    pub first_response_median_ms: Option<f64>,
    pub first_response_p90_ms: Option<f64>,
    pub resolution_median_ms: Option<f64>,
    pub resolution_p90_ms: Option<f64>,
    pub sla_tracked: i64,
    pub sla_met: i64,
    pub surveys_sent: i64,
    pub surveys_answered: i64,
    pub csat_average: Option<f64>,
    pub nps_responses: i64,
    pub nps_promoters: i64,
    pub nps_detractors: i64,
    pub reopened: i64,
    pub reopens: i64,
    #[sqlx(flatten)]
    pub time_in_status: StatusTimes,
}

/// Tickets that spent time in each status during the period, and that time
/// added up (milliseconds); CLOSED is final, so its time says nothing.
#[derive(Debug, Clone, Default, FromRow, PartialEq)]
pub struct StatusTimes {
    pub new_tickets: i64,
    pub new_ms: f64,
    pub open_tickets: i64,
    pub open_ms: f64,
    pub pending_tickets: i64,
    pub pending_ms: f64,
    pub resolved_tickets: i64,
    pub resolved_ms: f64,
}

impl StatusTimes {
    /// (status, tickets, total ms) in lifecycle order.
    pub fn by_status(&self) -> [(Status, i64, f64); 4] {
        [
            (Status::New, self.new_tickets, self.new_ms),
            (Status::Open, self.open_tickets, self.open_ms),
            (Status::Pending, self.pending_tickets, self.pending_ms),
            (Status::Resolved, self.resolved_tickets, self.resolved_ms),
        ]
    }
}

/// Figures for tickets in `[from, to)` per `grouping`, plus the overall row,
/// as they were at the time: statuses come from `ticket_status_history`
/// (`now` caps the time counted in a status when the period has not ended).
///
/// Durations to first reply and resolution: a ticket with an SLA policy has
/// its business-hours clocks (paused while PENDING, stopped at the first reply
/// / resolution), so the consumed time is the measure; without a policy,
/// wall-clock time. "Resolved" means resolved at the period's end, with its
/// latest resolution before that end inside the period, so a ticket reopened
/// and resolved again counts once.
pub async fn service_metrics(
    tx: &mut TenantTx,
    tenant: Uuid,
    grouping: Grouping,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<MetricsRow>, Error> {
    // `stays`: the stays that touch the period, `until` as of its end (NULL:
    // still in that status then); a ticket CLOSED before the period is done
    // with and left out. `history`: per ticket, its status at the end (its
    // resolution and reopens so far with it), reopens in the period and time
    // per status inside [from, min(to, now)).
    let sql = format!(
        "WITH stays AS (
            SELECT ticket_id, status, since, reopened, resolve_time, reopen_count,
                   CASE WHEN until < $3 THEN until END AS until
            FROM ticket_status_history
            WHERE tenant_id = $1 AND since < $3 AND (until IS NULL OR until >= $2) AND NOT (status = 'CLOSED' AND since < $2)
         ),
         history AS (
            SELECT ticket_id,
                   bool_or(until IS NULL AND status IN ('NEW', 'OPEN', 'PENDING')) AS open_at_end,
                   max(resolve_time) FILTER (WHERE until IS NULL AND status IN ('RESOLVED', 'CLOSED')) AS resolved_at,
                   bool_or(until IS NULL AND reopen_count > 0) AS reopened_by_end,
                   count(*) FILTER (WHERE reopened AND since >= $2) AS reopens,
                   sum(inside_ms) FILTER (WHERE status = 'NEW') AS new_ms,
                   sum(inside_ms) FILTER (WHERE status = 'OPEN') AS open_ms,
                   sum(inside_ms) FILTER (WHERE status = 'PENDING') AS pending_ms,
                   sum(inside_ms) FILTER (WHERE status = 'RESOLVED') AS resolved_ms
            FROM (SELECT *, greatest(date_part('epoch', least(coalesce(until, $4), $4) - greatest(since, $2)) * 1000, 0) AS inside_ms
                  FROM stays) AS s
            GROUP BY ticket_id
         ),
         scoped AS (
            SELECT {key} AS grp,
                   t.create_time >= $2 AS opened,
                   coalesce(h.resolved_at >= $2, false) AS resolved,
                   h.open_at_end AS backlog,
                   t.sla_policy_id IS NOT NULL AS tracked,
                   t.fr_breached OR t.res_breached AS breached,
                   h.reopened_by_end AS reopened,
                   h.reopens,
                   h.new_ms, h.open_ms, h.pending_ms, h.resolved_ms,
                   CASE WHEN t.first_response_time IS NULL OR t.first_response_time >= $3 THEN NULL
                        WHEN t.fr_target_ms IS NOT NULL THEN t.fr_consumed_ms::float8
                        ELSE date_part('epoch', t.first_response_time - t.create_time) * 1000 END AS fr_ms,
                   CASE WHEN h.resolved_at IS NULL THEN NULL
                        WHEN t.res_target_ms IS NOT NULL THEN t.res_consumed_ms::float8
                        ELSE greatest(date_part('epoch', h.resolved_at - t.create_time) * 1000 - t.pending_ms, 0) END AS res_ms,
                   s.send_time >= $2 AND s.send_time < $3 AS surveyed,
                   s.csat, s.nps
            FROM tickets t
            JOIN history h ON h.ticket_id = t.id
            LEFT JOIN surveys s ON s.tenant_id = t.tenant_id AND s.ticket_id = t.id
            WHERE t.tenant_id = $1 AND t.create_time < $3 AND t.delete_time IS NULL AND t.merged_into IS NULL
         )
         SELECT coalesce(grp, '') AS grp,
                GROUPING(grp) = 1 AS overall,
                count(*) FILTER (WHERE opened) AS opened,
                count(*) FILTER (WHERE resolved) AS resolved,
                count(*) FILTER (WHERE backlog) AS backlog,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY fr_ms) FILTER (WHERE opened) AS first_response_median_ms,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY fr_ms) FILTER (WHERE opened) AS first_response_p90_ms,
                percentile_cont(0.5) WITHIN GROUP (ORDER BY res_ms) FILTER (WHERE resolved) AS resolution_median_ms,
                percentile_cont(0.9) WITHIN GROUP (ORDER BY res_ms) FILTER (WHERE resolved) AS resolution_p90_ms,
                count(*) FILTER (WHERE resolved AND tracked) AS sla_tracked,
                count(*) FILTER (WHERE resolved AND tracked AND NOT breached) AS sla_met,
                count(*) FILTER (WHERE surveyed) AS surveys_sent,
                count(csat) FILTER (WHERE surveyed) AS surveys_answered,
                (avg(csat) FILTER (WHERE surveyed))::float8 AS csat_average,
                count(nps) FILTER (WHERE surveyed) AS nps_responses,
                count(*) FILTER (WHERE surveyed AND nps >= 9) AS nps_promoters,
                count(*) FILTER (WHERE surveyed AND nps <= 6) AS nps_detractors,
                count(*) FILTER (WHERE resolved AND reopened) AS reopened,
                coalesce(sum(reopens), 0)::int8 AS reopens,
                count(new_ms) FILTER (WHERE new_ms > 0) AS new_tickets,
                coalesce(sum(new_ms), 0)::float8 AS new_ms,
                count(open_ms) FILTER (WHERE open_ms > 0) AS open_tickets,
                coalesce(sum(open_ms), 0)::float8 AS open_ms,
                count(pending_ms) FILTER (WHERE pending_ms > 0) AS pending_tickets,
                coalesce(sum(pending_ms), 0)::float8 AS pending_ms,
                count(resolved_ms) FILTER (WHERE resolved_ms > 0) AS resolved_tickets,
                coalesce(sum(resolved_ms), 0)::float8 AS resolved_ms
         FROM scoped
         GROUP BY ROLLUP (grp)
         ORDER BY overall DESC, grp",
        key = grouping.key()
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(from)
        .bind(to)
        .bind(now.min(to))
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "tickets"))
        .await?)
}
