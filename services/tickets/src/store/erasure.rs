//! Erasing a customer's personal text from tickets (on profiles'
//! CustomerErased): their tickets' subject and description, the comments
//! and attachments on them, follow-up notes and survey comments. What stays
//! — statuses, times, SLA figures, the system's own timeline — holds none.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use tracing::Instrument;
use uuid::Uuid;

/// Every tenant with tickets, across tenants (the read-only `tenant_scan` policy).
pub async fn tenants_with_tickets(pool: &sqlx::PgPool) -> Result<Vec<Uuid>, Error> {
    let mut tx = pool.begin_with("BEGIN READ ONLY; SELECT set_config('crm.scope', 'tenant-scan', true)").await?;
    let tenants =
        sqlx::query_scalar("SELECT DISTINCT tenant_id FROM tickets").fetch_all(&mut *tx).instrument(db_span("SELECT", "tickets")).await?;
    tx.commit().await?;
    Ok(tenants)
}

/// The subject an erased ticket keeps.
pub const ERASED_SUBJECT: &str = "(erased)";

/// Empties the texts of `customer`'s tickets and notes each erasure in their
/// timelines; the number of tickets erased.
pub async fn erase(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, now: DateTime<Utc>) -> Result<u64, Error> {
    let tickets: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM tickets WHERE tenant_id = $1 AND customer_id = $2 ORDER BY id")
        .bind(tenant)
        .bind(customer)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "tickets"))
        .await?;
    if tickets.is_empty() {
        return Ok(0);
    }
    let statements: [(&str, &str); 3] = [
        (
            "ticket_comments",
            "UPDATE ticket_comments SET body = '', attachments = '{}'
             WHERE tenant_id = $1 AND ticket_id IN (SELECT id FROM tickets WHERE tenant_id = $1 AND customer_id = $2)",
        ),
        (
            "follow_ups",
            "UPDATE follow_ups SET notes = '' WHERE tenant_id = $1 AND ticket_id IN (SELECT id FROM tickets WHERE tenant_id = $1 AND customer_id = $2)",
        ),
        (
            "surveys",
            "UPDATE surveys SET comment = '' WHERE tenant_id = $1 AND ticket_id IN (SELECT id FROM tickets WHERE tenant_id = $1 AND customer_id = $2)",
        ),
    ];
    for (table, sql) in statements {
        sqlx::query(sql).bind(tenant).bind(customer).execute(&mut **tx).instrument(db_span("UPDATE", table)).await?;
    }
    // Each ticket's timeline says so (UUIDv7 ids keep the timeline in order).
    let event_ids: Vec<Uuid> = tickets.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO ticket_events (tenant_id, id, ticket_id, kind, actor, detail, create_time)
         SELECT $1, e.id, e.ticket_id, 'ERASED', 'profiles', 'the customer''s personal data was erased', $4
         FROM unnest($2::uuid[], $3::uuid[]) AS e(id, ticket_id)",
    )
    .bind(tenant)
    .bind(&event_ids)
    .bind(&tickets)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "ticket_events"))
    .await?;
    let erased = sqlx::query(
        "UPDATE tickets SET subject = $3, description = '', tags = '{}', update_time = $4, revision = revision + 1
         WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(customer)
    .bind(ERASED_SUBJECT)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "tickets"))
    .await?;
    Ok(erased.rows_affected())
}
