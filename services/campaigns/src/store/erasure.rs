//! Erasing a customer's personal data from campaigns (on profiles'
//! CustomerErased): the addresses and rendered texts in their deliveries
//! (a queued message is skipped instead of sent), their devices' push
//! tokens, the texts they sent in, and the reasons written on their points
//! bookings. A message being handed to a provider
//! at that very moment (SUBMITTING) keeps its copy until a later erasure.
//! Opt-outs and suppressions stay: they are what keeps the address from
//! being contacted again.

use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use tracing::Instrument;
use uuid::Uuid;

/// Empties customer `customer`'s personal data; how many deliveries were touched.
pub async fn erase(tx: &mut TenantTx, tenant: Uuid, customer: Uuid) -> Result<u64, Error> {
    let deliveries = sqlx::query(
        "UPDATE deliveries SET recipient = '', subject = '', body = '', html_body = '', data = '{}',
             status = CASE WHEN status = 'QUEUED' THEN 'SKIPPED' ELSE status END,
             skip_reason = CASE WHEN status = 'QUEUED' THEN 'CUSTOMER_DELETED' ELSE skip_reason END,
             next_attempt_time = CASE WHEN status = 'QUEUED' THEN NULL ELSE next_attempt_time END, update_time = now()
         WHERE tenant_id = $1 AND customer_id = $2 AND status <> 'SUBMITTING'",
    )
    .bind(tenant)
    .bind(customer)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "deliveries"))
    .await?;
    for (table, sql) in [
        ("devices", "DELETE FROM devices WHERE tenant_id = $1 AND customer_id = $2"),
        ("inbound_messages", "UPDATE inbound_messages SET sender = '', body = '' WHERE tenant_id = $1 AND customer_id = $2"),
        // The points ledger keeps its numbers (balances and expiries stay exact); the free-text reasons go.
        ("points_entries", "UPDATE points_entries SET reason = '' WHERE tenant_id = $1 AND customer_id = $2 AND reason <> ''"),
    ] {
        sqlx::query(sql).bind(tenant).bind(customer).execute(&mut **tx).instrument(db_span("UPDATE", table)).await?;
    }
    Ok(deliveries.rows_affected())
}
