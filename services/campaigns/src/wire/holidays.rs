//! Holidays in and out: rules from requests (checked), holidays with their
//! dates in a year into responses.

use chrono::Datelike;
use crm_kit::{Error, etag, time::to_timestamp};
use crm_proto::{crm::campaigns::v1 as pb, google::r#type::Date};

use crate::domain::holidays::{Holiday, Rule};

/// The name of holiday `id`.
pub fn holiday_name(id: &str) -> String {
    format!("holidays/{id}")
}

/// A holiday id a caller chose: 1-63 lowercase letters, digits and hyphens, starting with a letter.
pub fn holiday_id(id: &str, field: &str) -> Result<String, Error> {
    match crate::domain::is_slug(id) {
        true => Ok(id.to_owned()),
        false => Err(Error::invalid(field, "INVALID_HOLIDAY_ID", "1-63 lowercase letters, digits and hyphens, starting with a letter")),
    }
}

/// The id in "holidays/{id}".
pub fn holiday_id_of(name: &str, field: &str) -> Result<String, Error> {
    match name.strip_prefix("holidays/") {
        Some(id) => holiday_id(id, field),
        None => Err(Error::invalid(field, "INVALID_NAME", "a holiday's name is holidays/{id}")),
    }
}

/// The rule of a request, checked.
pub fn rule_from(rule: Option<&pb::HolidayRule>, field: &str) -> Result<Rule, Error> {
    use pb::holiday_rule::Kind;
    let small = |n: i32| u8::try_from(n).unwrap_or(u8::MAX);
    let rule = match rule.and_then(|r| r.kind.as_ref()) {
        Some(Kind::Gregorian(d)) => Rule::Gregorian { month: small(d.month), day: small(d.day) },
        Some(Kind::Lunar(d)) => Rule::Lunar { month: small(d.month), day: small(d.day) },
        Some(Kind::LunarNewYearsEve(true)) => Rule::LunarNewYearsEve,
        Some(Kind::SolarTermDegrees(degrees)) => Rule::SolarTerm { degrees: u16::try_from(*degrees).unwrap_or(u16::MAX) },
        Some(Kind::LunarNewYearsEve(false)) | None => {
            return Err(Error::invalid(field, "MISSING_RULE", "one of gregorian, lunar, lunar_new_years_eve (true), solar_term_degrees"));
        }
    };
    rule.check().map_err(|e| Error::invalid(field, "INVALID_RULE", e.to_string()))?;
    Ok(rule)
}

fn rule_to(rule: Rule) -> pb::HolidayRule {
    use pb::holiday_rule::Kind;
    let month_day = |month: u8, day: u8| pb::MonthDay { month: i32::from(month), day: i32::from(day) };
    let kind = match rule {
        Rule::Gregorian { month, day } => Kind::Gregorian(month_day(month, day)),
        Rule::Lunar { month, day } => Kind::Lunar(month_day(month, day)),
        Rule::LunarNewYearsEve => Kind::LunarNewYearsEve(true),
        Rule::SolarTerm { degrees } => Kind::SolarTermDegrees(i32::from(degrees)),
    };
    pb::HolidayRule { kind: Some(kind) }
}

/// `holiday` with its dates in Gregorian `year`.
pub fn holiday_to(holiday: &Holiday, year: i32) -> pb::Holiday {
    let dates = holiday
        .rule
        .dates_in(year)
        .into_iter()
        .map(|d| Date { year: d.year(), month: i32::try_from(d.month()).unwrap_or(0), day: i32::try_from(d.day()).unwrap_or(0) })
        .collect();
    pb::Holiday {
        name: holiday_name(&holiday.id),
        display_name: holiday.display_name.clone(),
        rule: Some(rule_to(holiday.rule)),
        built_in: holiday.built_in,
        disabled: holiday.disabled,
        dates,
        english_name: holiday.english_name.to_owned(),
        etag: etag::of_revision(holiday.revision),
        create_time: holiday.create_time.map(to_timestamp),
        update_time: holiday.update_time.map(to_timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_rules_are_checked() {
        assert!(holiday_id("company-anniversary", "holiday_id").is_ok());
        for bad in ["", "Anniversary", "1st", "a_b", &"a".repeat(64)] {
            assert!(holiday_id(bad, "holiday_id").is_err(), "{bad:?}");
        }
        assert!(holiday_id_of("templates/x", "name").is_err());
        let lunar = |month, day| pb::HolidayRule { kind: Some(pb::holiday_rule::Kind::Lunar(pb::MonthDay { month, day })) };
        assert_eq!(rule_from(Some(&lunar(8, 15)), "rule").unwrap(), Rule::Lunar { month: 8, day: 15 });
        assert!(rule_from(Some(&lunar(13, 1)), "rule").is_err());
        assert!(rule_from(Some(&lunar(-1, 1)), "rule").is_err());
        assert!(rule_from(None, "rule").is_err());
        assert!(rule_from(Some(&pb::HolidayRule { kind: Some(pb::holiday_rule::Kind::LunarNewYearsEve(false)) }), "rule").is_err());
    }
}
