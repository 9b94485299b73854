//! Field history: every write of a customer or of one of its archive records
//! stores, in its own transaction, one row per field it changed — the values
//! before and after (and masked copies), who made the change and through
//! which request (`crm_kit::history::origin`).

use chrono::{DateTime, Utc};
use crm_kit::{Error, db::TenantTx, history};
use prost::{Message, Name};
use uuid::Uuid;

use super::App;
use crate::store::history::{self as store, ChangeRow};

/// What changed: which customer's record, which of its fields are followed, and when.
pub(super) struct Change<'a> {
    pub customer: Uuid,
    /// The record's resource name.
    pub record: &'a str,
    pub fields: &'a [&'a str],
    pub now: DateTime<Utc>,
}

/// Stores the fields of `change` that differ between `before` and `after`
/// (None: the record was added, or removed), masked copies made with `mask`.
pub(super) async fn record<M: Message + Name + Clone>(
    tx: &mut TenantTx,
    tenant: Uuid,
    change: Change<'_>,
    before: Option<&M>,
    after: Option<&M>,
    mask: impl Fn(&mut M),
) -> Result<(), Error> {
    let changes = history::diff(before, after, change.fields, mask);
    if changes.is_empty() {
        return Ok(());
    }
    let operation = match (before, after) {
        (None, _) => "CREATE",
        (_, None) => "DELETE",
        _ => "UPDATE",
    };
    store::insert(tx, tenant, (change.customer, change.record, operation), &changes, &history::origin(), change.now).await
}

impl App {
    /// A page of `customer`'s field history (of one record and field, when
    /// given), newest first; NOT_FOUND when there is no such customer.
    pub async fn customer_changes(
        &self,
        tenant: Uuid,
        customer: Uuid,
        filter: (Option<&str>, Option<&str>),
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<ChangeRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        super::existing_customer(&mut tx, tenant, customer).await?;
        let rows = store::page(&mut tx, tenant, customer, filter, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
