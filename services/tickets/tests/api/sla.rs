//! Business calendars and SLA policies as resources.

use crm_proto::{
    crm::tickets::v1::{self as pb, sla_policy_service_client::SlaPolicyServiceClient},
    google::r#type::{Date, DayOfWeek, TimeOfDay},
};
use tonic::Code;

use crate::helpers::{TestApp, assert_error, spawn_app};

pub fn client(suite: &TestApp) -> SlaPolicyServiceClient<tonic::transport::Channel> {
    SlaPolicyServiceClient::new(suite.channel.clone())
}

fn at(hours: i32, minutes: i32) -> Option<TimeOfDay> {
    Some(TimeOfDay { hours, minutes, seconds: 0, nanos: 0 })
}

/// Weekdays 09:00-12:00 and 13:00-18:00 in `tz`, closed on `holidays`.
pub fn office_calendar(tz: &str, holidays: Vec<Date>) -> pb::BusinessCalendar {
    let days = [DayOfWeek::Monday, DayOfWeek::Tuesday, DayOfWeek::Wednesday, DayOfWeek::Thursday, DayOfWeek::Friday];
    let opening_hours = days
        .iter()
        .flat_map(|d| [(9, 12), (13, 18)].map(|(s, e)| pb::OpeningHours { day: *d as i32, start_time: at(s, 0), end_time: at(e, 0) }))
        .collect();
    pb::BusinessCalendar { display_name: "Office".into(), time_zone: tz.into(), opening_hours, holidays, ..Default::default() }
}

pub async fn create_calendar(suite: &TestApp, calendar: pb::BusinessCalendar) -> String {
    client(suite)
        .create_business_calendar(suite.admin(pb::CreateBusinessCalendarRequest { request_id: String::new(), calendar: Some(calendar) }))
        .await
        .unwrap()
        .into_inner()
        .calendar
        .unwrap()
        .name
}

pub fn hours(h: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds: h * 3600, nanos: 0 })
}

#[tokio::test]
async fn calendars_are_validated_and_round_trip() {
    let suite = spawn_app().await;
    let mut sla = client(&suite);
    let created = sla
        .create_business_calendar(suite.admin(pb::CreateBusinessCalendarRequest {
            request_id: String::new(),
            calendar: Some(office_calendar("Asia/Shanghai", vec![Date { year: 2026, month: 10, day: 1 }])),
        }))
        .await
        .unwrap()
        .into_inner()
        .calendar
        .unwrap();
    assert_eq!(created.opening_hours.len(), 10);
    assert_eq!(created.holidays, [Date { year: 2026, month: 10, day: 1 }]);
    let fetched = sla
        .get_business_calendar(suite.as_roles(pb::GetBusinessCalendarRequest { name: created.name.clone() }, &["readonly"]))
        .await
        .unwrap()
        .into_inner()
        .calendar
        .unwrap();
    assert_eq!(fetched, created);

    let mut overlapping = office_calendar("Asia/Shanghai", vec![]);
    overlapping.opening_hours.push(pb::OpeningHours { day: DayOfWeek::Monday as i32, start_time: at(11, 0), end_time: at(14, 0) });
    let result = sla
        .create_business_calendar(suite.admin(pb::CreateBusinessCalendarRequest { request_id: String::new(), calendar: Some(overlapping) }))
        .await;
    assert_error(result, Code::InvalidArgument, "OVERLAPPING_HOURS");
    let bad_zone = sla
        .create_business_calendar(
            suite.admin(pb::CreateBusinessCalendarRequest {
                request_id: String::new(),
                calendar: Some(office_calendar("Mars/Base", vec![])),
            }),
        )
        .await;
    assert_error(bad_zone, Code::InvalidArgument, "INVALID_TIME_ZONE");
    let mut closed = office_calendar("UTC", vec![]);
    closed.opening_hours.clear();
    assert_error(
        sla.create_business_calendar(suite.admin(pb::CreateBusinessCalendarRequest { request_id: String::new(), calendar: Some(closed) }))
            .await,
        Code::InvalidArgument,
        "NO_BUSINESS_HOURS",
    );
    let by_agent = sla
        .create_business_calendar(suite.as_roles(
            pb::CreateBusinessCalendarRequest { request_id: String::new(), calendar: Some(office_calendar("UTC", vec![])) },
            &["agent"],
        ))
        .await;
    assert_error(by_agent, Code::PermissionDenied, "PERMISSION_DENIED");
}

