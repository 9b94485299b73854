//! The tenant's contact rules for marketing — frequency caps and quiet hours
//! — read in the recipient's time zone (else the tenant's). Pure: the caller
//! counts what was sent and supplies the clock.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::channel::Channel;

/// A cap on marketing messages per customer and channel; 0: no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub channel: Channel,
    pub per_day: u32,
    pub per_week: u32,
}

/// A tenant's contact rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactRules {
    /// For customers without a time zone.
    pub time_zone: Tz,
    /// Local start and end of the quiet hours; start after end spans midnight.
    pub quiet_hours: Option<(NaiveTime, NaiveTime)>,
    pub caps: Vec<Cap>,
}

impl Default for ContactRules {
    fn default() -> Self {
        Self { time_zone: Tz::UTC, quiet_hours: None, caps: Vec::new() }
    }
}

impl ContactRules {
    /// The zone a customer's local time is read in: theirs when valid, else the tenant's.
    pub fn zone_of(&self, customer_time_zone: &str) -> Tz {
        customer_time_zone.parse().unwrap_or(self.time_zone)
    }

    /// The cap on `channel`, if any.
    pub fn cap(&self, channel: Channel) -> Option<Cap> {
        self.caps.iter().copied().find(|c| c.channel == channel && (c.per_day > 0 || c.per_week > 0))
    }

    /// When the quiet hours around `now` end in `zone`, if `now` is inside them.
    pub fn quiet_until(&self, zone: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let (start, end) = self.quiet_hours.filter(|(s, e)| s != e)?;
        let local = now.with_timezone(&zone).naive_local();
        let (date, time) = (local.date(), local.time());
        let end_on = |day: NaiveDate| to_utc(zone, day.and_time(end));
        if start < end {
            (start <= time && time < end).then(|| end_on(date))
        } else if time >= start {
            Some(end_on(date.succ_opt().unwrap_or(date)))
        } else if time < end {
            Some(end_on(date))
        } else {
            None
        }
    }
}

/// The instant of local `at` in `zone`; in a DST gap, the first instant after it.
pub fn to_utc(zone: Tz, at: NaiveDateTime) -> DateTime<Utc> {
    let mut probe = at;
    for _ in 0..4 {
        if let Some(t) = zone.from_local_datetime(&probe).earliest() {
            return t.with_timezone(&Utc);
        }
        probe += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&at)
}

/// The first instant at or after `after` when it is `minute_of_day` (0-1439)
/// in `zone` — a campaign's "send at 09:30 local". A local time that a DST
/// change skips comes at the first instant after the gap.
pub fn next_local_time(zone: Tz, minute_of_day: u32, after: DateTime<Utc>) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(minute_of_day / 60 % 24, minute_of_day % 60, 0).unwrap_or(NaiveTime::MIN);
    let today = after.with_timezone(&zone).date_naive();
    let candidate = to_utc(zone, today.and_time(time));
    if candidate >= after { candidate } else { to_utc(zone, today.succ_opt().unwrap_or(today).and_time(time)) }
}

/// When the recipient's local day and week (from Monday) containing `now` began.
pub fn counting_windows(zone: Tz, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let today = now.with_timezone(&zone).date_naive();
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    (to_utc(zone, today.and_time(NaiveTime::MIN)), to_utc(zone, monday.and_time(NaiveTime::MIN)))
}

