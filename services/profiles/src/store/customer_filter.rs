//! The fields a customer filter (ListCustomers, dynamic segments,
//! PreviewSegment) accepts, and the SQL over `customers c` each compiles to.

use crm_kit::filter::{FieldType, FilterField, FilterSchema};

/// A column of the customer's spending in the tenant's grading currency
/// (`CNY` until set), as a subquery: NULL without purchases in it.
macro_rules! spending {
    ($column:literal) => {
        concat!(
            "(SELECT sp.",
            $column,
            " FROM customer_spending sp WHERE sp.tenant_id = c.tenant_id AND sp.customer_id = c.id AND sp.currency_code = ",
            "(SELECT coalesce(max(g.currency_code), 'CNY') FROM grading_settings g WHERE g.tenant_id = c.tenant_id))"
        )
    };
}

/// Fields a customer filter accepts, and the SQL each compiles to; the
/// purchase fields read the spending in the grading currency.
pub static CUSTOMER_FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField { name: "name", sql: "c.id", ty: FieldType::Name { collection: "customers/" } },
        FilterField { name: "display_name", sql: "c.display_name", ty: FieldType::Text },
        FilterField { name: "email", sql: "c.emails", ty: FieldType::JsonArrayKey { key: "address", lowercase: true } },
        FilterField { name: "phone", sql: "c.phones", ty: FieldType::JsonArrayKey { key: "number", lowercase: false } },
        FilterField { name: "company", sql: "c.company", ty: FieldType::Text },
        FilterField { name: "industry", sql: "c.industry", ty: FieldType::Text },
        FilterField { name: "city", sql: "c.addresses", ty: FieldType::JsonArrayKey { key: "city", lowercase: false } },
        FilterField { name: "country", sql: "c.addresses", ty: FieldType::JsonArrayKey { key: "country", lowercase: false } },
        FilterField {
            name: "category",
            sql: "c.category",
            ty: FieldType::Enum { values: &["VIP", "REGULAR", "NEW", "POTENTIAL"], prefix: "CUSTOMER_CATEGORY_" },
        },
        FilterField { name: "kind", sql: "c.kind", ty: FieldType::Enum { values: &["PERSON", "ORGANIZATION"], prefix: "CUSTOMER_KIND_" } },
        FilterField { name: "tags", sql: "c.tags", ty: FieldType::TextArray },
        FilterField {
            name: "source_channel",
            sql: "c.source_channel",
            ty: FieldType::Enum {
                values: &["PHONE", "WEB_FORM", "SOCIAL", "TRADE_SHOW", "REGISTRATION", "REFERRAL", "IMPORT", "OTHER"],
                prefix: "SOURCE_CHANNEL_",
            },
        },
        FilterField { name: "owner", sql: "c.owner", ty: FieldType::Text },
        FilterField { name: "create_time", sql: "c.create_time", ty: FieldType::Timestamp },
        FilterField { name: "update_time", sql: "c.update_time", ty: FieldType::Timestamp },
        // Never confirmed counts as confirmed when created, so `verify_time < "…"` finds every stale record.
        FilterField { name: "verify_time", sql: "coalesce(c.verify_time, c.create_time)", ty: FieldType::Timestamp },
        FilterField {
            name: "value_tier",
            sql: "c.value_tier",
            ty: FieldType::Enum { values: &["HIGH", "MEDIUM", "LOW"], prefix: "VALUE_TIER_" },
        },
        FilterField {
            name: "lifecycle_stage",
            sql: "c.lifecycle_stage",
            ty: FieldType::Enum {
                values: &["PROSPECT", "NEW", "ACTIVE", "LOYAL", "AT_RISK", "LAPSED", "WON_BACK"],
                prefix: "LIFECYCLE_STAGE_",
            },
        },
        FilterField { name: "recency_score", sql: "c.recency_score", ty: FieldType::Integer { min: 1, max: 5 } },
        FilterField { name: "frequency_score", sql: "c.frequency_score", ty: FieldType::Integer { min: 1, max: 5 } },
        FilterField { name: "monetary_score", sql: "c.monetary_score", ty: FieldType::Integer { min: 1, max: 5 } },
        FilterField {
            name: "churn_risk",
            sql: "c.churn_risk",
            ty: FieldType::Enum { values: &["LOW", "MEDIUM", "HIGH"], prefix: "CHURN_RISK_" },
        },
        FilterField { name: "probability_alive", sql: "c.probability_alive", ty: FieldType::Number { min: 0.0, max: 1.0 } },
        FilterField { name: "expected_purchases", sql: "c.expected_purchases", ty: FieldType::Number { min: 0.0, max: 1e9 } },
        FilterField {
            name: "purchase_count",
            sql: concat!("coalesce(", spending!("purchase_count"), ", 0)"),
            ty: FieldType::Integer { min: 0, max: i64::MAX },
        },
        FilterField { name: "first_purchase_time", sql: spending!("first_purchase_time"), ty: FieldType::Timestamp },
        FilterField { name: "last_purchase_time", sql: spending!("last_purchase_time"), ty: FieldType::Timestamp },
        FilterField { name: "birthday.month", sql: "c.birthday_month", ty: FieldType::Integer { min: 1, max: 12 } },
        FilterField { name: "birthday.day", sql: "c.birthday_day", ty: FieldType::Integer { min: 1, max: 31 } },
    ],
};

/// Filter fields that reveal personal data; callers without `pii` may not filter on them.
pub const PII_FILTER_FIELDS: &[&str] = &["email", "phone"];