#[tokio::test]
async fn one_policy_per_priority_and_category() {
    let suite = spawn_app().await;
    let calendar = create_calendar(&suite, office_calendar("Asia/Shanghai", vec![])).await;
    let policy = pb::SlaPolicy {
        display_name: "High".into(),
        priority: pb::Priority::High as i32,
        calendar: calendar.clone(),
        first_response_target: hours(1),
        resolution_target: hours(8),
        ..Default::default()
    };
    let mut sla = client(&suite);
    let created = sla
        .create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { request_id: String::new(), policy: Some(policy.clone()) }))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(created.warning_ratio, 0.8, "0 means the default");
    assert_error(
        sla.create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { request_id: String::new(), policy: Some(policy.clone()) })).await,
        Code::AlreadyExists,
        "SLA_POLICY_EXISTS",
    );
    let vip = pb::SlaPolicy { customer_category: "VIP".into(), ..policy.clone() };
    assert!(sla.create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { request_id: String::new(), policy: Some(vip) })).await.is_ok());
    let ghost = pb::SlaPolicy {
        priority: pb::Priority::Low as i32,
        calendar: format!("businessCalendars/{}", uuid::Uuid::now_v7()),
        ..policy.clone()
    };
    assert_error(
        sla.create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { request_id: String::new(), policy: Some(ghost) })).await,
        Code::InvalidArgument,
        "UNKNOWN_CALENDAR",
    );
    let invalid = pb::SlaPolicy { priority: 0, first_response_target: None, warning_ratio: 1.5, ..policy };
    let status = assert_error(
        sla.create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { request_id: String::new(), policy: Some(invalid) })).await,
        Code::InvalidArgument,
        "INVALID_FIELDS",
    );
    use tonic_types::StatusExt;
    let fields: Vec<String> = status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["policy.priority", "policy.first_response_target", "policy.warning_ratio"]);
    let listed = sla
        .list_sla_policies(suite.admin(pb::ListSlaPoliciesRequest { page_size: 0, page_token: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .policies;
    assert_eq!(listed.len(), 2);
    sla.delete_sla_policy(suite.admin(pb::DeleteSlaPolicyRequest { etag: String::new(), name: created.name.clone() })).await.unwrap();
    assert_error(
        sla.delete_sla_policy(suite.admin(pb::DeleteSlaPolicyRequest { etag: String::new(), name: created.name })).await,
        Code::NotFound,
        "NOT_FOUND",
    );
}

pub async fn policy(
    suite: &TestApp,
    priority: pb::Priority,
    category: &str,
    calendar: &str,
    first_response: prost_types::Duration,
    resolution: prost_types::Duration,
    warning_ratio: f64,
) -> String {
    let policy = pb::SlaPolicy {
        display_name: format!("{priority:?} {category}"),
        priority: priority as i32,
        customer_category: category.into(),
        calendar: calendar.into(),
        first_response_target: Some(first_response),
        resolution_target: Some(resolution),
        warning_ratio,
        ..Default::default()
    };
    client(suite)
        .create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { request_id: String::new(), policy: Some(policy) }))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap()
        .name
}

pub fn secs(s: i64) -> prost_types::Duration {
    prost_types::Duration { seconds: s, nanos: 0 }
}

pub fn instant(t: &Option<prost_types::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    crm_kit::time::from_timestamp(t.as_ref().expect("a timestamp")).unwrap()
}

