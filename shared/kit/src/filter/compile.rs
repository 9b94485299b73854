//! Type-checks a parsed filter against a whitelist of fields and emits
//! parameterised SQL.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use crate::error::Error;

use super::parse::{Comparator, Expr, parse};

/// How a filterable field is stored and compared.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    /// Text. `=`/`!=`/`<`.. compare exactly; `:` is a case-insensitive
    /// substring match; an unquoted trailing `*` on `=` is a case-insensitive prefix match.
    Text,
    /// `text[]`: `=` or `:` test membership, `!=` its absence.
    TextArray,
    /// A JSONB array of objects: `=`/`:` match an element whose `key` equals
    /// the literal (lower-cased first when `lowercase`), served by a GIN index.
    JsonArrayKey {
        /// Object key compared.
        key: &'static str,
        /// Lower-case the literal (for values stored lower-cased, like emails).
        lowercase: bool,
    },
    /// Enum stored as its short name; the literal may carry `prefix` (`VIP` or `CUSTOMER_CATEGORY_VIP`).
    Enum {
        /// Accepted short names.
        values: &'static [&'static str],
        /// Proto enum value prefix, e.g. `CUSTOMER_CATEGORY_`.
        prefix: &'static str,
    },
    /// RFC 3339 timestamp.
    Timestamp,
    /// Integer within bounds.
    Integer {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A real number within bounds (`double precision`).
    Number {
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// `true` / `false`.
    Bool,
    /// A resource's own name, `<collection><uuid>` (e.g. `customers/…`),
    /// compared with `=` and `!=` against its `uuid` column — so a filter can
    /// ask about one resource (`(tags = "vip") AND name = "customers/…"`) on its key.
    Name {
        /// The name's prefix, e.g. `customers/`.
        collection: &'static str,
    },
}

/// One field a filter may name.
#[derive(Debug)]
pub struct FilterField {
    /// Name in the filter, e.g. `birthday.month`.
    pub name: &'static str,
    /// SQL expression it compiles to (static text, never user input).
    pub sql: &'static str,
    /// Its type.
    pub ty: FieldType,
}

/// The whitelist of fields a resource's List accepts.
#[derive(Debug)]
pub struct FilterSchema {
    /// The fields.
    pub fields: &'static [FilterField],
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(String),
    Timestamp(DateTime<Utc>),
    /// `now`, or `now±<duration>`: the time the statement is built, moved by the offset.
    RelativeTime(chrono::Duration),
    Int(i64),
    Number(f64),
    Bool(bool),
    Id(uuid::Uuid),
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Leaf { field: &'static FilterField, op: Comparator, value: Value, prefix: bool },
}

/// A filter that parsed and type-checked; emitting its SQL cannot fail.
#[derive(Debug, Clone, Default)]
pub struct CheckedFilter(Option<Node>);

fn invalid(description: impl Into<String>) -> Error {
    Error::invalid("filter", "INVALID_FILTER", description)
}

impl FilterSchema {
    /// Parses and checks `filter`; an empty filter matches everything.
    pub fn check(&'static self, filter: &str) -> Result<CheckedFilter, Error> {
        Ok(CheckedFilter(parse(filter)?.map(|e| self.node(e)).transpose()?))
    }

    fn node(&'static self, expr: Expr) -> Result<Node, Error> {
        Ok(match expr {
            Expr::And(items) => Node::And(items.into_iter().map(|e| self.node(e)).collect::<Result<_, _>>()?),
            Expr::Or(items) => Node::Or(items.into_iter().map(|e| self.node(e)).collect::<Result<_, _>>()?),
            Expr::Not(inner) => Node::Not(Box::new(self.node(*inner)?)),
            Expr::Compare { field, op, value, quoted } => {
                let Some(spec) = self.fields.iter().find(|f| f.name == field) else {
                    let names: Vec<_> = self.fields.iter().map(|f| f.name).collect();
                    return Err(invalid(format!("cannot filter on {field:?}; filterable fields are: {}", names.join(", "))));
                };
                let (value, prefix) = typed_value(spec, op, value, quoted)?;
                Node::Leaf { field: spec, op, value, prefix }
            }
        })
    }
}

fn typed_value(spec: &FilterField, op: Comparator, raw: String, quoted: bool) -> Result<(Value, bool), Error> {
    use Comparator::*;
    let name = spec.name;
    let unsupported = || invalid(format!("`{}` cannot be used with {name:?}", op.symbol()));
    match spec.ty {
        FieldType::Text => {
            let prefix = op == Eq && !quoted && raw.ends_with('*');
            let text = if prefix { raw.trim_end_matches('*').to_owned() } else { raw };
            Ok((Value::Text(text), prefix))
        }
        FieldType::TextArray if matches!(op, Eq | Ne | Has) => Ok((Value::Text(raw), false)),
        FieldType::JsonArrayKey { lowercase, .. } if matches!(op, Eq | Ne | Has) => {
            Ok((Value::Text(if lowercase { raw.to_lowercase() } else { raw }), false))
        }
        FieldType::Enum { values, prefix } if matches!(op, Eq | Ne) => {
            let short = raw.strip_prefix(prefix).unwrap_or(&raw);
            values
                .iter()
                .find(|v| **v == short)
                .map(|v| (Value::Text((*v).to_owned()), false))
                .ok_or_else(|| invalid(format!("{raw:?} is not a value of {name:?}; use one of: {}", values.join(", "))))
        }
        FieldType::Timestamp if op != Has => match relative_time(&raw) {
            Some(offset) => Ok((Value::RelativeTime(offset), false)),
            None => DateTime::parse_from_rfc3339(&raw).map(|t| (Value::Timestamp(t.with_timezone(&Utc)), false)).map_err(|_| {
                invalid(format!("{name:?} needs an RFC 3339 timestamp such as \"2026-01-31T00:00:00Z\" or a relative time such as now - 90d, not {raw:?}"))
            }),
        },
        FieldType::Integer { min, max } if op != Has => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(|n| (Value::Int(n), false))
            .ok_or_else(|| invalid(format!("{name:?} needs an integer from {min} to {max}, not {raw:?}"))),
        FieldType::Number { min, max } if op != Has => raw
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && (min..=max).contains(n))
            .map(|n| (Value::Number(n), false))
            .ok_or_else(|| invalid(format!("{name:?} needs a number from {min} to {max}, not {raw:?}"))),
        FieldType::Bool if matches!(op, Eq | Ne) => match raw.as_str() {
            "true" => Ok((Value::Bool(true), false)),
            "false" => Ok((Value::Bool(false), false)),
            _ => Err(invalid(format!("{name:?} needs true or false, not {raw:?}"))),
        },
        FieldType::Name { collection } if matches!(op, Eq | Ne) => raw
            .strip_prefix(collection)
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
            .map(|id| (Value::Id(id), false))
            .ok_or_else(|| invalid(format!("{name:?} needs a name such as \"{collection}<uuid>\", not {raw:?}"))),
        _ => Err(unsupported()),
    }
}

/// The offset of a relative time: `now`, `now-90d`, `now+12h` (s, m, h, d, w); None for anything else.
fn relative_time(raw: &str) -> Option<chrono::Duration> {
    /// A century: further is a typo, and would overflow the timestamp.
    const MAX_SECONDS: i64 = 100 * 366 * 86_400;
    let rest = raw.strip_prefix("now")?;
    if rest.is_empty() {
        return Some(chrono::Duration::zero());
    }
    let mut chars = rest.chars();
    let sign = match chars.next() {
        Some('-') => -1,
        Some('+') => 1,
        _ => return None,
    };
    let duration = chars.as_str();
    if !super::parse::is_duration(duration) {
        return None;
    }
    let amount: i64 = duration[..duration.len() - 1].parse().ok()?;
    let unit = match duration.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => 7 * 86_400,
    };
    let seconds = amount.checked_mul(unit).filter(|s| *s <= MAX_SECONDS)?;
    Some(chrono::Duration::seconds(sign * seconds))
}

