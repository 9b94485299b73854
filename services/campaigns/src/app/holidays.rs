//! The tenant's holiday calendar: the built-in holidays with the tenant's
//! changes to them (a name, disabled) laid over, and its own holidays.

use chrono::{DateTime, Utc};
use crm_kit::Error;
use sqlx::types::Json;
use uuid::Uuid;

use super::App;
use crate::{
    domain::holidays::{BUILT_IN, BuiltIn, Holiday, Rule, built_in},
    store::holidays::{self, HolidayRow},
    wire::holidays::holiday_name,
};

/// The most holidays of its own a tenant keeps.
pub const MAX_OWN_HOLIDAYS: i64 = 200;

/// A change to a holiday (None: unchanged).
#[derive(Debug, Clone, Default)]
pub struct HolidayChange {
    pub display_name: Option<String>,
    pub disabled: Option<bool>,
    pub rule: Option<Rule>,
}

/// A built-in as the tenant sees it, with its stored changes if any.
fn built_in_holiday(b: &BuiltIn, row: Option<&HolidayRow>) -> Holiday {
    Holiday {
        id: b.id.to_owned(),
        display_name: row.map_or_else(|| b.name_zh.to_owned(), |r| r.display_name.clone()),
        english_name: b.name_en,
        rule: b.rule,
        built_in: true,
        disabled: row.is_some_and(|r| r.disabled),
        // An untouched built-in is at revision 1; its first change stores revision 2.
        revision: row.map_or(1, |r| r.revision),
        create_time: row.map(|r| r.create_time),
        update_time: row.map(|r| r.update_time),
    }
}

/// One of the tenant's own holidays.
fn own_holiday(row: &HolidayRow, rule: Rule) -> Holiday {
    Holiday {
        id: row.id.clone(),
        display_name: row.display_name.clone(),
        english_name: "",
        rule,
        built_in: false,
        disabled: row.disabled,
        revision: row.revision,
        create_time: Some(row.create_time),
        update_time: Some(row.update_time),
    }
}

/// The holiday a stored row (or its absence, for a built-in) makes.
fn holiday_of(id: &str, row: Option<&HolidayRow>) -> Option<Holiday> {
    match (built_in(id), row) {
        (Some(b), row) => Some(built_in_holiday(b, row)),
        (None, Some(row)) => row.rule.as_ref().map(|Json(rule)| own_holiday(row, (*rule).into())),
        (None, None) => None,
    }
}

/// The resource type of holidays (their ids are chosen, not UUIDs, so the kit's `ResourceType` does not apply).
const HOLIDAY: &str = "campaigns.crm/Holiday";

fn not_found(id: &str) -> Error {
    Error::NotFound { resource_type: HOLIDAY, name: holiday_name(id) }
}

/// ABORTED `ETAG_MISMATCH` unless `etag` (field `field`) is empty or names `revision`.
fn check_etag(etag: &str, field: &str, id: &str, revision: i64) -> Result<(), Error> {
    match crm_kit::etag::parse(etag, field)? {
        Some(expected) if expected != revision => Err(Error::EtagMismatch { resource_type: HOLIDAY, name: holiday_name(id) }),
        _ => Ok(()),
    }
}

