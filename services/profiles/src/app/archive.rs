//! What every record of a customer's archive (related persons, payment
//! accounts, ...) shares: it lives under its customer in a table of its own,
//! is read, listed and removed the same way, and announces each change with
//! one event on its customer's subject. Each kind adds its own create and
//! update rules.

use crm_kit::{
    Error,
    db::{ChildRow, Table, TenantTx},
    outbox,
    resource::ChildResourceType,
};
use prost::{Message, Name};
use uuid::Uuid;

use super::App;
use crate::{
    resources::CUSTOMER,
    store::{CUSTOMERS, CustomerRow},
};

/// A kind of archive record.
pub trait ArchiveRecord {
    /// Its stored row.
    type Row: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + ChildRow + Send + Unpin;
    /// Its change event.
    type Changed: Message + Name;
    /// Its table (the parent column is `customer_id`).
    const TABLE: Table;
    /// Its resource type, under `customers/{c}`.
    const RESOURCE: ChildResourceType;
    /// The event of a change to `row` (`changed_paths` empty when added or removed).
    fn changed(row: &Self::Row, changed_paths: Vec<String>, deleted: bool) -> Self::Changed;
}

impl App {
    /// Record `id` of `customer`, or NOT_FOUND.
    pub async fn record<R: ArchiveRecord>(&self, tenant: Uuid, customer: Uuid, id: Uuid) -> Result<R::Row, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = R::TABLE.find_child(&mut tx, tenant, &R::RESOURCE, customer, id, false).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// A page of `customer`'s records, oldest first, after `after` (NOT_FOUND when there is no such customer).
    pub async fn records<R: ArchiveRecord>(
        &self,
        tenant: Uuid,
        customer: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<R::Row>, Error> {
        let mut tx = self.begin(tenant).await?;
        CUSTOMERS.find::<CustomerRow>(&mut tx, tenant, customer, false).await?.ok_or_else(|| CUSTOMER.not_found(customer))?;
        let rows = R::TABLE.page_under(&mut tx, tenant, "customer_id", customer, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Removes record `id` of `customer` (etag checked when given) and announces it.
    pub async fn delete_record<R: ArchiveRecord>(&self, tenant: Uuid, customer: Uuid, id: Uuid, etag: &str) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let before: R::Row = R::TABLE.lock_child_for_change(&mut tx, tenant, &R::RESOURCE, (customer, id), etag, "etag").await?;
        R::TABLE.delete(&mut tx, tenant, id).await?;
        announce::<R>(&mut tx, tenant, &before, Vec::new(), true).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Writes the change event of `row` on its customer's subject.
pub(super) async fn announce<R: ArchiveRecord>(
    tx: &mut TenantTx,
    tenant: Uuid,
    row: &R::Row,
    changed_paths: Vec<String>,
    deleted: bool,
) -> Result<(), Error> {
    outbox::append(tx, tenant, &CUSTOMER.name(row.parent_id()), &R::changed(row, changed_paths, deleted)).await
}

/// Record `id` of `customer` locked for an update under the caller's `etag`
/// (request field `etag_field`), its live customer checked.
pub(super) async fn lock_for_update<R: ArchiveRecord>(
    tx: &mut TenantTx,
    tenant: Uuid,
    (customer, id): (Uuid, Uuid),
    etag: &str,
    etag_field: &str,
) -> Result<R::Row, Error> {
    let before = R::TABLE.lock_child_for_change(tx, tenant, &R::RESOURCE, (customer, id), etag, etag_field).await?;
    super::customers::live_customer(tx, tenant, customer, false).await?;
    Ok(before)
}
