//! The `journey_runs` and `journey_run_steps` tables: each customer's start
//! on a journey version, where it stands, and the steps it took.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx, db_span, scan_due, scan_due_ids},
};
use sqlx::{FromRow, PgPool, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::journey::{Definition, Trigger};

/// A stored run.
#[derive(Debug, Clone, FromRow)]
pub struct RunRow {
    pub id: Uuid,
    pub journey_id: Uuid,
    pub version: i32,
    pub customer_id: Uuid,
    pub trigger: String,
    /// ACTIVE, WAITING, COMPLETED or EXITED.
    pub state: String,
    /// The step it waits in or takes next; None once ended.
    pub step_id: Option<String>,
    /// Steps taken so far.
    pub step_count: i32,
    /// When the runner takes it next; None once ended.
    pub due_time: Option<DateTime<Utc>>,
    pub enter_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    /// Empty until ended.
    pub end_reason: String,
    /// For a run waiting for a goal: the goal, and since when.
    pub awaiting_goal: Option<String>,
    pub waiting_since: Option<DateTime<Utc>>,
    /// The ticket the event that started it was about.
    pub ticket_id: Option<Uuid>,
}

/// The journey_runs table for find and lock.
pub const RUNS: Table = Table {
    name: "journey_runs",
    columns: concat!(
        "id, journey_id, version, customer_id, trigger, state, step_id, step_count, due_time, enter_time, end_time, end_reason, ",
        "awaiting_goal, waiting_since, ticket_id"
    ),
};

/// A step a run took.
#[derive(Debug, Clone, FromRow)]
pub struct StepRow {
    pub run_id: Uuid,
    pub seq: i32,
    pub step_id: String,
    pub outcome: String,
    pub delivery_id: Option<Uuid>,
    pub detail: String,
    pub time: DateTime<Utc>,
    /// For a tested send step: "a", "b", … or "holdout"; else empty.
    pub variant: String,
}

/// A published journey that takes entrants now: its version's definition.
#[derive(Debug, Clone, FromRow)]
pub struct Entrance {
    pub journey_id: Uuid,
    pub version: i32,
    pub definition: Json<Definition>,
    /// When the journey was first published: events from before it start no one.
    pub first_publish_time: DateTime<Utc>,
}

const ENTRANCE: &str = "SELECT j.id AS journey_id, v.version, v.definition,
        (SELECT f.publish_time FROM journey_versions f WHERE f.tenant_id = j.tenant_id AND f.journey_id = j.id AND f.version = 1)
            AS first_publish_time
     FROM journeys j JOIN journey_versions v ON v.tenant_id = j.tenant_id AND v.journey_id = j.id AND v.version = j.published_version
     WHERE j.tenant_id = $1 AND j.state = 'ACTIVE'";

/// The ACTIVE journeys whose published version starts on `trigger`.
pub async fn entrances_for(tx: &mut TenantTx, tenant: Uuid, trigger: &Trigger) -> Result<Vec<Entrance>, Error> {
    let sql = format!("{ENTRANCE} AND v.definition -> 'trigger' = $2");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(Json(trigger)).fetch_all(&mut **tx).instrument(db_span("SELECT", "journeys")).await?)
}

/// Journey `id`'s entrance, if it is ACTIVE.
pub async fn entrance(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<Option<Entrance>, Error> {
    let sql = format!("{ENTRANCE} AND j.id = $2");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(&mut **tx).instrument(db_span("SELECT", "journeys")).await?)
}

/// Serialises the starts of `customer` on `journey` until the transaction
/// ends, so that a re-entry rule reads the last start of a settled history.
pub async fn lock_starts(tx: &mut TenantTx, journey: Uuid, customer: Uuid) -> Result<(), Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1::text || $2::text, 7))")
        .bind(journey)
        .bind(customer)
        .execute(&mut **tx)
        .instrument(db_span("SELECT", "journey_runs"))
        .await?;
    Ok(())
}

/// The run of `customer` on `journey` under `entry_key`, if there is one.
pub async fn by_entry(tx: &mut TenantTx, tenant: Uuid, journey: Uuid, customer: Uuid, entry_key: &str) -> Result<Option<RunRow>, Error> {
    let sql = format!(
        "SELECT {} FROM journey_runs WHERE tenant_id = $1 AND journey_id = $2 AND customer_id = $3 AND entry_key = $4",
        RUNS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(journey)
        .bind(customer)
        .bind(entry_key)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "journey_runs"))
        .await?)
}

