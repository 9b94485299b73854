//! `google.type.Money` as an exact whole number of an ISO 4217 currency's
//! minor units (cents, fils, yen), the form amounts are stored and summed
//! in: never floating point, and never finer than the currency allows.

use crm_proto::google::r#type::Money;
use iso_currency::Currency;

/// Nanos in one whole unit.
const NANOS_PER_UNIT: i64 = 1_000_000_000;

/// An amount in minor units of a currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinorAmount {
    /// The ISO 4217 code, e.g. `USD`.
    pub currency: String,
    /// Whole minor units, e.g. 1999 for USD 19.99.
    pub minor: i64,
}

/// Why an amount was refused: an UPPER_SNAKE reason and a message.
pub type Refusal = (&'static str, String);

/// The number of decimal places of `code`, for an ISO 4217 currency with
/// minor units (funds, metals and testing codes have none and are refused).
pub fn exponent(code: &str) -> Option<u32> {
    Currency::from_code(code).and_then(Currency::exponent).map(u32::from)
}

/// `money` in minor units. An empty currency code means `default_currency`
/// when one is given (e.g. a line item in its transaction's currency).
pub fn to_minor(money: &Money, default_currency: Option<&str>) -> Result<MinorAmount, Refusal> {
    let code = match (money.currency_code.as_str(), default_currency) {
        ("", Some(default)) => default,
        (code, _) => code,
    };
    let Some(exponent) = exponent(code) else {
        return Err(("INVALID_CURRENCY", "an ISO 4217 currency code with minor units, e.g. USD, EUR, CNY, JPY".to_owned()));
    };
    let nanos = i64::from(money.nanos);
    let signs_agree = (money.units >= 0 && nanos >= 0) || (money.units <= 0 && nanos <= 0);
    if nanos.abs() >= NANOS_PER_UNIT || !signs_agree {
        return Err(("INVALID_AMOUNT", "nanos must be within ±999,999,999 and have the sign of units".to_owned()));
    }
    let nanos_per_minor = NANOS_PER_UNIT / 10_i64.pow(exponent);
    if nanos % nanos_per_minor != 0 {
        return Err(("TOO_PRECISE", format!("{code} has {exponent} decimal places; finer amounts are refused, not rounded")));
    }
    let minor = money
        .units
        .checked_mul(10_i64.pow(exponent))
        .and_then(|whole| whole.checked_add(nanos / nanos_per_minor))
        .ok_or_else(|| ("OUT_OF_RANGE", "the amount is too large".to_owned()))?;
    Ok(MinorAmount { currency: code.to_owned(), minor })
}

/// `minor` units of `currency` as `google.type.Money`.
pub fn from_minor(currency: &str, minor: i64) -> Money {
    // Stored currencies were accepted by `to_minor`; 2 places is a safe reading otherwise.
    let scale = 10_i64.pow(exponent(currency).unwrap_or(2));
    let nanos = (minor % scale) * (NANOS_PER_UNIT / scale);
    Money { currency_code: currency.to_owned(), units: minor / scale, nanos: i32::try_from(nanos).unwrap_or_default() }
}

/// `total / count` rounded half away from zero to a whole minor unit; 0 when `count` is 0.
pub fn average(total: i64, count: i64) -> i64 {
    if count == 0 {
        return 0;
    }
    let (total, count) = (i128::from(total), i128::from(count));
    let rounded = (2 * total + total.signum() * count) / (2 * count);
    i64::try_from(rounded).unwrap_or(if total < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(code: &str, units: i64, nanos: i32) -> Money {
        Money { currency_code: code.to_owned(), units, nanos }
    }

    #[test]
    fn amounts_become_exact_minor_units() {
        assert_eq!(to_minor(&money("USD", 19, 990_000_000), None), Ok(MinorAmount { currency: "USD".into(), minor: 1999 }));
        assert_eq!(to_minor(&money("JPY", 1500, 0), None).map(|a| a.minor), Ok(1500));
        assert_eq!(to_minor(&money("KWD", 1, 5_000_000), None).map(|a| a.minor), Ok(1005));
        assert_eq!(to_minor(&money("", 2, 0), Some("EUR")), Ok(MinorAmount { currency: "EUR".into(), minor: 200 }));
        assert_eq!(to_minor(&money("USD", -1, -750_000_000), None).map(|a| a.minor), Ok(-175));
    }

    #[test]
    fn bad_amounts_are_refused_with_their_reason() {
        let reason = |m: Money| to_minor(&m, None).unwrap_err().0;
        assert_eq!(reason(money("USD", 1, 1_000_000)), "TOO_PRECISE");
        assert_eq!(reason(money("JPY", 1, 500_000_000)), "TOO_PRECISE");
        assert_eq!(reason(money("usd", 1, 0)), "INVALID_CURRENCY");
        assert_eq!(reason(money("XAU", 1, 0)), "INVALID_CURRENCY");
        assert_eq!(reason(money("", 1, 0)), "INVALID_CURRENCY");
        assert_eq!(reason(money("USD", 1, -10_000_000)), "INVALID_AMOUNT");
        assert_eq!(reason(money("USD", 0, 1_000_000_000)), "INVALID_AMOUNT");
        assert_eq!(reason(money("USD", i64::MAX, 0)), "OUT_OF_RANGE");
    }

    #[test]
    fn minor_units_go_back_to_money() {
        assert_eq!(from_minor("USD", 1999), money("USD", 19, 990_000_000));
        assert_eq!(from_minor("KWD", 1005), money("KWD", 1, 5_000_000));
        assert_eq!(from_minor("USD", -175), money("USD", -1, -750_000_000));
        assert_eq!(from_minor("JPY", 42), money("JPY", 42, 0));
    }

    #[test]
    fn averages_round_half_away_from_zero() {
        assert_eq!(average(1000, 3), 333);
        assert_eq!(average(1001, 2), 501);
        assert_eq!(average(-1001, 2), -501);
        assert_eq!(average(5, 0), 0);
    }
}
