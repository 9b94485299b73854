//! The Chinese lunisolar calendar (农历), computed — not looked up — from
//! new moons and solar terms (`astronomy`), by the rules of GB/T 33661-2017
//! as China's almanacs apply them:
//! - days are reckoned in Beijing time (UTC+8); a month begins on the day of
//!   a new moon;
//! - the month holding the December solstice is the 11th;
//! - when 13 new moons begin between one 11th month and the next, the first
//!   of those months that holds no principal solar term (中气: the Sun at a
//!   multiple of 30°) is a leap month and repeats the number before it;
//! - the lunar year begins with the 1st month (春节).
//!
//! So any year's holidays come out of the same code, the famous 2033 case (a
//! leap 11th month) included; tests check them against published dates.

use chrono::{Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};

use super::astronomy::{julian_day, lunation_near, new_moon, sun_longitude, sun_reaches};

/// A date of the lunisolar calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LunarDate {
    /// The lunar year, named by the Gregorian year its 1st month begins in.
    pub year: i32,
    /// 1..=12.
    pub month: u8,
    /// Whether the month is the leap month repeating `month`.
    pub leap: bool,
    /// 1..=30.
    pub day: u8,
}

/// One lunar month: its first day, number and leap flag, and its lunar year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Month {
    start: NaiveDate,
    number: u8,
    leap: bool,
    year: i32,
}

fn beijing() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("a valid offset")
}

/// The Beijing calendar day of Julian Day (UT) `jd`.
fn beijing_date(jd: f64) -> NaiveDate {
    super::astronomy::from_julian_day(jd).with_timezone(&beijing()).date_naive()
}

/// Julian Day (UT) of Beijing midnight starting `date`.
fn beijing_midnight(date: NaiveDate) -> f64 {
    let local = beijing().from_local_datetime(&date.and_time(NaiveTime::MIN)).single().expect("fixed offsets are unambiguous");
    julian_day(local.with_timezone(&Utc))
}

/// The December solstice of Gregorian `year`, as its Beijing date.
fn december_solstice(year: i32) -> NaiveDate {
    let start = Utc.with_ymd_and_hms(year, 12, 1, 0, 0, 0).single().expect("a valid date");
    beijing_date(sun_reaches(270.0, julian_day(start)))
}

/// The first day of the month holding `date`: the Beijing day of the last new moon on or before it.
fn month_start_on_or_before(date: NaiveDate) -> (i64, NaiveDate) {
    let mut k = lunation_near(beijing_midnight(date));
    while beijing_date(new_moon(k)) > date {
        k -= 1;
    }
    while beijing_date(new_moon(k + 1)) <= date {
        k += 1;
    }
    (k, beijing_date(new_moon(k)))
}

/// Whether the month from `start` up to (not including) `next` holds a principal solar term.
fn holds_principal_term(start: NaiveDate, next: NaiveDate) -> bool {
    let term = |date| (sun_longitude(beijing_midnight(date)) / 30.0).floor() as i64;
    term(start) != term(next)
}

/// The months of the 岁 from the 11th month holding the December solstice of
/// Gregorian `year - 1` up to (not including) the next 11th month, numbered.
/// Computed once per year and process: a calendar of many lunar holidays
/// asks for the same few years again and again, and the answer never changes.
fn months_of_sui(year: i32) -> Vec<Month> {
    static COMPUTED: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<i32, Vec<Month>>>> = std::sync::OnceLock::new();
    let cache = COMPUTED.get_or_init(Default::default);
    if let Some(months) = cache.lock().expect("not poisoned").get(&year) {
        return months.clone();
    }
    let months = compute_months_of_sui(year);
    let mut cached = cache.lock().expect("not poisoned");
    // Years are asked for within a few centuries; the map stays small.
    if cached.len() < 4096 {
        cached.insert(year, months.clone());
    }
    months
}