#[tokio::test]
async fn due_times_follow_the_policy_calendar_exactly() {
    use crm_tickets::domain::calendar::{BusinessCalendar, Hours};
    let suite = spawn_app().await;
    let calendar = create_calendar(&suite, office_calendar("Asia/Shanghai", vec![])).await;
    let name = policy(&suite, pb::Priority::Normal, "", &calendar, secs(3600), secs(16 * 3600), 0.0).await;
    let ticket = suite.open(&suite.customer("Ada").await, "Due?").await;
    assert_eq!(ticket.sla_policy, name);

    // The same calendar, computed independently of the service.
    let day = vec![Hours::from_hours(9, 12), Hours::from_hours(13, 18)];
    let office =
        BusinessCalendar::new(chrono_tz::Asia::Shanghai, [day.clone(), day.clone(), day.clone(), day.clone(), day, vec![], vec![]], [])
            .unwrap();
    let created = instant(&ticket.create_time);
    assert_eq!(instant(&ticket.first_response_due), office.add(created, chrono::Duration::hours(1)).unwrap());
    assert_eq!(instant(&ticket.resolution_due), office.add(created, chrono::Duration::hours(16)).unwrap());
    assert_eq!(ticket.resolution_sla, pb::SlaState::OnTrack as i32);
}

#[tokio::test]
async fn clocks_pause_while_pending_and_stop_at_the_first_reply_and_resolution() {
    let suite = spawn_app().await;
    policy(&suite, pb::Priority::Normal, "", "", secs(3600), secs(7200), 0.0).await;
    let ticket = suite.open(&suite.customer("Ada").await, "Pause me").await;
    let (fr_due, res_due) = (instant(&ticket.first_response_due), instant(&ticket.resolution_due));

    let pending = suite.transition(&ticket.name, pb::Status::Pending).await.unwrap();
    assert!(pending.first_response_due.is_none() && pending.resolution_due.is_none(), "no due time while waiting on the customer");
    assert_eq!(pending.resolution_sla, pb::SlaState::OnTrack as i32);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let open = suite.transition(&ticket.name, pb::Status::Open).await.unwrap();
    let (fr_after, res_after) = (instant(&open.first_response_due), instant(&open.resolution_due));
    assert!(res_after - res_due >= chrono::Duration::milliseconds(1000), "the pause moved the due time: {res_due} → {res_after}");
    assert_eq!(res_after - res_due, fr_after - fr_due, "both clocks paused for the same time");

    let reply = pb::AddCommentRequest {
        request_id: String::new(),
        parent: ticket.name.clone(),
        comment: Some(pb::Comment { body: "On it".into(), public: true, ..Default::default() }),
    };
    suite.tickets.clone().add_comment(suite.admin(reply)).await.unwrap();
    let replied = suite.get(&ticket.name).await;
    assert!(replied.first_response_due.is_none(), "first response met");
    assert_eq!(replied.first_response_sla, pb::SlaState::OnTrack as i32);
    assert!(replied.resolution_due.is_some());

    let resolved = suite.transition(&ticket.name, pb::Status::Resolved).await.unwrap();
    assert!(resolved.resolution_due.is_none());
    assert_eq!(resolved.resolution_sla, pb::SlaState::OnTrack as i32);
    let reopened = suite.transition(&ticket.name, pb::Status::Open).await.unwrap();
    assert!(reopened.resolution_due.is_some() && reopened.first_response_due.is_none(), "reopening resumes resolution only");
}

#[tokio::test]
async fn states_warn_and_breach_as_business_time_passes() {
    let suite = spawn_app().await;
    policy(&suite, pb::Priority::Normal, "", "", secs(1), secs(10), 0.1).await;
    let ticket = suite.open(&suite.customer("Ada").await, "Tick tock").await;
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let later = suite.get(&ticket.name).await;
    assert_eq!(later.first_response_sla, pb::SlaState::Breached as i32);
    assert_eq!(later.resolution_sla, pb::SlaState::Warning as i32, "1.3 s of 10 s is past the 10 % warning");
    // A reply after the target keeps the breach on record.
    let reply = pb::AddCommentRequest {
        request_id: String::new(),
        parent: ticket.name.clone(),
        comment: Some(pb::Comment { body: "Sorry".into(), public: true, ..Default::default() }),
    };
    suite.tickets.clone().add_comment(suite.admin(reply)).await.unwrap();
    assert_eq!(suite.get(&ticket.name).await.first_response_sla, pb::SlaState::Breached as i32);
}

