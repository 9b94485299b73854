//! The two astronomical events the Chinese calendar is built from — new
//! moons and the Sun's longitude (solar terms) — after Jean Meeus,
//! *Astronomical Algorithms* (2nd ed.): chapter 49 for the moon's phases
//! (a few seconds of error over centuries), chapter 25 for the Sun's
//! apparent longitude (≈ 0.01°, a quarter of an hour in time), and the
//! Espenak–Meeus polynomials for ΔT (dynamical minus universal time).
//!
//! Times are Julian Days: [`julian_day`] converts from the Unix epoch.

use chrono::{DateTime, TimeZone, Utc};

/// The Julian Day of the Unix epoch (1970-01-01 00:00 UT).
const UNIX_EPOCH_JD: f64 = 2_440_587.5;

/// Degrees to radians.
fn rad(degrees: f64) -> f64 {
    degrees.to_radians()
}

/// The Julian Day (UT) of `time`.
pub fn julian_day(time: DateTime<Utc>) -> f64 {
    UNIX_EPOCH_JD + time.timestamp_millis() as f64 / 86_400_000.0
}

/// The UTC instant of Julian Day (UT) `jd`.
pub fn from_julian_day(jd: f64) -> DateTime<Utc> {
    let millis = ((jd - UNIX_EPOCH_JD) * 86_400_000.0).round() as i64;
    Utc.timestamp_millis_opt(millis).single().expect("within chrono's range")
}

/// ΔT = TD − UT in seconds for a (fractional) year (Espenak & Meeus,
/// NASA's five-millennium canon, from 1900; the long-term parabola outside 1900–2150).
pub fn delta_t_seconds(year: f64) -> f64 {
    let t = year - 2000.0;
    match year {
        y if (1900.0..1920.0).contains(&y) => {
            let t = y - 1900.0;
            -2.79 + 1.494119 * t - 0.0598939 * t.powi(2) + 0.0061966 * t.powi(3) - 0.000197 * t.powi(4)
        }
        y if (1920.0..1941.0).contains(&y) => {
            let t = y - 1920.0;
            21.20 + 0.84493 * t - 0.076100 * t.powi(2) + 0.0020936 * t.powi(3)
        }
        y if (1941.0..1961.0).contains(&y) => {
            let t = y - 1950.0;
            29.07 + 0.407 * t - t.powi(2) / 233.0 + t.powi(3) / 2547.0
        }
        y if (1961.0..1986.0).contains(&y) => {
            let t = y - 1975.0;
            45.45 + 1.067 * t - t.powi(2) / 260.0 - t.powi(3) / 718.0
        }
        y if (1986.0..2005.0).contains(&y) => {
            63.86 + 0.3345 * t - 0.060374 * t.powi(2) + 0.0017275 * t.powi(3) + 0.000651814 * t.powi(4) + 0.00002373599 * t.powi(5)
        }
        y if (2005.0..2050.0).contains(&y) => 62.92 + 0.32217 * t + 0.005589 * t.powi(2),
        y if (2050.0..2150.0).contains(&y) => -20.0 + 32.0 * ((y - 1820.0) / 100.0).powi(2) - 0.5628 * (2150.0 - y),
        y => -20.0 + 32.0 * ((y - 1820.0) / 100.0).powi(2),
    }
}

/// Julian Ephemeris Day (TD) to Julian Day (UT).
fn to_universal(jde: f64) -> f64 {
    let year = 2000.0 + (jde - 2_451_545.0) / 365.25;
    jde - delta_t_seconds(year) / 86_400.0
}

/// The new moon of lunation `k` (k = 0: 2000-01-06; one per synodic month,
/// negative before), as a Julian Day (UT).
pub fn new_moon(k: i64) -> f64 {
    let k = k as f64;
    let t = k / 1236.85;
    let (t2, t3, t4) = (t * t, t * t * t, t * t * t * t);
    let mut jde = 2_451_550.097_66 + 29.530_588_861 * k + 0.000_154_37 * t2 - 0.000_000_150 * t3 + 0.000_000_000_73 * t4;
    let e = 1.0 - 0.002_516 * t - 0.000_007_4 * t2;
    let m = rad(2.5534 + 29.105_356_70 * k - 0.000_001_4 * t2 - 0.000_000_11 * t3);
    let mp = rad(201.5643 + 385.816_935_28 * k + 0.010_758_2 * t2 + 0.000_012_38 * t3 - 0.000_000_058 * t4);
    let f = rad(160.7108 + 390.670_502_84 * k - 0.001_611_8 * t2 - 0.000_002_27 * t3 + 0.000_000_011 * t4);
    let omega = rad(124.7746 - 1.563_755_88 * k + 0.002_067_2 * t2 + 0.000_002_15 * t3);
    // Periodic terms of the new moon (Meeus table 49.A).
    jde += -0.407_20 * mp.sin()
        + 0.172_41 * e * m.sin()
        + 0.016_08 * (2.0 * mp).sin()
        + 0.010_39 * (2.0 * f).sin()
        + 0.007_39 * e * (mp - m).sin()
        - 0.005_14 * e * (mp + m).sin()
        + 0.002_08 * e * e * (2.0 * m).sin()
        - 0.001_11 * (mp - 2.0 * f).sin()
        - 0.000_57 * (mp + 2.0 * f).sin()
        + 0.000_56 * e * (2.0 * mp + m).sin()
        - 0.000_42 * (3.0 * mp).sin()
        + 0.000_42 * e * (m + 2.0 * f).sin()
        + 0.000_38 * e * (m - 2.0 * f).sin()
        - 0.000_24 * e * (2.0 * mp - m).sin()
        - 0.000_17 * omega.sin()
        - 0.000_07 * (mp + 2.0 * m).sin()
        + 0.000_04 * (2.0 * mp - 2.0 * f).sin()
        + 0.000_04 * (3.0 * m).sin()
        + 0.000_03 * (mp + m - 2.0 * f).sin()
        + 0.000_03 * (2.0 * mp + 2.0 * f).sin()
        - 0.000_03 * (mp + m + 2.0 * f).sin()
        + 0.000_03 * (mp - m + 2.0 * f).sin()
        - 0.000_02 * (mp - m - 2.0 * f).sin()
        - 0.000_02 * (3.0 * mp + m).sin()
        + 0.000_02 * (4.0 * mp).sin();
    // Planetary arguments (Meeus, after table 49.A).
    const PLANETARY: [(f64, f64, f64); 14] = [
        (299.77, 0.107_408, 0.000_325),
        (251.88, 0.016_321, 0.000_165),
        (251.83, 26.651_886, 0.000_164),
        (349.42, 36.412_478, 0.000_126),
        (84.66, 18.206_239, 0.000_110),
        (141.74, 53.303_771, 0.000_062),
        (207.14, 2.453_732, 0.000_060),
        (154.84, 7.306_860, 0.000_056),
        (34.52, 27.261_239, 0.000_047),
        (207.19, 0.121_824, 0.000_042),
        (291.34, 1.844_379, 0.000_040),
        (161.72, 24.198_154, 0.000_037),
        (239.56, 25.513_099, 0.000_035),
        (331.55, 3.592_518, 0.000_023),
    ];
    for (i, (base, rate, amplitude)) in PLANETARY.iter().enumerate() {
        let mut argument = base + rate * k;
        if i == 0 {
            argument -= 0.009_173 * t2;
        }
        jde += amplitude * rad(argument).sin();
    }
    to_universal(jde)
}

