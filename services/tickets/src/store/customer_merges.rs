//! Re-pointing tickets when profiles merges customers, and back when it
//! undoes the merge: each move is kept per merge, and each ticket's
//! timeline says what happened.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use tracing::Instrument;
use uuid::Uuid;

/// Moves the tickets of `merged` to `survivor`, kept under `merge`; how many moved.
pub async fn repoint(
    tx: &mut TenantTx,
    tenant: Uuid,
    merge: Uuid,
    survivor: Uuid,
    merged: &[Uuid],
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    let moved: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE tickets t SET customer_id = $3, update_time = $4, revision = t.revision + 1
         FROM (SELECT id, customer_id FROM tickets WHERE tenant_id = $1 AND customer_id = ANY($2) ORDER BY id FOR UPDATE) o
         WHERE t.tenant_id = $1 AND t.id = o.id
         RETURNING t.id, o.customer_id",
    )
    .bind(tenant)
    .bind(merged)
    .bind(survivor)
    .bind(now)
    .fetch_all(&mut **tx)
    .instrument(db_span("UPDATE", "tickets"))
    .await?;
    let (tickets, froms): (Vec<Uuid>, Vec<Uuid>) = moved.into_iter().unzip();
    sqlx::query(
        "INSERT INTO ticket_customer_moves (tenant_id, merge_id, ticket_id, from_customer_id, to_customer_id)
         SELECT $1, $2, ticket_id, from_id, $5 FROM unnest($3::uuid[], $4::uuid[]) AS m(ticket_id, from_id)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(merge)
    .bind(&tickets)
    .bind(&froms)
    .bind(survivor)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "ticket_customer_moves"))
    .await?;
    note(tx, tenant, &tickets, "CUSTOMER_MERGED", &format!("the customer was merged into customers/{survivor}"), now).await?;
    Ok(tickets.len() as u64)
}

/// Puts back the tickets `merge` moved that still belong to the survivor; how many.
pub async fn restore(tx: &mut TenantTx, tenant: Uuid, merge: Uuid, now: DateTime<Utc>) -> Result<u64, Error> {
    let restored: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE tickets t SET customer_id = m.from_customer_id, update_time = $3, revision = t.revision + 1
         FROM ticket_customer_moves m
         WHERE m.tenant_id = $1 AND m.merge_id = $2 AND t.tenant_id = $1 AND t.id = m.ticket_id AND t.customer_id = m.to_customer_id
         RETURNING t.id",
    )
    .bind(tenant)
    .bind(merge)
    .bind(now)
    .fetch_all(&mut **tx)
    .instrument(db_span("UPDATE", "tickets"))
    .await?;
    sqlx::query("DELETE FROM ticket_customer_moves WHERE tenant_id = $1 AND merge_id = $2")
        .bind(tenant)
        .bind(merge)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "ticket_customer_moves"))
        .await?;
    note(tx, tenant, &restored, "CUSTOMER_UNMERGED", "the customers' merge was undone", now).await?;
    Ok(restored.len() as u64)
}

/// One timeline entry of `kind` per ticket.
async fn note(tx: &mut TenantTx, tenant: Uuid, tickets: &[Uuid], kind: &str, detail: &str, now: DateTime<Utc>) -> Result<(), Error> {
    let ids: Vec<Uuid> = tickets.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO ticket_events (tenant_id, id, ticket_id, kind, actor, detail, create_time)
         SELECT $1, e.id, e.ticket_id, $4, 'profiles', $5, $6 FROM unnest($2::uuid[], $3::uuid[]) AS e(id, ticket_id)",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(tickets)
    .bind(kind)
    .bind(detail)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "ticket_events"))
    .await?;
    Ok(())
}
