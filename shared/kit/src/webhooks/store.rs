//! SQL of webhooks, their cursors and their delivery attempts.

use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    db::{TenantTx, db_span},
    error::Error,
};

/// A webhook as stored, with where its delivery stands.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: Uuid,
    pub target_uri: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub state: String,
    pub disabled_reason: String,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_expire_time: Option<DateTime<Utc>>,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    /// The cursor: the last position delivered.
    pub position: i64,
    pub failing_since: Option<DateTime<Utc>>,
}

/// The settings a caller writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookFields {
    pub target_uri: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub active: bool,
}

const SELECT: &str = "SELECT w.id, w.target_uri, w.event_types, w.description, w.state, w.disabled_reason, w.secret,
        w.previous_secret, w.previous_secret_expire_time, w.revision, w.create_time, w.update_time, c.position, c.failing_since
    FROM webhooks w JOIN webhook_cursors c ON c.tenant_id = w.tenant_id AND c.webhook_id = w.id";

fn state_of(active: bool) -> &'static str {
    if active { "ACTIVE" } else { "DISABLED" }
}

/// Stores a new webhook whose delivery starts after `start_position`.
pub async fn insert(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    fields: &WebhookFields,
    sealed_secret: &[u8],
    start_position: i64,
    now: DateTime<Utc>,
) -> Result<WebhookRow, Error> {
    sqlx::query(
        "WITH w AS (
             INSERT INTO webhooks (tenant_id, id, target_uri, event_types, description, state, secret, create_time, update_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
         )
         INSERT INTO webhook_cursors (tenant_id, webhook_id, active, position) VALUES ($1, $2, $6 = 'ACTIVE', $9)",
    )
    .bind(tenant)
    .bind(id)
    .bind(&fields.target_uri)
    .bind(&fields.event_types)
    .bind(&fields.description)
    .bind(state_of(fields.active))
    .bind(sealed_secret)
    .bind(now)
    .bind(start_position)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "webhooks"))
    .await?;
    find(tx, tenant, id, false).await?.ok_or_else(|| Error::internal(anyhow::anyhow!("webhook {id} vanished after insert")))
}

/// Webhook `id`; `lock` holds it and its cursor for a change — the cursor
/// first, then the webhook, the order in which a delivery worker's record
/// takes them (its cursor update, then the key-share lock of its attempts'
/// foreign key), so the two cannot deadlock. `NO KEY UPDATE`: no change here
/// touches the key, so attempts can still be logged meanwhile.
pub async fn find(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<Option<WebhookRow>, Error> {
    if lock {
        sqlx::query("SELECT 1 FROM webhook_cursors WHERE tenant_id = $1 AND webhook_id = $2 FOR NO KEY UPDATE")
            .bind(tenant)
            .bind(id)
            .execute(&mut **tx)
            .instrument(db_span("SELECT", "webhook_cursors"))
            .await?;
    }
    let sql = format!("{SELECT} WHERE w.tenant_id = $1 AND w.id = $2{}", if lock { " FOR NO KEY UPDATE OF w" } else { "" });
    Ok(sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(&mut **tx).instrument(db_span("SELECT", "webhooks")).await?)
}

/// Webhook `id`, or NOT_FOUND naming it; `lock` holds it for a change.
pub async fn get(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<WebhookRow, Error> {
    find(tx, tenant, id, lock).await?.ok_or_else(|| super::WEBHOOK.not_found(id))
}

/// A page of webhooks in creation (id) order after `after`.
pub async fn page(tx: &mut TenantTx, tenant: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<WebhookRow>, Error> {
    let sql = format!("{SELECT} WHERE w.tenant_id = $1 AND ($2::uuid IS NULL OR w.id > $2) ORDER BY w.id LIMIT $3");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(after).bind(limit).fetch_all(&mut **tx).instrument(db_span("SELECT", "webhooks")).await?)
}

/// Writes `fields`. A webhook set ACTIVE again, or whose target or types
/// changed (`retry_now`), starts afresh from where delivery stopped (no
/// failures counted, no retry pending); any change
/// moves the cursor's generation on and frees its lease, so that a running
/// worker stops at its next record and the next one, started at once, reads
/// the new settings.
pub async fn update(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    fields: &WebhookFields,
    retry_now: bool,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "WITH w AS (
             UPDATE webhooks SET target_uri = $3, event_types = $4, description = $5, state = $6,
                 disabled_reason = CASE WHEN $6 = 'ACTIVE' THEN '' ELSE disabled_reason END,
                 revision = revision + 1, update_time = $7
             WHERE tenant_id = $1 AND id = $2
         )
         UPDATE webhook_cursors SET active = $6 = 'ACTIVE', generation = generation + 1, lease_owner = NULL, lease_until = NULL,
             due_time = CASE WHEN (NOT active AND $6 = 'ACTIVE') OR $8 THEN NULL ELSE due_time END,
             failures = CASE WHEN (NOT active AND $6 = 'ACTIVE') OR $8 THEN 0 ELSE failures END,
             failing_since = CASE WHEN (NOT active AND $6 = 'ACTIVE') OR $8 THEN NULL ELSE failing_since END
         WHERE tenant_id = $1 AND webhook_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(&fields.target_uri)
    .bind(&fields.event_types)
    .bind(&fields.description)
    .bind(state_of(fields.active))
    .bind(now)
    .bind(retry_now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "webhooks"))
    .await?;
    Ok(())
}

