//! The `campaigns`, `campaign_counters` and `campaign_jobs` tables, and the
//! campaign-wide operations on its ledger rows and queue entries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Revisioned, Table, TenantTx, db_span, scan_due},
};
use rand::Rng;
use sqlx::{FromRow, PgPool, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use super::deliveries::DeliveryRow;
use crate::domain::{ab_test::CampaignTest, campaign::State};

/// A stored campaign.
#[derive(Debug, Clone, FromRow)]
pub struct CampaignRow {
    pub id: Uuid,
    pub display_name: String,
    pub template_id: Uuid,
    pub audience_filter: String,
    pub variables: Json<BTreeMap<String, String>>,
    pub schedule_time: Option<DateTime<Utc>>,
    /// Minute of the day each member's message goes at, in their zone.
    pub local_send_minute: Option<i32>,
    #[sqlx(try_from = "String")]
    pub state: State,
    pub snapshot_page_token: Option<String>,
    pub snapshot_done: bool,
    pub start_time: Option<DateTime<Utc>>,
    pub run_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// The trace StartCampaign ran in ('' when spans are not exported).
    pub traceparent: String,
    /// Its A/B/n test, if it has one, and the test's outcome once decided.
    pub ab_test: Option<Json<CampaignTest>>,
    pub ab_winner: String,
    pub ab_decision: String,
    pub ab_detail: String,
    pub ab_decide_time: Option<DateTime<Utc>>,
    /// How far the winner went out to the rest (customer ids in order), and whether it all did.
    pub rest_cursor: Option<Uuid>,
    pub rest_done: bool,
    pub attribution_window_days: i32,
    /// The questionnaire each recipient is invited to.
    pub questionnaire_id: Option<Uuid>,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Revisioned for CampaignRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

/// The campaigns table for find and lock.
pub const CAMPAIGNS: Table = Table {
    name: "campaigns",
    columns: "id, display_name, template_id, audience_filter, variables, schedule_time, local_send_minute, state, snapshot_page_token, snapshot_done,
        start_time, run_time, end_time, traceparent, ab_test, ab_winner, ab_decision, ab_detail, ab_decide_time, rest_cursor, rest_done,
        attribution_window_days, questionnaire_id, revision, create_time, update_time",
};

impl CampaignRow {
    /// Its A/B/n test while no winner is chosen.
    pub fn undecided_test(&self) -> Option<&CampaignTest> {
        self.ab_test.as_ref().map(|t| &t.0).filter(|_| self.ab_winner.is_empty())
    }

    /// Whether its test has a rest still waiting for the winner.
    pub fn rest_pending(&self) -> bool {
        self.ab_test.as_ref().is_some_and(|t| t.0.test_percent < 100) && !self.rest_done
    }
}

/// What a campaign's author writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignFields {
    pub display_name: String,
    pub template_id: Uuid,
    pub audience_filter: String,
    pub variables: BTreeMap<String, String>,
    pub schedule_time: Option<DateTime<Utc>>,
    pub local_send_minute: Option<i32>,
    pub ab_test: Option<CampaignTest>,
    pub attribution_window_days: i32,
    pub questionnaire_id: Option<Uuid>,
}

impl CampaignFields {
    /// The fields of stored campaign `row`.
    pub fn of(row: &CampaignRow) -> Self {
        Self {
            display_name: row.display_name.clone(),
            template_id: row.template_id,
            audience_filter: row.audience_filter.clone(),
            variables: row.variables.0.clone(),
            schedule_time: row.schedule_time,
            local_send_minute: row.local_send_minute,
            ab_test: row.ab_test.as_ref().map(|t| t.0.clone()),
            attribution_window_days: row.attribution_window_days,
            questionnaire_id: row.questionnaire_id,
        }
    }
}

/// Inserts a DRAFT campaign.
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, f: &CampaignFields, now: DateTime<Utc>) -> Result<CampaignRow, Error> {
    let sql = format!(
        "INSERT INTO campaigns (tenant_id, id, display_name, template_id, audience_filter, variables, schedule_time, local_send_minute,
             ab_test, attribution_window_days, questionnaire_id, state, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $10, $11, $12, 'DRAFT', $8, $8) RETURNING {}",
        CAMPAIGNS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(&f.display_name)
        .bind(f.template_id)
        .bind(&f.audience_filter)
        .bind(Json(&f.variables))
        .bind(f.schedule_time)
        .bind(now)
        .bind(f.local_send_minute)
        .bind(f.ab_test.as_ref().map(Json))
        .bind(f.attribution_window_days)
        .bind(f.questionnaire_id)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "campaigns"))
        .await?)
}