/// [`months_of_sui`] without the cache.
fn compute_months_of_sui(year: i32) -> Vec<Month> {
    let (first, _) = month_start_on_or_before(december_solstice(year - 1));
    let (next_eleventh, _) = month_start_on_or_before(december_solstice(year));
    let starts: Vec<NaiveDate> = (first..=next_eleventh).map(|k| beijing_date(new_moon(k))).collect();
    let has_leap = starts.len() == 14; // 13 months between the two 11th months
    let mut months = Vec::with_capacity(13);
    let (mut number, mut leap_taken) = (11_u8, false);
    for (i, window) in starts.windows(2).enumerate() {
        let leap = i > 0 && has_leap && !leap_taken && !holds_principal_term(window[0], window[1]);
        if i > 0 && !leap {
            number = number % 12 + 1;
        }
        leap_taken |= leap;
        // Months 11 and 12 before the 1st month belong to the previous lunar year.
        let before_new_year = months.iter().all(|m: &Month| m.number != 1 || m.leap) && number >= 11;
        let lunar_year = if before_new_year { year - 1 } else { year };
        months.push(Month { start: window[0], number, leap, year: lunar_year });
    }
    months
}

/// Every month that starts in Gregorian `year` or holds one of its days.
fn months_around(year: i32) -> Vec<Month> {
    let mut months = months_of_sui(year);
    months.extend(months_of_sui(year + 1));
    months
}

/// The Gregorian date of lunar `date` (None when that year has no such month, leap month or day).
pub fn to_gregorian(date: LunarDate) -> Option<NaiveDate> {
    // The lunar year's months start in Gregorian `year` (1st month) and may run into the next.
    let months = months_around(date.year);
    let index = months.iter().position(|m| m.year == date.year && m.number == date.month && m.leap == date.leap)?;
    let next = months.get(index + 1)?.start;
    let day = months[index].start + Duration::days(i64::from(date.day) - 1);
    (date.day >= 1 && day < next).then_some(day)
}

/// The lunar date of Gregorian `date`.
pub fn from_gregorian(date: NaiveDate) -> LunarDate {
    use chrono::Datelike;
    let months: Vec<Month> = months_of_sui(date.year()).into_iter().chain(months_of_sui(date.year() + 1)).collect();
    let month = months.iter().rev().find(|m| m.start <= date).expect("the 岁 before holds every date of its year");
    let day = u8::try_from((date - month.start).num_days() + 1).expect("a month is at most 30 days");
    LunarDate { year: month.year, month: month.number, leap: month.leap, day }
}

