//! The `transactions`, `transaction_items` and `customer_spending` tables:
//! transactions are written many to a statement, with their customers'
//! spending in the same statement, so that a batch of 1000 costs a handful
//! of round trips.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx, db_span},
};
use sqlx::FromRow;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::transaction::TransactionDraft;

/// A stored transaction with its line items.
#[derive(Debug, Clone, FromRow)]
pub struct TransactionRow {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub external_id: String,
    pub kind: String,
    pub currency_code: String,
    pub amount_minor: i64,
    pub occur_time: DateTime<Utc>,
    pub channel: String,
    pub store: String,
    pub create_time: DateTime<Utc>,
    /// Filled by [`load_items`].
    #[sqlx(skip)]
    pub line_items: Vec<LineItemRow>,
}

/// A stored line item.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LineItemRow {
    pub transaction_id: Uuid,
    pub product: String,
    pub sku: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}

/// A customer's spending in one currency.
#[derive(Debug, Clone, FromRow)]
pub struct SpendingRow {
    pub currency_code: String,
    pub purchase_count: i64,
    pub refund_count: i64,
    pub purchase_minor: i64,
    pub refund_minor: i64,
    pub first_purchase_time: Option<DateTime<Utc>>,
    pub last_purchase_time: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, customer_id, external_id, kind, currency_code, amount_minor, occur_time, channel, store, create_time";

/// The `transactions` table, for the kit's shared statements (line items: [`load_items`]).
pub const TRANSACTIONS: Table = Table { name: "transactions", columns: COLUMNS };

/// The customers among `ids` that exist, with their delete time, held so
/// that none is deleted before the transaction ends and their grades can be
/// set: `FOR NO KEY UPDATE`, in id order (as the grading job takes them), so
/// that writers to the same customers queue up instead of deadlocking.
pub async fn hold_customers(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<(Uuid, Option<DateTime<Utc>>)>, Error> {
    Ok(sqlx::query_as("SELECT id, delete_time FROM customers WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR NO KEY UPDATE")
        .bind(tenant)
        .bind(ids)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "customers"))
        .await?)
}

/// Stores `drafts` (with their ids) whose external id is not stored yet,
/// and adds them to their customers' spending; the rows stored, without
/// line items. Drafts should come sorted by external id, so that concurrent
/// batches claim their keys in one order.
pub async fn insert_new(
    tx: &mut TenantTx,
    tenant: Uuid,
    drafts: &[(Uuid, &TransactionDraft)],
    now: DateTime<Utc>,
) -> Result<Vec<TransactionRow>, Error> {
    let column = |f: fn(&TransactionDraft) -> String| drafts.iter().map(|(_, d)| f(d)).collect::<Vec<_>>();
    let ids: Vec<Uuid> = drafts.iter().map(|(id, _)| *id).collect();
    let customers: Vec<Uuid> = drafts.iter().map(|(_, d)| d.customer).collect();
    let amounts: Vec<i64> = drafts.iter().map(|(_, d)| d.amount_minor).collect();
    let times: Vec<DateTime<Utc>> = drafts.iter().map(|(_, d)| d.occur_time).collect();
    Ok(sqlx::query_as(&format!(
        "WITH input AS (
             SELECT * FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::timestamptz[],
                                  $9::text[], $10::text[])
                 AS i(id, customer_id, external_id, kind, currency_code, amount_minor, occur_time, channel, store)
         ), inserted AS (
             INSERT INTO transactions (tenant_id, id, customer_id, external_id, kind, currency_code, amount_minor, occur_time,
                                       channel, store, create_time)
             SELECT $1, id, customer_id, external_id, kind, currency_code, amount_minor, occur_time, channel, store, $11 FROM input
             ON CONFLICT (tenant_id, external_id) DO NOTHING
             RETURNING {COLUMNS}
         ), spending AS (
             INSERT INTO customer_spending AS s (tenant_id, customer_id, currency_code, purchase_count, refund_count, purchase_minor,
                                                 refund_minor, first_purchase_time, last_purchase_time)
             SELECT $1, customer_id, currency_code,
                    count(*) FILTER (WHERE kind = 'PURCHASE'), count(*) FILTER (WHERE kind = 'REFUND'),
                    coalesce(sum(amount_minor) FILTER (WHERE kind = 'PURCHASE'), 0),
                    coalesce(sum(amount_minor) FILTER (WHERE kind = 'REFUND'), 0),
                    min(occur_time) FILTER (WHERE kind = 'PURCHASE'), max(occur_time) FILTER (WHERE kind = 'PURCHASE')
             FROM inserted GROUP BY customer_id, currency_code ORDER BY customer_id, currency_code
             ON CONFLICT (tenant_id, customer_id, currency_code) DO UPDATE SET
                 purchase_count = s.purchase_count + excluded.purchase_count,
                 refund_count = s.refund_count + excluded.refund_count,
                 purchase_minor = s.purchase_minor + excluded.purchase_minor,
                 refund_minor = s.refund_minor + excluded.refund_minor,
                 first_purchase_time = least(s.first_purchase_time, excluded.first_purchase_time),
                 last_purchase_time = greatest(s.last_purchase_time, excluded.last_purchase_time)
         )
         SELECT * FROM inserted"
    ))
    .bind(tenant)
    .bind(&ids)
    .bind(&customers)
    .bind(column(|d| d.external_id.clone()))
    .bind(column(|d| d.kind.clone()))
    .bind(column(|d| d.currency_code.clone()))
    .bind(&amounts)
    .bind(&times)
    .bind(column(|d| d.channel.clone()))
    .bind(column(|d| d.store.clone()))
    .bind(now)
    .fetch_all(&mut **tx)
    .instrument(db_span("INSERT", "transactions"))
    .await?)
}

