//! `crm.tickets.v1.SlaPolicyService`: business calendars and SLA policies.

use std::time::Duration as StdDuration;

use chrono::{Datelike, NaiveDate, Utc};
use crm_kit::{
    Error, FieldViolation,
    auth::{Permission, caller},
    db::begin_tenant,
    protoenum, time,
};
use crm_proto::{
    crm::tickets::v1::{self as pb, sla_policy_service_server::SlaPolicyService},
    google::r#type::{Date, DayOfWeek, TimeOfDay},
};
use sqlx::types::Json;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    app::App,
    domain::calendar::CalendarError,
    resources::{CALENDAR, SLA_POLICY},
    store::{self, CalendarRow, PolicyRow, StoredHours},
};

const CUSTOMER_CATEGORIES: [&str; 4] = ["VIP", "REGULAR", "NEW", "POTENTIAL"];
/// Longest SLA target accepted.
const MAX_TARGET: StdDuration = StdDuration::from_secs(365 * 24 * 3600);

/// Handlers of SlaPolicyService.
#[derive(Clone)]
pub struct SlaApi {
    app: App,
}

impl SlaApi {
    /// Handlers over the use cases of `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

fn minute_of(t: Option<&TimeOfDay>) -> Option<u32> {
    let t = t?;
    let valid =
        (0..=24).contains(&t.hours) && (0..60).contains(&t.minutes) && t.seconds == 0 && t.nanos == 0 && (t.hours < 24 || t.minutes == 0);
    valid.then(|| (t.hours * 60 + t.minutes) as u32)
}

fn calendar_to_proto(row: &CalendarRow) -> pb::BusinessCalendar {
    let time_of = |minute: u32| TimeOfDay { hours: (minute / 60) as i32, minutes: (minute % 60) as i32, seconds: 0, nanos: 0 };
    pb::BusinessCalendar {
        name: CALENDAR.name(row.id),
        display_name: row.display_name.clone(),
        time_zone: row.time_zone.clone(),
        opening_hours: row
            .opening_hours
            .0
            .iter()
            .map(|h| pb::OpeningHours { day: h.day as i32, start_time: Some(time_of(h.start)), end_time: Some(time_of(h.end)) })
            .collect(),
        holidays: row.holidays.iter().map(|d| Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }).collect(),
        create_time: Some(time::to_timestamp(row.create_time)),
    }
}

fn validate_calendar(c: &pb::BusinessCalendar) -> Result<CalendarRow, Error> {
    let mut v = Vec::new();
    let display_name = c.display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 100 {
        v.push(FieldViolation::new("calendar.display_name", "INVALID_VALUE", "1-100 characters"));
    }
    if c.time_zone.parse::<chrono_tz::Tz>().is_err() {
        v.push(FieldViolation::new("calendar.time_zone", "INVALID_TIME_ZONE", "must be an IANA time zone such as Asia/Shanghai"));
    }
    let mut hours = Vec::new();
    for (i, h) in c.opening_hours.iter().enumerate() {
        let day = DayOfWeek::try_from(h.day).ok().filter(|d| *d != DayOfWeek::Unspecified);
        match (day, minute_of(h.start_time.as_ref()), minute_of(h.end_time.as_ref())) {
            (Some(day), Some(start), Some(end)) => hours.push(StoredHours { day: day as u32, start, end }),
            _ => v.push(FieldViolation::new(
                format!("calendar.opening_hours[{i}]"),
                "INVALID_HOURS",
                "needs a weekday and start/end times between 00:00 and 24:00",
            )),
        }
    }
    let holidays: Vec<NaiveDate> = c
        .holidays
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let date = NaiveDate::from_ymd_opt(d.year, d.month as u32, d.day as u32);
            if date.is_none() {
                v.push(FieldViolation::new(format!("calendar.holidays[{i}]"), "INVALID_DATE", "must be a full date"));
            }
            date
        })
        .collect();
    let row = CalendarRow {
        id: Uuid::now_v7(),
        display_name,
        time_zone: c.time_zone.clone(),
        opening_hours: Json(hours),
        holidays,
        create_time: Utc::now(),
    };
    if v.is_empty()
        && let Err(err) = row.calendar()
    {
        let reason = match err {
            CalendarError::InvalidHours { .. } => "INVALID_HOURS",
            CalendarError::Overlap { .. } => "OVERLAPPING_HOURS",
            CalendarError::NoBusinessHours => "NO_BUSINESS_HOURS",
        };
        v.push(FieldViolation::new("calendar.opening_hours", reason, err.to_string()));
    }
    if v.is_empty() { Ok(row) } else { Err(Error::InvalidArgument { violations: v }) }
}

/// Paths UpdateBusinessCalendar may change.
const CALENDAR_PATHS: &[&str] = &["display_name", "time_zone", "opening_hours", "holidays"];