/// Replaces a campaign's written fields.
pub async fn update(tx: &mut TenantTx, tenant: Uuid, id: Uuid, f: &CampaignFields, now: DateTime<Utc>) -> Result<CampaignRow, Error> {
    let sql = format!(
        "UPDATE campaigns SET display_name = $3, template_id = $4, audience_filter = $5, variables = $6, schedule_time = $7,
         local_send_minute = $9, ab_test = $10, attribution_window_days = $11, questionnaire_id = $12, update_time = $8,
         revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 RETURNING {}",
        CAMPAIGNS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(&f.display_name)
        .bind(f.template_id)
        .bind(&f.audience_filter)
        .bind(Json(&f.variables))
        .bind(f.schedule_time)
        .bind(now)
        .bind(f.local_send_minute)
        .bind(f.ab_test.as_ref().map(Json))
        .bind(f.attribution_window_days)
        .bind(f.questionnaire_id)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "campaigns"))
        .await?)
}

/// Which instants a state change stamps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stamps {
    pub start: bool,
    pub run: bool,
    pub end: bool,
}

/// Moves campaign `id` to `state`, stamping what `stamps` says with `now`.
pub async fn set_state(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    state: State,
    stamps: Stamps,
    now: DateTime<Utc>,
) -> Result<CampaignRow, Error> {
    let sql = format!(
        "UPDATE campaigns SET state = $3, start_time = CASE WHEN $4 THEN $7 ELSE start_time END,
         run_time = CASE WHEN $5 THEN $7 ELSE run_time END, end_time = CASE WHEN $6 THEN $7 ELSE end_time END,
         traceparent = CASE WHEN $4 THEN $8 ELSE traceparent END,
         update_time = $7, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {}",
        CAMPAIGNS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(state.as_str())
        .bind(stamps.start)
        .bind(stamps.run)
        .bind(stamps.end)
        .bind(now)
        // The start's trace: the snapshot and every send continue it.
        .bind(crm_kit::telemetry::current_traceparent())
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "campaigns"))
        .await?)
}

/// Records how far the audience snapshot got: profiles' page token after
/// the last stored batch, and whether that was the last page.
pub async fn set_snapshot_progress(tx: &mut TenantTx, tenant: Uuid, id: Uuid, page_token: &str, done: bool) -> Result<(), Error> {
    sqlx::query("UPDATE campaigns SET snapshot_page_token = $3, snapshot_done = $4 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(page_token)
        .bind(done)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "campaigns"))
        .await?;
    Ok(())
}

/// Deletes campaign `id` (a draft: it has no deliveries).
pub async fn delete(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM campaigns WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "campaigns"))
        .await?;
    Ok(())
}

/// A page of campaigns, newest first, before `before`.
pub async fn list(tx: &mut TenantTx, tenant: Uuid, before: Option<Uuid>, limit: i64) -> Result<Vec<CampaignRow>, Error> {
    let sql = format!(
        "SELECT {} FROM campaigns WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        CAMPAIGNS.columns
    );
    Ok(sqlx::query_as(&sql).bind(tenant).bind(before).bind(limit).fetch_all(&mut **tx).instrument(db_span("SELECT", "campaigns")).await?)
}

// --- counters ----------------------------------------------------------------

/// Shards per counter.
const SHARDS: i16 = 16;

