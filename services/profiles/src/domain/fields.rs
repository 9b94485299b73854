//! Validated field types of the customer archive. Each `parse` returns the
//! normalised value or the ErrorInfo-style reason and a message; an invalid
//! value cannot be constructed.

use chrono::{Datelike, NaiveDate};

/// Why a value was rejected: an UPPER_SNAKE reason and a message for humans.
pub type Rejection = (&'static str, String);

fn reject<T>(reason: &'static str, message: impl Into<String>) -> Result<T, Rejection> {
    Err((reason, message.into()))
}

/// Rejects control characters, which never belong in names or labels.
fn printable(text: &str, max_chars: usize) -> Result<String, Rejection> {
    let text = text.trim();
    if text.chars().count() > max_chars {
        return reject("TOO_LONG", format!("must be at most {max_chars} characters"));
    }
    if text.chars().any(char::is_control) {
        return reject("INVALID_CHARACTERS", "must not contain control characters");
    }
    Ok(text.to_owned())
}

/// Optional free text of at most `max_chars` characters, trimmed.
pub fn short_text(text: &str, max_chars: usize) -> Result<String, Rejection> {
    printable(text, max_chars)
}

/// A customer's display name: 1-200 characters after trimming.
pub fn display_name(text: &str) -> Result<String, Rejection> {
    let name = printable(text, 200)?;
    if name.is_empty() {
        return reject("REQUIRED", "display_name is required");
    }
    Ok(name)
}

/// An email address (RFC 5321 syntax subset used by real mailboxes), lower-cased.
pub fn email(text: &str) -> Result<String, Rejection> {
    let address = text.trim().to_lowercase();
    let invalid = || reject("INVALID_EMAIL", format!("{:?} is not a valid email address", crate::domain::mask::email(&address)));
    if address.len() > 254 {
        return invalid();
    }
    let Some((local, domain)) = address.rsplit_once('@') else { return invalid() };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    if local_ok && domain_ok { Ok(address) } else { invalid() }
}

/// A phone number in E.164 (`+` and 7-15 digits); spaces, dashes, dots and
/// parentheses are removed first.
pub fn phone(text: &str) -> Result<String, Rejection> {
    let number: String = text.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    let digits = number.strip_prefix('+').unwrap_or("");
    let valid = (7..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0');
    if valid { Ok(number) } else { reject("INVALID_PHONE", "must be an E.164 number such as +8613812341234") }
}

/// ISO 3166-1 alpha-2 codes (officially assigned).
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI \
GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI \
LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF \
PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL \
TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// An ISO 3166-1 alpha-2 country code, upper-cased.
pub fn country(text: &str) -> Result<String, Rejection> {
    let code = text.trim().to_ascii_uppercase();
    if code.len() == 2 && COUNTRIES.split(' ').any(|c| c == code) {
        Ok(code)
    } else {
        reject("INVALID_COUNTRY", "must be an ISO 3166-1 alpha-2 code such as CN or DE")
    }
}

/// An IANA time zone name such as `Asia/Shanghai`.
pub fn time_zone(text: &str) -> Result<String, Rejection> {
    let name = text.trim();
    match name.parse::<chrono_tz::Tz>() {
        Ok(tz) => Ok(tz.name().to_owned()),
        Err(_) => reject("INVALID_TIME_ZONE", "must be an IANA time zone such as Asia/Shanghai"),
    }
}

/// A BCP 47 language tag such as `zh-CN`, in its conventional case.
pub fn locale(text: &str) -> Result<String, Rejection> {
    let tag = text.trim();
    let mut parts = tag.split(['-', '_']);
    let language = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.collect();
    let valid = (2..=3).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_alphabetic())
        && tag.len() <= 35
        && rest.iter().all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if !valid {
        return reject("INVALID_LOCALE", "must be a BCP 47 language tag such as zh-CN");
    }
    let subtags = rest.iter().map(|p| if p.len() == 2 { p.to_ascii_uppercase() } else { p.to_string() });
    Ok(std::iter::once(language.to_ascii_lowercase()).chain(subtags).collect::<Vec<_>>().join("-"))
}

/// A tag: 1-64 characters after trimming.
pub fn tag(text: &str) -> Result<String, Rejection> {
    let tag = printable(text, 64)?;
    if tag.is_empty() { reject("INVALID_TAG", "tags must not be empty") } else { Ok(tag) }
}

/// A birthday: month and day required, year optional (0); never in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Birthday {
    /// Year, if known.
    pub year: Option<i32>,
    /// Month 1-12.
    pub month: u32,
    /// Day of month.
    pub day: u32,
}

