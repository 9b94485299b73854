//! The `follow_ups` table.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

/// A stored follow-up.
#[derive(Debug, Clone, FromRow)]
pub struct FollowUpRow {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub agent: String,
    pub due_time: DateTime<Utc>,
    pub state: String,
    pub reached: bool,
    pub satisfied: bool,
    pub notes: String,
    pub completed_by: String,
    pub complete_time: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, ticket_id, agent, due_time, state, reached, satisfied, notes, completed_by, complete_time";

/// Schedules a follow-up, cancelling any still scheduled for the ticket.
pub async fn schedule(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: Uuid,
    agent: &str,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    cancel_scheduled(tx, tenant, ticket).await?;
    sqlx::query("INSERT INTO follow_ups (tenant_id, id, ticket_id, agent, due_time, state, create_time) VALUES ($1, $2, $3, $4, $5, 'SCHEDULED', $6)")
        .bind(tenant)
        .bind(Uuid::now_v7())
        .bind(ticket)
        .bind(agent)
        .bind(due)
        .bind(now)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "follow_ups"))
        .await?;
    Ok(())
}

/// Cancels the ticket's scheduled follow-ups.
pub async fn cancel_scheduled(tx: &mut TenantTx, tenant: Uuid, ticket: Uuid) -> Result<(), Error> {
    sqlx::query("UPDATE follow_ups SET state = 'CANCELLED' WHERE tenant_id = $1 AND ticket_id = $2 AND state = 'SCHEDULED'")
        .bind(tenant)
        .bind(ticket)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "follow_ups"))
        .await?;
    Ok(())
}

/// Which follow-ups to list.
#[derive(Debug, Clone)]
pub struct FollowUpQuery<'a> {
    /// Only this agent's; empty for everyone's.
    pub agent: &'a str,
    /// Only those due by then.
    pub due_before: Option<DateTime<Utc>>,
    /// Also done and cancelled ones.
    pub include_closed: bool,
    /// Keyset: (due time, id) of the last row of the previous page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// A page of follow-ups, soonest due first.
pub async fn list(tx: &mut TenantTx, tenant: Uuid, q: &FollowUpQuery<'_>) -> Result<Vec<FollowUpRow>, Error> {
    let (due, id) = q.after.unzip();
    let sql = format!(
        "SELECT {COLUMNS} FROM follow_ups WHERE tenant_id = $1 AND ($2 = '' OR agent = $2)
         AND ($3::timestamptz IS NULL OR due_time <= $3) AND ($4 OR state = 'SCHEDULED')
         AND ($5::timestamptz IS NULL OR (due_time, id) > ($5, $6))
         ORDER BY due_time, id LIMIT $7"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(q.agent)
        .bind(q.due_before)
        .bind(q.include_closed)
        .bind(due)
        .bind(id)
        .bind(q.limit)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "follow_ups"))
        .await?)
}

/// One follow-up, locked.
pub async fn lock(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<Option<FollowUpRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM follow_ups WHERE tenant_id = $1 AND id = $2 FOR UPDATE");
    Ok(sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(&mut **tx).instrument(db_span("SELECT", "follow_ups")).await?)
}

/// The outcome of a follow-up call.
#[derive(Debug, Clone, Copy)]
pub struct Outcome<'a> {
    pub reached: bool,
    pub satisfied: bool,
    pub notes: &'a str,
    pub by: &'a str,
}

/// Records an outcome.
pub async fn complete(tx: &mut TenantTx, tenant: Uuid, id: Uuid, outcome: Outcome<'_>, now: DateTime<Utc>) -> Result<FollowUpRow, Error> {
    let sql = format!(
        "UPDATE follow_ups SET state = 'DONE', reached = $3, satisfied = $4, notes = $5, completed_by = $6, complete_time = $7
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(outcome.reached)
        .bind(outcome.satisfied)
        .bind(outcome.notes)
        .bind(outcome.by)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "follow_ups"))
        .await?)
}