/// When `customer` last started `journey`.
pub async fn last_start(tx: &mut TenantTx, tenant: Uuid, journey: Uuid, customer: Uuid) -> Result<Option<DateTime<Utc>>, Error> {
    Ok(sqlx::query_scalar("SELECT max(enter_time) FROM journey_runs WHERE tenant_id = $1 AND customer_id = $2 AND journey_id = $3")
        .bind(tenant)
        .bind(customer)
        .bind(journey)
        .fetch_one(&mut **tx)
        .instrument(db_span("SELECT", "journey_runs"))
        .await?)
}

/// A run to start.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    pub journey_id: Uuid,
    pub version: i32,
    pub customer_id: Uuid,
    pub entry_key: &'a str,
    pub trigger: &'a str,
    pub first_step: &'a str,
    pub exit_on_purchase: bool,
    /// When its first step is due.
    pub due_time: DateTime<Utc>,
    /// The ticket the starting event was about.
    pub ticket_id: Option<Uuid>,
}

/// Starts a run; None when a run with the same entry key exists.
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, run: &NewRun<'_>, now: DateTime<Utc>) -> Result<Option<RunRow>, Error> {
    let sql = format!(
        "INSERT INTO journey_runs (tenant_id, id, journey_id, version, customer_id, entry_key, trigger, state, step_id,
                                   due_time, exit_on_purchase, enter_time, ticket_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'ACTIVE', $8, $9, $10, $11, $12)
         ON CONFLICT (tenant_id, journey_id, customer_id, entry_key) DO NOTHING
         RETURNING {}",
        RUNS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(run.journey_id)
        .bind(run.version)
        .bind(run.customer_id)
        .bind(run.entry_key)
        .bind(run.trigger)
        .bind(run.first_step)
        .bind(run.due_time)
        .bind(run.exit_on_purchase)
        .bind(now)
        .bind(run.ticket_id)
        .fetch_optional(&mut **tx)
        .instrument(db_span("INSERT", "journey_runs"))
        .await?)
}

/// Where a batch of runs enters: one journey version.
#[derive(Debug, Clone, Copy)]
pub struct Door<'a> {
    pub journey_id: Uuid,
    pub version: i32,
    pub first_step: &'a str,
    pub exit_on_purchase: bool,
}

/// One entrant of [`insert_many`]: customer, entry key, trigger, the ticket it is about.
pub type Entrant = (Uuid, String, String, Option<Uuid>);

/// Starts a run, due now, for each (customer, entry key, trigger, ticket) of
/// `entrants` in one statement; those whose entry key exists are skipped.
/// How many started.
pub async fn insert_many(tx: &mut TenantTx, tenant: Uuid, door: Door<'_>, entrants: &[Entrant], now: DateTime<Utc>) -> Result<u64, Error> {
    let ids: Vec<Uuid> = entrants.iter().map(|_| Uuid::now_v7()).collect();
    let customers: Vec<Uuid> = entrants.iter().map(|e| e.0).collect();
    let keys: Vec<&str> = entrants.iter().map(|e| e.1.as_str()).collect();
    let triggers: Vec<&str> = entrants.iter().map(|e| e.2.as_str()).collect();
    let tickets: Vec<Option<Uuid>> = entrants.iter().map(|e| e.3).collect();
    Ok(sqlx::query(
        "INSERT INTO journey_runs (tenant_id, id, journey_id, version, customer_id, entry_key, trigger, state, step_id,
                                   due_time, exit_on_purchase, enter_time, ticket_id)
         SELECT $1, e.id, $2, $3, e.customer, e.key, e.trigger, 'ACTIVE', $4, $5, $6, $5, e.ticket
         FROM unnest($7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::uuid[]) AS e(id, customer, key, trigger, ticket)
         ON CONFLICT (tenant_id, journey_id, customer_id, entry_key) DO NOTHING",
    )
    .bind(tenant)
    .bind(door.journey_id)
    .bind(door.version)
    .bind(door.first_step)
    .bind(now)
    .bind(door.exit_on_purchase)
    .bind(&ids)
    .bind(&customers)
    .bind(&keys)
    .bind(&triggers)
    .bind(&tickets)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "journey_runs"))
    .await?
    .rows_affected())
}

