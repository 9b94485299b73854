//! ReportService.GetServiceMetrics: figures checked against tickets whose
//! history is pinned to known instants.

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

/// Rewrites a ticket's history (the API only ever records "now") with the
/// service's own login role, inside the tenant like the service does.
async fn pin_history(suite: &TestApp, name: &str, created: DateTime<Utc>, replied: Option<Duration>, resolved: Option<Duration>) {
    let id = Uuid::parse_str(name.trim_start_matches("tickets/")).unwrap();
    let pool = sqlx::PgPool::connect(suite.app_database_url()).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.tenant_id', $1, true)").bind(suite.tenant.to_string()).execute(&mut *tx).await.unwrap();
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
    tx.commit().await.unwrap();
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