/// Deletes webhook `id`, its cursor and its attempts.
pub async fn delete(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "webhooks"))
        .await?;
    Ok(())
}

/// Makes `sealed_secret` the signing secret; the one it replaces signs too until `overlap_until`.
pub async fn rotate_secret(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    sealed_secret: &[u8],
    overlap_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "WITH w AS (
             UPDATE webhooks SET previous_secret = secret, previous_secret_expire_time = $4, secret = $3,
                 revision = revision + 1, update_time = $5
             WHERE tenant_id = $1 AND id = $2
         )
         UPDATE webhook_cursors SET generation = generation + 1, lease_owner = NULL, lease_until = NULL
         WHERE tenant_id = $1 AND webhook_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(sealed_secret)
    .bind(overlap_until)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "webhooks"))
    .await?;
    Ok(())
}

/// Moves the cursor back to `position` (a replay): delivery resumes after it, no retry pending.
pub async fn rewind(tx: &mut TenantTx, tenant: Uuid, id: Uuid, position: i64) -> Result<(), Error> {
    sqlx::query(
        "UPDATE webhook_cursors SET position = $3, generation = generation + 1, due_time = NULL, failures = 0, failing_since = NULL,
             lease_owner = NULL, lease_until = NULL
         WHERE tenant_id = $1 AND webhook_id = $2",
    )
    .bind(tenant)
    .bind(id)
    .bind(position)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "webhook_cursors"))
    .await?;
    Ok(())
}

/// The position just before the first event committed at or after `time`:
/// a cursor from which delivery starts at that event.
pub async fn position_before(tx: &mut TenantTx, tenant: Uuid, time: DateTime<Utc>) -> Result<i64, Error> {
    crate::outbox::stamp_positions(tx, tenant).await?;
    let first: Option<i64> = sqlx::query_scalar("SELECT min(position) FROM outbox_positions WHERE tenant_id = $1 AND time >= $2")
        .bind(tenant)
        .bind(time)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "outbox_positions"))
        .await?;
    match first {
        Some(first) => Ok(first - 1),
        None => latest_position(tx, tenant).await,
    }
}

/// The tenant's highest stamped position (after stamping): a cursor from
/// which only events committed from now on are delivered.
pub async fn latest_position(tx: &mut TenantTx, tenant: Uuid) -> Result<i64, Error> {
    crate::outbox::stamp_positions(tx, tenant).await?;
    Ok(sqlx::query_scalar("SELECT coalesce(outbox_last_position($1), 0)")
        .bind(tenant)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "outbox_positions"))
        .await?)
}

