//! ListCustomers specifics (the filterable fields are `store::customer_filter`): `order_by` parsing and the
//! sort key carried in page tokens. The key's shape depends on the order the
//! caller chose, so a token carries it untyped ([`TokenKey`]) and it is typed
//! against that order ([`key_from_token`]), which the token's signed query
//! fingerprint guarantees is the order it was made for.

use chrono::{DateTime, SecondsFormat, Utc};
use crm_kit::{Error, pagination::PageKey};
use serde_json::Value;

pub use crate::store::customer_filter::CUSTOMER_FILTER;
use crate::store::{CustomerRow, KeyValue, SortKey};

/// Parses AIP-132 `order_by`: up to three distinct keys, each optionally `desc`/`asc`.
/// Empty means `create_time`.
pub fn parse_order_by(order_by: &str) -> Result<Vec<(SortKey, bool)>, Error> {
    let invalid = |message: String| Error::invalid("order_by", "INVALID_ORDER_BY", message);
    if order_by.trim().is_empty() {
        return Ok(vec![(SortKey::CreateTime, false)]);
    }
    let mut keys = Vec::new();
    for part in order_by.split(',') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let (name, desc) = match words.as_slice() {
            [name] => (*name, false),
            [name, dir] if dir.eq_ignore_ascii_case("desc") => (*name, true),
            [name, dir] if dir.eq_ignore_ascii_case("asc") => (*name, false),
            _ => return Err(invalid(format!("{:?} is not `field` or `field desc`", part.trim()))),
        };
        let key = match name {
            "display_name" => SortKey::DisplayName,
            "create_time" => SortKey::CreateTime,
            "update_time" => SortKey::UpdateTime,
            "recency_score" => SortKey::RecencyScore,
            "frequency_score" => SortKey::FrequencyScore,
            "monetary_score" => SortKey::MonetaryScore,
            "value_tier" => SortKey::ValueTier,
            "expected_value" => SortKey::ExpectedValue,
            "probability_alive" => SortKey::ProbabilityAlive,
            other => {
                return Err(invalid(format!(
                    "cannot order by {other:?}; use display_name, create_time, update_time, recency_score, frequency_score, monetary_score, value_tier, expected_value or probability_alive"
                )));
            }
        };
        if keys.iter().any(|(k, _)| *k == key) {
            return Err(invalid(format!("{name:?} is listed twice")));
        }
        keys.push((key, desc));
    }
    Ok(keys)
}

/// A customer's sort key as a page token carries it: the values of
/// [`key_of`], typed again by [`key_from_token`].
pub struct TokenKey(pub Vec<Value>);

impl PageKey for TokenKey {
    fn to_values(&self) -> Vec<Value> {
        self.0.clone()
    }

    fn from_values(values: &[Value]) -> Option<Self> {
        Some(Self(values.to_vec()))
    }
}

/// Canonical text of an order, for the page-token fingerprint.
pub fn order_fingerprint(order: &[(SortKey, bool)]) -> String {
    order.iter().map(|(k, d)| format!("{k:?}:{d}")).collect::<Vec<_>>().join(",")
}

/// The sort key of `row` as page-token JSON (id last).
pub fn key_of(row: &CustomerRow, order: &[(SortKey, bool)]) -> Vec<Value> {
    order
        .iter()
        .map(|(k, _)| match k.value_of(row) {
            KeyValue::Text(t) => Value::String(t),
            KeyValue::Time(t) => Value::String(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
            KeyValue::Int(n) => Value::from(n),
            KeyValue::Id(id) => Value::String(id.to_string()),
        })
        .chain([Value::String(row.id.to_string())])
        .collect()
}

/// The typed sort key from page-token JSON.
pub fn key_from_token(values: &[Value], order: &[(SortKey, bool)]) -> Result<Vec<KeyValue>, Error> {
    let invalid = || Error::invalid("page_token", "INVALID_PAGE_TOKEN", "the page token is malformed or was altered");
    if values.len() != order.len() + 1 {
        return Err(invalid());
    }
    let text = |v: &Value| v.as_str().map(str::to_owned).ok_or_else(invalid);
    let mut key = Vec::with_capacity(values.len());
    for ((k, _), v) in order.iter().zip(values) {
        key.push(match k {
            SortKey::DisplayName => KeyValue::Text(text(v)?),
            SortKey::CreateTime | SortKey::UpdateTime => {
                KeyValue::Time(DateTime::parse_from_rfc3339(&text(v)?).map_err(|_| invalid())?.with_timezone(&Utc))
            }
            SortKey::RecencyScore
            | SortKey::FrequencyScore
            | SortKey::MonetaryScore
            | SortKey::ValueTier
            | SortKey::ExpectedValue
            | SortKey::ProbabilityAlive => KeyValue::Int(v.as_i64().ok_or_else(invalid)?),
        });
    }
    let id = text(values.last().ok_or_else(invalid)?)?.parse().map_err(|_| invalid())?;
    key.push(KeyValue::Id(id));
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_follows_aip_132() {
        assert_eq!(parse_order_by("").unwrap(), vec![(SortKey::CreateTime, false)]);
        assert_eq!(
            parse_order_by("display_name, update_time desc").unwrap(),
            vec![(SortKey::DisplayName, false), (SortKey::UpdateTime, true)]
        );
        for bad in ["email", "display_name up", "create_time,create_time desc", "a b c"] {
            assert_eq!(parse_order_by(bad).unwrap_err().reason(), "INVALID_ORDER_BY", "{bad}");
        }
    }

    #[test]
    fn filter_schema_accepts_the_documented_fields() {
        for ok in [
            r#"display_name = "Ada" AND email = "ADA@example.com""#,
            "category = VIP OR category = CUSTOMER_CATEGORY_NEW",
            r#"tags:gold AND city = "Berlin" AND country = "DE" AND company:acme AND industry = retail"#,
            r#"create_time > "2026-01-01T00:00:00Z" AND birthday.month = 11 AND birthday.day = 22"#,
            "source_channel = WEB_FORM AND owner = agent-7 AND kind = ORGANIZATION AND phone = \"+8613812341234\"",
        ] {
            assert!(CUSTOMER_FILTER.check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn token_keys_are_checked() {
        let order = vec![(SortKey::DisplayName, false)];
        assert!(key_from_token(&[Value::String("a".into())], &order).is_err());
        assert!(key_from_token(&[Value::from(1), Value::String(uuid::Uuid::nil().to_string())], &order).is_err());
        assert_eq!(
            key_from_token(&[Value::String("a".into()), Value::String(uuid::Uuid::nil().to_string())], &order).unwrap(),
            vec![KeyValue::Text("a".into()), KeyValue::Id(uuid::Uuid::nil())]
        );
    }
}