/// Escapes LIKE metacharacters so a literal matches itself.
fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

impl CheckedFilter {
    /// Whether the filter restricts anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Whether the filter compares against the current time (`now - 90d`):
    /// what it matches changes as time passes, not only as rows change.
    pub fn is_time_relative(&self) -> bool {
        fn walk(node: &Node) -> bool {
            match node {
                Node::And(items) | Node::Or(items) => items.iter().any(walk),
                Node::Not(inner) => walk(inner),
                Node::Leaf { value, .. } => matches!(value, Value::RelativeTime(_)),
            }
        }
        self.0.as_ref().is_some_and(walk)
    }

    /// Whether the filter compares the field named `name` anywhere.
    pub fn mentions(&self, name: &str) -> bool {
        fn walk(node: &Node, name: &str) -> bool {
            match node {
                Node::And(items) | Node::Or(items) => items.iter().any(|n| walk(n, name)),
                Node::Not(inner) => walk(inner, name),
                Node::Leaf { field, .. } => field.name == name,
            }
        }
        self.0.as_ref().is_some_and(|n| walk(n, name))
    }

    /// Appends ` AND (<condition>)` to `qb` when the filter is non-empty.
    pub fn push_and(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        if let Some(node) = &self.0 {
            qb.push(" AND ");
            push_node(qb, node);
        }
    }
}

