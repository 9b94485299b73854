//! The `stream_positions` and `complaint_tickets` tables: what campaigns
//! keeps from other services' event streams.

use std::collections::HashSet;

use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use sqlx::PgPool;
use tracing::Instrument;
use uuid::Uuid;

/// The tenant's stream from `source` is followed from now on (no-op if it is).
pub async fn follow(tx: &mut TenantTx, tenant: Uuid, source: &str) -> Result<(), Error> {
    sqlx::query("INSERT INTO stream_positions (tenant_id, source) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(tenant)
        .bind(source)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "stream_positions"))
        .await?;
    Ok(())
}

/// Every followed (tenant, position) of `source`, across tenants, through the `consumer_scan` policy.
pub async fn followed(pool: &PgPool, source: &str) -> Result<Vec<(Uuid, i64)>, Error> {
    let mut tx = pool.begin_with("BEGIN READ ONLY; SELECT set_config('crm.scope', 'consumer-scan', true)").await?;
    let rows = sqlx::query_as("SELECT tenant_id, position FROM stream_positions WHERE source = $1")
        .bind(source)
        .fetch_all(&mut *tx)
        .instrument(db_span("SELECT", "stream_positions"))
        .await?;
    tx.commit().await?;
    Ok(rows)
}

/// The position the tenant's `source` stream was applied up to.
pub async fn position(tx: &mut TenantTx, tenant: Uuid, source: &str) -> Result<i64, Error> {
    Ok(sqlx::query_scalar("SELECT position FROM stream_positions WHERE tenant_id = $1 AND source = $2")
        .bind(tenant)
        .bind(source)
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "stream_positions"))
        .await?
        .unwrap_or(0))
}

/// Records that the tenant's `source` stream is applied up to `position` (never backwards).
pub async fn advance(tx: &mut TenantTx, tenant: Uuid, source: &str, position: i64) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO stream_positions (tenant_id, source, position) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, source) DO UPDATE SET position = greatest(stream_positions.position, EXCLUDED.position), update_time = now()",
    )
    .bind(tenant)
    .bind(source)
    .bind(position)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "stream_positions"))
    .await?;
    Ok(())
}

/// Records ticket `ticket` of `customer` as of the event at `position`: an
/// open or closed complaint, or (`complaint` false) no complaint any more.
/// An event older than what is stored for the ticket changes nothing.
pub async fn record_ticket(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: Uuid,
    customer: Uuid,
    complaint: bool,
    open: bool,
    position: i64,
) -> Result<(), Error> {
    let query = if complaint {
        sqlx::query(
            "INSERT INTO complaint_tickets (tenant_id, ticket_id, customer_id, open, position) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET customer_id = EXCLUDED.customer_id, open = EXCLUDED.open, position = EXCLUDED.position
             WHERE complaint_tickets.position < EXCLUDED.position",
        )
        .bind(tenant)
        .bind(ticket)
        .bind(customer)
        .bind(open)
        .bind(position)
    } else {
        // No longer a complaint (its type changed): closed, if it ever was one.
        sqlx::query("UPDATE complaint_tickets SET open = false, position = $3 WHERE tenant_id = $1 AND ticket_id = $2 AND position < $3")
            .bind(tenant)
            .bind(ticket)
            .bind(position)
    };
    query.execute(&mut **tx).instrument(db_span("INSERT", "complaint_tickets")).await?;
    Ok(())
}

/// Which of `customers` have an open complaint ticket.
pub async fn with_open_complaints(tx: &mut TenantTx, tenant: Uuid, customers: &[Uuid]) -> Result<HashSet<Uuid>, Error> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT DISTINCT customer_id FROM complaint_tickets WHERE tenant_id = $1 AND open AND customer_id = ANY($2)")
            .bind(tenant)
            .bind(customers)
            .fetch_all(&mut **tx)
            .instrument(db_span("SELECT", "complaint_tickets"))
            .await?;
    Ok(ids.into_iter().collect())
}
