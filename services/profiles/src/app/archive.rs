//! What every record of a customer's archive (related persons, payment
//! accounts, communications, occurrences) shares: it lives under its
//! customer in a table of its own; it is added to a live customer (with
//! request-id replay), changed under its etag (the same values again change
//! nothing), read, listed and removed the same way; and each change is
//! announced with one event on its customer's subject. A kind brings its
//! SQL, its event and the checks its drafts need against the database.

use std::future::Future;

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{ChildRow, Table, TenantTx},
    idempotency::{self, IdempotencyKey},
    outbox,
    resource::ChildResourceType,
};
use prost::{Message, Name};
use uuid::Uuid;

use super::App;
use crate::resources::CUSTOMER;

/// A kind of archive record.
pub trait ArchiveRecord {
    /// Its stored row.
    type Row: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + ChildRow + Send + Unpin;
    /// Its change event.
    type Changed: Message + Name;
    /// Its proto message, as the API returns it.
    type Proto: Message + Name + Clone + Default + Send + Sync;
    /// The paths an update may change (and the fields its history follows).
    const WRITABLE: &'static [&'static str];
    /// A stored row as the API returns it, unmasked.
    fn to_proto(row: &Self::Row) -> Self::Proto;
    /// Masks what callers without `pii` may not see.
    fn mask_pii(record: &mut Self::Proto);
    /// Its table (the parent column is `customer_id`).
    const TABLE: Table;
    /// Its resource type, under `customers/{c}`.
    const RESOURCE: ChildResourceType;
    /// Its validated draft.
    type Draft: Send + Sync;
    /// The request field an update's etag comes in, e.g. `related_person.etag`.
    const ETAG_FIELD: &'static str;
    /// The event of a change to `row` (`changed_paths` empty when added or removed).
    fn changed(row: &Self::Row, changed_paths: Vec<String>, deleted: bool) -> Self::Changed;
    /// The writable paths whose values differ between `before` and `after`.
    fn changed_paths(before: &Self::Row, after: &Self::Row) -> Vec<String>;
    /// Checks `draft` against what the database holds, before it is written
    /// for `customer` (`id`: the record being changed; None on create).
    fn check(
        tx: &mut TenantTx,
        tenant: Uuid,
        customer: Uuid,
        id: Option<Uuid>,
        draft: &Self::Draft,
    ) -> impl Future<Output = Result<(), Error>> + Send;
    /// Stores `draft` as record `id` of `customer`.
    fn insert(
        tx: &mut TenantTx,
        tenant: Uuid,
        customer: Uuid,
        id: Uuid,
        draft: &Self::Draft,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Self::Row, Error>> + Send;
    /// Replaces record `id` (of `customer`)'s writable fields with `draft`, bumping its revision.
    fn update(
        tx: &mut TenantTx,
        tenant: Uuid,
        customer_and_id: (Uuid, Uuid),
        draft: &Self::Draft,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Self::Row, Error>> + Send;
}

impl App {
    /// Adds `draft` to live customer `customer` and announces it. With a
    /// request id, a retry returns the first response.
    pub async fn create_record<R: ArchiveRecord, Response: Message + Default>(
        &self,
        tenant: Uuid,
        customer: Uuid,
        draft: R::Draft,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&R::Row) -> Response + Send,
    ) -> Result<Response, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        // The customer row is locked so that it cannot be deleted under the new record.
        super::customers::live_customer(&mut tx, tenant, customer, true).await?;
        R::check(&mut tx, tenant, customer, None, &draft).await?;
        let row = R::insert(&mut tx, tenant, customer, Uuid::now_v7(), &draft, now).await?;
        announce::<R>(&mut tx, tenant, &row, Vec::new(), false).await?;
        log_change::<R>(&mut tx, tenant, None, Some(&row), now).await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Replaces record `id` of live customer `customer` with what `edit`
    /// makes of it, after the etag check; re-sending the same values changes
    /// nothing (same etag, no event).
    pub async fn update_record<R: ArchiveRecord>(
        &self,
        tenant: Uuid,
        (customer, id): (Uuid, Uuid),
        etag: &str,
        edit: impl FnOnce(&R::Row) -> Result<R::Draft, Error> + Send,
        now: DateTime<Utc>,
    ) -> Result<R::Row, Error> {
        let mut tx = self.begin(tenant).await?;
        let before: R::Row = R::TABLE.lock_child_for_change(&mut tx, tenant, &R::RESOURCE, (customer, id), etag, R::ETAG_FIELD).await?;
        super::customers::live_customer(&mut tx, tenant, customer, false).await?;
        let draft = edit(&before)?;
        R::check(&mut tx, tenant, customer, Some(id), &draft).await?;
        let after = R::update(&mut tx, tenant, (customer, id), &draft, now).await?;
        let changed = R::changed_paths(&before, &after);
        if changed.is_empty() {
            // Nothing differs: roll the revision bump back.
            tx.rollback().await?;
            return Ok(before);
        }
        announce::<R>(&mut tx, tenant, &after, changed, false).await?;
        log_change::<R>(&mut tx, tenant, Some(&before), Some(&after), now).await?;
        tx.commit().await?;
        Ok(after)
    }

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
        super::existing_customer(&mut tx, tenant, customer).await?;
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
        log_change::<R>(&mut tx, tenant, Some(&before), None, Utc::now()).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Writes the change event of `row` on its customer's subject.
async fn announce<R: ArchiveRecord>(
    tx: &mut TenantTx,
    tenant: Uuid,
    row: &R::Row,
    changed_paths: Vec<String>,
    deleted: bool,
) -> Result<(), Error> {
    outbox::append(tx, tenant, &CUSTOMER.name(row.parent_id()), &R::changed(row, changed_paths, deleted)).await
}

/// Writes the field history of a change from `before` to `after` (None: added, or removed).
async fn log_change<R: ArchiveRecord>(
    tx: &mut TenantTx,
    tenant: Uuid,
    before: Option<&R::Row>,
    after: Option<&R::Row>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let Some(row) = after.or(before) else { return Ok(()) };
    let record = R::RESOURCE.name(row.parent_id(), row.id());
    let (before, after) = (before.map(R::to_proto), after.map(R::to_proto));
    let change = super::history::Change { customer: row.parent_id(), record: &record, fields: R::WRITABLE, now };
    super::history::record(tx, tenant, change, before.as_ref(), after.as_ref(), R::mask_pii).await
}
