//! ReportService.GetServiceMetrics: figures checked against tickets whose
//! history (their row and their status history) is pinned to known instants.

use chrono::{DateTime, Duration, TimeZone, Utc};
use crm_kit::time::to_timestamp;
use crm_proto::crm::tickets::v1::{self as pb, report_service_client::ReportServiceClient};
use tonic::Code;
use uuid::Uuid;

use crate::{
    helpers::{TestApp, assert_error, spawn_app},
    surveys::{answer, survey},
};

fn client(suite: &TestApp) -> ReportServiceClient<tonic::transport::Channel> {
    ReportServiceClient::new(suite.channel.clone())
}

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, d, 0, 0, 0).unwrap()
}

fn ticket_id(name: &str) -> Uuid {
    Uuid::parse_str(name.trim_start_matches("tickets/")).unwrap()
}

/// A transaction of the service's own login role inside the suite's tenant,
/// as the service opens them.
async fn tenant_tx(suite: &TestApp) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let pool = sqlx::PgPool::connect(suite.app_database_url()).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(suite.tenant.to_string()).execute(&mut *tx).await.unwrap();
    tx
}

/// Rewrites a ticket's history (the API only ever records "now"): its status
/// history starts at `created`, ends at the resolution when there is one, and
/// every change between happens at the first reply (or at creation).
async fn pin_history(suite: &TestApp, name: &str, created: DateTime<Utc>, replied: Option<Duration>, resolved: Option<Duration>) {
    let id = ticket_id(name);
    let mut tx = tenant_tx(suite).await;
    sqlx::query("UPDATE tickets SET create_time = $2, first_response_time = $3, resolve_time = $4 WHERE id = $1")
        .bind(id)
        .bind(created)
        .bind(replied.map(|d| created + d))
        .bind(resolved.map(|d| created + d))
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE surveys SET send_time = $2 WHERE ticket_id = $1")
        .bind(id)
        .bind(resolved.map(|d| created + d))
        .execute(&mut *tx)
        .await
        .unwrap();
    let starts = |n: i64, last: bool| match (n, last, resolved) {
        (1, ..) => created,
        (_, true, Some(resolved)) => created + resolved,
        _ => created + replied.unwrap_or_default(),
    };
    let stays: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ticket_status_history WHERE ticket_id = $1").bind(id).fetch_one(&mut *tx).await.unwrap();
    let times: Vec<DateTime<Utc>> = (1..=stays).map(|n| starts(n, n == stays)).collect();
    pin_stays(&mut tx, id, &times).await;
    tx.commit().await.unwrap();
}

/// Pins a ticket's stays in its statuses, in order, to start at `times` (each
/// ends when the next starts), with the resolution each one knew of.
async fn pin_stays(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, id: Uuid, times: &[DateTime<Utc>]) {
    let pinned = sqlx::query(
        "UPDATE ticket_status_history h SET since = ($2::timestamptz[])[r.n], until = ($2::timestamptz[])[r.n + 1]
         FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM ticket_status_history WHERE ticket_id = $1) AS r
         WHERE h.ticket_id = $1 AND h.seq = r.seq",
    )
    .bind(id)
    .bind(times)
    .execute(&mut **tx)
    .await
    .unwrap();
    assert_eq!(pinned.rows_affected() as usize, times.len(), "one stay per status change");
    sqlx::query(
        "UPDATE ticket_status_history h
         SET resolve_time = (SELECT max(since) FROM ticket_status_history r WHERE r.ticket_id = $1 AND r.status = 'RESOLVED' AND r.seq <= h.seq)
         WHERE h.ticket_id = $1",
    )
    .bind(id)
    .execute(&mut **tx)
    .await
    .unwrap();
}