/// The day the Sun reaches `degrees` in Gregorian `year` (a solar term, e.g. 15° 清明), Beijing date.
pub fn solar_term(year: i32, degrees: f64) -> NaiveDate {
    let start = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single().expect("a valid date");
    // The Sun is near 280° on January 1st: searching forwards from it reaches each term of the year once.
    beijing_date(sun_reaches(degrees, julian_day(start)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn lunar(year: i32, month: u8, day: u8) -> NaiveDate {
        to_gregorian(LunarDate { year, month, leap: false, day }).unwrap()
    }

    /// A month and day of the Gregorian calendar.
    type MonthDay = (u32, u32);

    /// Published dates (中国科学院紫金山天文台 / Hong Kong Observatory tables), 2020–2035:
    /// (year, 春节, 元宵, 端午, 中秋).
    const PUBLISHED: [(i32, MonthDay, MonthDay, MonthDay, MonthDay); 16] = [
        (2020, (1, 25), (2, 8), (6, 25), (10, 1)),
        (2021, (2, 12), (2, 26), (6, 14), (9, 21)),
        (2022, (2, 1), (2, 15), (6, 3), (9, 10)),
        (2023, (1, 22), (2, 5), (6, 22), (9, 29)),
        (2024, (2, 10), (2, 24), (6, 10), (9, 17)),
        (2025, (1, 29), (2, 12), (5, 31), (10, 6)),
        (2026, (2, 17), (3, 3), (6, 19), (9, 25)),
        (2027, (2, 6), (2, 20), (6, 9), (9, 15)),
        (2028, (1, 26), (2, 9), (5, 28), (10, 3)),
        (2029, (2, 13), (2, 27), (6, 16), (9, 22)),
        (2030, (2, 3), (2, 17), (6, 5), (9, 12)),
        (2031, (1, 23), (2, 6), (6, 24), (10, 1)),
        (2032, (2, 11), (2, 25), (6, 12), (9, 19)),
        (2033, (1, 31), (2, 14), (6, 1), (9, 8)),
        (2034, (2, 19), (3, 5), (6, 20), (9, 27)),
        (2035, (2, 8), (2, 22), (6, 10), (9, 16)),
    ];

    #[test]
    fn the_four_lunar_holidays_match_published_dates_2020_to_2035() {
        for (year, spring, lantern, dragon_boat, mid_autumn) in PUBLISHED {
            assert_eq!(lunar(year, 1, 1), ymd(year, spring.0, spring.1), "春节 {year}");
            assert_eq!(lunar(year, 1, 15), ymd(year, lantern.0, lantern.1), "元宵 {year}");
            assert_eq!(lunar(year, 5, 5), ymd(year, dragon_boat.0, dragon_boat.1), "端午 {year}");
            assert_eq!(lunar(year, 8, 15), ymd(year, mid_autumn.0, mid_autumn.1), "中秋 {year}");
        }
    }

    #[test]
    fn leap_months_fall_where_the_almanac_puts_them() {
        // 2020 闰四月, 2023 闰二月, 2025 闰六月, 2028 闰五月, 2031 闰三月, 2033 闰十一月 (the "2033 problem").
        for (year, month, first_day) in [
            (2020, 4, ymd(2020, 5, 23)),
            (2023, 2, ymd(2023, 3, 22)),
            (2025, 6, ymd(2025, 7, 25)),
            (2028, 5, ymd(2028, 6, 23)),
            (2031, 3, ymd(2031, 4, 22)),
            (2033, 11, ymd(2033, 12, 22)),
        ] {
            assert_eq!(to_gregorian(LunarDate { year, month, leap: true, day: 1 }), Some(first_day), "闰{month}月 {year}");
        }
        assert_eq!(to_gregorian(LunarDate { year: 2024, month: 4, leap: true, day: 1 }), None, "2024 has no leap month");
    }

    #[test]
    fn gregorian_dates_convert_back() {
        assert_eq!(from_gregorian(ymd(2026, 2, 17)), LunarDate { year: 2026, month: 1, leap: false, day: 1 });
        assert_eq!(from_gregorian(ymd(2026, 2, 16)), LunarDate { year: 2025, month: 12, leap: false, day: 29 });
        assert_eq!(from_gregorian(ymd(2034, 1, 1)), LunarDate { year: 2033, month: 11, leap: true, day: 11 });
        for days in 0..800 {
            let date = ymd(2024, 1, 1) + Duration::days(days);
            assert_eq!(to_gregorian(from_gregorian(date)), Some(date), "{date}");
        }
    }

    #[test]
    fn a_month_has_29_or_30_days_and_day_30_exists_only_in_long_months() {
        assert_eq!(to_gregorian(LunarDate { year: 2026, month: 1, leap: false, day: 31 }), None);
        for year in 2020..=2035 {
            for month in 1..=12 {
                let first = lunar(year, month, 1);
                let next = to_gregorian(LunarDate { year, month, leap: false, day: 30 }).map_or(29, |_| 30);
                assert!(matches!(next, 29 | 30), "{year}-{month} from {first}");
            }
        }
    }

    #[test]
    fn qingming_falls_on_april_4th_or_5th() {
        for year in 2020..=2035 {
            let day = solar_term(year, 15.0);
            assert!(day == ymd(year, 4, 4) || day == ymd(year, 4, 5), "清明 {year}: {day}");
        }
        assert_eq!(solar_term(2026, 15.0), ymd(2026, 4, 5));
    }
}
