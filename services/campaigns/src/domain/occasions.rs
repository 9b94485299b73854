//! Birthday and holiday journeys: which occasions are due for a pass now,
//! whom a pass reads, and when each customer's greeting is due in their own
//! time zone.
//!
//! A pass for the occasion on date D starts on D-1 (UTC), so it is done
//! before D begins anywhere on Earth (UTC+14 reaches D at 10:00 UTC on D-1);
//! each customer's run then waits until D at the journey's time of day in
//! their zone. A customer for whom D is already over when the pass reaches
//! them is not greeted late.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use super::rules::to_utc;

/// The dates whose passes may run now: today and tomorrow (UTC).
pub fn pass_dates(now: DateTime<Utc>) -> [NaiveDate; 2] {
    let today = now.date_naive();
    [today, today + Duration::days(1)]
}

/// The occurrence key of a birthday journey's pass for `date` (also the runs' entry key: one greeting per customer and year).
pub fn birthday_key(date: NaiveDate) -> String {
    format!("birthdays/{date}")
}

/// The occurrence key of holiday `holiday`'s pass for `date`.
pub fn holiday_key(holiday: &str, date: NaiveDate) -> String {
    format!("holidays/{holiday}/{date}")
}

/// The customers whose birthday is `date`, as profiles' filter: on 28
/// February of a common year those born on 29 February too.
pub fn birthday_filter(date: NaiveDate) -> String {
    let (month, day) = (date.month(), date.day());
    let leapling = month == 2 && day == 28 && NaiveDate::from_ymd_opt(date.year(), 2, 29).is_none();
    match leapling {
        true => "birthday.month = 2 AND (birthday.day = 28 OR birthday.day = 29)".to_owned(),
        false => format!("birthday.month = {month} AND birthday.day = {day}"),
    }
}

/// When a customer in `zone` is greeted for the occasion on `date` at
/// `minute_of_day` local: that instant, or now if it has passed while `date`
/// is still today for them; None once `date` is over in their zone.
pub fn greeting_due(zone: Tz, date: NaiveDate, minute_of_day: u16, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local_today = now.with_timezone(&zone).date_naive();
    if local_today > date {
        return None;
    }
    let time = NaiveTime::from_hms_opt(u32::from(minute_of_day) / 60 % 24, u32::from(minute_of_day) % 60, 0).unwrap_or(NaiveTime::MIN);
    Some(to_utc(zone, date.and_time(time)).max(now))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn a_pass_runs_the_day_before_and_on_the_day() {
        let now = Utc.with_ymd_and_hms(2027, 3, 1, 23, 0, 0).unwrap();
        assert_eq!(pass_dates(now), [ymd(2027, 3, 1), ymd(2027, 3, 2)]);
        assert_eq!(birthday_key(ymd(2027, 3, 2)), "birthdays/2027-03-02");
        assert_eq!(holiday_key("mid-autumn", ymd(2027, 9, 15)), "holidays/mid-autumn/2027-09-15");
    }

    #[test]
    fn leaplings_are_greeted_on_the_28th_of_a_common_year() {
        assert_eq!(birthday_filter(ymd(2027, 2, 28)), "birthday.month = 2 AND (birthday.day = 28 OR birthday.day = 29)");
        assert_eq!(birthday_filter(ymd(2028, 2, 28)), "birthday.month = 2 AND birthday.day = 28");
        assert_eq!(birthday_filter(ymd(2028, 2, 29)), "birthday.month = 2 AND birthday.day = 29");
        assert_eq!(birthday_filter(ymd(2027, 12, 5)), "birthday.month = 12 AND birthday.day = 5");
    }

    #[test]
    fn each_customer_is_greeted_at_the_local_time_of_their_own_zone() {
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let new_york: Tz = "America/New_York".parse().unwrap();
        let date = ymd(2027, 3, 2);
        // A day ahead: 09:00 on the 2nd in Shanghai is 01:00 UTC; in New York 14:00 UTC.
        let before = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(greeting_due(shanghai, date, 9 * 60, before), Some(Utc.with_ymd_and_hms(2027, 3, 2, 1, 0, 0).unwrap()));
        assert_eq!(greeting_due(new_york, date, 9 * 60, before), Some(Utc.with_ymd_and_hms(2027, 3, 2, 14, 0, 0).unwrap()));
        // Later the same day: now, not tomorrow.
        let noon_shanghai = Utc.with_ymd_and_hms(2027, 3, 2, 4, 0, 0).unwrap();
        assert_eq!(greeting_due(shanghai, date, 9 * 60, noon_shanghai), Some(noon_shanghai));
        // Once the day is over there, no greeting.
        let after = Utc.with_ymd_and_hms(2027, 3, 2, 16, 30, 0).unwrap();
        assert_eq!(greeting_due(shanghai, date, 9 * 60, after), None);
        assert!(greeting_due(new_york, date, 9 * 60, after).is_some());
    }
}
