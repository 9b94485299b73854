//! Following profiles' merges: a merged customer's devices, unsubscribes,
//! open complaints and coupons move to the survivor (each move kept per
//! merge), and back when the merge is undone.

use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use tracing::Instrument;
use uuid::Uuid;

/// What moves: (kind in `customer_moves`, table, its row key).
const MOVED: [(&str, &str, &str); 4] = [
    ("devices", "devices", "id"),
    ("unsubscribes", "unsubscribes", "delivery_id"),
    ("complaints", "complaint_tickets", "ticket_id"),
    ("coupons", "coupons", "id"),
];

/// Moves what `merged` hold to `survivor`, kept under `merge`; how many rows moved.
pub async fn repoint(tx: &mut TenantTx, tenant: Uuid, merge: Uuid, survivor: Uuid, merged: &[Uuid]) -> Result<u64, Error> {
    let mut total = 0;
    for (kind, table, key) in MOVED {
        let moved: Vec<(Uuid, Uuid)> = sqlx::query_as(&format!(
            "UPDATE {table} t SET customer_id = $3
             FROM (SELECT {key} AS row_id, customer_id FROM {table} WHERE tenant_id = $1 AND customer_id = ANY($2) ORDER BY {key} FOR UPDATE) o
             WHERE t.tenant_id = $1 AND t.{key} = o.row_id
             RETURNING o.row_id, o.customer_id"
        ))
        .bind(tenant)
        .bind(merged)
        .bind(survivor)
        .fetch_all(&mut **tx)
        .instrument(db_span("UPDATE", table))
        .await?;
        let (rows, froms): (Vec<Uuid>, Vec<Uuid>) = moved.into_iter().unzip();
        total += rows.len() as u64;
        sqlx::query(
            "INSERT INTO customer_moves (tenant_id, merge_id, kind, row_id, from_customer_id, to_customer_id)
             SELECT $1, $2, $3, row_id, from_id, $6 FROM unnest($4::uuid[], $5::uuid[]) AS m(row_id, from_id)
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(merge)
        .bind(kind)
        .bind(&rows)
        .bind(&froms)
        .bind(survivor)
        .execute(&mut **tx)
        .instrument(db_span("INSERT", "customer_moves"))
        .await?;
    }
    Ok(total)
}

/// Puts back what `merge` moved and the survivor still holds; how many rows.
pub async fn restore(tx: &mut TenantTx, tenant: Uuid, merge: Uuid) -> Result<u64, Error> {
    let mut total = 0;
    for (kind, table, key) in MOVED {
        let restored = sqlx::query(&format!(
            "UPDATE {table} t SET customer_id = m.from_customer_id FROM customer_moves m
             WHERE m.tenant_id = $1 AND m.merge_id = $2 AND m.kind = $3
               AND t.tenant_id = $1 AND t.{key} = m.row_id AND t.customer_id = m.to_customer_id"
        ))
        .bind(tenant)
        .bind(merge)
        .bind(kind)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", table))
        .await?;
        total += restored.rows_affected();
    }
    sqlx::query("DELETE FROM customer_moves WHERE tenant_id = $1 AND merge_id = $2")
        .bind(tenant)
        .bind(merge)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "customer_moves"))
        .await?;
    Ok(total)
}
