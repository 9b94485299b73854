//! The fields a customer filter (ListCustomers, dynamic segments,
//! PreviewSegment) accepts, and the SQL over `customers c` each compiles to.

use crm_kit::filter::{FieldType, FilterField, FilterSchema};

/// Fields `ListCustomers.filter` accepts, and the SQL each compiles to.
pub static CUSTOMER_FILTER: FilterSchema = FilterSchema {
    fields: &[
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
        FilterField { name: "birthday.month", sql: "c.birthday_month", ty: FieldType::Integer { min: 1, max: 12 } },
        FilterField { name: "birthday.day", sql: "c.birthday_day", ty: FieldType::Integer { min: 1, max: 31 } },
    ],
};

/// Filter fields that reveal personal data; callers without `pii` may not filter on them.
pub const PII_FILTER_FIELDS: &[&str] = &["email", "phone"];
