//! `crm.tickets.v1.ReportService`: service metrics for managers and analysts.

use chrono::Utc;
use crm_kit::{Error, auth::caller, db::begin_tenant, respond};
use crm_proto::crm::tickets::v1::{self as pb, report_service_server::ReportService};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::permissions;
use crate::store::reports::{self, Grouping, MetricsRow, StatusTimes};
use crate::wire::{parse_period, status_number};

/// Handlers of ReportService.
#[derive(Clone)]
pub struct ReportApi {
    pool: PgPool,
}

impl ReportApi {
    /// Handlers over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

fn grouping(value: i32) -> Result<Grouping, Error> {
    Ok(match pb::MetricsGrouping::try_from(value) {
        Ok(pb::MetricsGrouping::Unspecified) => Grouping::None,
        Ok(pb::MetricsGrouping::Team) => Grouping::Team,
        Ok(pb::MetricsGrouping::Agent) => Grouping::Agent,
        Ok(pb::MetricsGrouping::Category) => Grouping::Category,
        Ok(pb::MetricsGrouping::Channel) => Grouping::Channel,
        Ok(pb::MetricsGrouping::Priority) => Grouping::Priority,
        Err(_) => return Err(Error::invalid("group_by", "INVALID_GROUPING", "group by TEAM, AGENT, CATEGORY, CHANNEL or PRIORITY")),
    })
}

fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
}

fn duration(ms: Option<f64>) -> Option<prost_types::Duration> {
    ms.map(|ms| {
        let ms = ms.round() as i64;
        prost_types::Duration { seconds: ms.div_euclid(1000), nanos: (ms.rem_euclid(1000) * 1_000_000) as i32 }
    })
}

fn to_proto(row: MetricsRow) -> pb::ServiceMetrics {
    pb::ServiceMetrics {
        group: if row.overall { String::new() } else { row.grp },
        opened: row.opened,
        resolved: row.resolved,
        backlog: row.backlog,
        first_response_median: duration(row.first_response_median_ms),
        first_response_p90: duration(row.first_response_p90_ms),
        resolution_median: duration(row.resolution_median_ms),
        resolution_p90: duration(row.resolution_p90_ms),
        sla_tracked: row.sla_tracked,
        sla_compliance_percent: percent(row.sla_met, row.sla_tracked),
        surveys_sent: row.surveys_sent,
        survey_response_rate_percent: percent(row.surveys_answered, row.surveys_sent),
        csat_average: row.csat_average.unwrap_or(0.0),
        nps_responses: row.nps_responses,
        nps: percent(row.nps_promoters - row.nps_detractors, row.nps_responses),
        reopen_rate_percent: percent(row.reopened, row.resolved),
        reopens: row.reopens,
        time_in_status: time_in_status(&row.time_in_status),
    }
}

fn time_in_status(times: &StatusTimes) -> Vec<pb::StatusTime> {
    times
        .by_status()
        .into_iter()
        .filter(|&(_, tickets, _)| tickets > 0)
        .map(|(status, tickets, total_ms)| pb::StatusTime {
            status: status_number(status),
            tickets,
            total: duration(Some(total_ms)),
            average: duration(Some(total_ms / tickets as f64)),
        })
        .collect()
}

#[tonic::async_trait]
impl ReportService for ReportApi {
    #[tracing::instrument(skip_all)]
    async fn get_service_metrics(
        &self,
        request: Request<pb::GetServiceMetricsRequest>,
    ) -> Result<Response<pb::GetServiceMetricsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let r = request.into_inner();
            let grouping = grouping(r.group_by)?;
            let (from, to) = parse_period(r.start_time.as_ref(), r.end_time.as_ref())?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let rows = reports::service_metrics(&mut tx, principal.tenant, grouping, from, to, Utc::now()).await?;
            tx.commit().await?;
            let (overall, groups): (Vec<_>, Vec<_>) = rows.into_iter().partition(|row| row.overall);
            let groups = if grouping == Grouping::None { Vec::new() } else { groups.into_iter().map(to_proto).collect() };
            Ok(pb::GetServiceMetricsResponse { overall: overall.into_iter().next().map(to_proto), groups })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_to_milliseconds() {
        assert_eq!(duration(Some(1500.4)), Some(prost_types::Duration { seconds: 1, nanos: 500_000_000 }));
        assert_eq!(duration(None), None);
    }

    #[test]
    fn statuses_without_tickets_are_left_out() {
        let times = StatusTimes { open_tickets: 2, open_ms: 3000.0, resolved_tickets: 1, resolved_ms: 500.0, ..Default::default() };
        let listed = time_in_status(&times);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].status, pb::Status::Open as i32);
        assert_eq!(listed[0].average, Some(prost_types::Duration { seconds: 1, nanos: 500_000_000 }));
        assert_eq!(listed[1].status, pb::Status::Resolved as i32);
    }

    #[test]
    fn shares_of_nothing_are_zero() {
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(1, 4), 25.0);
    }
}
