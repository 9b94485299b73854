//! The `customers` and `customer_emails` tables.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Revisioned, Table, TenantTx, db_span},
    error::violated_constraint,
    filter::CheckedFilter,
};
use serde_json::{Map, Value};
use sqlx::{FromRow, Postgres, QueryBuilder, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    domain::{
        customer::{AddressEntry, Consent, CustomerDraft, EmailEntry, PhoneEntry},
        matching::{Person, match_keys},
    },
    resources::CUSTOMER,
};

/// A stored customer.
#[derive(Debug, Clone, FromRow)]
pub struct CustomerRow {
    pub id: Uuid,
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    pub kind: String,
    pub emails: Json<Vec<EmailEntry>>,
    pub phones: Json<Vec<PhoneEntry>>,
    pub addresses: Json<Vec<AddressEntry>>,
    pub company: String,
    pub job_title: String,
    pub industry: String,
    pub company_size: String,
    pub source_channel: String,
    pub birthday_year: Option<i32>,
    pub birthday_month: Option<i32>,
    pub birthday_day: Option<i32>,
    pub time_zone: String,
    pub locale: String,
    pub tags: Vec<String>,
    pub attributes: Json<Map<String, Value>>,
    pub owner: String,
    pub category: String,
    pub consent: Json<Consent>,
    pub value_tier: String,
    pub lifecycle_stage: String,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub delete_time: Option<DateTime<Utc>>,
    pub verify_time: Option<DateTime<Utc>>,
    /// When it was disabled, and why; None while enabled.
    pub disable_time: Option<DateTime<Utc>>,
    pub disable_reason: String,
    /// When its personal data was erased; None until then.
    pub erase_time: Option<DateTime<Utc>>,
    /// RFM scores, 1-5; None until graded.
    pub recency_score: Option<i16>,
    pub frequency_score: Option<i16>,
    pub monetary_score: Option<i16>,
    /// When the lifecycle stage last changed.
    pub lifecycle_time: Option<DateTime<Utc>>,
    /// LOW / MEDIUM / HIGH; empty until the customer has purchased.
    pub churn_risk: String,
    /// The lifetime-value model's predictions; None until there are any.
    pub probability_alive: Option<f64>,
    pub expected_purchases: Option<f64>,
    pub expected_value_minor: Option<i64>,
    pub expected_value_currency: String,
    /// The customer this one was merged into; None unless merged.
    pub merged_into: Option<Uuid>,
}

pub(super) const COLUMNS: &str = "id, display_name, given_name, family_name, kind, emails, phones, addresses, company, job_title, industry, \
company_size, source_channel, birthday_year, birthday_month, birthday_day, time_zone, locale, tags, attributes, owner, category, \
consent, value_tier, lifecycle_stage, revision, create_time, update_time, delete_time, verify_time, disable_time, disable_reason, erase_time, \
recency_score, frequency_score, monetary_score, lifecycle_time, churn_risk, probability_alive, expected_purchases, expected_value_minor, \
expected_value_currency, merged_into";

/// The `customers` table, for the kit's shared statements.
pub const CUSTOMERS: Table = Table { name: "customers", columns: COLUMNS };

impl Revisioned for CustomerRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

/// Binds the draft's columns in the order of `DRAFT_COLUMNS`.
macro_rules! bind_draft {
    ($query:expr, $d:expr) => {
        $query
            .bind(&$d.display_name)
            .bind(&$d.given_name)
            .bind(&$d.family_name)
            .bind(&$d.kind)
            .bind(Json(&$d.emails))
            .bind(Json(&$d.phones))
            .bind(Json(&$d.addresses))
            .bind(&$d.company)
            .bind(&$d.job_title)
            .bind(&$d.industry)
            .bind(&$d.company_size)
            .bind(&$d.source_channel)
            .bind($d.birthday.and_then(|b| b.year))
            .bind($d.birthday.map(|b| b.month as i32))
            .bind($d.birthday.map(|b| b.day as i32))
            .bind(&$d.time_zone)
            .bind(&$d.locale)
            .bind(&$d.tags)
            .bind(Json(&$d.attributes))
            .bind(&$d.owner)
            .bind(&$d.category)
            .bind(Json(&$d.consent))
            .bind($d.verify_time)
    };
}

