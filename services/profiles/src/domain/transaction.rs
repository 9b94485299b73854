//! A transaction's data after validation (交易记录): amounts in whole minor
//! units of the transaction's currency.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Most transactions per BatchCreateTransactions call.
pub const MAX_BATCH: usize = 1000;
/// Most line items per transaction.
pub const MAX_LINE_ITEMS: usize = 200;

/// A transaction as a request describes it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDraft {
    pub customer: Uuid,
    /// The recording system's id, unique per tenant.
    pub external_id: String,
    /// PURCHASE or REFUND.
    pub kind: String,
    /// ISO 4217 code of a currency with minor units.
    pub currency_code: String,
    pub amount_minor: i64,
    /// Truncated to microseconds, as Postgres keeps it, so that a re-sent
    /// transaction compares equal to the stored one.
    pub occur_time: DateTime<Utc>,
    pub channel: String,
    pub store: String,
    pub line_items: Vec<LineItemDraft>,
}

/// One line of a transaction, its price in the transaction's currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineItemDraft {
    pub product: String,
    pub sku: String,
    pub quantity: i32,
    pub unit_price_minor: i64,
}
