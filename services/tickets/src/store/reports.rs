//! Service metrics over `tickets` and `surveys`, aggregated in one SQL pass.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

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
}

/// Figures for tickets in `[from, to)` per `grouping`, plus the overall row.
///
/// Durations: a ticket with an SLA policy has its business-hours clocks
/// (paused while PENDING, stopped at the first reply / resolution), so the
/// consumed time is the measure; without a policy, wall-clock time.
/// "Resolved" is the ticket's current state (RESOLVED or CLOSED) with its latest
/// resolve time, so a reopened ticket counts once it is resolved again.
pub async fn service_metrics(
    tx: &mut TenantTx,
    tenant: Uuid,
    grouping: Grouping,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<MetricsRow>, Error> {
    let sql = format!(
        "WITH scoped AS (
            SELECT {key} AS grp,
                   t.create_time >= $2 AS opened,
                   t.status IN ('RESOLVED', 'CLOSED') AND t.resolve_time >= $2 AND t.resolve_time < $3 AS resolved,
                   NOT (t.status IN ('RESOLVED', 'CLOSED') AND t.resolve_time < $3) AS backlog,
                   t.sla_policy_id IS NOT NULL AS tracked,
                   t.fr_breached OR t.res_breached AS breached,
                   t.reopen_count > 0 AS reopened,
                   CASE WHEN t.first_response_time IS NULL THEN NULL
                        WHEN t.fr_target_ms IS NOT NULL THEN t.fr_consumed_ms::float8
                        ELSE extract(epoch FROM t.first_response_time - t.create_time)::float8 * 1000 END AS fr_ms,
                   CASE WHEN t.resolve_time IS NULL THEN NULL
                        WHEN t.res_target_ms IS NOT NULL THEN t.res_consumed_ms::float8
                        ELSE greatest(extract(epoch FROM t.resolve_time - t.create_time)::float8 * 1000 - t.pending_ms, 0) END AS res_ms,
                   s.send_time >= $2 AND s.send_time < $3 AS surveyed,
                   s.csat, s.nps
            FROM tickets t
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
                count(*) FILTER (WHERE resolved AND reopened) AS reopened
         FROM scoped
         GROUP BY ROLLUP (grp)
         ORDER BY overall DESC, grp",
        key = grouping.key()
    );
    Ok(sqlx::query_as(&sql).bind(tenant).bind(from).bind(to).fetch_all(&mut **tx).instrument(db_span("SELECT", "tickets")).await?)
}