/// One delivery attempt as logged.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub position: i64,
    pub attempt: i32,
    pub succeeded: bool,
    pub response_code: i32,
    pub error: String,
    pub latency_us: i64,
    pub attempt_time: DateTime<Utc>,
    pub next_attempt_time: Option<DateTime<Utc>>,
}

/// A page of `webhook`'s attempts, newest first, before the id `before`.
pub async fn attempts(tx: &mut TenantTx, tenant: Uuid, webhook: Uuid, before: Option<Uuid>, limit: i64) -> Result<Vec<AttemptRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, event_id, event_type, position, attempt, succeeded, response_code, error, latency_us, attempt_time, next_attempt_time
         FROM webhook_attempts WHERE tenant_id = $1 AND webhook_id = $2 AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4",
    )
    .bind(tenant)
    .bind(webhook)
    .bind(before)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "webhook_attempts"))
    .await?)
}

/// Logs `attempts` of `webhook`.
pub async fn insert_attempts(tx: &mut TenantTx, tenant: Uuid, webhook: Uuid, attempts: &[AttemptRow]) -> Result<(), Error> {
    if attempts.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&AttemptRow) -> String| attempts.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO webhook_attempts (tenant_id, webhook_id, id, event_id, event_type, position, attempt, succeeded,
             response_code, error, latency_us, attempt_time, next_attempt_time)
         SELECT $1, $2, * FROM unnest($3::uuid[], $4::uuid[], $5::text[], $6::bigint[], $7::int[], $8::bool[], $9::int[],
             $10::text[], $11::bigint[], $12::timestamptz[], $13::timestamptz[])",
    )
    .bind(tenant)
    .bind(webhook)
    .bind(attempts.iter().map(|a| a.id).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.event_id).collect::<Vec<_>>())
    .bind(column(|a| a.event_type.clone()))
    .bind(attempts.iter().map(|a| a.position).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.attempt).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.succeeded).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.response_code).collect::<Vec<_>>())
    .bind(column(|a| a.error.clone()))
    .bind(attempts.iter().map(|a| a.latency_us).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.attempt_time).collect::<Vec<_>>())
    .bind(attempts.iter().map(|a| a.next_attempt_time).collect::<Vec<_>>())
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "webhook_attempts"))
    .await?;
    Ok(())
}

/// What a worker needs to deliver a webhook it has leased.
#[derive(Debug, Clone)]
pub struct Lease {
    pub position: i64,
    pub generation: i64,
    pub failures: i32,
    pub failing_since: Option<DateTime<Utc>>,
    pub target_uri: String,
    pub event_types: Vec<String>,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_expire_time: Option<DateTime<Utc>>,
}