/// Whether one more message would break `cap`, given what was sent today and this week.
pub fn over_cap(cap: Cap, sent_today: i64, sent_this_week: i64) -> bool {
    (cap.per_day > 0 && sent_today >= i64::from(cap.per_day)) || (cap.per_week > 0 && sent_this_week >= i64::from(cap.per_week))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn at(zone: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        zone.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap().with_timezone(&Utc)
    }

    const SHANGHAI: Tz = chrono_tz::Asia::Shanghai;

    #[test]
    fn overnight_quiet_hours_end_the_next_morning_in_the_recipients_zone() {
        let rules = ContactRules { quiet_hours: Some((hm(21, 0), hm(8, 0))), ..ContactRules::default() };
        assert_eq!(rules.quiet_until(SHANGHAI, at(SHANGHAI, 2026, 11, 26, 22, 30)), Some(at(SHANGHAI, 2026, 11, 27, 8, 0)));
        assert_eq!(rules.quiet_until(SHANGHAI, at(SHANGHAI, 2026, 11, 26, 6, 0)), Some(at(SHANGHAI, 2026, 11, 26, 8, 0)));
        assert_eq!(rules.quiet_until(SHANGHAI, at(SHANGHAI, 2026, 11, 26, 12, 0)), None);
        assert_eq!(rules.quiet_until(SHANGHAI, at(SHANGHAI, 2026, 11, 26, 8, 0)), None, "the end is not quiet");
    }

    #[test]
    fn daytime_quiet_hours_and_none() {
        let rules = ContactRules { quiet_hours: Some((hm(12, 0), hm(14, 0))), ..ContactRules::default() };
        assert_eq!(rules.quiet_until(Tz::UTC, at(Tz::UTC, 2026, 1, 1, 13, 0)), Some(at(Tz::UTC, 2026, 1, 1, 14, 0)));
        assert_eq!(ContactRules::default().quiet_until(Tz::UTC, Utc::now()), None);
    }

    #[test]
    fn a_quiet_end_inside_a_dst_gap_moves_past_it() {
        // 2026-03-08 02:00-03:00 does not exist in New York.
        let ny = chrono_tz::America::New_York;
        let rules = ContactRules { quiet_hours: Some((hm(1, 0), hm(2, 30))), ..ContactRules::default() };
        let until = rules.quiet_until(ny, at(ny, 2026, 3, 8, 1, 30)).unwrap();
        assert_eq!(until, at(ny, 2026, 3, 8, 3, 0));
    }

    #[test]
    fn counting_windows_follow_the_local_calendar() {
        // Thursday 2026-11-26 01:30 in Shanghai is still Wednesday in UTC.
        let now = at(SHANGHAI, 2026, 11, 26, 1, 30);
        let (day, week) = counting_windows(SHANGHAI, now);
        assert_eq!(day, at(SHANGHAI, 2026, 11, 26, 0, 0));
        assert_eq!(week, at(SHANGHAI, 2026, 11, 23, 0, 0), "Monday");
    }

    #[test]
    fn caps_count_per_day_and_week() {
        let cap = Cap { channel: Channel::Email, per_day: 1, per_week: 3 };
        assert!(!over_cap(cap, 0, 2));
        assert!(over_cap(cap, 1, 1));
        assert!(over_cap(cap, 0, 3));
        assert!(!over_cap(Cap { per_day: 0, per_week: 0, ..cap }, 100, 100));
    }

    #[test]
    fn an_unknown_customer_zone_falls_back_to_the_tenants() {
        let rules = ContactRules { time_zone: SHANGHAI, ..ContactRules::default() };
        assert_eq!(rules.zone_of("Europe/Berlin"), chrono_tz::Europe::Berlin);
        assert_eq!(rules.zone_of(""), SHANGHAI);
        assert_eq!(rules.zone_of("Mars/Olympus"), SHANGHAI);
    }

    proptest! {
        #[test]
        fn waiting_out_quiet_hours_lands_outside_them(start in 0u32..24, end in 0u32..24, minute in 0i64..(14 * 24 * 60)) {
            let rules = ContactRules { quiet_hours: Some((hm(start, 0), hm(end, 0))), ..ContactRules::default() };
            let now = at(SHANGHAI, 2026, 11, 1, 0, 0) + Duration::minutes(minute);
            if let Some(until) = rules.quiet_until(SHANGHAI, now) {
                prop_assert!(until > now);
                prop_assert!(until - now <= Duration::hours(24));
                prop_assert_eq!(rules.quiet_until(SHANGHAI, until), None);
            }
        }
    }

    #[test]
    fn a_local_send_time_comes_today_if_still_ahead_else_tomorrow() {
        let shanghai: Tz = "Asia/Shanghai".parse().unwrap();
        let new_york: Tz = "America/New_York".parse().unwrap();
        let after = at(Tz::UTC, 2026, 11, 26, 0, 0); // 08:00 in Shanghai, 19:00 the day before in New York
        assert_eq!(next_local_time(shanghai, 9 * 60 + 30, after), at(shanghai, 2026, 11, 26, 9, 30));
        assert_eq!(next_local_time(shanghai, 7 * 60, after), at(shanghai, 2026, 11, 27, 7, 0));
        assert_eq!(next_local_time(new_york, 9 * 60 + 30, after), at(new_york, 2026, 11, 26, 9, 30));
        assert_eq!(next_local_time(shanghai, 8 * 60, after), after, "exactly now is now");
    }

    #[test]
    fn a_local_send_time_in_a_dst_gap_comes_right_after_it() {
        let new_york: Tz = "America/New_York".parse().unwrap();
        // 2026-03-08: clocks go from 02:00 to 03:00 in New York.
        let after = at(Tz::UTC, 2026, 3, 8, 5, 0); // 00:00 local
        assert_eq!(next_local_time(new_york, 2 * 60 + 30, after), at(new_york, 2026, 3, 8, 3, 0));
    }
}