impl Birthday {
    /// Validates a google.type.Date-shaped birthday as of `today` (not in the future).
    pub fn parse(year: i32, month: i32, day: i32, today: NaiveDate) -> Result<Self, Rejection> {
        let invalid = || reject("INVALID_BIRTHDAY", "must be a real date with month and day (year optional), not in the future");
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || !(0..=9999).contains(&year) {
            return invalid();
        }
        // Without a year, validate against a leap year so that 29 February is allowed.
        let check_year = if year == 0 { 2000 } else { year };
        let Some(date) = NaiveDate::from_ymd_opt(check_year, month as u32, day as u32) else { return invalid() };
        if year != 0 && (date > today || year < today.year() - 150) {
            return invalid();
        }
        Ok(Self { year: (year != 0).then_some(year), month: month as u32, day: day as u32 })
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email("  Ada.Lovelace+crm@Example.COM ").unwrap(), "ada.lovelace+crm@example.com");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "ada@@example.com",
            ".ada@example.com",
            "a..b@example.com",
            "ada@-x.com",
            "ada@example.c0m",
            "a b@example.com",
        ] {
            assert_eq!(email(bad).unwrap_err().0, "INVALID_EMAIL", "{bad}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn phones_must_be_e164() {
        assert_eq!(phone("+86 138-1234-1234").unwrap(), "+8613812341234");
        for bad in ["13812341234", "+0123456789", "+12", "+1234567890123456", "+86abc1234567"] {
            assert_eq!(phone(bad).unwrap_err().0, "INVALID_PHONE", "{bad}");
        }
    }

    #[test]
    fn countries_are_iso_alpha2() {
        assert_eq!(COUNTRIES.split(' ').count(), 249);
        assert_eq!(country("cn").unwrap(), "CN");
        assert!(country("XX").is_err() && country("CHN").is_err());
    }

    #[test]
    fn time_zones_and_locales() {
        assert_eq!(time_zone("Asia/Shanghai").unwrap(), "Asia/Shanghai");
        assert!(time_zone("Mars/Olympus").is_err());
        assert_eq!(locale("zh_cn").unwrap(), "zh-CN");
        assert_eq!(locale("en").unwrap(), "en");
        assert!(locale("english!").is_err() && locale("e").is_err());
    }

    #[test]
    fn names_and_tags() {
        assert_eq!(display_name("  Ada  ").unwrap(), "Ada");
        assert_eq!(display_name(" ").unwrap_err().0, "REQUIRED");
        assert_eq!(display_name(&"x".repeat(201)).unwrap_err().0, "TOO_LONG");
        assert_eq!(display_name("a\u{0}b").unwrap_err().0, "INVALID_CHARACTERS");
        assert!(tag("").is_err() && tag(&"t".repeat(65)).is_err());
    }

    fn today() -> NaiveDate {
        Utc::now().date_naive()
    }

    #[test]
    fn birthdays() {
        assert_eq!(Birthday::parse(0, 2, 29, today()).unwrap(), Birthday { year: None, month: 2, day: 29 });
        assert!(Birthday::parse(2023, 2, 29, today()).is_err());
        assert!(Birthday::parse(1990, 13, 1, today()).is_err());
        assert!(Birthday::parse(1990, 4, 31, today()).is_err());
        assert!(Birthday::parse(Utc::now().year() + 1, 1, 1, today()).is_err());
        assert!(Birthday::parse(1990, 0, 0, today()).is_err());
    }
}