/// Tenants with due runs, across tenants through the `due_scan` policy (ids and instants only).
pub async fn due_tenants(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<Uuid>, Error> {
    let sql = "SELECT tenant_id FROM journey_runs WHERE due_time <= $1 GROUP BY tenant_id ORDER BY min(due_time) LIMIT $2";
    scan_due_ids(pool, "journey-scan", "journey_runs", sql, now, limit).await
}

/// Claims up to `limit` of the tenant's due runs by pushing their due time
/// to `lease_until`; runs another replica is claiming are skipped.
pub async fn claim(
    tx: &mut TenantTx,
    tenant: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<RunRow>, Error> {
    let sql = format!(
        "WITH due AS (
             SELECT id FROM journey_runs WHERE tenant_id = $1 AND due_time <= $2 ORDER BY due_time LIMIT $4 FOR UPDATE SKIP LOCKED
         )
         UPDATE journey_runs r SET due_time = $3 FROM due WHERE r.tenant_id = $1 AND r.id = due.id
         RETURNING {}",
        RUNS.columns.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ")
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(now)
        .bind(lease_until)
        .bind(limit)
        .fetch_all(&mut **tx)
        .instrument(db_span("UPDATE", "journey_runs"))
        .await?)
}

/// Where a run stands after a step.
#[derive(Debug, Clone, Copy)]
pub struct Position<'a> {
    /// ACTIVE, WAITING, COMPLETED or EXITED.
    pub state: &'a str,
    pub step_id: Option<&'a str>,
    pub due_time: Option<DateTime<Utc>>,
    pub end_reason: &'a str,
    /// For a run that starts waiting for a goal: the goal.
    pub awaiting_goal: Option<&'a str>,
}

/// Moves run `id` to `to`, counting `steps_taken` more steps; an ending position sets the end time.
pub async fn set_position(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    to: &Position<'_>,
    steps_taken: i32,
    now: DateTime<Utc>,
) -> Result<RunRow, Error> {
    let sql = format!(
        "UPDATE journey_runs SET state = $3, step_id = $4, due_time = $5, end_reason = $6, step_count = step_count + $7,
                end_time = CASE WHEN $5::timestamptz IS NULL THEN $8 END,
                awaiting_goal = $9, waiting_since = CASE WHEN $9::text IS NULL THEN NULL ELSE $8 END
         WHERE tenant_id = $1 AND id = $2 RETURNING {}",
        RUNS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(to.state)
        .bind(to.step_id)
        .bind(to.due_time)
        .bind(to.end_reason)
        .bind(steps_taken)
        .bind(now)
        .bind(to.awaiting_goal)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "journey_runs"))
        .await?)
}

/// Pushes run `id`'s due time (its lease) to `until`.
pub async fn extend_lease(tx: &mut TenantTx, tenant: Uuid, id: Uuid, until: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query("UPDATE journey_runs SET due_time = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(until)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "journey_runs"))
        .await?;
    Ok(())
}

/// Records step `seq` of run `run`.
pub async fn record_step(tx: &mut TenantTx, tenant: Uuid, step: &StepRow) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO journey_run_steps (tenant_id, run_id, seq, step_id, outcome, delivery_id, detail, time, variant)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant)
    .bind(step.run_id)
    .bind(step.seq)
    .bind(&step.step_id)
    .bind(&step.outcome)
    .bind(step.delivery_id)
    .bind(&step.detail)
    .bind(step.time)
    .bind(&step.variant)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "journey_run_steps"))
    .await?;
    Ok(())
}

/// Ends `customer`'s unfinished runs of journeys that exit on purchase (GOAL_REACHED); how many.
pub async fn exit_on_purchase(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, now: DateTime<Utc>) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE journey_runs SET state = 'EXITED', step_id = NULL, due_time = NULL, end_reason = 'GOAL_REACHED', end_time = $3
         WHERE tenant_id = $1 AND customer_id = $2 AND exit_on_purchase AND due_time IS NOT NULL
           -- A greeting scheduled ahead (a birthday tomorrow) has not started: a purchase today does not cancel it.
           AND NOT (step_count = 0 AND due_time > $3 AND (trigger LIKE 'birthdays/%' OR trigger LIKE 'holidays/%'))",
    )
    .bind(tenant)
    .bind(customer)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "journey_runs"))
    .await?
    .rows_affected())
}

/// Which runs a page lists.
#[derive(Debug, Clone, Copy)]
pub struct RunScope {
    /// One journey's, or every journey's.
    pub journey: Option<Uuid>,
    /// One customer's, or every customer's.
    pub customer: Option<Uuid>,
}

