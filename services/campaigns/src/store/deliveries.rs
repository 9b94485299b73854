//! The `deliveries` table: the ledger and the sent log.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx, db_span},
    filter::CheckedFilter,
};
use sqlx::{FromRow, Postgres, QueryBuilder, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::{
    channel::{Channel, Purpose},
    delivery::Status,
};

/// A stored delivery.
#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub kind: String,
    pub campaign_id: Option<Uuid>,
    pub request_id: String,
    pub template_id: Uuid,
    pub customer_id: Uuid,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    #[sqlx(try_from = "String")]
    pub purpose: Purpose,
    pub recipient: String,
    #[sqlx(try_from = "String")]
    pub status: Status,
    pub skip_reason: String,
    pub locale: String,
    pub subject: String,
    pub body: String,
    pub html_body: String,
    pub data: Json<BTreeMap<String, String>>,
    /// The values that filled its slots (`vars.*` and `name`).
    pub variables: Json<BTreeMap<String, String>>,
    pub attempts: i32,
    pub provider_id: Option<Uuid>,
    pub provider_message_id: String,
    pub error: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub send_time: Option<DateTime<Utc>>,
    pub next_attempt_time: Option<DateTime<Utc>>,
    /// The provider's first final receipt: '', DELIVERED or UNDELIVERED.
    pub receipt_status: String,
    pub receipt_time: Option<DateTime<Utc>>,
    pub receipt_error: String,
    /// The trace the message was accepted in (SendNotice, StartCampaign); its send continues it.
    pub traceparent: String,
    /// The first open and click of a tracked email.
    pub open_time: Option<DateTime<Utc>>,
    pub click_time: Option<DateTime<Utc>>,
    /// A tested campaign's group: "a", "b", … or "rest"; '' otherwise.
    pub variant: String,
}

const COLUMNS: &str = "id, kind, campaign_id, request_id, template_id, customer_id, channel, purpose, recipient, status, skip_reason, locale,
    subject, body, html_body, data, variables, attempts, provider_id, provider_message_id, error, create_time, update_time, send_time, next_attempt_time,
    receipt_status, receipt_time, receipt_error, traceparent, open_time, click_time, variant";

/// The deliveries table for find by id.
pub const DELIVERIES: Table = Table { name: "deliveries", columns: COLUMNS };

/// Inserts `row` as given (QUEUED rows also need their queue entry: [`super::queue::enqueue`]).
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, row: &DeliveryRow) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO deliveries (tenant_id, id, kind, campaign_id, request_id, template_id, customer_id, channel, purpose, recipient, status,
         skip_reason, locale, subject, body, html_body, data, create_time, update_time, next_attempt_time, variables, traceparent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18, $19, $20, $21)",
    )
    .bind(tenant)
    .bind(row.id)
    .bind(&row.kind)
    .bind(row.campaign_id)
    .bind(&row.request_id)
    .bind(row.template_id)
    .bind(row.customer_id)
    .bind(row.channel.as_str())
    .bind(row.purpose.as_str())
    .bind(&row.recipient)
    .bind(row.status.as_str())
    .bind(&row.skip_reason)
    .bind(&row.locale)
    .bind(&row.subject)
    .bind(&row.body)
    .bind(&row.html_body)
    .bind(&row.data)
    .bind(row.create_time)
    .bind(row.next_attempt_time)
    .bind(&row.variables)
    .bind(&row.traceparent)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "deliveries"))
    .await?;
    Ok(())
}

/// The deliveries `ids`, locked for recording an attempt.
pub async fn lock_many(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<DeliveryRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(ids).fetch_all(&mut **tx).instrument(db_span("SELECT", "deliveries")).await?)
}

/// Marks delivery `id` SUBMITTING through `provider`, counting an attempt,
/// if it is still the claim that read it at `attempts` and, for a campaign's
/// message, its campaign is RUNNING; returns the new attempt number, or
/// `None` when another sender took it over or its campaign is paused or
/// cancelled.
pub async fn mark_submitting(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    attempts: i32,
    provider: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Option<i32>, Error> {
    Ok(sqlx::query_scalar(
        "UPDATE deliveries d SET status = 'SUBMITTING', attempts = attempts + 1, provider_id = $4, update_time = $5, next_attempt_time = NULL
         WHERE d.tenant_id = $1 AND d.id = $2 AND d.attempts = $3 AND d.status IN ('QUEUED', 'SUBMITTING')
           AND (d.campaign_id IS NULL
                OR EXISTS (SELECT 1 FROM campaigns c WHERE c.tenant_id = d.tenant_id AND c.id = d.campaign_id AND c.state = 'RUNNING'))
         RETURNING d.attempts",
    )
    .bind(tenant)
    .bind(id)
    .bind(attempts)
    .bind(provider)
    .bind(now)
    .fetch_optional(&mut **tx)
    .instrument(db_span("UPDATE", "deliveries"))
    .await?)
}

/// What an attempt left a delivery as.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    pub status: Status,
    pub provider_message_id: &'a str,
    pub error: &'a str,
    pub send_time: Option<DateTime<Utc>>,
    pub next_attempt_time: Option<DateTime<Utc>>,
    /// The attempt does not count (the provider throttled it).
    pub uncounted: bool,
}

