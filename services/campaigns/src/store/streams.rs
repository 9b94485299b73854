//! The streams campaigns follows, by their names in `stream_positions`
//! (positions kept by `crm_kit::follow`), and the `complaint_tickets` table:
//! what campaigns keeps from tickets' event stream.

use std::collections::HashSet;

use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use tracing::Instrument;
use uuid::Uuid;

/// The name of profiles' stream in `stream_positions`.
pub const PROFILES: &str = "profiles";
/// The name of tickets' stream in `stream_positions`.
pub const TICKETS: &str = "tickets";

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