/// Adds `deltas` ((status, skip reason) → change) to campaign `id`'s counters.
pub async fn add_counts(tx: &mut TenantTx, tenant: Uuid, id: Uuid, deltas: &BTreeMap<(&str, &str), i64>) -> Result<(), Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let shard = rand::thread_rng().gen_range(0..SHARDS);
    let (statuses, rest): (Vec<&str>, Vec<(&str, i64)>) = deltas.iter().map(|((s, r), d)| (*s, (*r, *d))).unzip();
    let (reasons, counts): (Vec<&str>, Vec<i64>) = rest.into_iter().unzip();
    sqlx::query(
        "INSERT INTO campaign_counters (tenant_id, campaign_id, status, skip_reason, shard, count)
         SELECT $1, $2, s, r, $3, c FROM unnest($4::text[], $5::text[], $6::bigint[]) AS t(s, r, c)
         ON CONFLICT (tenant_id, campaign_id, status, skip_reason, shard) DO UPDATE SET count = campaign_counters.count + EXCLUDED.count",
    )
    .bind(tenant)
    .bind(id)
    .bind(shard)
    .bind(&statuses)
    .bind(&reasons)
    .bind(&counts)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "campaign_counters"))
    .await?;
    Ok(())
}

/// The counts of campaigns `ids`: (campaign, status, skip reason, count).
pub async fn counts(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<(Uuid, String, String, i64)>, Error> {
    Ok(sqlx::query_as(
        "SELECT campaign_id, status, skip_reason, sum(count)::bigint FROM campaign_counters
         WHERE tenant_id = $1 AND campaign_id = ANY($2) GROUP BY campaign_id, status, skip_reason",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "campaign_counters"))
    .await?)
}

// --- the campaign job's schedule ------------------------------------------------

/// The campaign job looks at campaign `id` from `due` on.
pub async fn wake_job(tx: &mut TenantTx, tenant: Uuid, id: Uuid, due: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO campaign_jobs (tenant_id, campaign_id, due_time) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, campaign_id) DO UPDATE SET due_time = EXCLUDED.due_time",
    )
    .bind(tenant)
    .bind(id)
    .bind(due)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "campaign_jobs"))
    .await?;
    Ok(())
}

/// The campaign job has nothing more to do for campaign `id`.
pub async fn drop_job(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM campaign_jobs WHERE tenant_id = $1 AND campaign_id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "campaign_jobs"))
        .await?;
    Ok(())
}

/// Campaigns due for the job, across tenants, through the `due_scan` policy.
pub async fn due_jobs(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<(Uuid, Uuid)>, Error> {
    let sql = "SELECT tenant_id, campaign_id FROM campaign_jobs WHERE due_time <= $1 ORDER BY due_time LIMIT $2";
    scan_due(pool, "campaign-scan", "campaign_jobs", sql, now, limit).await
}

/// Takes campaign `id`'s job until `until` if it is due at `now`; false when
/// it is not due (or another replica just took it).
pub async fn lease_job(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, Error> {
    let leased = sqlx::query("UPDATE campaign_jobs SET due_time = $4 WHERE tenant_id = $1 AND campaign_id = $2 AND due_time <= $3")
        .bind(tenant)
        .bind(id)
        .bind(now)
        .bind(until)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "campaign_jobs"))
        .await?;
    Ok(leased.rows_affected() == 1)
}

// --- the campaign's ledger rows and queue entries ---------------------------------

