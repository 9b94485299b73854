//! Business calendars and SLA policies as resources.

use crm_proto::{
    crm::tickets::v1::{self as pb, sla_policy_service_client::SlaPolicyServiceClient},
    google::r#type::{Date, DayOfWeek, TimeOfDay},
};
use tonic::Code;

use crate::helpers::{Suite, assert_error, spawn_suite};

pub fn client(suite: &Suite) -> SlaPolicyServiceClient<tonic::transport::Channel> {
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

pub async fn create_calendar(suite: &Suite, calendar: pb::BusinessCalendar) -> String {
    client(suite)
        .create_business_calendar(suite.admin(pb::CreateBusinessCalendarRequest { calendar: Some(calendar) }))
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
    let suite = spawn_suite().await;
    let mut sla = client(&suite);
    let created = sla
        .create_business_calendar(suite.admin(pb::CreateBusinessCalendarRequest {
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
    let result = sla.create_business_calendar(suite.admin(pb::CreateBusinessCalendarRequest { calendar: Some(overlapping) })).await;
    assert_error(result, Code::InvalidArgument, "OVERLAPPING_HOURS");
    let bad_zone = sla
        .create_business_calendar(suite.admin(pb::CreateBusinessCalendarRequest { calendar: Some(office_calendar("Mars/Base", vec![])) }))
        .await;
    assert_error(bad_zone, Code::InvalidArgument, "INVALID_TIME_ZONE");
    let mut closed = office_calendar("UTC", vec![]);
    closed.opening_hours.clear();
    assert_error(
        sla.create_business_calendar(suite.admin(pb::CreateBusinessCalendarRequest { calendar: Some(closed) })).await,
        Code::InvalidArgument,
        "NO_BUSINESS_HOURS",
    );
    let by_agent = sla
        .create_business_calendar(
            suite.as_roles(pb::CreateBusinessCalendarRequest { calendar: Some(office_calendar("UTC", vec![])) }, &["agent"]),
        )
        .await;
    assert_error(by_agent, Code::PermissionDenied, "PERMISSION_DENIED");
}

#[tokio::test]
async fn one_policy_per_priority_and_category() {
    let suite = spawn_suite().await;
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
        .create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { policy: Some(policy.clone()) }))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(created.warning_ratio, 0.8, "0 means the default");
    assert_error(
        sla.create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { policy: Some(policy.clone()) })).await,
        Code::AlreadyExists,
        "SLA_POLICY_EXISTS",
    );
    let vip = pb::SlaPolicy { customer_category: "VIP".into(), ..policy.clone() };
    assert!(sla.create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { policy: Some(vip) })).await.is_ok());
    let ghost = pb::SlaPolicy {
        priority: pb::Priority::Low as i32,
        calendar: format!("businessCalendars/{}", uuid::Uuid::now_v7()),
        ..policy.clone()
    };
    assert_error(
        sla.create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { policy: Some(ghost) })).await,
        Code::InvalidArgument,
        "UNKNOWN_CALENDAR",
    );
    let invalid = pb::SlaPolicy { priority: 0, first_response_target: None, warning_ratio: 1.5, ..policy };
    let status = assert_error(
        sla.create_sla_policy(suite.admin(pb::CreateSlaPolicyRequest { policy: Some(invalid) })).await,
        Code::InvalidArgument,
        "INVALID_FIELDS",
    );
    use tonic_types::StatusExt;
    let fields: Vec<String> = status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["policy.priority", "policy.first_response_target", "policy.warning_ratio"]);
    let listed = sla.list_sla_policies(suite.admin(pb::ListSlaPoliciesRequest {})).await.unwrap().into_inner().policies;
    assert_eq!(listed.len(), 2);
    sla.delete_sla_policy(suite.admin(pb::DeleteSlaPolicyRequest { name: created.name.clone() })).await.unwrap();
    assert_error(sla.delete_sla_policy(suite.admin(pb::DeleteSlaPolicyRequest { name: created.name })).await, Code::NotFound, "NOT_FOUND");
}