/// Inserts a new customer.
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, id: Uuid, draft: &CustomerDraft, now: DateTime<Utc>) -> Result<CustomerRow, Error> {
    let sql = format!(
        // The tenant's duplicate scan is started with its first customer (in the same statement: no extra round trip).
        "WITH scan AS (INSERT INTO duplicate_scans (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING),
              keys AS (INSERT INTO customer_match_keys (tenant_id, key, customer_id) SELECT $1, unnest($27::text[]), $2)
         INSERT INTO customers (tenant_id, id, create_time, update_time, display_name, given_name, family_name, kind, emails, phones, \
         addresses, company, job_title, industry, company_size, source_channel, birthday_year, birthday_month, birthday_day, time_zone, \
         locale, tags, attributes, owner, category, consent, verify_time, match_keys)
         VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26,
                 $27)
         RETURNING {COLUMNS}"
    );
    let query = sqlx::query_as::<_, CustomerRow>(&sql).bind(tenant).bind(id).bind(now);
    let keys = match_keys(&Person::of_draft(draft));
    Ok(bind_draft!(query, draft).bind(keys).fetch_one(&mut **tx).instrument(db_span("INSERT", "customers")).await?)
}

/// Replaces every writable column of a customer and bumps its revision.
pub async fn update(tx: &mut TenantTx, tenant: Uuid, id: Uuid, draft: &CustomerDraft, now: DateTime<Utc>) -> Result<CustomerRow, Error> {
    let sql = format!(
        // The match keys' index rows follow in the same statement (keys unchanged: nothing written).
        "WITH gone AS (DELETE FROM customer_match_keys WHERE tenant_id = $1 AND customer_id = $2 AND key <> ALL($27::text[])),
              added AS (INSERT INTO customer_match_keys (tenant_id, key, customer_id) SELECT $1, unnest($27::text[]), $2 ON CONFLICT DO NOTHING)
         UPDATE customers SET update_time = $3, revision = revision + 1, display_name = $4, given_name = $5, family_name = $6, kind = $7, \
         emails = $8, phones = $9, addresses = $10, company = $11, job_title = $12, industry = $13, company_size = $14, \
         source_channel = $15, birthday_year = $16, birthday_month = $17, birthday_day = $18, time_zone = $19, locale = $20, tags = $21, \
         attributes = $22, owner = $23, category = $24, consent = $25, verify_time = $26, match_keys = $27
         WHERE tenant_id = $1 AND id = $2
         RETURNING {COLUMNS}"
    );
    let query = sqlx::query_as::<_, CustomerRow>(&sql).bind(tenant).bind(id).bind(now);
    let keys = match_keys(&Person::of_draft(draft));
    Ok(bind_draft!(query, draft).bind(keys).fetch_one(&mut **tx).instrument(db_span("UPDATE", "customers")).await?)
}

/// The customers among `ids` (in no particular order; missing ones are absent).
pub async fn batch_get(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<CustomerRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM customers WHERE tenant_id = $1 AND id = ANY($2)");
    Ok(sqlx::query_as::<_, CustomerRow>(&sql)
        .bind(tenant)
        .bind(ids)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "customers"))
        .await?)
}

/// The live customers among `ids`, locked for a change in id order (as every
/// writer of several customers locks them, so that none deadlock).
pub async fn lock_many(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<CustomerRow>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM customers WHERE tenant_id = $1 AND id = ANY($2) AND delete_time IS NULL ORDER BY id FOR NO KEY UPDATE"
    );
    Ok(sqlx::query_as::<_, CustomerRow>(&sql)
        .bind(tenant)
        .bind(ids)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "customers"))
        .await?)
}

/// Live customers other than `except` that already use one of `addresses`.
pub async fn email_conflicts(tx: &mut TenantTx, tenant: Uuid, addresses: &[String], except: Uuid) -> Result<Vec<(String, Uuid)>, Error> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as(
        "SELECT address, customer_id FROM customer_emails WHERE tenant_id = $1 AND address = ANY($2) AND customer_id <> $3 ORDER BY address",
    )
    .bind(tenant)
    .bind(addresses)
    .bind(except)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "customer_emails"))
    .await?)
}

/// Makes `addresses` the claimed emails of customer `id` (empty for a deleted customer).
/// A concurrent claim of the same address loses on the primary key: ALREADY_EXISTS.
pub async fn replace_emails(tx: &mut TenantTx, tenant: Uuid, id: Uuid, addresses: &[String]) -> Result<(), Error> {
    sqlx::query("DELETE FROM customer_emails WHERE tenant_id = $1 AND customer_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "customer_emails"))
        .await?;
    if addresses.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO customer_emails (tenant_id, address, customer_id) SELECT $1, unnest($2::text[]), $3")
        .bind(tenant)
        .bind(addresses)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "customer_emails"))
        .await
        .map_err(email_claim_error)?;
    Ok(())
}

