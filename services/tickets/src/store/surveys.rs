//! The `surveys` table.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

/// A stored survey.
#[derive(Debug, Clone, FromRow)]
pub struct SurveyRow {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub agent: String,
    pub team: String,
    pub category: String,
    pub send_time: DateTime<Utc>,
    pub csat: Option<i16>,
    pub nps: Option<i16>,
    pub comment: String,
    pub answer_time: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, ticket_id, agent, team, category, send_time, csat, nps, comment, answer_time";

/// Creates the ticket's survey unless it has one (a ticket is surveyed once).
pub async fn create_once(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: Uuid,
    agent: &str,
    team: &str,
    category: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO surveys (tenant_id, id, ticket_id, agent, team, category, send_time) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT ON CONSTRAINT surveys_one_per_ticket DO NOTHING",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(ticket)
    .bind(agent)
    .bind(team)
    .bind(category)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "surveys"))
    .await?;
    Ok(())
}

/// The survey of a ticket.
pub async fn for_ticket(tx: &mut TenantTx, tenant: Uuid, ticket: Uuid) -> Result<Option<SurveyRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM surveys WHERE tenant_id = $1 AND ticket_id = $2");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(ticket).fetch_optional(&mut **tx).instrument(db_span("SELECT", "surveys")).await?)
}

/// One survey, locked.
pub async fn lock(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<Option<SurveyRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM surveys WHERE tenant_id = $1 AND id = $2 FOR UPDATE");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(&mut **tx).instrument(db_span("SELECT", "surveys")).await?)
}

/// Stores the answer.
pub async fn answer(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    csat: i16,
    nps: Option<i16>,
    comment: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query("UPDATE surveys SET csat = $3, nps = $4, comment = $5, answer_time = $6 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .bind(csat)
        .bind(nps)
        .bind(comment)
        .bind(now)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "surveys"))
        .await?;
    Ok(())
}

/// One summary group.
#[derive(Debug, Clone, FromRow)]
pub struct SummaryRow {
    pub key: String,
    pub sent: i64,
    pub responses: i64,
    pub csat_average: Option<f64>,
    pub nps: Option<f64>,
}

/// CSAT and NPS per `column` ("agent", "team" or "category") for surveys sent in `[from, to)`.
pub async fn summary(
    tx: &mut TenantTx,
    tenant: Uuid,
    column: &'static str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<SummaryRow>, Error> {
    // `column` comes from a fixed match in the caller, never from input.
    let sql = format!(
        "SELECT {column} AS key, count(*) AS sent, count(csat) AS responses, avg(csat)::float8 AS csat_average,
                (100.0 * (count(*) FILTER (WHERE nps >= 9) - count(*) FILTER (WHERE nps <= 6)) / NULLIF(count(nps), 0))::float8 AS nps
         FROM surveys WHERE tenant_id = $1 AND send_time >= $2 AND send_time < $3 GROUP BY {column} ORDER BY {column}"
    );
    Ok(sqlx::query_as(&sql).bind(tenant).bind(from).bind(to).fetch_all(&mut **tx).instrument(db_span("SELECT", "surveys")).await?)
}