/// Moves a ticket through `path` by the API, then pins its status changes
/// (creation first) to `times` and its resolution to the last RESOLVED one.
async fn lived(suite: &TestApp, customer: &str, path: &[pb::Status], times: &[DateTime<Utc>]) -> pb::Ticket {
    assert_eq!(path.len() + 1, times.len(), "a time for the creation and each move");
    let t = ticket(suite, customer, "billing", pb::Channel::Email).await;
    for status in path {
        suite.transition(&t.name, *status).await.unwrap();
    }
    let mut tx = tenant_tx(suite).await;
    pin_stays(&mut tx, ticket_id(&t.name), times).await;
    sqlx::query(
        "UPDATE tickets SET create_time = $2,
                resolve_time = (SELECT max(since) FROM ticket_status_history WHERE ticket_id = $1 AND status = 'RESOLVED')
         WHERE id = $1",
    )
    .bind(ticket_id(&t.name))
    .bind(times[0])
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    t
}

async fn ticket(suite: &TestApp, customer: &str, category: &str, channel: pb::Channel) -> pb::Ticket {
    let ticket = pb::Ticket {
        customer: customer.into(),
        subject: "Help".into(),
        category: category.into(),
        channel: channel as i32,
        ..Default::default()
    };
    suite
        .tickets
        .clone()
        .create_ticket(suite.admin(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap()
}

fn january(group_by: pb::MetricsGrouping) -> pb::GetServiceMetricsRequest {
    pb::GetServiceMetricsRequest {
        start_time: Some(to_timestamp(day(1))),
        end_time: Some(to_timestamp(day(31))),
        group_by: group_by as i32,
    }
}

fn hours(d: &Option<prost_types::Duration>) -> f64 {
    let d = d.as_ref().expect("a duration");
    d.seconds as f64 / 3600.0 + d.nanos as f64 / 3.6e12
}

#[tokio::test]
async fn metrics_count_volumes_times_satisfaction_and_reopens_per_group() {
    // Arrange: January's tickets with known histories.
    let suite = spawn_app().await;
    let customer = suite.customer("Ada").await;
    let a = ticket(&suite, &customer, "billing", pb::Channel::Email).await;
    let b = ticket(&suite, &customer, "billing", pb::Channel::Phone).await;
    let c = ticket(&suite, &customer, "shipping", pb::Channel::Email).await;
    let december = ticket(&suite, &customer, "", pb::Channel::Web).await;
    for t in [&a, &b, &december] {
        suite.comment(&t.name, "On it", true).await;
        suite.transition(&t.name, pb::Status::Resolved).await.unwrap();
    }
    // b was reopened once and resolved again.
    suite.transition(&b.name, pb::Status::Open).await.unwrap();
    suite.transition(&b.name, pb::Status::Resolved).await.unwrap();
    answer(&suite, &survey(&suite, &a.name).await.answer_token, 5, Some(10)).await.unwrap();
    answer(&suite, &survey(&suite, &b.name).await.answer_token, 3, Some(5)).await.unwrap();
    // Left out: a merged duplicate and a deleted ticket.
    let duplicate = ticket(&suite, &customer, "shipping", pb::Channel::Chat).await;
    let merge = pb::MergeTicketsRequest { name: c.name.clone(), source_tickets: vec![duplicate.name.clone()], etag: String::new() };
    suite.tickets.clone().merge_tickets(suite.admin(merge)).await.unwrap();
    let deleted = ticket(&suite, &customer, "billing", pb::Channel::Email).await;
    suite
        .tickets
        .clone()
        .delete_ticket(suite.admin(pb::DeleteTicketRequest { name: deleted.name.clone(), etag: String::new() }))
        .await
        .unwrap();

    pin_history(&suite, &a.name, day(10), Some(Duration::hours(1)), Some(Duration::hours(10))).await;
    pin_history(&suite, &b.name, day(11), Some(Duration::hours(3)), Some(Duration::hours(20))).await;
    pin_history(&suite, &c.name, day(12), None, None).await;
    pin_history(&suite, &december.name, day(1) - Duration::days(1), Some(Duration::hours(2)), Some(Duration::hours(48))).await;
    for t in [&duplicate, &deleted] {
        pin_history(&suite, &t.name, day(13), Some(Duration::hours(1)), None).await;
    }

    // Act
    let response = client(&suite)
        .get_service_metrics(suite.as_roles(january(pb::MetricsGrouping::Category), &["analyst"]))
        .await
        .unwrap()
        .into_inner();

    // Assert
    let all = response.overall.unwrap();
    assert_eq!((all.opened, all.resolved, all.backlog), (3, 3, 1), "a, b, c opened; a, b, december resolved; c waits");
    assert_eq!((hours(&all.first_response_median), hours(&all.first_response_p90)), (2.0, 2.8), "over a (1 h) and b (3 h)");
    let (median, p90) = (hours(&all.resolution_median), hours(&all.resolution_p90));
    assert_eq!(median, 20.0, "10 h, 20 h and 48 h");
    assert!((p90 - 42.4).abs() < 1e-6, "{p90}");
    assert_eq!((all.sla_tracked, all.sla_compliance_percent), (0, 0.0));
    assert_eq!((all.surveys_sent, all.nps_responses, all.csat_average, all.nps), (3, 2, 4.0, 0.0));
    assert!((all.survey_response_rate_percent - 200.0 / 3.0).abs() < 1e-9);
    assert!((all.reopen_rate_percent - 100.0 / 3.0).abs() < 1e-9, "b of three resolved");

    let groups: Vec<(&str, i64, i64, i64)> = response.groups.iter().map(|g| (g.group.as_str(), g.opened, g.resolved, g.backlog)).collect();
    assert_eq!(groups, [("", 0, 1, 0), ("billing", 2, 2, 0), ("shipping", 1, 0, 1)]);
    let billing = &response.groups[1];
    assert_eq!((billing.csat_average, billing.surveys_sent, billing.reopen_rate_percent), (4.0, 2, 50.0));

    // Without a grouping only the overall figures come back; by channel the enum's short names.
    let plain = client(&suite).get_service_metrics(suite.admin(january(pb::MetricsGrouping::Unspecified))).await.unwrap().into_inner();
    assert!(plain.groups.is_empty());
    assert_eq!(plain.overall.unwrap(), all);
    let by_channel = client(&suite).get_service_metrics(suite.admin(january(pb::MetricsGrouping::Channel))).await.unwrap().into_inner();
    let channels: Vec<&str> = by_channel.groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(channels, ["EMAIL", "PHONE", "WEB"]);
}

fn period(from: DateTime<Utc>, to: DateTime<Utc>) -> pb::GetServiceMetricsRequest {
    pb::GetServiceMetricsRequest { start_time: Some(to_timestamp(from)), end_time: Some(to_timestamp(to)), group_by: 0 }
}

fn time_in(metrics: &pb::ServiceMetrics) -> Vec<(pb::Status, i64, f64, f64)> {
    let status = |s: &pb::StatusTime| pb::Status::try_from(s.status).unwrap();
    metrics.time_in_status.iter().map(|s| (status(s), s.tickets, hours(&s.total), hours(&s.average))).collect()
}

#[tokio::test]
async fn backlog_resolutions_reopens_and_time_in_status_are_as_they_were_in_the_period() {
    // Arrange: x was resolved in January and reopened in February; y, from
    // December, waited on the customer, was resolved, reopened in January and
    // resolved again in February. Today both are in other states than at
    // January's end.
    use pb::Status::{Open, Pending, Resolved};
    let suite = spawn_app().await;
    let customer = suite.customer("Ada").await;
    let at = |d: u32, h: u32| day(d) + Duration::hours(h.into());
    let february = |d: u32| day(31) + Duration::days(d.into());
    let x = lived(&suite, &customer, &[Open, Resolved, Open], &[at(10, 0), at(10, 2), at(20, 0), february(5)]).await;
    let y = lived(
        &suite,
        &customer,
        &[Pending, Open, Resolved, Open, Resolved],
        &[day(1) - Duration::days(12), at(2, 0), at(4, 0), at(6, 0), at(7, 0), february(3)],
    )
    .await;
    assert_eq!(suite.get(&x.name).await.status, Open as i32, "x is open again today");
    assert_eq!(suite.get(&y.name).await.status, Resolved as i32, "y is resolved today");

    // Act
    let mut reports = client(&suite);
    let jan = reports.get_service_metrics(suite.admin(period(day(1), day(31)))).await.unwrap().into_inner().overall.unwrap();
    let feb = reports.get_service_metrics(suite.admin(period(day(31), february(28)))).await.unwrap().into_inner().overall.unwrap();

    // Assert: January as it ended — x resolved (and not yet reopened), y open again.
    assert_eq!((jan.opened, jan.resolved, jan.backlog), (1, 1, 1));
    assert_eq!((jan.reopens, jan.reopen_rate_percent), (1, 0.0), "y's reopen; x was not reopened by January's end");
    assert_eq!(hours(&jan.resolution_median), 238.0 + 2.0, "x: created the 10th, resolved the 20th");
    assert_eq!(
        time_in(&jan),
        [
            (pb::Status::New, 2, 2.0 + 24.0, 13.0),
            (Open, 2, 238.0 + 48.0 + 24.0 * 24.0, (238.0 + 48.0 + 576.0) / 2.0),
            (Pending, 1, 48.0, 48.0),
            (Resolved, 2, 11.0 * 24.0 + 24.0, (264.0 + 24.0) / 2.0),
        ],
        "x: NEW 2 h, OPEN the 10th 02:00 to the 20th, RESOLVED to the 31st; y: NEW the 1st, PENDING the 2nd-4th, OPEN the 4th-6th and from the 7th, RESOLVED the 6th"
    );
    // February: y resolved, x reopened and still open at the end.
    assert_eq!((feb.opened, feb.resolved, feb.backlog, feb.reopens), (0, 1, 1, 1));
    assert!((feb.reopen_rate_percent - 100.0).abs() < 1e-9, "y had been reopened");

    // A period not over yet counts time in status up to now, not its end.
    let until_now = reports
        .get_service_metrics(suite.admin(period(february(28), Utc::now() + Duration::days(30))))
        .await
        .unwrap()
        .into_inner()
        .overall
        .unwrap();
    let open = time_in(&until_now).into_iter().find(|(s, ..)| *s == Open).expect("x is open");
    let expected = (Utc::now() - february(28)).num_seconds() as f64 / 3600.0;
    assert!((open.2 - expected).abs() < 0.1, "{} h open, {expected} h since the period's start", open.2);
    assert_eq!(until_now.backlog, 1);
}

#[tokio::test]
async fn bad_periods_groupings_and_callers_are_refused() {
    let suite = spawn_app().await;
    let mut reports = client(&suite);
    let backwards =
        pb::GetServiceMetricsRequest { start_time: Some(to_timestamp(day(31))), end_time: Some(to_timestamp(day(1))), group_by: 0 };
    assert_error(reports.get_service_metrics(suite.admin(backwards)).await, Code::InvalidArgument, "INVALID_PERIOD");
    let missing = pb::GetServiceMetricsRequest { start_time: None, ..january(pb::MetricsGrouping::Team) };
    assert_error(reports.get_service_metrics(suite.admin(missing)).await, Code::InvalidArgument, "INVALID_PERIOD");
    let decade =
        pb::GetServiceMetricsRequest { end_time: Some(to_timestamp(day(1) + Duration::days(3650))), ..january(pb::MetricsGrouping::Team) };
    assert_error(reports.get_service_metrics(suite.admin(decade)).await, Code::InvalidArgument, "PERIOD_TOO_LONG");
    let unknown = pb::GetServiceMetricsRequest { group_by: 99, ..january(pb::MetricsGrouping::Team) };
    assert_error(reports.get_service_metrics(suite.admin(unknown)).await, Code::InvalidArgument, "INVALID_GROUPING");
    let marketer = reports.get_service_metrics(suite.as_roles(january(pb::MetricsGrouping::Team), &["marketer"])).await;
    assert_error(marketer, Code::PermissionDenied, "PERMISSION_DENIED");
    // An empty tenant has zeros, not errors.
    let empty = reports.get_service_metrics(suite.admin(january(pb::MetricsGrouping::Team))).await.unwrap().into_inner();
    let overall = empty.overall.unwrap();
    assert_eq!((overall.opened, overall.backlog, overall.first_response_median), (0, 0, None));
    assert!(empty.groups.is_empty());
}
