//! `crm.tickets.v1.SlaPolicyService`: business calendars and SLA policies.

use std::time::Duration as StdDuration;

use chrono::{Datelike, NaiveDate, Utc};
use crm_kit::{
    Error, FieldViolation,
    auth::caller,
    db::{TenantTx, begin_tenant},
    etag,
    fieldmask::UpdateMask,
    idempotency::{self, IdempotencyKey},
    pagination::{PageTokenCodec, Pager},
    protoenum, required, respond, time,
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
    permissions,
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
    page_tokens: PageTokenCodec,
}

impl SlaApi {
    /// Handlers over the use cases of `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
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
        etag: etag::of_revision(row.revision),
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
        revision: 1,
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

/// Paths UpdateSlaPolicy may change.
const POLICY_PATHS: &[&str] =
    &["display_name", "priority", "customer_category", "calendar", "first_response_target", "resolution_target", "warning_ratio"];

mod policy_mask {
    use super::pb;
    crm_kit::mask_fields!(pb::SlaPolicy;
        "display_name" => display_name,
        "priority" => priority,
        "customer_category" => customer_category,
        "calendar" => calendar,
        "first_response_target" => first_response_target,
        "resolution_target" => resolution_target,
        "warning_ratio" => warning_ratio,
    );
}

/// INVALID_ARGUMENT unless the policy's calendar (if any) is one of the tenant's.
async fn ensure_calendar(tx: &mut TenantTx, tenant: Uuid, row: &PolicyRow) -> Result<(), Error> {
    match row.calendar_id {
        Some(id) if store::find_calendar(tx, tenant, id).await?.is_none() => {
            Err(Error::invalid("policy.calendar", "UNKNOWN_CALENDAR", format!("{:?} is not a calendar of this tenant", CALENDAR.name(id))))
        }
        _ => Ok(()),
    }
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
        etag: etag::of_revision(row.revision),
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
        revision: 1,
    })
}

