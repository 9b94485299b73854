//! `crm.campaigns.v1.HolidayService`: the tenant's holiday calendar, read
//! with `holidays.read` and changed with `holidays.write`.

use chrono::{Datelike, Utc};
use crm_kit::{Error, auth::caller, required, respond};
use crm_proto::crm::campaigns::v1::{self as pb, holiday_service_server::HolidayService};
use tonic::{Request, Response, Status};

use crate::{
    app::{App, holidays::HolidayChange},
    permissions,
    wire::{
        display_name,
        holidays::{holiday_id, holiday_id_of, holiday_to, rule_from},
    },
};

/// The longest holiday name, in characters.
const MAX_HOLIDAY_NAME: usize = 100;

/// Handlers of HolidayService.
#[derive(Clone)]
pub struct HolidayApi {
    app: App,
}

impl HolidayApi {
    /// Handlers over `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// The year a request asks for: 0 is the current one; 1900-2200 otherwise.
fn year_of(year: i32) -> Result<i32, Error> {
    match year {
        0 => Ok(Utc::now().year()),
        1900..=2200 => Ok(year),
        _ => Err(Error::invalid("year", "INVALID_YEAR", "a Gregorian year from 1900 to 2200, or 0 for the current year")),
    }
}

#[tonic::async_trait]
impl HolidayService for HolidayApi {
    #[tracing::instrument(skip_all)]
    async fn list_holidays(&self, request: Request<pb::ListHolidaysRequest>) -> Result<Response<pb::ListHolidaysResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::HOLIDAYS_READ)?;
            let year = year_of(request.get_ref().year)?;
            let mut holidays: Vec<pb::Holiday> = self.app.holidays(principal.tenant).await?.iter().map(|h| holiday_to(h, year)).collect();
            // In calendar order; holidays without a date that year last, by name.
            holidays.sort_by_key(|h| (h.dates.first().map_or((i32::MAX, i32::MAX), |d| (d.month, d.day)), h.name.clone()));
            Ok(pb::ListHolidaysResponse { holidays })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_holiday(&self, request: Request<pb::GetHolidayRequest>) -> Result<Response<pb::GetHolidayResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::HOLIDAYS_READ)?;
            let request = request.get_ref();
            let id = holiday_id_of(&request.name, "name")?;
            let year = year_of(request.year)?;
            let holiday = self.app.holiday(principal.tenant, &id).await?;
            Ok(pb::GetHolidayResponse { holiday: Some(holiday_to(&holiday, year)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn create_holiday(&self, request: Request<pb::CreateHolidayRequest>) -> Result<Response<pb::CreateHolidayResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::HOLIDAYS_WRITE)?;
            let request = request.into_inner();
            let id = holiday_id(&request.holiday_id, "holiday_id")?;
            let holiday = required(request.holiday, "holiday")?;
            let name = display_name(&holiday.display_name, "holiday.display_name", MAX_HOLIDAY_NAME)?;
            let rule = rule_from(holiday.rule.as_ref(), "holiday.rule")?;
            let now = Utc::now();
            let created = self.app.create_holiday(principal.tenant, &id, name, rule, now).await?;
            Ok(pb::CreateHolidayResponse { holiday: Some(holiday_to(&created, now.year())) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_holiday(&self, request: Request<pb::UpdateHolidayRequest>) -> Result<Response<pb::UpdateHolidayResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::HOLIDAYS_WRITE)?;
            let request = request.into_inner();
            let holiday = required(request.holiday, "holiday")?;
            let id = holiday_id_of(&holiday.name, "holiday.name")?;
            let mask = required(request.update_mask, "update_mask")?;
            if mask.paths.is_empty() {
                return Err(Error::invalid("update_mask", "EMPTY_MASK", "name the fields to change: display_name, disabled, rule"));
            }
            let mut change = HolidayChange::default();
            for path in &mask.paths {
                match path.as_str() {
                    "display_name" => {
                        change.display_name = Some(display_name(&holiday.display_name, "holiday.display_name", MAX_HOLIDAY_NAME)?)
                    }
                    "disabled" => change.disabled = Some(holiday.disabled),
                    "rule" => change.rule = Some(rule_from(holiday.rule.as_ref(), "holiday.rule")?),
                    other => {
                        return Err(Error::invalid(
                            "update_mask",
                            "UNKNOWN_FIELD",
                            format!("{other} cannot be changed; display_name, disabled and rule can"),
                        ));
                    }
                }
            }
            let now = Utc::now();
            let updated = self.app.update_holiday(principal.tenant, &id, &holiday.etag, change, now).await?;
            Ok(pb::UpdateHolidayResponse { holiday: Some(holiday_to(&updated, now.year())) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_holiday(&self, request: Request<pb::DeleteHolidayRequest>) -> Result<Response<pb::DeleteHolidayResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::HOLIDAYS_WRITE)?;
            let request = request.get_ref();
            let id = holiday_id_of(&request.name, "name")?;
            self.app.delete_holiday(principal.tenant, &id, &request.etag).await?;
            Ok(pb::DeleteHolidayResponse {})
        })
        .await
    }
}