/// Leases `webhook` to `owner` until `now + lease` if it is active, due and
/// not leased to another replica; its settings, or `None`.
pub async fn claim(
    tx: &mut TenantTx,
    tenant: Uuid,
    webhook: Uuid,
    owner: Uuid,
    lease: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<Option<Lease>, Error> {
    let claimed: Option<(i64, i64, i32, Option<DateTime<Utc>>)> = sqlx::query_as(
        "UPDATE webhook_cursors SET lease_owner = $3, lease_until = $4
         WHERE tenant_id = $1 AND webhook_id = $2 AND active AND (due_time IS NULL OR due_time <= $5)
           AND (lease_until IS NULL OR lease_until < $5 OR lease_owner = $3)
         RETURNING position, generation, failures, failing_since",
    )
    .bind(tenant)
    .bind(webhook)
    .bind(owner)
    .bind(now + lease)
    .bind(now)
    .fetch_optional(&mut **tx)
    .instrument(db_span("UPDATE", "webhook_cursors"))
    .await?;
    let Some((position, generation, failures, failing_since)) = claimed else { return Ok(None) };
    // A statement of its own, after the update: an update that waited for a
    // change of the webhook (which moves the generation on) must read the
    // settings that change committed, not its own older snapshot.
    let (target_uri, event_types, secret, previous_secret, previous_secret_expire_time) = sqlx::query_as(
        "SELECT target_uri, event_types, secret, previous_secret, previous_secret_expire_time FROM webhooks WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(webhook)
    .fetch_one(&mut **tx)
    .instrument(db_span("SELECT", "webhooks"))
    .await?;
    Ok(Some(Lease {
        position,
        generation,
        failures,
        failing_since,
        target_uri,
        event_types,
        secret,
        previous_secret,
        previous_secret_expire_time,
    }))
}

/// Where a leased webhook stands after a run of attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The last position delivered (or skipped by the filter).
    pub position: i64,
    /// Failed attempts at the head event in a row (0 after a success).
    pub failures: i32,
    /// Since when the head event fails.
    pub failing_since: Option<DateTime<Utc>>,
    /// When to try again; `None`: as events come.
    pub due_time: Option<DateTime<Utc>>,
    /// The lease's new end; `None` gives the lease up (its end is set to now:
    /// when the webhook was last served, which orders the due scan).
    pub lease_until: Option<DateTime<Utc>>,
}

/// Records `progress` if `owner` still holds the lease of generation
/// `generation`; whether it did (if not, the caller stops: the webhook was
/// replayed, changed or deleted, or its lease went to another replica).
pub async fn record_progress(
    tx: &mut TenantTx,
    tenant: Uuid,
    webhook: Uuid,
    owner: Uuid,
    generation: i64,
    progress: &Progress,
) -> Result<bool, Error> {
    let updated = sqlx::query(
        "UPDATE webhook_cursors SET position = $5, failures = $6, failing_since = $7, due_time = $8,
             lease_until = coalesce($9, $10), lease_owner = CASE WHEN $9::timestamptz IS NULL THEN NULL ELSE lease_owner END
         WHERE tenant_id = $1 AND webhook_id = $2 AND lease_owner = $3 AND generation = $4",
    )
    .bind(tenant)
    .bind(webhook)
    .bind(owner)
    .bind(generation)
    .bind(progress.position)
    .bind(progress.failures)
    .bind(progress.failing_since)
    .bind(progress.due_time)
    .bind(progress.lease_until)
    .bind(Utc::now())
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "webhook_cursors"))
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Disables `webhook` for `reason`; false if it was not ACTIVE.
pub async fn disable(tx: &mut TenantTx, tenant: Uuid, webhook: Uuid, reason: &str, now: DateTime<Utc>) -> Result<bool, Error> {
    let updated = sqlx::query(
        "WITH w AS (
             UPDATE webhooks SET state = 'DISABLED', disabled_reason = $3, revision = revision + 1, update_time = $4
             WHERE tenant_id = $1 AND id = $2 AND state = 'ACTIVE'
             RETURNING id
         )
         UPDATE webhook_cursors SET active = false, lease_owner = NULL, lease_until = NULL, due_time = NULL
         WHERE tenant_id = $1 AND webhook_id IN (SELECT id FROM w)",
    )
    .bind(tenant)
    .bind(webhook)
    .bind(reason)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "webhooks"))
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Webhooks due for delivery and leased by nobody, across tenants (the
/// read-only `webhook-scan` scope: ids only): those with a retry due, and
/// those with events after their cursor (per cursor, one probe of the queue
/// and of the last position, never a scan of either). Least recently served
/// first (a released lease ends when it was given up; a webhook never served
/// or just changed has none), so that with more due
/// webhooks than a scan returns, none waits behind others served since.
pub const DUE_SQL: &str = "SELECT c.tenant_id, c.webhook_id FROM webhook_cursors c
     WHERE c.active AND (c.due_time IS NULL OR c.due_time <= $1) AND (c.lease_until IS NULL OR c.lease_until < $1)
       AND (c.due_time IS NOT NULL
            OR (SELECT 1 FROM outbox_pending q WHERE q.tenant_id = c.tenant_id LIMIT 1) IS NOT NULL
            OR outbox_last_position(c.tenant_id) > c.position)
     ORDER BY c.lease_until NULLS FIRST LIMIT $2";