/// A page of runs, newest first, before `before`.
pub async fn list(tx: &mut TenantTx, tenant: Uuid, scope: RunScope, before: Option<Uuid>, limit: i64) -> Result<Vec<RunRow>, Error> {
    let sql = format!(
        "SELECT {} FROM journey_runs
         WHERE tenant_id = $1 AND ($2::uuid IS NULL OR journey_id = $2) AND ($3::uuid IS NULL OR customer_id = $3)
           AND ($4::uuid IS NULL OR id < $4)
         ORDER BY id DESC LIMIT $5",
        RUNS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(scope.journey)
        .bind(scope.customer)
        .bind(before)
        .bind(limit)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "journey_runs"))
        .await?)
}

/// The latest `per_run` steps of each of `runs`, oldest first within a run.
pub async fn steps_of(tx: &mut TenantTx, tenant: Uuid, runs: &[Uuid], per_run: i64) -> Result<Vec<StepRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT s.run_id, s.seq, s.step_id, s.outcome, s.delivery_id, s.detail, s.time, s.variant
         FROM unnest($2::uuid[]) AS r(id),
              LATERAL (SELECT * FROM journey_run_steps WHERE tenant_id = $1 AND run_id = r.id ORDER BY seq DESC LIMIT $3) s
         ORDER BY s.run_id, s.seq",
    )
    .bind(tenant)
    .bind(runs)
    .bind(per_run)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "journey_run_steps"))
    .await?)
}

/// The journeys a date starts, across tenants (ids only, through the `schedule_scan` policy), at most `limit`.
pub async fn occasion_journeys(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<(Uuid, Uuid)>, Error> {
    // `now` is not needed: every such journey is looked at each round.
    let sql =
        "SELECT tenant_id, journey_id FROM occasion_journeys WHERE $1::timestamptz IS NOT NULL ORDER BY tenant_id, journey_id LIMIT $2";
    scan_due(pool, "journey-schedule-scan", "occasion_journeys", sql, now, limit).await
}

/// Records whether journey `journey`'s published version is started by a date (for the scheduler's scan).
pub async fn set_occasion_journey(tx: &mut TenantTx, tenant: Uuid, journey: Uuid, by_date: bool) -> Result<(), Error> {
    let sql = match by_date {
        true => "INSERT INTO occasion_journeys (tenant_id, journey_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        false => "DELETE FROM occasion_journeys WHERE tenant_id = $1 AND journey_id = $2",
    };
    sqlx::query(sql).bind(tenant).bind(journey).execute(&mut **tx).instrument(db_span("INSERT", "occasion_journeys")).await?;
    Ok(())
}

/// Where the pass for `occurrence` of journey `journey` stands: its next page token and whether it is done.
pub async fn occurrence(tx: &mut TenantTx, tenant: Uuid, journey: Uuid, occurrence: &str) -> Result<Option<(String, bool)>, Error> {
    Ok(sqlx::query_as(
        "SELECT page_token, done FROM journey_occurrences WHERE tenant_id = $1 AND journey_id = $2 AND occurrence = $3 FOR UPDATE",
    )
    .bind(tenant)
    .bind(journey)
    .bind(occurrence)
    .fetch_optional(&mut **tx)
    .instrument(db_span("SELECT", "journey_occurrences"))
    .await?)
}

/// Records the pass for `occurrence` as read up to `page_token` (done when it is the last page), `entered` more runs started.
pub async fn save_occurrence(
    tx: &mut TenantTx,
    tenant: Uuid,
    journey: Uuid,
    occurrence: &str,
    page_token: &str,
    entered: i64,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO journey_occurrences (tenant_id, journey_id, occurrence, page_token, done, entered, update_time)
         VALUES ($1, $2, $3, $4, $4 = '', $5, $6)
         ON CONFLICT (tenant_id, journey_id, occurrence) DO UPDATE
         SET page_token = EXCLUDED.page_token, done = EXCLUDED.done,
             entered = journey_occurrences.entered + EXCLUDED.entered, update_time = EXCLUDED.update_time
         -- A replica behind another never reopens a finished pass.
         WHERE NOT journey_occurrences.done",
    )
    .bind(tenant)
    .bind(journey)
    .bind(occurrence)
    .bind(page_token)
    .bind(entered)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "journey_occurrences"))
    .await?;
    Ok(())
}