#[tonic::async_trait]
impl SlaPolicyService for SlaApi {
    #[tracing::instrument(skip_all)]
    async fn create_business_calendar(
        &self,
        request: Request<pb::CreateBusinessCalendarRequest>,
    ) -> Result<Response<pb::CreateBusinessCalendarResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateBusinessCalendar",
                &request.request_id,
                &pb::CreateBusinessCalendarRequest { request_id: String::new(), ..request.clone() },
            )?;
            let row = validate_calendar(&required(request.calendar, "calendar")?)?;
            let tenant = principal.tenant;
            let mut tx = begin_tenant(self.app.pool(), tenant).await?;
            if let Some(replay) = idempotency::replay(key.as_ref(), &mut tx, tenant).await? {
                tx.commit().await?;
                return Ok(replay);
            }
            let stored = store::insert_calendar(&mut tx, tenant, &row).await?;
            let response = pb::CreateBusinessCalendarResponse { calendar: Some(calendar_to_proto(&stored)) };
            idempotency::remember(key.as_ref(), &mut tx, tenant, &response).await?;
            tx.commit().await?;
            Ok(response)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_business_calendar(
        &self,
        request: Request<pb::GetBusinessCalendarRequest>,
    ) -> Result<Response<pb::GetBusinessCalendarResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let id = parse_calendar_name(&request.get_ref().name, "name")?;
            let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
            let row = store::find_calendar(&mut tx, principal.tenant, id).await?.ok_or_else(|| CALENDAR.not_found(id))?;
            tx.commit().await?;
            Ok(pb::GetBusinessCalendarResponse { calendar: Some(calendar_to_proto(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_business_calendars(
        &self,
        request: Request<pb::ListBusinessCalendarsRequest>,
    ) -> Result<Response<pb::ListBusinessCalendarsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let request = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(request.page_size, &request.page_token, &["ListBusinessCalendars", &principal.tenant.to_string()])?;
            let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
            let rows = store::list_calendars(&mut tx, principal.tenant, page.after.clone(), page.fetch_limit()).await?;
            tx.commit().await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |c| (c.display_name.clone(), c.id));
            Ok(pb::ListBusinessCalendarsResponse { calendars: rows.iter().map(calendar_to_proto).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_business_calendar(
        &self,
        request: Request<pb::UpdateBusinessCalendarRequest>,
    ) -> Result<Response<pb::UpdateBusinessCalendarResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let pb::UpdateBusinessCalendarRequest { calendar, update_mask } = request.into_inner();
            let input = required(calendar, "calendar")?;
            let id = parse_calendar_name(&input.name, "calendar.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), CALENDAR_PATHS)?.resolve(CALENDAR_PATHS);
            etag::parse(&input.etag, "calendar.etag")?;
            let edit = |current: &CalendarRow| {
                CALENDAR.check_etag(&input.etag, "calendar.etag", id, current.revision)?;
                let mut merged = calendar_to_proto(current);
                for path in &paths {
                    calendar_mask::copy_field(&mut merged, &input, path);
                }
                Ok(CalendarRow { id, create_time: current.create_time, revision: current.revision, ..validate_calendar(&merged)? })
            };
            let (stored, rescheduled) = self.app.update_calendar(principal.tenant, id, edit, Utc::now()).await?;
            Ok(pb::UpdateBusinessCalendarResponse { calendar: Some(calendar_to_proto(&stored)), rescheduled_tickets: rescheduled as i64 })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_business_calendar(
        &self,
        request: Request<pb::DeleteBusinessCalendarRequest>,
    ) -> Result<Response<pb::DeleteBusinessCalendarResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let request = request.get_ref();
            let id = parse_calendar_name(&request.name, "name")?;
            etag::parse(&request.etag, "etag")?;
            let tenant = principal.tenant;
            let mut tx = begin_tenant(self.app.pool(), tenant).await?;
            let current = store::lock_calendar(&mut tx, tenant, id).await?.ok_or_else(|| CALENDAR.not_found(id))?;
            CALENDAR.check_etag(&request.etag, "etag", id, current.revision)?;
            let (policies, tickets) = store::calendar_users(&mut tx, tenant, id).await?;
            if policies + tickets > 0 {
                return Err(Error::FailedPrecondition {
                    reason: "CALENDAR_IN_USE",
                    message: format!("used by {policies} SLA policies and {tickets} open tickets; move them to another calendar first"),
                    subject: CALENDAR.name(id),
                });
            }
            store::delete_calendar(&mut tx, tenant, id).await?;
            tx.commit().await?;
            Ok(pb::DeleteBusinessCalendarResponse {})
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn create_sla_policy(
        &self,
        request: Request<pb::CreateSlaPolicyRequest>,
    ) -> Result<Response<pb::CreateSlaPolicyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateSlaPolicy",
                &request.request_id,
                &pb::CreateSlaPolicyRequest { request_id: String::new(), ..request.clone() },
            )?;
            let row = validate_policy(&required(request.policy, "policy")?)?;
            let tenant = principal.tenant;
            let mut tx = begin_tenant(self.app.pool(), tenant).await?;
            if let Some(replay) = idempotency::replay(key.as_ref(), &mut tx, tenant).await? {
                tx.commit().await?;
                return Ok(replay);
            }
            ensure_calendar(&mut tx, tenant, &row).await?;
            let stored = store::insert_policy(&mut tx, tenant, &row).await?;
            let response = pb::CreateSlaPolicyResponse { policy: Some(policy_to_proto(&stored)) };
            idempotency::remember(key.as_ref(), &mut tx, tenant, &response).await?;
            tx.commit().await?;
            Ok(response)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_sla_policy(&self, request: Request<pb::GetSlaPolicyRequest>) -> Result<Response<pb::GetSlaPolicyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let id = SLA_POLICY.parse(&request.get_ref().name, "name")?;
            let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
            let row = store::find_policy(&mut tx, principal.tenant, id, false).await?.ok_or_else(|| SLA_POLICY.not_found(id))?;
            tx.commit().await?;
            Ok(pb::GetSlaPolicyResponse { policy: Some(policy_to_proto(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_sla_policy(
        &self,
        request: Request<pb::UpdateSlaPolicyRequest>,
    ) -> Result<Response<pb::UpdateSlaPolicyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let pb::UpdateSlaPolicyRequest { policy, update_mask } = request.into_inner();
            let input = required(policy, "policy")?;
            let id = SLA_POLICY.parse(&input.name, "policy.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), POLICY_PATHS)?.resolve(POLICY_PATHS);
            etag::parse(&input.etag, "policy.etag")?;
            let tenant = principal.tenant;
            let mut tx = begin_tenant(self.app.pool(), tenant).await?;
            let current = store::find_policy(&mut tx, tenant, id, true).await?.ok_or_else(|| SLA_POLICY.not_found(id))?;
            SLA_POLICY.check_etag(&input.etag, "policy.etag", id, current.revision)?;
            let before = policy_to_proto(&current);
            let mut merged = before.clone();
            for path in &paths {
                policy_mask::copy_field(&mut merged, &input, path);
            }
            let row = PolicyRow { id, create_time: current.create_time, revision: current.revision, ..validate_policy(&merged)? };
            ensure_calendar(&mut tx, tenant, &row).await?;
            let unchanged = POLICY_PATHS.iter().all(|p| policy_mask::same_field(&before, &policy_to_proto(&row), p));
            let stored = if unchanged { current } else { store::update_policy(&mut tx, tenant, &row).await? };
            tx.commit().await?;
            Ok(pb::UpdateSlaPolicyResponse { policy: Some(policy_to_proto(&stored)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_sla_policies(
        &self,
        request: Request<pb::ListSlaPoliciesRequest>,
    ) -> Result<Response<pb::ListSlaPoliciesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let request = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(request.page_size, &request.page_token, &["ListSlaPolicies", &principal.tenant.to_string()])?;
            let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
            let rows = store::list_policies(&mut tx, principal.tenant, page.after.clone(), page.fetch_limit()).await?;
            tx.commit().await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |p| (p.priority.clone(), p.customer_category.clone(), p.id));
            Ok(pb::ListSlaPoliciesResponse { policies: rows.iter().map(policy_to_proto).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_sla_policy(
        &self,
        request: Request<pb::DeleteSlaPolicyRequest>,
    ) -> Result<Response<pb::DeleteSlaPolicyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_CONFIGURE)?;
            let request = request.get_ref();
            let id = SLA_POLICY.parse(&request.name, "name")?;
            etag::parse(&request.etag, "etag")?;
            let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
            let current = store::find_policy(&mut tx, principal.tenant, id, true).await?.ok_or_else(|| SLA_POLICY.not_found(id))?;
            SLA_POLICY.check_etag(&request.etag, "etag", id, current.revision)?;
            store::delete_policy(&mut tx, principal.tenant, id).await?;
            tx.commit().await?;
            Ok(pb::DeleteSlaPolicyResponse {})
        })
        .await
    }
}