/// A column customers can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// `display_name`
    DisplayName,
    /// `create_time`
    CreateTime,
    /// `update_time`
    UpdateTime,
    /// `recency_score` (ungraded: 0)
    RecencyScore,
    /// `frequency_score` (ungraded: 0)
    FrequencyScore,
    /// `monetary_score` (ungraded: 0)
    MonetaryScore,
    /// `value_tier`, by rank: HIGH 3, MEDIUM 2, LOW 1, ungraded 0
    ValueTier,
    /// `expected_value` (in minor units; none: -1)
    ExpectedValue,
    /// `probability_alive` (in 1/10 000ths, as stored; none: -1)
    ProbabilityAlive,
}

impl SortKey {
    /// The SQL expression over `customers c` the key orders by (never NULL).
    fn expr(self) -> &'static str {
        match self {
            Self::DisplayName => "c.display_name",
            Self::CreateTime => "c.create_time",
            Self::UpdateTime => "c.update_time",
            Self::RecencyScore => "coalesce(c.recency_score, 0)",
            Self::FrequencyScore => "coalesce(c.frequency_score, 0)",
            Self::MonetaryScore => "coalesce(c.monetary_score, 0)",
            Self::ValueTier => "(CASE c.value_tier WHEN 'HIGH' THEN 3 WHEN 'MEDIUM' THEN 2 WHEN 'LOW' THEN 1 ELSE 0 END)",
            Self::ExpectedValue => "coalesce(c.expected_value_minor, -1)",
            Self::ProbabilityAlive => "coalesce(round(c.probability_alive * 10000)::bigint, -1)",
        }
    }

    /// This key's value in `row`.
    pub fn value_of(self, row: &CustomerRow) -> KeyValue {
        let score = |s: Option<i16>| KeyValue::Int(i64::from(s.unwrap_or(0)));
        match self {
            Self::DisplayName => KeyValue::Text(row.display_name.clone()),
            Self::CreateTime => KeyValue::Time(row.create_time),
            Self::UpdateTime => KeyValue::Time(row.update_time),
            Self::RecencyScore => score(row.recency_score),
            Self::FrequencyScore => score(row.frequency_score),
            Self::MonetaryScore => score(row.monetary_score),
            Self::ValueTier => KeyValue::Int(match row.value_tier.as_str() {
                "HIGH" => 3,
                "MEDIUM" => 2,
                "LOW" => 1,
                _ => 0,
            }),
            Self::ExpectedValue => KeyValue::Int(row.expected_value_minor.unwrap_or(-1)),
            Self::ProbabilityAlive => KeyValue::Int(row.probability_alive.map_or(-1, |p| (p * 10_000.0).round() as i64)),
        }
    }
}

/// A value of a sort key, the last one of which is always the id.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue {
    /// A text key.
    Text(String),
    /// A timestamp key.
    Time(DateTime<Utc>),
    /// A number key (scores, tier rank).
    Int(i64),
    /// The id tiebreaker.
    Id(Uuid),
}

/// A page request over customers.
pub struct ListQuery<'a> {
    /// Checked filter.
    pub filter: &'a CheckedFilter,
    /// Sort keys with `true` for descending; the id is appended as tiebreaker.
    pub order: &'a [(SortKey, bool)],
    /// Sort key of the last row of the previous page, id last.
    pub after: Option<Vec<KeyValue>>,
    /// Include soft-deleted customers.
    pub show_deleted: bool,
    /// Include disabled customers.
    pub show_disabled: bool,
    /// Only the members of this segment.
    pub segment: Option<Uuid>,
    /// Rows to fetch.
    pub limit: i64,
}

fn push_key_value(qb: &mut QueryBuilder<'_, Postgres>, value: &KeyValue) {
    match value {
        KeyValue::Text(t) => qb.push_bind(t.clone()),
        KeyValue::Time(t) => qb.push_bind(*t),
        KeyValue::Int(n) => qb.push_bind(*n),
        KeyValue::Id(id) => qb.push_bind(*id),
    };
}

