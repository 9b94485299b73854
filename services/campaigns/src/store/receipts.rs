//! What providers report back: receipts on `deliveries`, and the `inbound_messages` table.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{TenantTx, db_span},
};
use tracing::Instrument;
use uuid::Uuid;

use super::deliveries::{DELIVERIES, DeliveryRow};
use crate::domain::inbound::MessageKey;

/// Records the first final receipt (`DELIVERED` or `UNDELIVERED`) of the
/// message `key` names among `provider`'s; the updated row, or None when
/// there is no such message or it has its final receipt already.
pub async fn record(
    tx: &mut TenantTx,
    tenant: Uuid,
    provider: Uuid,
    key: &MessageKey,
    status: &str,
    error: &str,
    now: DateTime<Utc>,
) -> Result<Option<DeliveryRow>, Error> {
    let (condition, id) = match key {
        MessageKey::Provider(id) => ("provider_message_id = $3", id.clone()),
        MessageKey::Delivery(id) => ("id = $3::uuid", id.to_string()),
    };
    let sql = format!(
        "UPDATE deliveries SET receipt_status = $4, receipt_error = $5, receipt_time = $6
         WHERE tenant_id = $1 AND provider_id = $2 AND {condition} AND receipt_status = '' RETURNING {}",
        DELIVERIES.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(provider)
        .bind(id)
        .bind(status)
        .bind(error)
        .bind(now)
        .fetch_optional(&mut **tx)
        .instrument(db_span("UPDATE", "deliveries"))
        .await?)
}

/// A message from a customer.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InboundRow {
    pub id: Uuid,
    pub provider_id: Uuid,
    pub provider_message_id: String,
    pub sender: String,
    pub recipient: String,
    pub body: String,
    pub customer_id: Option<Uuid>,
    pub opt_out: bool,
    pub receive_time: DateTime<Utc>,
}

/// Stores `m` unless the provider reported it before; whether it is new.
pub async fn insert_inbound(tx: &mut TenantTx, tenant: Uuid, m: &InboundRow) -> Result<bool, Error> {
    let done = sqlx::query(
        "INSERT INTO inbound_messages (tenant_id, id, provider_id, provider_message_id, sender, recipient, body, customer_id, opt_out, receive_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, provider_id, provider_message_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(m.id)
    .bind(m.provider_id)
    .bind(&m.provider_message_id)
    .bind(&m.sender)
    .bind(&m.recipient)
    .bind(&m.body)
    .bind(m.customer_id)
    .bind(m.opt_out)
    .bind(m.receive_time)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "inbound_messages"))
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The latest text message sent to any of `addresses` (the customer a reply comes from).
pub async fn last_sms_to(tx: &mut TenantTx, tenant: Uuid, addresses: &[String]) -> Result<Option<DeliveryRow>, Error> {
    let sql = format!(
        "SELECT {} FROM deliveries WHERE tenant_id = $1 AND recipient = ANY($2) AND channel = 'SMS' ORDER BY id DESC LIMIT 1",
        DELIVERIES.columns
    );
    Ok(sqlx::query_as(&sql).bind(tenant).bind(addresses).fetch_optional(&mut **tx).instrument(db_span("SELECT", "deliveries")).await?)
}

/// A page of the tenant's inbound messages matching `filter`, newest first, before `before`.
pub async fn list_inbound(
    tx: &mut TenantTx,
    tenant: Uuid,
    filter: &crm_kit::filter::CheckedFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<InboundRow>, Error> {
    let mut qb = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT id, provider_id, provider_message_id, sender, recipient, body, customer_id, opt_out, receive_time
         FROM inbound_messages m WHERE m.tenant_id = ",
    );
    qb.push_bind(tenant);
    filter.push_and(&mut qb);
    if let Some(before) = before {
        qb.push(" AND m.id < ").push_bind(before);
    }
    qb.push(" ORDER BY m.id DESC LIMIT ").push_bind(limit);
    Ok(qb.build_query_as().fetch_all(&mut **tx).instrument(db_span("SELECT", "inbound_messages")).await?)
}