impl App {
    /// The whole calendar: built-ins first (in calendar order), then the tenant's own by id.
    pub async fn holidays(&self, tenant: Uuid) -> Result<Vec<Holiday>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = holidays::all(&mut tx, tenant).await?;
        tx.commit().await?;
        let stored = |id: &str| rows.iter().find(|r| r.id == id);
        let mut calendar: Vec<Holiday> = BUILT_IN.iter().map(|b| built_in_holiday(b, stored(b.id))).collect();
        calendar.extend(rows.iter().filter(|r| built_in(&r.id).is_none()).filter_map(|r| holiday_of(&r.id, Some(r))));
        Ok(calendar)
    }

    /// Holiday `id`, or NOT_FOUND.
    pub async fn holiday(&self, tenant: Uuid, id: &str) -> Result<Holiday, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = holidays::find(&mut tx, tenant, id, false).await?;
        tx.commit().await?;
        holiday_of(id, row.as_ref()).ok_or_else(|| not_found(id))
    }

    /// Adds a holiday of the tenant's own; ALREADY_EXISTS when the id is taken (a built-in's too).
    pub async fn create_holiday(
        &self,
        tenant: Uuid,
        id: &str,
        display_name: String,
        rule: Rule,
        now: DateTime<Utc>,
    ) -> Result<Holiday, Error> {
        let exists = || Error::AlreadyExists {
            reason: "HOLIDAY_EXISTS",
            message: format!("holidays/{id} exists already"),
            resource_type: HOLIDAY,
            name: holiday_name(id),
        };
        if built_in(id).is_some() {
            return Err(exists());
        }
        let mut tx = self.begin(tenant).await?;
        // Concurrent creates of one tenant take turns, so the cap holds.
        holidays::lock_calendar(&mut tx, tenant).await?;
        if holidays::count_own(&mut tx, tenant).await? >= MAX_OWN_HOLIDAYS {
            return Err(Error::FailedPrecondition {
                reason: "TOO_MANY_HOLIDAYS",
                message: format!("a tenant keeps at most {MAX_OWN_HOLIDAYS} holidays of its own; delete one first"),
                subject: "holidays".to_owned(),
            });
        }
        let row = HolidayRow {
            id: id.to_owned(),
            display_name,
            rule: Some(Json(rule.into())),
            disabled: false,
            revision: 1,
            create_time: now,
            update_time: now,
        };
        let stored = holidays::insert(&mut tx, tenant, &row).await?.ok_or_else(exists)?;
        tx.commit().await?;
        Ok(own_holiday(&stored, rule))
    }

    /// Applies `change` to holiday `id` (after the etag check); a built-in's rule cannot change.
    pub async fn update_holiday(
        &self,
        tenant: Uuid,
        id: &str,
        etag: &str,
        change: HolidayChange,
        now: DateTime<Utc>,
    ) -> Result<Holiday, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = holidays::find(&mut tx, tenant, id, true).await?;
        let current = holiday_of(id, row.as_ref()).ok_or_else(|| not_found(id))?;
        check_etag(etag, "holiday.etag", id, current.revision)?;
        if current.built_in && change.rule.is_some_and(|r| r != current.rule) {
            return Err(Error::invalid(
                "holiday.rule",
                "BUILT_IN_RULE",
                format!("the rule of the built-in holidays/{id} is fixed; disable it and create a holiday of your own"),
            ));
        }
        let changed = HolidayRow {
            id: id.to_owned(),
            display_name: change.display_name.unwrap_or(current.display_name),
            rule: (!current.built_in).then(|| Json(change.rule.unwrap_or(current.rule).into())),
            disabled: change.disabled.unwrap_or(current.disabled),
            revision: 2,
            create_time: now,
            update_time: now,
        };
        let stored = match row {
            Some(_) => holidays::update(&mut tx, tenant, &changed, now).await?,
            // A built-in's first change: its row is created at revision 2 (the untouched built-in was 1).
            None => holidays::insert(&mut tx, tenant, &changed).await?.ok_or(Error::Conflict)?,
        };
        tx.commit().await?;
        Ok(holiday_of(id, Some(&stored)).expect("a stored holiday"))
    }

    /// Deletes one of the tenant's own holidays; a built-in is refused (disable it instead).
    pub async fn delete_holiday(&self, tenant: Uuid, id: &str, etag: &str) -> Result<(), Error> {
        if built_in(id).is_some() {
            return Err(Error::FailedPrecondition {
                reason: "BUILT_IN_HOLIDAY",
                message: format!("holidays/{id} is built in and cannot be deleted; disable it (UpdateHoliday, disabled = true)"),
                subject: holiday_name(id),
            });
        }
        let mut tx = self.begin(tenant).await?;
        let row = holidays::find(&mut tx, tenant, id, true).await?.ok_or_else(|| not_found(id))?;
        check_etag(etag, "etag", id, row.revision)?;
        holidays::delete(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(())
    }
}