fn push_node(qb: &mut QueryBuilder<'_, Postgres>, node: &Node) {
    match node {
        Node::And(items) | Node::Or(items) => {
            let joiner = if matches!(node, Node::And(_)) { " AND " } else { " OR " };
            qb.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    qb.push(joiner);
                }
                push_node(qb, item);
            }
            qb.push(")");
        }
        Node::Not(inner) => {
            qb.push("NOT (");
            push_node(qb, inner);
            qb.push(")");
        }
        Node::Leaf { field, op, value, prefix } => push_leaf(qb, field, *op, value, *prefix),
    }
}

fn push_leaf(qb: &mut QueryBuilder<'_, Postgres>, field: &FilterField, op: Comparator, value: &Value, prefix: bool) {
    use Comparator::*;
    let sql = field.sql;
    let negate = op == Ne;
    match (field.ty, value) {
        (FieldType::Text, Value::Text(text)) if prefix || op == Has => {
            let pattern = if prefix { format!("{}%", escape_like(text)) } else { format!("%{}%", escape_like(text)) };
            qb.push(format!("{sql} ILIKE ")).push_bind(pattern).push(" ESCAPE '\\'");
        }
        (FieldType::TextArray, Value::Text(text)) => {
            qb.push(if negate { "NOT (" } else { "(" });
            qb.push(format!("{sql} @> ARRAY[")).push_bind(text.clone()).push("]::text[])");
        }
        (FieldType::JsonArrayKey { key, .. }, Value::Text(text)) => {
            qb.push(if negate { "NOT (" } else { "(" });
            qb.push(format!("{sql} @> jsonb_build_array(jsonb_build_object('{key}', ")).push_bind(text.clone()).push("::text)))");
        }
        (_, value) => {
            let symbol = if negate { "<>" } else { op.symbol() };
            qb.push(format!("{sql} {symbol} "));
            match value {
                Value::Text(t) => qb.push_bind(t.clone()),
                Value::Timestamp(t) => qb.push_bind(*t),
                Value::RelativeTime(offset) => qb.push_bind(Utc::now() + *offset),
                Value::Int(n) => qb.push_bind(*n),
                Value::Number(n) => qb.push_bind(*n),
                Value::Bool(b) => qb.push_bind(*b),
                Value::Id(id) => qb.push_bind(*id),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SCHEMA: FilterSchema = FilterSchema {
        fields: &[
            FilterField { name: "display_name", sql: "c.display_name", ty: FieldType::Text },
            FilterField { name: "tags", sql: "c.tags", ty: FieldType::TextArray },
            FilterField { name: "email", sql: "c.emails", ty: FieldType::JsonArrayKey { key: "address", lowercase: true } },
            FilterField {
                name: "category",
                sql: "c.category",
                ty: FieldType::Enum { values: &["VIP", "REGULAR"], prefix: "CUSTOMER_CATEGORY_" },
            },
            FilterField { name: "create_time", sql: "c.create_time", ty: FieldType::Timestamp },
            FilterField { name: "birthday.month", sql: "c.birth_month", ty: FieldType::Integer { min: 1, max: 12 } },
            FilterField { name: "deleted", sql: "(c.delete_time IS NOT NULL)", ty: FieldType::Bool },
            FilterField { name: "probability", sql: "c.probability", ty: FieldType::Number { min: 0.0, max: 1.0 } },
            FilterField { name: "name", sql: "c.id", ty: FieldType::Name { collection: "customers/" } },
        ],
    };

    fn sql(filter: &str) -> String {
        let mut qb = QueryBuilder::<Postgres>::new("WHERE true");
        SCHEMA.check(filter).unwrap().push_and(&mut qb);
        qb.sql().to_owned()
    }

    fn reason(filter: &str) -> &'static str {
        SCHEMA.check(filter).unwrap_err().reason()
    }

    #[test]
    fn compiles_each_field_type_to_placeholders() {
        assert_eq!(sql(""), "WHERE true");
        assert_eq!(sql("display_name = \"Ann\""), "WHERE true AND c.display_name = $1");
        assert_eq!(sql("display_name = Ann*"), "WHERE true AND c.display_name ILIKE $1 ESCAPE '\\'");
        assert_eq!(sql("display_name:ann"), "WHERE true AND c.display_name ILIKE $1 ESCAPE '\\'");
        assert_eq!(sql("tags:gold"), "WHERE true AND (c.tags @> ARRAY[$1]::text[])");
        assert_eq!(sql("tags != gold"), "WHERE true AND NOT (c.tags @> ARRAY[$1]::text[])");
        assert_eq!(sql("email = A@B.com"), "WHERE true AND (c.emails @> jsonb_build_array(jsonb_build_object('address', $1::text)))");
        assert_eq!(sql("category = CUSTOMER_CATEGORY_VIP OR category = REGULAR"), "WHERE true AND (c.category = $1 OR c.category = $2)");
        assert_eq!(
            sql("create_time >= \"2026-01-01T00:00:00Z\" AND NOT birthday.month = 3"),
            "WHERE true AND (c.create_time >= $1 AND NOT (c.birth_month = $2))"
        );
        assert_eq!(sql("deleted = false"), "WHERE true AND (c.delete_time IS NOT NULL) = $1");
        assert_eq!(sql("probability < 0.25 AND probability >= 0"), "WHERE true AND (c.probability < $1 AND c.probability >= $2)");
        assert_eq!(
            sql("tags:gold AND name = \"customers/0190a0a0-0000-7000-8000-000000000001\""),
            "WHERE true AND ((c.tags @> ARRAY[$1]::text[]) AND c.id = $2)"
        );
    }

    #[test]
    fn relative_times_compile_to_a_bound_time_and_mark_the_filter() {
        for filter in ["create_time < now - 90d", "create_time < now-90d", "create_time > now + 12h", "create_time <= now"] {
            assert_eq!(sql(filter).matches('$').count(), 1, "{filter}");
            assert!(SCHEMA.check(filter).unwrap().is_time_relative(), "{filter}");
        }
        assert_eq!(sql("create_time < now - 90d AND birthday.month = 3"), "WHERE true AND (c.create_time < $1 AND c.birth_month = $2)");
        assert!(!SCHEMA.check("create_time < \"2026-01-01T00:00:00Z\"").unwrap().is_time_relative());
        assert_eq!(reason("create_time < now - 90x"), "INVALID_FILTER");
        // Multibyte units and absurd spans are refused, not a panic.
        assert_eq!(reason("create_time < now - 5日"), "INVALID_FILTER");
        assert_eq!(reason("create_time < now日"), "INVALID_FILTER");
        assert_eq!(reason("create_time < now - 99999999999w"), "INVALID_FILTER");
        assert_eq!(reason("create_time < now-9223372036854775807s"), "INVALID_FILTER");
        assert_eq!(reason("create_time < later"), "INVALID_FILTER");
        // A minus before a term that is not a duration still negates it.
        assert_eq!(sql("create_time < now -tags:gold"), "WHERE true AND (c.create_time < $1 AND NOT ((c.tags @> ARRAY[$2]::text[])))");
    }

    #[test]
    fn injection_attempts_stay_in_bind_parameters() {
        let text = sql("display_name = \"x'; DROP TABLE customers; --\"");
        assert_eq!(text, "WHERE true AND c.display_name = $1");
        assert_eq!(reason("display_name; DROP TABLE x = 1"), "INVALID_FILTER");
        assert_eq!(reason("\"c.display_name\" = 1"), "INVALID_FILTER");
    }

    #[test]
    fn type_errors_are_invalid_argument() {
        for bad in [
            "unknown = 1",
            "category = GOLD",
            "category > VIP",
            "create_time > yesterday",
            "birthday.month = 13",
            "birthday.month = x",
            "birthday.month : 3",
            "tags > a",
            "deleted = maybe",
            "probability > 1.5",
            "probability < NaN",
            "probability < high",
            "probability : 0.5",
            "name = customers/not-a-uuid",
            "name = \"tickets/0190a0a0-0000-7000-8000-000000000001\"",
            "name > \"customers/0190a0a0-0000-7000-8000-000000000001\"",
        ] {
            assert_eq!(reason(bad), "INVALID_FILTER", "{bad}");
        }
    }

    #[test]
    fn like_metacharacters_are_escaped() {
        assert_eq!(escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
    }
}
