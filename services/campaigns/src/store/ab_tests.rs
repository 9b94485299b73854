//! The `ab_tests` table: the A/B/n-tested send steps of published journey
//! versions and their winners; and each group's numbers.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span, scan_due},
};
use sqlx::{FromRow, PgPool};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::ab_test::Decision;

/// A tested step.
#[derive(Debug, Clone, FromRow)]
pub struct AbTestRow {
    pub journey_id: Uuid,
    pub version: i32,
    pub step_id: String,
    pub publish_time: DateTime<Utc>,
    pub winner: String,
    pub decision: String,
    pub detail: String,
}

const COLUMNS: &str = "journey_id, version, step_id, publish_time, winner, decision, detail";

/// Registers the tested steps `steps` of version `version` of journey `journey`.
pub async fn register(
    tx: &mut TenantTx,
    tenant: Uuid,
    journey: Uuid,
    version: i32,
    steps: &[&str],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO ab_tests (tenant_id, journey_id, version, step_id, publish_time)
         SELECT $1, $2, $3, step, $5 FROM unnest($4::text[]) AS step ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(journey)
    .bind(version)
    .bind(steps)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "ab_tests"))
    .await?;
    Ok(())
}

/// The test of step `step` of version `version` of journey `journey`.
pub async fn find(tx: &mut TenantTx, tenant: Uuid, journey: Uuid, version: i32, step: &str) -> Result<Option<AbTestRow>, Error> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM ab_tests WHERE tenant_id = $1 AND journey_id = $2 AND version = $3 AND step_id = $4"
    ))
    .bind(tenant)
    .bind(journey)
    .bind(version)
    .bind(step)
    .fetch_optional(&mut **tx)
    .instrument(db_span("SELECT", "ab_tests"))
    .await?)
}

/// Journey `journey`'s tests, newest version first.
pub async fn of_journey(tx: &mut TenantTx, tenant: Uuid, journey: Uuid) -> Result<Vec<AbTestRow>, Error> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM ab_tests WHERE tenant_id = $1 AND journey_id = $2 ORDER BY version DESC, step_id"))
        .bind(tenant)
        .bind(journey)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "ab_tests"))
        .await?)
}

/// The undecided tests across tenants (through the `decide_scan` policy): (tenant, journey, version, step).
pub async fn undecided(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Vec<(Uuid, Uuid, i32, String)>, Error> {
    let sql = "SELECT tenant_id, journey_id, version, step_id FROM ab_tests WHERE winner = '' AND publish_time <= $1
               ORDER BY publish_time LIMIT $2";
    scan_due(pool, "ab-test-scan", "ab_tests", sql, now, limit).await
}

/// Records the winner of a test (once: a decided test is not decided again).
pub async fn decide(tx: &mut TenantTx, tenant: Uuid, test: &AbTestRow, decision: &Decision, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query(
        "UPDATE ab_tests SET winner = $5, decision = $6, detail = $7, decide_time = $8
         WHERE tenant_id = $1 AND journey_id = $2 AND version = $3 AND step_id = $4 AND winner = ''",
    )
    .bind(tenant)
    .bind(test.journey_id)
    .bind(test.version)
    .bind(&test.step_id)
    .bind(&decision.winner)
    .bind(decision.reason)
    .bind(&decision.detail)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "ab_tests"))
    .await?;
    Ok(())
}

/// One group's numbers at a tested step.
#[derive(Debug, Clone, FromRow)]
pub struct GroupRow {
    pub variant: String,
    pub runs: i64,
    pub sent: i64,
    pub opened: i64,
    pub clicked: i64,
    /// Messages a conversion is attributed to.
    pub attributed: i64,
    /// Runs whose customer reached any goal within `window` after the step.
    pub converted: i64,
}

/// Each group's numbers at `test`, conversions counted within `window` after the step.
pub async fn groups(tx: &mut TenantTx, tenant: Uuid, test: &AbTestRow, window: chrono::Duration) -> Result<Vec<GroupRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT s.variant, count(*) AS runs,
                count(d.id) FILTER (WHERE d.status = 'SENT') AS sent,
                count(d.id) FILTER (WHERE d.status = 'SENT' AND d.open_time IS NOT NULL) AS opened,
                count(d.id) FILTER (WHERE d.status = 'SENT' AND d.click_time IS NOT NULL) AS clicked,
                count(d.id) FILTER (WHERE d.status = 'SENT' AND EXISTS (
                    SELECT 1 FROM conversions c WHERE c.tenant_id = s.tenant_id AND c.delivery_id = d.id)) AS attributed,
                count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM conversions c WHERE c.tenant_id = s.tenant_id AND c.customer_id = r.customer_id
                      AND c.occur_time >= s.time AND c.occur_time < s.time + $5)) AS converted
         FROM journey_runs r
         JOIN journey_run_steps s ON s.tenant_id = r.tenant_id AND s.run_id = r.id
         LEFT JOIN deliveries d ON d.tenant_id = s.tenant_id AND d.id = s.delivery_id
         WHERE r.tenant_id = $1 AND r.journey_id = $2 AND r.version = $3 AND s.step_id = $4 AND s.variant <> ''
         GROUP BY s.variant ORDER BY s.variant",
    )
    .bind(tenant)
    .bind(test.journey_id)
    .bind(test.version)
    .bind(&test.step_id)
    .bind(window)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "journey_run_steps"))
    .await?)
}