mod calendar_mask {
    use super::pb;
    crm_kit::mask_fields!(pb::BusinessCalendar;
        "display_name" => display_name,
        "time_zone" => time_zone,
        "opening_hours" => opening_hours,
        "holidays" => holidays,
    );
}

fn calendar_not_found(name: &str) -> Error {
    Error::NotFound { resource_type: "tickets.crm/BusinessCalendar", name: name.to_owned() }
}

fn policy_to_proto(row: &PolicyRow) -> pb::SlaPolicy {
    let duration = |ms: i64| prost_types::Duration { seconds: ms / 1000, nanos: ((ms % 1000) * 1_000_000) as i32 };
    pb::SlaPolicy {
        name: SLA_POLICY.name(row.id),
        display_name: row.display_name.clone(),
        priority: protoenum::number(&row.priority, "PRIORITY_", |s| pb::Priority::from_str_name(s).map(|e| e as i32)),
        customer_category: row.customer_category.clone(),
        calendar: row.calendar_id.map(|id| CALENDAR.name(id)).unwrap_or_default(),
        first_response_target: Some(duration(row.first_response_ms)),
        resolution_target: Some(duration(row.resolution_ms)),
        warning_ratio: row.warning_ratio,
        create_time: Some(time::to_timestamp(row.create_time)),
    }
}

fn target_ms(v: &mut Vec<FieldViolation>, field: &str, d: Option<&prost_types::Duration>) -> i64 {
    match d.and_then(|d| StdDuration::try_from(*d).ok()).filter(|d| !d.is_zero() && *d <= MAX_TARGET) {
        Some(d) => d.as_millis() as i64,
        None => {
            v.push(FieldViolation::new(field, "INVALID_TARGET", "must be a positive duration of at most 365 days"));
            0
        }
    }
}

fn parse_calendar_name(name: &str, field: &str) -> Result<Uuid, Error> {
    CALENDAR.parse_as(name, field, "INVALID_CALENDAR")
}

fn validate_policy(p: &pb::SlaPolicy) -> Result<PolicyRow, Error> {
    let mut v = Vec::new();
    let display_name = p.display_name.trim().to_owned();
    if display_name.is_empty() || display_name.chars().count() > 100 {
        v.push(FieldViolation::new("policy.display_name", "INVALID_VALUE", "1-100 characters"));
    }
    let priority = match protoenum::short_name(p.priority, |n| pb::Priority::try_from(n).ok().map(|e| e.as_str_name()), "PRIORITY_") {
        Ok(s) if !s.is_empty() => s,
        _ => {
            v.push(FieldViolation::new("policy.priority", "REQUIRED", "a priority is required"));
            String::new()
        }
    };
    if !p.customer_category.is_empty() && !CUSTOMER_CATEGORIES.contains(&p.customer_category.as_str()) {
        v.push(FieldViolation::new(
            "policy.customer_category",
            "INVALID_VALUE",
            format!("one of {} or empty", CUSTOMER_CATEGORIES.join(", ")),
        ));
    }
    let calendar_id = if p.calendar.is_empty() {
        None
    } else {
        parse_calendar_name(&p.calendar, "policy.calendar")
            .map_err(|e| {
                if let Error::InvalidArgument { violations } = e {
                    v.extend(violations)
                }
            })
            .ok()
    };
    let first_response_ms = target_ms(&mut v, "policy.first_response_target", p.first_response_target.as_ref());
    let resolution_ms = target_ms(&mut v, "policy.resolution_target", p.resolution_target.as_ref());
    let warning_ratio = if p.warning_ratio == 0.0 { 0.8 } else { p.warning_ratio };
    if !(0.0..=1.0).contains(&warning_ratio) {
        v.push(FieldViolation::new("policy.warning_ratio", "INVALID_VALUE", "between 0 and 1"));
    }
    if !v.is_empty() {
        return Err(Error::InvalidArgument { violations: v });
    }
    Ok(PolicyRow {
        id: Uuid::now_v7(),
        display_name,
        priority,
        customer_category: p.customer_category.clone(),
        calendar_id,
        first_response_ms,
        resolution_ms,
        warning_ratio,
        create_time: Utc::now(),
    })
}