/// The lunation number whose new moon is nearest to Julian Day `jd`.
pub fn lunation_near(jd: f64) -> i64 {
    ((jd - 2_451_550.097_66) / 29.530_588_861).round() as i64
}

/// The Sun's apparent geocentric longitude in degrees (0..360) at Julian Ephemeris Day `jde`.
fn solar_longitude(jde: f64) -> f64 {
    let t = (jde - 2_451_545.0) / 36_525.0;
    let l0 = 280.466_46 + 36_000.769_83 * t + 0.000_303_2 * t * t;
    let m = rad(357.529_11 + 35_999.050_29 * t - 0.000_153_7 * t * t);
    let c = (1.914_602 - 0.004_817 * t - 0.000_014 * t * t) * m.sin()
        + (0.019_993 - 0.000_101 * t) * (2.0 * m).sin()
        + 0.000_289 * (3.0 * m).sin();
    let omega = rad(125.04 - 1_934.136 * t);
    (l0 + c - 0.005_69 - 0.004_78 * omega.sin()).rem_euclid(360.0)
}

/// The Sun's apparent longitude in degrees at Julian Day (UT) `jd`.
pub fn sun_longitude(jd: f64) -> f64 {
    let year = 2000.0 + (jd - 2_451_545.0) / 365.25;
    solar_longitude(jd + delta_t_seconds(year) / 86_400.0)
}

/// When the Sun's apparent longitude reaches `degrees` (a solar term: 0° the
/// March equinox, 270° the December solstice), searching from Julian Day
/// (UT) `after` forwards within a year; a Julian Day (UT).
pub fn sun_reaches(degrees: f64, after: f64) -> f64 {
    // The Sun moves ~0.9856° a day: start from the linear estimate, then Newton.
    let ahead = (degrees - sun_longitude(after)).rem_euclid(360.0);
    let mut jd = after + ahead / 0.985_647_36;
    for _ in 0..20 {
        let error = (degrees - sun_longitude(jd) + 540.0).rem_euclid(360.0) - 180.0;
        jd += error / 0.985_647_36;
        if error.abs() < 1e-7 {
            break;
        }
    }
    jd
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn minutes_between(a: f64, b: DateTime<Utc>) -> f64 {
        (a - julian_day(b)).abs() * 1440.0
    }

    #[test]
    fn new_moons_match_published_times() {
        // Meeus' worked example 49.a: the new moon of 1977 February 18, 3h37m40s TD (ΔT ≈ 48 s).
        let jd = new_moon(-283);
        assert!(minutes_between(jd, Utc.with_ymd_and_hms(1977, 2, 18, 3, 36, 52).unwrap()) < 1.0, "{}", from_julian_day(jd));
        // 2024-01-11 11:57 UTC (almanac).
        let t = Utc.with_ymd_and_hms(2024, 1, 11, 11, 57, 0).unwrap();
        assert!(minutes_between(new_moon(lunation_near(julian_day(t))), t) < 2.0);
    }

    #[test]
    fn solstices_and_equinoxes_match_published_times() {
        // 2024: March equinox 03-20 03:06 UTC, December solstice 12-21 09:20 UTC.
        let from = julian_day(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap());
        assert!(minutes_between(sun_reaches(0.0, from), Utc.with_ymd_and_hms(2024, 3, 20, 3, 6, 0).unwrap()) < 20.0);
        assert!(minutes_between(sun_reaches(270.0, from), Utc.with_ymd_and_hms(2024, 12, 21, 9, 20, 0).unwrap()) < 20.0);
    }

    #[test]
    fn julian_days_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        assert_eq!(from_julian_day(julian_day(t)), t);
        assert!((julian_day(Utc.with_ymd_and_hms(2000, 1, 1, 12, 0, 0).unwrap()) - 2_451_545.0).abs() < 1e-9);
    }
}