/// Stores the line items of `rows`, taken from their drafts.
pub async fn insert_items(tx: &mut TenantTx, tenant: Uuid, rows: &[(Uuid, &TransactionDraft)]) -> Result<(), Error> {
    let items = || rows.iter().flat_map(|(id, d)| d.line_items.iter().enumerate().map(move |(position, item)| (*id, position, item)));
    if items().next().is_none() {
        return Ok(());
    }
    let ids: Vec<Uuid> = items().map(|(id, _, _)| id).collect();
    let positions: Vec<i16> = items().map(|(_, p, _)| i16::try_from(p).unwrap_or(i16::MAX)).collect();
    let products: Vec<&str> = items().map(|(_, _, i)| i.product.as_str()).collect();
    let skus: Vec<&str> = items().map(|(_, _, i)| i.sku.as_str()).collect();
    let quantities: Vec<i32> = items().map(|(_, _, i)| i.quantity).collect();
    let prices: Vec<i64> = items().map(|(_, _, i)| i.unit_price_minor).collect();
    sqlx::query(
        "INSERT INTO transaction_items (tenant_id, transaction_id, position, product, sku, quantity, unit_price_minor)
         SELECT $1, * FROM unnest($2::uuid[], $3::smallint[], $4::text[], $5::text[], $6::integer[], $7::bigint[])",
    )
    .bind(tenant)
    .bind(&ids)
    .bind(&positions)
    .bind(&products)
    .bind(&skus)
    .bind(&quantities)
    .bind(&prices)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "transaction_items"))
    .await?;
    Ok(())
}

/// The stored transactions with these external ids, with their line items.
pub async fn find_by_external_ids(tx: &mut TenantTx, tenant: Uuid, external_ids: &[&str]) -> Result<Vec<TransactionRow>, Error> {
    if external_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows: Vec<TransactionRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM transactions WHERE tenant_id = $1 AND external_id = ANY($2)"))
            .bind(tenant)
            .bind(external_ids)
            .fetch_all(&mut **tx)
            .instrument(db_span("SELECT", "transactions"))
            .await?;
    load_items(tx, tenant, &mut rows).await?;
    Ok(rows)
}

/// Transaction `id` of `customer`, with its line items.
pub async fn find(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, id: Uuid) -> Result<Option<TransactionRow>, Error> {
    let row: Option<TransactionRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM transactions WHERE tenant_id = $1 AND id = $2 AND customer_id = $3"))
            .bind(tenant)
            .bind(id)
            .bind(customer)
            .fetch_optional(&mut **tx)
            .instrument(db_span("SELECT", "transactions"))
            .await?;
    let mut rows = Vec::from_iter(row);
    load_items(tx, tenant, &mut rows).await?;
    Ok(rows.pop())
}

/// A page of `customer`'s transactions (of `kind`, when given), most recent
/// first, after the key (occur time, id) of the previous page's last row.
pub async fn page(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    kind: Option<&str>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<TransactionRow>, Error> {
    let (after_time, after_id) = after.unzip();
    let mut rows: Vec<TransactionRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM transactions
         WHERE tenant_id = $1 AND customer_id = $2 AND ($3::text IS NULL OR kind = $3)
           AND ($4::timestamptz IS NULL OR (occur_time, id) < ($4, $5))
         ORDER BY occur_time DESC, id DESC LIMIT $6"
    ))
    .bind(tenant)
    .bind(customer)
    .bind(kind)
    .bind(after_time)
    .bind(after_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "transactions"))
    .await?;
    load_items(tx, tenant, &mut rows).await?;
    Ok(rows)
}

/// Fills the line items of `rows`, in their order, in one query.
pub async fn load_items(tx: &mut TenantTx, tenant: Uuid, rows: &mut [TransactionRow]) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let items: Vec<LineItemRow> = sqlx::query_as(
        "SELECT transaction_id, product, sku, quantity, unit_price_minor FROM transaction_items
         WHERE tenant_id = $1 AND transaction_id = ANY($2) ORDER BY transaction_id, position",
    )
    .bind(tenant)
    .bind(&ids)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "transaction_items"))
    .await?;
    let position: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    for item in items {
        if let Some(&i) = position.get(&item.transaction_id) {
            rows[i].line_items.push(item);
        }
    }
    Ok(())
}

/// `customer`'s spending, one row per currency, by currency code.
pub async fn spending(tx: &mut TenantTx, tenant: Uuid, customer: Uuid) -> Result<Vec<SpendingRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT currency_code, purchase_count, refund_count, purchase_minor, refund_minor, first_purchase_time, last_purchase_time
         FROM customer_spending WHERE tenant_id = $1 AND customer_id = $2 ORDER BY currency_code",
    )
    .bind(tenant)
    .bind(customer)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "customer_spending"))
    .await?)
}