/// Stores a batch of the audience's deliveries — a member already stored
/// (a batch repeated after a crash) is skipped by the ledger's unique key —
/// and queues the QUEUED ones in the campaign lane, due at `due` (the end of
/// time while the snapshot goes on: they are released when the campaign runs,
/// each at its `next_attempt_time` if it has one). Returns the (status, skip
/// reason) of each row actually stored.
pub async fn insert_deliveries(
    tx: &mut TenantTx,
    tenant: Uuid,
    rows: &[DeliveryRow],
    due: DateTime<Utc>,
) -> Result<Vec<(Uuid, String, String)>, Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    macro_rules! column {
        ($f:expr) => {
            rows.iter().map($f).collect::<Vec<_>>()
        };
    }
    let stored: Vec<(Uuid, String, String)> = sqlx::query_as(
        "INSERT INTO deliveries (tenant_id, id, kind, campaign_id, template_id, customer_id, channel, purpose, recipient, status,
             skip_reason, locale, subject, body, html_body, data, error, variables, create_time, update_time, next_attempt_time,
             traceparent, variant)
         SELECT $1, t.id, 'CAMPAIGN', t.campaign_id, t.template_id, t.customer_id, t.channel, t.purpose, t.recipient, t.status,
             t.skip_reason, t.locale, t.subject, t.body, t.html_body, t.data, t.error, t.variables, $2, $2,
             CASE WHEN t.status = 'QUEUED' THEN t.next_attempt_time END, $20, t.variant
         FROM unnest($4::uuid[], $5::uuid[], $6::uuid[], $7::uuid[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                     $13::text[], $14::text[], $15::text[], $16::text[], $17::jsonb[], $18::text[], $19::jsonb[], $3::timestamptz[],
                     $21::text[])
              AS t(id, campaign_id, template_id, customer_id, channel, purpose, recipient, status, skip_reason, locale, subject, body,
                   html_body, data, error, variables, next_attempt_time, variant)
         ON CONFLICT DO NOTHING
         RETURNING id, status, skip_reason",
    )
    .bind(tenant)
    .bind(rows[0].create_time)
    .bind(column!(|r| r.next_attempt_time))
    .bind(column!(|r| r.id))
    .bind(column!(|r| r.campaign_id))
    .bind(column!(|r| r.template_id))
    .bind(column!(|r| r.customer_id))
    .bind(column!(|r| r.channel.as_str()))
    .bind(column!(|r| r.purpose.as_str()))
    .bind(column!(|r| r.recipient.as_str()))
    .bind(column!(|r| r.status.as_str()))
    .bind(column!(|r| r.skip_reason.as_str()))
    .bind(column!(|r| r.locale.as_str()))
    .bind(column!(|r| r.subject.as_str()))
    .bind(column!(|r| r.body.as_str()))
    .bind(column!(|r| r.html_body.as_str()))
    .bind(column!(|r| r.data.clone()))
    .bind(column!(|r| r.error.as_str()))
    .bind(column!(|r| r.variables.clone()))
    .bind(&rows[0].traceparent)
    .bind(column!(|r| r.variant.as_str()))
    .fetch_all(&mut **tx)
    .instrument(db_span("INSERT", "deliveries"))
    .await?;
    let queued: Vec<Uuid> = stored.iter().filter(|(_, status, _)| status == "QUEUED").map(|(id, _, _)| *id).collect();
    if !queued.is_empty() {
        sqlx::query(
            "WITH queued AS (
                 INSERT INTO delivery_queue (tenant_id, delivery_id, lane, due_time, campaign_id)
                 SELECT $1, id, $2, $3, $4 FROM unnest($5::uuid[]) AS t(id)
             )
             SELECT pg_notify($6, $1::text)",
        )
        .bind(tenant)
        .bind(super::queue::CAMPAIGN_LANE)
        .bind(due)
        .bind(rows[0].campaign_id)
        .bind(&queued)
        .bind(super::queue::NOTIFY_CHANNEL)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "delivery_queue"))
        .await?;
    }
    Ok(stored)
}

/// When a held message is due: never, until it is released.
pub const HELD: DateTime<Utc> = DateTime::<Utc>::MAX_UTC;

/// Holds up to `limit` of campaign `id`'s queued messages that are not held
/// yet (they are not claimed until released); returns how many. Rows a
/// sender has locked right now are skipped, not waited for — senders lock
/// several in delivery-id order, this scan goes by due time, and waiting
/// would deadlock — so fewer than `limit` does not prove none is left:
/// [`has_unheld`] does.
pub async fn hold_queued(tx: &mut TenantTx, tenant: Uuid, id: Uuid, limit: i64) -> Result<i64, Error> {
    let held = sqlx::query(
        "UPDATE delivery_queue SET due_time = $3
         WHERE tenant_id = $1 AND delivery_id IN (
             SELECT delivery_id FROM delivery_queue WHERE tenant_id = $1 AND campaign_id = $2 AND due_time < $3
             LIMIT $4 FOR UPDATE SKIP LOCKED)",
    )
    .bind(tenant)
    .bind(id)
    .bind(HELD)
    .bind(limit)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "delivery_queue"))
    .await?;
    Ok(i64::try_from(held.rows_affected()).unwrap_or(i64::MAX))
}

