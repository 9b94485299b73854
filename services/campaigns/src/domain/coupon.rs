//! Coupons: their codes (random, without look-alike characters, read back
//! forgivingly), the limits of what may be issued, and where one stands.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;

/// The characters of a code: no 0/O, 1/I/L, so a code read aloud or copied by hand survives.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in a code: 31^12 ≈ 7.9e17 codes, so guessing one is hopeless.
pub const CODE_LEN: usize = 12;
/// The longest a coupon stays valid.
pub const MAX_VALID_DAYS: i64 = 3 * 365;

/// A fresh random code.
pub fn new_code(rng: &mut impl Rng) -> String {
    (0..CODE_LEN).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect()
}

/// A code as typed (either case, spaces and hyphens anywhere) in its stored form.
pub fn normalize(code: &str) -> String {
    code.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_uppercase).collect()
}

/// Where a coupon stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Issued,
    Redeemed,
    Expired,
}

/// A coupon's state at `now`.
pub fn state(redeem_time: Option<DateTime<Utc>>, expire_time: DateTime<Utc>, now: DateTime<Utc>) -> State {
    match redeem_time {
        Some(_) => State::Redeemed,
        None if now >= expire_time => State::Expired,
        None => State::Issued,
    }
}

/// Why a coupon of this validity cannot be issued: (field, reason, message).
pub fn check_validity(
    valid_from: DateTime<Utc>,
    expire_time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(&'static str, &'static str, String)> {
    if expire_time <= now || expire_time - valid_from < Duration::minutes(1) {
        return Some((
            "coupon.expire_time",
            "INVALID_EXPIRE_TIME",
            "a coupon expires in the future, at least a minute after it becomes valid".to_owned(),
        ));
    }
    if expire_time - valid_from > Duration::days(MAX_VALID_DAYS) {
        return Some(("coupon.expire_time", "INVALID_EXPIRE_TIME", format!("a coupon is valid for at most {MAX_VALID_DAYS} days")));
    }
    None
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn codes_use_the_unambiguous_alphabet_and_are_read_back_forgivingly() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let code = new_code(&mut rng);
        assert_eq!(code.len(), CODE_LEN);
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
        assert!(!code.contains(['0', 'O', '1', 'I', 'L']));
        assert_ne!(new_code(&mut rng), code);
        assert_eq!(normalize(" abcd-efgh 2345 "), "ABCDEFGH2345");
    }

    #[test]
    fn a_coupon_is_issued_until_used_or_expired() {
        let t = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(state(None, t + Duration::days(1), t), State::Issued);
        assert_eq!(state(None, t, t), State::Expired);
        assert_eq!(state(Some(t), t - Duration::days(1), t), State::Redeemed, "used counts over expired");
        assert!(check_validity(t, t + Duration::days(30), t).is_none());
        assert!(check_validity(t, t - Duration::days(1), t).is_some());
        assert!(check_validity(t, t + Duration::days(MAX_VALID_DAYS + 1), t).is_some());
    }
}