#[tokio::test]
async fn a_category_specific_policy_wins_and_no_policy_means_no_sla() {
    use crm_proto::crm::profiles::v1::CustomerCategory;
    let suite = spawn_app().await;
    policy(&suite, pb::Priority::High, "", "", secs(3600), secs(36_000), 0.0).await;
    let vip_policy = policy(&suite, pb::Priority::High, "VIP", "", secs(600), secs(3600), 0.0).await;
    // The built-in rule raises a VIP customer's ticket to HIGH, so the VIP HIGH policy applies.
    let vip = suite.customer_in("Big Spender", CustomerCategory::Vip).await;
    assert_eq!(suite.open(&vip, "Help").await.sla_policy, vip_policy);
    let plain = suite.open(&suite.customer("Ada").await, "Help").await;
    assert_eq!((plain.sla_policy.as_str(), plain.resolution_sla), ("", pb::SlaState::Unspecified as i32), "no NORMAL policy exists");
    assert!(plain.resolution_due.is_none());
}

#[tokio::test]
async fn the_job_records_each_warning_and_breach_once_and_escalates_to_the_team_lead() {
    let suite = spawn_app().await;
    let _second_replica = suite.replica().await;
    let team = pb::Team {
        display_name: "Support".into(),
        lead: "lena".into(),
        assignment_strategy: pb::AssignmentStrategy::Manual as i32,
        ..Default::default()
    };
    let team = crm_proto::crm::tickets::v1::team_service_client::TeamServiceClient::new(suite.channel.clone())
        .create_team(suite.admin(pb::CreateTeamRequest { request_id: String::new(), team: Some(team) }))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap()
        .name;
    policy(&suite, pb::Priority::Normal, "", "", secs(1), secs(2), 0.5).await;
    let ticket = pb::Ticket { customer: suite.customer("Ada").await, subject: "Slow".into(), team: team.clone(), ..Default::default() };
    let ticket = suite
        .tickets
        .clone()
        .create_ticket(suite.admin(pb::CreateTicketRequest { ticket: Some(ticket), request_id: String::new() }))
        .await
        .unwrap()
        .into_inner()
        .ticket
        .unwrap();
    let assign = pb::AssignTicketRequest { name: ticket.name.clone(), assignee: "alice".into(), team: String::new(), etag: String::new() };
    suite.tickets.clone().assign_ticket(suite.admin(assign)).await.unwrap();

    let timeline = || async {
        let request = suite.admin(pb::ListTicketEventsRequest { page_size: 0, page_token: String::new(), parent: ticket.name.clone() });
        suite.tickets.clone().list_ticket_events(request).await.unwrap().into_inner().events
    };
    let mut events = timeline().await;
    for _ in 0..100 {
        if events.iter().filter(|e| e.kind == "SLA_BREACHED").count() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        events = timeline().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await; // give a double recording the chance to show
    let events = timeline().await;
    let steps: Vec<(String, String)> =
        events.iter().filter(|e| e.kind.starts_with("SLA_")).map(|e| (e.kind.clone(), e.detail.clone())).collect();
    let count = |kind: &str, target: &str| steps.iter().filter(|(k, d)| k == kind && d.starts_with(target)).count();
    for target in ["first_response", "resolution"] {
        assert_eq!((count("SLA_WARNING", target), count("SLA_BREACHED", target)), (1, 1), "{target}: {steps:?}");
    }
    let first_breach = steps.iter().find(|(k, d)| k == "SLA_BREACHED" && d.starts_with("first_response")).unwrap();
    assert_eq!(first_breach.1, "first_response target missed; priority NORMAL → HIGH; reassigned alice → lena (team lead)");

    let escalated = suite.get(&ticket.name).await;
    assert_eq!(escalated.priority, pb::Priority::Urgent as i32, "two breaches, two levels");
    assert_eq!(escalated.assignee, "lena");
    assert_eq!((escalated.first_response_sla, escalated.resolution_sla), (pb::SlaState::Breached as i32, pb::SlaState::Breached as i32));
}

#[tokio::test]
async fn the_cross_tenant_timer_scan_is_read_only_and_opt_in() {
    use sqlx::Connection;
    let suite = spawn_app().await;
    policy(&suite, pb::Priority::Normal, "", "", secs(3600), secs(7200), 0.0).await;
    suite.open(&suite.customer("Ada").await, "Timer").await;
    let mut conn = sqlx::PgConnection::connect(suite.app_database_url()).await.unwrap();
    // Without the scan scope and without a tenant, the service role sees no timers.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sla_timers").fetch_one(&mut conn).await.unwrap();
    assert_eq!(n, 0);
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("SELECT set_config('crm.scope', 'sla-scan', true)").execute(&mut *tx).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM sla_timers").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(n, 1, "the scan sees due timers of every tenant");
    let changed = sqlx::query("UPDATE sla_timers SET next_at = now()").execute(&mut *tx).await.unwrap();
    assert_eq!(changed.rows_affected(), 0, "but cannot change them");
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets").fetch_one(&mut *tx).await.unwrap();
    assert_eq!(tickets, 0, "and the scope opens no ticket content");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn changing_a_calendar_reschedules_running_clocks_and_a_used_calendar_cannot_be_deleted() {
    let suite = spawn_app().await;
    let mut around_the_clock = office_calendar("UTC", vec![]);
    around_the_clock.opening_hours = (1..=7).map(|day| pb::OpeningHours { day, start_time: at(0, 0), end_time: at(24, 0) }).collect();
    let calendar = create_calendar(&suite, around_the_clock).await;
    policy(&suite, pb::Priority::Normal, "", &calendar, secs(3600), hours(10).unwrap(), 0.0).await;
    let ticket = suite.open(&suite.customer("Ada").await, "Help").await;
    let due_before = instant(&ticket.resolution_due);

    // Office hours only (8 a day, weekdays): 10 business hours now end at least a night later.
    let office = pb::BusinessCalendar { name: calendar.clone(), ..office_calendar("UTC", vec![]) };
    let mask = Some(prost_types::FieldMask { paths: vec!["opening_hours".into()] });
    let updated = client(&suite)
        .update_business_calendar(
            suite.admin(pb::UpdateBusinessCalendarRequest { calendar: Some(office.clone()), update_mask: mask.clone() }),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.rescheduled_tickets, 1);
    let calendar_now = updated.calendar.unwrap();
    assert_eq!((calendar_now.display_name.as_str(), calendar_now.opening_hours.len()), ("Office", 10), "only the masked field changed");
    let due_after = instant(&suite.get(&ticket.name).await.resolution_due);
    assert!(due_after - due_before > chrono::Duration::hours(12), "{due_before} → {due_after}");

    let mut sla = client(&suite);
    let bad_zone = pb::BusinessCalendar { time_zone: "Nowhere/Land".into(), ..office.clone() };
    let tz_mask = Some(prost_types::FieldMask { paths: vec!["time_zone".into()] });
    let refused = sla
        .update_business_calendar(suite.admin(pb::UpdateBusinessCalendarRequest { calendar: Some(bad_zone), update_mask: tz_mask }))
        .await;
    assert_error(refused, Code::InvalidArgument, "INVALID_TIME_ZONE");
    let by_agent = sla
        .update_business_calendar(
            suite.as_roles(pb::UpdateBusinessCalendarRequest { calendar: Some(office), update_mask: mask }, &["agent"]),
        )
        .await;
    assert_error(by_agent, Code::PermissionDenied, "PERMISSION_DENIED");

    let in_use =
        sla.delete_business_calendar(suite.admin(pb::DeleteBusinessCalendarRequest { etag: String::new(), name: calendar.clone() })).await;
    assert_error(in_use, Code::FailedPrecondition, "CALENDAR_IN_USE");
    let unused = create_calendar(&suite, office_calendar("Asia/Shanghai", vec![])).await;
    sla.delete_business_calendar(suite.admin(pb::DeleteBusinessCalendarRequest { etag: String::new(), name: unused.clone() }))
        .await
        .unwrap();
    let gone = sla.get_business_calendar(suite.admin(pb::GetBusinessCalendarRequest { name: unused })).await;
    assert_error(gone, Code::NotFound, "NOT_FOUND");
}