/// Whether campaign `id` has queued messages that are not held.
pub async fn has_unheld(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<bool, Error> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM delivery_queue WHERE tenant_id = $1 AND campaign_id = $2 AND due_time < $3)")
        .bind(tenant)
        .bind(id)
        .bind(HELD)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "delivery_queue"))
        .await?)
}

/// Makes up to `limit` of campaign `id`'s held messages due: each at its
/// delivery's `next_attempt_time` (a recipient's local send time, a retry's
/// backoff, the end of quiet hours) if that is later than `now`, else at
/// `now`; returns how many. Like [`hold_queued`] it skips rows a sender has
/// locked (one that claimed a message just before the pause and is letting
/// it go), so fewer than `limit` is not proof that none is held: the
/// campaign job releases again every round while the campaign runs.
pub async fn release_held(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>, limit: i64) -> Result<i64, Error> {
    let released = sqlx::query(
        "UPDATE delivery_queue q SET due_time = greatest(coalesce(d.next_attempt_time, $3), $3)
         FROM deliveries d
         WHERE q.tenant_id = $1 AND d.tenant_id = $1 AND d.id = q.delivery_id AND q.delivery_id IN (
             SELECT delivery_id FROM delivery_queue WHERE tenant_id = $1 AND campaign_id = $2 AND due_time = $4
             LIMIT $5 FOR UPDATE SKIP LOCKED)",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .bind(HELD)
    .bind(limit)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "delivery_queue"))
    .await?;
    Ok(i64::try_from(released.rows_affected()).unwrap_or(i64::MAX))
}

/// Cancels up to `limit` of campaign `id`'s messages that are still QUEUED
/// (not those being handed over right now) and takes them off the queue;
/// returns how many. Like [`hold_queued`] it skips rows a sender has locked,
/// so fewer than `limit` is not proof that none is left: [`has_queued`] is.
pub async fn cancel_queued(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>, limit: i64) -> Result<i64, Error> {
    // Queue rows first, then ledger rows: the order the delivery job's claim
    // takes them in. In no particular order — any batch will do, and a sort
    // of a million rows planned on statistics not yet gathered (the audience
    // was just stored) took seconds — skipping what a sender holds.
    let batch: Vec<Uuid> = sqlx::query_scalar(
        "SELECT q.delivery_id FROM delivery_queue q JOIN deliveries d ON d.tenant_id = q.tenant_id AND d.id = q.delivery_id
         WHERE q.tenant_id = $1 AND q.campaign_id = $2 AND d.status = 'QUEUED'
         LIMIT $3 FOR UPDATE OF q SKIP LOCKED",
    )
    .bind(tenant)
    .bind(id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "delivery_queue"))
    .await?;
    let cancelled: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE deliveries SET status = 'CANCELLED', next_attempt_time = NULL, update_time = $3
         WHERE tenant_id = $1 AND id = ANY($2) AND status = 'QUEUED' RETURNING id",
    )
    .bind(tenant)
    .bind(&batch)
    .bind(now)
    .fetch_all(&mut **tx)
    .instrument(db_span("UPDATE", "deliveries"))
    .await?;
    sqlx::query("DELETE FROM delivery_queue WHERE tenant_id = $1 AND delivery_id = ANY($2)")
        .bind(tenant)
        .bind(&cancelled)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "delivery_queue"))
        .await?;
    Ok(i64::try_from(cancelled.len()).unwrap_or(i64::MAX))
}

/// Whether campaign `id` still has messages in the queue.
pub async fn has_queued(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<bool, Error> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM delivery_queue WHERE tenant_id = $1 AND campaign_id = $2)")
        .bind(tenant)
        .bind(id)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "delivery_queue"))
        .await?)
}

/// Whether a campaign that is not finished yet sends template `template`
/// (as its own message or an A/B/n test's variant).
pub async fn template_in_use(tx: &mut TenantTx, tenant: Uuid, template: Uuid) -> Result<bool, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM campaigns WHERE tenant_id = $1 AND state IN ('DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED')
             AND (template_id = $2 OR ab_test->'test'->'variants' @> jsonb_build_array(jsonb_build_object('template', $2::text))))",
    )
    .bind(tenant)
    .bind(template)
    .fetch_one(&mut **tx)
    .instrument(db_span("SELECT", "campaigns"))
    .await?)
}