/// Restricts to rows after `after` in the order `keys` (SQL expressions over `customers c`).
fn push_after(qb: &mut QueryBuilder<'_, Postgres>, keys: &[(&str, bool)], after: &[KeyValue]) {
    if keys.iter().all(|(_, desc)| *desc == keys[0].1) {
        // One direction: a row-value comparison, which the (tenant_id, key, id) indexes serve directly.
        let columns: Vec<&str> = keys.iter().map(|(c, _)| *c).collect();
        qb.push(format!(" AND ({}) {} (", columns.join(", "), if keys[0].1 { "<" } else { ">" }));
        for (i, value) in after.iter().enumerate() {
            if i > 0 {
                qb.push(", ");
            }
            push_key_value(qb, value);
        }
        qb.push(")");
        return;
    }
    // Mixed directions: (k1 > v1) OR (k1 = v1 AND k2 < v2) OR ...
    qb.push(" AND (");
    for i in 0..keys.len() {
        if i > 0 {
            qb.push(" OR ");
        }
        qb.push("(");
        for (j, (column, _)) in keys.iter().enumerate().take(i) {
            qb.push(format!("{column} = "));
            push_key_value(qb, &after[j]);
            qb.push(" AND ");
        }
        let (column, desc) = keys[i];
        qb.push(format!("{column} {} ", if desc { "<" } else { ">" }));
        push_key_value(qb, &after[i]);
        qb.push(")");
    }
    qb.push(")");
}

/// One page of customers, in keyset order.
pub async fn list(tx: &mut TenantTx, tenant: Uuid, query: ListQuery<'_>) -> Result<Vec<CustomerRow>, Error> {
    // The id breaks ties in the direction of the last key, so that single-key
    // orders stay one-directional and use the index in either direction.
    let id_desc = query.order.last().is_some_and(|(_, desc)| *desc);
    let keys: Vec<(&str, bool)> = query.order.iter().map(|(k, desc)| (k.expr(), *desc)).chain([("c.id", id_desc)]).collect();
    let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM customers c WHERE c.tenant_id = "));
    qb.push_bind(tenant);
    if !query.show_deleted {
        qb.push(" AND c.delete_time IS NULL");
    }
    if !query.show_disabled {
        qb.push(" AND c.disable_time IS NULL");
    }
    query.filter.push_and(&mut qb);
    if let Some(segment) = query.segment {
        qb.push(
            " AND EXISTS (SELECT 1 FROM segment_members m WHERE m.tenant_id = c.tenant_id AND m.customer_id = c.id AND m.segment_id = ",
        );
        qb.push_bind(segment);
        qb.push(")");
    }
    if let Some(after) = &query.after {
        push_after(&mut qb, &keys, after);
    }
    qb.push(" ORDER BY ");
    for (i, (column, desc)) in keys.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push(format!("{column} {}", if *desc { "DESC" } else { "ASC" }));
    }
    qb.push(" LIMIT ");
    qb.push_bind(query.limit);
    Ok(qb.build_query_as::<CustomerRow>().fetch_all(&mut **tx).instrument(db_span("SELECT", "customers")).await?)
}

/// Disables customer `id` (`Some((now, reason))`) or enables it (`None`), bumping its revision.
pub async fn set_disabled(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    disabled: Option<(DateTime<Utc>, &str)>,
    now: DateTime<Utc>,
) -> Result<CustomerRow, Error> {
    let (time, reason) = disabled.unzip();
    Ok(sqlx::query_as(&format!(
        "UPDATE customers SET disable_time = $3, disable_reason = $4, update_time = $5, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(time)
    .bind(reason.unwrap_or_default())
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "customers"))
    .await?)
}

/// Stamps customer `id`'s `verify_time` with `now`, bumping its revision.
pub async fn confirm_data(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<CustomerRow, Error> {
    Ok(sqlx::query_as(&format!(
        "UPDATE customers SET verify_time = $3, update_time = $3, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant)
    .bind(id)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("UPDATE", "customers"))
    .await?)
}

/// ALREADY_EXISTS when a claim lost to a concurrent claim of the same address.
pub(super) fn email_claim_error(err: sqlx::Error) -> Error {
    match violated_constraint(&err) {
        Some("customer_emails_unique_address") => Error::AlreadyExists {
            reason: "EMAIL_ALREADY_USED",
            message: "another customer was just given one of these email addresses".to_owned(),
            resource_type: CUSTOMER.type_name,
            name: String::new(),
        },
        _ => err.into(),
    }
}
