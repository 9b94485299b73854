//! Holidays a tenant's care messages can greet: a built-in calendar of
//! Chinese public and traditional holidays — the lunar ones computed for any
//! year (`lunisolar`) — plus Gregorian ones, and the tenant's own holidays,
//! each a rule that yields its dates in a given Gregorian year.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};

use super::lunisolar::{LunarDate, solar_term, to_gregorian};

/// When a holiday falls, year after year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// The same Gregorian month and day (February 29th only in leap years).
    Gregorian { month: u8, day: u8 },
    /// The same lunar month and day (a 30th missing in a short month falls on the 29th).
    Lunar { month: u8, day: u8 },
    /// The last day of the lunar year (除夕: the 29th or 30th of the 12th month).
    LunarNewYearsEve,
    /// The day the Sun reaches this longitude (a solar term; 清明 is 15°).
    SolarTerm { degrees: u16 },
}

/// Why a rule cannot be kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("month must be 1..=12")]
    Month,
    #[error("day must be 1..={0} for this month")]
    Day(u8),
    #[error("a solar term is a multiple of 15 degrees below 360")]
    SolarTerm,
}

impl Rule {
    /// Checks the rule's numbers.
    pub fn check(&self) -> Result<(), RuleError> {
        match *self {
            Rule::Gregorian { month, day } => {
                let longest = match month {
                    1..=12 => [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][usize::from(month) - 1],
                    _ => return Err(RuleError::Month),
                };
                if !(1..=longest).contains(&day) {
                    return Err(RuleError::Day(longest));
                }
            }
            Rule::Lunar { month, day } => {
                if !(1..=12).contains(&month) {
                    return Err(RuleError::Month);
                }
                if !(1..=30).contains(&day) {
                    return Err(RuleError::Day(30));
                }
            }
            Rule::LunarNewYearsEve => {}
            Rule::SolarTerm { degrees } => {
                if degrees >= 360 || degrees % 15 != 0 {
                    return Err(RuleError::SolarTerm);
                }
            }
        }
        Ok(())
    }

    /// The rule's dates in Gregorian `year`, in order: usually one; a lunar
    /// date can fall twice in a Gregorian year (腊八 2022: January 10th and
    /// December 30th) or not at all.
    pub fn dates_in(&self, year: i32) -> Vec<NaiveDate> {
        let dates: Vec<NaiveDate> = match *self {
            Rule::Gregorian { month, day } => NaiveDate::from_ymd_opt(year, u32::from(month), u32::from(day)).into_iter().collect(),
            Rule::Lunar { month, day } => (year - 1..=year).filter_map(|lunar_year| lunar_day(lunar_year, month, day)).collect(),
            Rule::LunarNewYearsEve => (year..=year + 1)
                .filter_map(|next| to_gregorian(LunarDate { year: next, month: 1, leap: false, day: 1 }))
                .map(|new_year| new_year - Duration::days(1))
                .collect(),
            Rule::SolarTerm { degrees } => vec![solar_term(year, f64::from(degrees))],
        };
        dates.into_iter().filter(|d| d.year() == year).collect()
    }
}

/// Lunar `month`/`day` of lunar year `year`; a 30th in a 29-day month is its 29th.
fn lunar_day(year: i32, month: u8, day: u8) -> Option<NaiveDate> {
    let date = |day| to_gregorian(LunarDate { year, month, leap: false, day });
    date(day).or_else(|| (day == 30).then(|| date(29)).flatten())
}

/// A holiday of the built-in calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltIn {
    /// Its id (`holidays/{id}`).
    pub id: &'static str,
    /// Chinese and English names.
    pub name_zh: &'static str,
    pub name_en: &'static str,
    pub rule: Rule,
}

const fn lunar(month: u8, day: u8) -> Rule {
    Rule::Lunar { month, day }
}

const fn gregorian(month: u8, day: u8) -> Rule {
    Rule::Gregorian { month, day }
}

