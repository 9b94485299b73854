//! The `conversions` table: goals reached, each once per source, with the
//! message (and its campaign or journey) it is attributed to; and what a
//! campaign's or journey's messages earned.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

/// A stored conversion.
#[derive(Debug, Clone, FromRow)]
pub struct ConversionRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub goal: String,
    pub source: String,
    pub currency_code: String,
    pub revenue_minor: i64,
    pub delivery_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub journey_id: Option<Uuid>,
    pub occur_time: DateTime<Utc>,
}

const COLUMNS: &str = "id, customer_id, goal, source, currency_code, revenue_minor, delivery_id, campaign_id, journey_id, occur_time";

/// A goal reached.
#[derive(Debug, Clone)]
pub struct Goal<'a> {
    pub customer_id: Uuid,
    pub goal: &'a str,
    pub source: &'a str,
    pub currency_code: &'a str,
    pub revenue_minor: i64,
    pub occur_time: DateTime<Utc>,
}

/// The longest attribution window a campaign may have, in days.
pub const MAX_WINDOW_DAYS: i32 = 90;

/// Records `goal`, attributed to the last message sent to the customer
/// within its window before it — its campaign's attribution window, else
/// `default_window_days` — ; None when its source was recorded before.
pub async fn record(
    tx: &mut TenantTx,
    tenant: Uuid,
    goal: &Goal<'_>,
    default_window_days: i32,
    now: DateTime<Utc>,
) -> Result<Option<ConversionRow>, Error> {
    let sql = format!(
        "INSERT INTO conversions (tenant_id, id, customer_id, goal, source, currency_code, revenue_minor,
                                  delivery_id, campaign_id, journey_id, occur_time, create_time)
         SELECT $1, $2, $3, $4, $5, $6, $7, d.id, d.campaign_id,
                CASE WHEN d.request_id ~ '^journeys/[0-9a-f-]{{36}}/runs/' THEN split_part(d.request_id, '/', 2)::uuid END, $8, $9
         FROM (SELECT 1) AS one
         LEFT JOIN LATERAL (
             SELECT m.id, m.campaign_id, m.request_id FROM deliveries m
             LEFT JOIN campaigns c ON c.tenant_id = m.tenant_id AND c.id = m.campaign_id
             WHERE m.tenant_id = $1 AND m.customer_id = $3 AND m.send_time IS NOT NULL AND m.status = 'SENT'
               AND m.send_time <= $8 AND m.send_time > $8 - make_interval(days => $11)
               AND m.send_time > $8 - make_interval(days => coalesce(c.attribution_window_days, $10))
             ORDER BY m.send_time DESC LIMIT 1) AS d ON true
         ON CONFLICT (tenant_id, source) DO NOTHING
         RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(goal.customer_id)
        .bind(goal.goal)
        .bind(goal.source)
        .bind(goal.currency_code)
        .bind(goal.revenue_minor)
        .bind(goal.occur_time)
        .bind(now)
        .bind(default_window_days)
        .bind(MAX_WINDOW_DAYS)
        .fetch_optional(&mut **tx)
        .instrument(db_span("INSERT", "conversions"))
        .await?)
}

/// The conversion recorded from `source`, if any.
pub async fn by_source(tx: &mut TenantTx, tenant: Uuid, source: &str) -> Result<Option<ConversionRow>, Error> {
    Ok(sqlx::query_as(&format!("SELECT {COLUMNS} FROM conversions WHERE tenant_id = $1 AND source = $2"))
        .bind(tenant)
        .bind(source)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "conversions"))
        .await?)
}

/// Whose messages a report counts.
#[derive(Debug, Clone, Copy)]
pub enum Sender {
    Campaign(Uuid),
    Journey(Uuid),
}

/// What a sender's messages earned: messages sent, and (goal, currency, conversions, revenue) groups.
#[derive(Debug, Clone, Default)]
pub struct Earned {
    pub messages_sent: i64,
    pub groups: Vec<(String, String, i64, i64)>,
}

/// What `sender`'s messages earned.
pub async fn earned(tx: &mut TenantTx, tenant: Uuid, sender: Sender) -> Result<Earned, Error> {
    let (sent_sql, column, id) = match sender {
        Sender::Campaign(id) => {
            ("SELECT count(*) FROM deliveries WHERE tenant_id = $1 AND campaign_id = $2 AND status = 'SENT'", "campaign_id", id)
        }
        Sender::Journey(id) => (
            "SELECT count(*) FROM journey_run_steps s JOIN deliveries d ON d.tenant_id = s.tenant_id AND d.id = s.delivery_id
             WHERE s.tenant_id = $1 AND d.status = 'SENT'
               AND s.run_id IN (SELECT r.id FROM journey_runs r WHERE r.tenant_id = $1 AND r.journey_id = $2)",
            "journey_id",
            id,
        ),
    };
    let messages_sent: i64 =
        sqlx::query_scalar(sent_sql).bind(tenant).bind(id).fetch_one(&mut **tx).instrument(db_span("SELECT", "deliveries")).await?;
    let groups = sqlx::query_as(&format!(
        "SELECT goal, currency_code, count(*), coalesce(sum(revenue_minor), 0)::bigint FROM conversions
         WHERE tenant_id = $1 AND {column} = $2 GROUP BY goal, currency_code ORDER BY goal, currency_code"
    ))
    .bind(tenant)
    .bind(id)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "conversions"))
    .await?;
    Ok(Earned { messages_sent, groups })
}

/// Whether `customer` reached `goal` at or after `since`.
pub async fn reached(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, goal: &str, since: DateTime<Utc>) -> Result<bool, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM conversions WHERE tenant_id = $1 AND customer_id = $2 AND goal = $3 AND occur_time >= $4)",
    )
    .bind(tenant)
    .bind(customer)
    .bind(goal)
    .bind(since)
    .fetch_one(&mut **tx)
    .instrument(db_span("SELECT", "conversions"))
    .await?)
}

/// Wakes `customer`'s runs waiting for `goal` (due now); how many.
pub async fn wake_waiting(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, goal: &str, now: DateTime<Utc>) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE journey_runs SET due_time = $4
         WHERE tenant_id = $1 AND customer_id = $2 AND state = 'WAITING' AND awaiting_goal = $3 AND due_time > $4",
    )
    .bind(tenant)
    .bind(customer)
    .bind(goal)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "journey_runs"))
    .await?
    .rows_affected())
}