#[tonic::async_trait]
impl SlaPolicyService for SlaApi {
    async fn create_business_calendar(
        &self,
        request: Request<pb::CreateBusinessCalendarRequest>,
    ) -> Result<Response<pb::CreateBusinessCalendarResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsConfigure)?;
        let calendar = request.into_inner().calendar.ok_or_else(|| Error::invalid("calendar", "REQUIRED", "calendar is required"))?;
        let row = validate_calendar(&calendar)?;
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        let stored = store::insert_calendar(&mut tx, principal.tenant, &row).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::CreateBusinessCalendarResponse { calendar: Some(calendar_to_proto(&stored)) }))
    }

    async fn get_business_calendar(
        &self,
        request: Request<pb::GetBusinessCalendarRequest>,
    ) -> Result<Response<pb::GetBusinessCalendarResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsRead)?;
        let id = parse_calendar_name(&request.get_ref().name, "name")?;
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        let row = store::find_calendar(&mut tx, principal.tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound { resource_type: "tickets.crm/BusinessCalendar", name: request.get_ref().name.clone() })?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::GetBusinessCalendarResponse { calendar: Some(calendar_to_proto(&row)) }))
    }

    async fn list_business_calendars(
        &self,
        request: Request<pb::ListBusinessCalendarsRequest>,
    ) -> Result<Response<pb::ListBusinessCalendarsResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsRead)?;
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        let rows = store::list_calendars(&mut tx, principal.tenant).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ListBusinessCalendarsResponse { calendars: rows.iter().map(calendar_to_proto).collect() }))
    }

    async fn update_business_calendar(
        &self,
        request: Request<pb::UpdateBusinessCalendarRequest>,
    ) -> Result<Response<pb::UpdateBusinessCalendarResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsConfigure)?;
        let pb::UpdateBusinessCalendarRequest { calendar, update_mask } = request.into_inner();
        let input = calendar.ok_or_else(|| Error::invalid("calendar", "REQUIRED", "calendar is required"))?;
        let id = parse_calendar_name(&input.name, "calendar.name")?;
        let paths = crm_kit::fieldmask::UpdateMask::parse(update_mask.as_ref(), CALENDAR_PATHS)?.resolve(CALENDAR_PATHS);
        let edit = |current: &CalendarRow| {
            let mut merged = calendar_to_proto(current);
            for path in &paths {
                calendar_mask::copy_field(&mut merged, &input, path);
            }
            Ok(CalendarRow { id, create_time: current.create_time, ..validate_calendar(&merged)? })
        };
        let (stored, rescheduled) = self.app.update_calendar(principal.tenant, id, edit, Utc::now()).await?;
        Ok(Response::new(pb::UpdateBusinessCalendarResponse {
            calendar: Some(calendar_to_proto(&stored)),
            rescheduled_tickets: rescheduled as i64,
        }))
    }

    async fn delete_business_calendar(
        &self,
        request: Request<pb::DeleteBusinessCalendarRequest>,
    ) -> Result<Response<pb::DeleteBusinessCalendarResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsConfigure)?;
        let name = &request.get_ref().name;
        let id = parse_calendar_name(name, "name")?;
        let tenant = principal.tenant;
        let mut tx = begin_tenant(self.app.pool(), tenant).await?;
        store::lock_calendar(&mut tx, tenant, id).await?.ok_or_else(|| calendar_not_found(name))?;
        let (policies, tickets) = store::calendar_users(&mut tx, tenant, id).await?;
        if policies + tickets > 0 {
            return Err(Error::FailedPrecondition {
                reason: "CALENDAR_IN_USE",
                message: format!("used by {policies} SLA policies and {tickets} open tickets; move them to another calendar first"),
                subject: name.clone(),
            }
            .into());
        }
        store::delete_calendar(&mut tx, tenant, id).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::DeleteBusinessCalendarResponse {}))
    }

    async fn create_sla_policy(
        &self,
        request: Request<pb::CreateSlaPolicyRequest>,
    ) -> Result<Response<pb::CreateSlaPolicyResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsConfigure)?;
        let policy = request.into_inner().policy.ok_or_else(|| Error::invalid("policy", "REQUIRED", "policy is required"))?;
        let row = validate_policy(&policy)?;
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        if let Some(id) = row.calendar_id
            && store::find_calendar(&mut tx, principal.tenant, id).await?.is_none()
        {
            return Err(Error::invalid(
                "policy.calendar",
                "UNKNOWN_CALENDAR",
                format!("{:?} is not a calendar of this tenant", policy.calendar),
            )
            .into());
        }
        let stored = store::insert_policy(&mut tx, principal.tenant, &row).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::CreateSlaPolicyResponse { policy: Some(policy_to_proto(&stored)) }))
    }

    async fn list_sla_policies(
        &self,
        request: Request<pb::ListSlaPoliciesRequest>,
    ) -> Result<Response<pb::ListSlaPoliciesResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsRead)?;
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        let rows = store::list_policies(&mut tx, principal.tenant).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ListSlaPoliciesResponse { policies: rows.iter().map(policy_to_proto).collect() }))
    }

    async fn delete_sla_policy(
        &self,
        request: Request<pb::DeleteSlaPolicyRequest>,
    ) -> Result<Response<pb::DeleteSlaPolicyResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsConfigure)?;
        let name = &request.get_ref().name;
        let id = crm_kit::resource::parse_id(name, "slaPolicies", "name", "INVALID_NAME")?;
        let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
        if !store::delete_policy(&mut tx, principal.tenant, id).await? {
            return Err(Error::NotFound { resource_type: "tickets.crm/SlaPolicy", name: name.clone() }.into());
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::DeleteSlaPolicyResponse {}))
    }
}