/// The built-in calendar: China's public holidays and traditional festivals, and a few international days.
pub const BUILT_IN: &[BuiltIn] = &[
    BuiltIn { id: "new-year", name_zh: "元旦", name_en: "New Year's Day", rule: gregorian(1, 1) },
    BuiltIn { id: "spring-festival-eve", name_zh: "除夕", name_en: "Chinese New Year's Eve", rule: Rule::LunarNewYearsEve },
    BuiltIn { id: "spring-festival", name_zh: "春节", name_en: "Spring Festival", rule: lunar(1, 1) },
    BuiltIn { id: "lantern-festival", name_zh: "元宵节", name_en: "Lantern Festival", rule: lunar(1, 15) },
    BuiltIn { id: "womens-day", name_zh: "妇女节", name_en: "International Women's Day", rule: gregorian(3, 8) },
    BuiltIn { id: "qingming", name_zh: "清明节", name_en: "Qingming Festival", rule: Rule::SolarTerm { degrees: 15 } },
    BuiltIn { id: "labour-day", name_zh: "劳动节", name_en: "Labour Day", rule: gregorian(5, 1) },
    BuiltIn { id: "childrens-day", name_zh: "儿童节", name_en: "Children's Day", rule: gregorian(6, 1) },
    BuiltIn { id: "dragon-boat-festival", name_zh: "端午节", name_en: "Dragon Boat Festival", rule: lunar(5, 5) },
    BuiltIn { id: "qixi", name_zh: "七夕", name_en: "Qixi Festival", rule: lunar(7, 7) },
    BuiltIn { id: "mid-autumn-festival", name_zh: "中秋节", name_en: "Mid-Autumn Festival", rule: lunar(8, 15) },
    BuiltIn { id: "national-day", name_zh: "国庆节", name_en: "National Day", rule: gregorian(10, 1) },
    BuiltIn { id: "double-ninth-festival", name_zh: "重阳节", name_en: "Double Ninth Festival", rule: lunar(9, 9) },
    BuiltIn { id: "laba-festival", name_zh: "腊八节", name_en: "Laba Festival", rule: lunar(12, 8) },
    BuiltIn { id: "christmas", name_zh: "圣诞节", name_en: "Christmas Day", rule: gregorian(12, 25) },
];

/// The built-in holiday `id`.
pub fn built_in(id: &str) -> Option<&'static BuiltIn> {
    BUILT_IN.iter().find(|h| h.id == id)
}

/// A holiday of the tenant's calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct Holiday {
    pub id: String,
    pub display_name: String,
    /// A built-in's English name; empty for the tenant's own.
    pub english_name: &'static str,
    pub rule: Rule,
    pub built_in: bool,
    pub disabled: bool,
    pub revision: i64,
    /// None for an untouched built-in.
    pub create_time: Option<DateTime<Utc>>,
    pub update_time: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn dates(id: &str, year: i32) -> Vec<NaiveDate> {
        built_in(id).unwrap().rule.dates_in(year)
    }

    #[test]
    fn the_built_in_calendar_of_2026() {
        assert_eq!(dates("spring-festival-eve", 2026), [ymd(2026, 2, 16)]);
        assert_eq!(dates("spring-festival", 2026), [ymd(2026, 2, 17)]);
        assert_eq!(dates("lantern-festival", 2026), [ymd(2026, 3, 3)]);
        assert_eq!(dates("qingming", 2026), [ymd(2026, 4, 5)]);
        assert_eq!(dates("dragon-boat-festival", 2026), [ymd(2026, 6, 19)]);
        assert_eq!(dates("qixi", 2026), [ymd(2026, 8, 19)]);
        assert_eq!(dates("mid-autumn-festival", 2026), [ymd(2026, 9, 25)]);
        assert_eq!(dates("double-ninth-festival", 2026), [ymd(2026, 10, 18)]);
        assert_eq!(dates("laba-festival", 2026), [ymd(2026, 1, 26)]);
        assert_eq!(dates("national-day", 2026), [ymd(2026, 10, 1)]);
    }

    #[test]
    fn a_lunar_date_can_fall_twice_or_never_in_a_gregorian_year() {
        assert_eq!(dates("laba-festival", 2022), [ymd(2022, 1, 10), ymd(2022, 12, 30)]);
        // 2033's 12th month begins after a leap 11th: 腊八 of lunar 2033 falls in January 2034, none in late 2033.
        assert_eq!(dates("laba-festival", 2033), [ymd(2033, 1, 8)]);
        assert_eq!(dates("spring-festival-eve", 2033), [ymd(2033, 1, 30)]);
    }

    #[test]
    fn a_30th_in_a_short_month_falls_on_its_29th_and_february_29th_only_in_leap_years() {
        // The 12th month of lunar 2025 has 29 days (除夕 2026 is 02-16, the 29th).
        assert_eq!(Rule::Lunar { month: 12, day: 30 }.dates_in(2026), [ymd(2026, 2, 16)]);
        assert_eq!(Rule::Gregorian { month: 2, day: 29 }.dates_in(2028), [ymd(2028, 2, 29)]);
        assert!(Rule::Gregorian { month: 2, day: 29 }.dates_in(2026).is_empty());
    }

    #[test]
    fn rules_with_impossible_numbers_are_refused() {
        assert_eq!(Rule::Gregorian { month: 13, day: 1 }.check(), Err(RuleError::Month));
        assert_eq!(Rule::Gregorian { month: 4, day: 31 }.check(), Err(RuleError::Day(30)));
        assert_eq!(Rule::Lunar { month: 1, day: 31 }.check(), Err(RuleError::Day(30)));
        assert_eq!(Rule::SolarTerm { degrees: 20 }.check(), Err(RuleError::SolarTerm));
        assert!(BUILT_IN.iter().all(|h| h.rule.check().is_ok()));
    }
}