/// Records the outcome of an attempt on delivery `id` and returns the row.
pub async fn record_attempt(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    r: &AttemptRecord<'_>,
    now: DateTime<Utc>,
) -> Result<DeliveryRow, Error> {
    let sql = format!(
        "UPDATE deliveries SET status = $3, provider_message_id = CASE WHEN $4 = '' THEN provider_message_id ELSE $4 END, error = $5,
         send_time = coalesce($6, send_time), next_attempt_time = $7, update_time = $8, attempts = attempts - $9::int
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(r.status.as_str())
        .bind(r.provider_message_id)
        .bind(r.error)
        .bind(r.send_time)
        .bind(r.next_attempt_time)
        .bind(now)
        .bind(i32::from(r.uncounted))
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "deliveries"))
        .await?)
}

/// A page of the sent log, newest first, before delivery `before`.
pub async fn list(
    tx: &mut TenantTx,
    tenant: Uuid,
    filter: &CheckedFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, Error> {
    let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM deliveries d WHERE d.tenant_id = "));
    qb.push_bind(tenant);
    filter.push_and(&mut qb);
    if let Some(before) = before {
        qb.push(" AND d.id < ").push_bind(before);
    }
    qb.push(" ORDER BY d.id DESC LIMIT ").push_bind(limit);
    Ok(qb.build_query_as().fetch_all(&mut **tx).instrument(db_span("SELECT", "deliveries")).await?)
}

/// Skips QUEUED delivery `id` (still the claim read at `attempts`) with
/// `reason` at dispatch; returns the row, or `None` when it is no longer that claim.
pub async fn skip_queued(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    attempts: i32,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Option<DeliveryRow>, Error> {
    let sql = format!(
        "UPDATE deliveries SET status = 'SKIPPED', skip_reason = $4, next_attempt_time = NULL, update_time = $5
         WHERE tenant_id = $1 AND id = $2 AND attempts = $3 AND status = 'QUEUED' RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(attempts)
        .bind(reason)
        .bind(now)
        .fetch_optional(&mut **tx)
        .instrument(db_span("UPDATE", "deliveries"))
        .await?)
}

/// Puts QUEUED delivery `id` (still the claim read at `attempts`) off until
/// `until` without counting an attempt; false when it is no longer that claim.
pub async fn postpone(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    attempts: i32,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, Error> {
    let done = sqlx::query(
        "UPDATE deliveries SET next_attempt_time = $4, update_time = $5 WHERE tenant_id = $1 AND id = $2 AND attempts = $3 AND status = 'QUEUED'",
    )
    .bind(tenant)
    .bind(id)
    .bind(attempts)
    .bind(until)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "deliveries"))
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What an open or a click changed: the delivery, and whether it is its first open and first click.
#[derive(Debug, Clone, FromRow)]
pub struct Engagement {
    #[sqlx(flatten)]
    pub delivery: DeliveryRow,
    pub first_open: bool,
    pub first_click: bool,
}

/// Records an open (or, with `click`, a click, which implies an open) of
/// sent delivery `id` at `now`: the first of each stands. A SUBMITTING one
/// counts as sent — the recipient may read it before the relay's answer is
/// recorded. None when no such delivery has that id.
pub async fn engage(tx: &mut TenantTx, tenant: Uuid, id: Uuid, click: bool, now: DateTime<Utc>) -> Result<Option<Engagement>, Error> {
    // The row as it was (locked), then the update, which returns the row as it is and what changed.
    Ok(sqlx::query_as(&format!(
        "WITH before AS (SELECT open_time AS opened, click_time AS clicked FROM deliveries
                         WHERE tenant_id = $1 AND id = $2 AND status IN ('SENT', 'SUBMITTING') FOR UPDATE)
         UPDATE deliveries d SET open_time = coalesce(d.open_time, $4),
                                 click_time = CASE WHEN $3 THEN coalesce(d.click_time, $4) ELSE d.click_time END
         FROM before WHERE d.tenant_id = $1 AND d.id = $2
         RETURNING {}, before.opened IS NULL AS first_open, $3 AND before.clicked IS NULL AS first_click",
        COLUMNS.split(',').map(|c| format!("d.{}", c.trim())).collect::<Vec<_>>().join(", ")
    ))
    .bind(tenant)
    .bind(id)
    .bind(click)
    .bind(now)
    .fetch_optional(&mut **tx)
    .instrument(db_span("UPDATE", "deliveries"))
    .await?)
}
