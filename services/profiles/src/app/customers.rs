//! Customers: creation, updates, soft deletion and undeletion, each with its
//! outbox event, and the reads behind Get, BatchGet and List. An email
//! address belongs to at most one live customer: `customer_emails` holds the
//! claims, so every change that adds or frees addresses rewrites them here.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::TenantTx,
    idempotency::{self, IdempotencyKey},
    outbox,
};
use crm_proto::crm::profiles::v1 as pb;
use prost::{Message, Name};
use uuid::Uuid;

use super::{App, history, segments};
use crate::{
    domain::{access::WRITABLE_PATHS, customer::CustomerDraft, mask, rename::NAME_FIELDS},
    resources::CUSTOMER,
    store::{self, CustomerRow, ListQuery},
    wire::{changed_paths, customer_to_proto, mask_pii},
};

/// Merges a read follows from a merged customer to its survivor, at most.
const MAX_MERGE_HOPS: usize = 10;

impl App {
    /// Creates a customer from a validated draft, stamping its consent as of
    /// `now`, and writes `CustomerCreated`. With a request id, a retry returns
    /// the first response (`respond` builds it from the stored customer).
    pub async fn create<R: Message + Default>(
        &self,
        tenant: Uuid,
        mut draft: CustomerDraft,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&CustomerRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        draft.consent.stamp(None, now);
        let id = Uuid::now_v7();
        ensure_emails_free(&mut tx, tenant, &draft, id).await?;
        let row = store::insert(&mut tx, tenant, id, &draft, now).await?;
        store::replace_emails(&mut tx, tenant, id, &draft.email_addresses()).await?;
        emit(&mut tx, tenant, id, &pb::CustomerCreated { customer: Some(customer_to_proto(&row)) }).await?;
        log_change(&mut tx, tenant, None, &row, now).await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        tracing::info!(customer = %row.id, "customer created");
        Ok(response)
    }

    /// Replaces a live customer's writable fields with what `edit` makes of
    /// the stored customer (after the etag check, so a stale etag is ABORTED
    /// whatever the edit says). Re-sending the same values changes nothing
    /// (same etag, no event); otherwise `CustomerUpdated` names the changed
    /// paths, and changed emails are claimed anew.
    pub async fn update(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&CustomerRow) -> Result<CustomerDraft, Error>,
        now: DateTime<Utc>,
    ) -> Result<CustomerRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before = lock_for_change(&mut tx, tenant, id, etag, "customer.etag").await?;
        let updated = change(&mut tx, tenant, before, edit, Renaming::NeedsApproval, now).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Soft-deletes a customer and frees its email addresses for others.
    /// Deleting twice returns the deleted customer, so that a retried DELETE
    /// is harmless.
    pub async fn delete(&self, tenant: Uuid, id: Uuid, etag: &str, now: DateTime<Utc>) -> Result<CustomerRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let customer = lock_for_change(&mut tx, tenant, id, etag, "etag").await?;
        if customer.delete_time.is_some() {
            tx.commit().await?;
            return Ok(customer);
        }
        store::replace_emails(&mut tx, tenant, id, &[]).await?;
        let deleted = store::CUSTOMERS.set_delete_time(&mut tx, tenant, id, Some(now), now).await?;
        emit(&mut tx, tenant, id, &pb::CustomerDeleted { customer: Some(customer_to_proto(&deleted)) }).await?;
        log_change(&mut tx, tenant, Some(&customer), &deleted, now).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// Restores a soft-deleted customer with its email addresses; ALREADY_EXISTS
    /// when another live customer took one of them meanwhile. Undeleting a live
    /// customer returns it unchanged.
    pub async fn undelete(&self, tenant: Uuid, id: Uuid, etag: &str, now: DateTime<Utc>) -> Result<CustomerRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let customer = lock_for_change(&mut tx, tenant, id, etag, "etag").await?;
        if customer.delete_time.is_none() {
            tx.commit().await?;
            return Ok(customer);
        }
        if let Some(survivor) = customer.merged_into {
            return Err(Error::FailedPrecondition {
                reason: "CUSTOMER_MERGED",
                message: format!("the customer was merged into {}; undo the merge (UnmergeCustomers) instead", CUSTOMER.name(survivor)),
                subject: CUSTOMER.name(id),
            });
        }
        if customer.erase_time.is_some() {
            return Err(Error::FailedPrecondition {
                reason: "CUSTOMER_ERASED",
                message: "the customer's personal data was erased; an erased customer stays deleted".to_owned(),
                subject: CUSTOMER.name(id),
            });
        }
        let addresses: Vec<String> = customer.emails.0.iter().map(|e| e.address.clone()).collect();
        let conflicts = store::email_conflicts(&mut tx, tenant, &addresses, id).await?;
        if let Some((address, owner)) = conflicts.first() {
            return Err(Error::AlreadyExists {
                reason: "EMAIL_ALREADY_USED",
                message: format!("cannot undelete: {} now uses {}", CUSTOMER.name(*owner), mask::email(address)),
                resource_type: CUSTOMER.type_name,
                name: CUSTOMER.name(*owner),
            });
        }
        store::replace_emails(&mut tx, tenant, id, &addresses).await?;
        let restored = store::CUSTOMERS.set_delete_time(&mut tx, tenant, id, None, now).await?;
        emit(&mut tx, tenant, id, &pb::CustomerUndeleted { customer: Some(customer_to_proto(&restored)) }).await?;
        log_change(&mut tx, tenant, Some(&customer), &restored, now).await?;
        tx.commit().await?;
        Ok(restored)
    }

    /// Disables (`Some(reason)`) or enables (`None`) a customer and writes
    /// `CustomerDisabled` or `CustomerEnabled`; asking for the state it is
    /// in already changes nothing (no new revision, no event).
    pub async fn set_disabled(
        &self,
        tenant: Uuid,
        id: Uuid,
        reason: Option<&str>,
        etag: &str,
        now: DateTime<Utc>,
    ) -> Result<CustomerRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before = lock_for_change(&mut tx, tenant, id, etag, "etag").await?;
        if before.disable_time.is_some() == reason.is_some() {
            tx.commit().await?;
            return Ok(before);
        }
        let row = store::set_disabled(&mut tx, tenant, id, reason.map(|r| (now, r)), now).await?;
        match reason {
            Some(_) => emit(&mut tx, tenant, id, &pb::CustomerDisabled { customer: Some(customer_to_proto(&row)) }).await?,
            None => emit(&mut tx, tenant, id, &pb::CustomerEnabled { customer: Some(customer_to_proto(&row)) }).await?,
        }
        log_change(&mut tx, tenant, Some(&before), &row, now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Records that live customer `id` confirmed their data at `now` and
    /// writes `CustomerUpdated` naming `verify_time`.
    pub async fn confirm_data(&self, tenant: Uuid, id: Uuid, etag: &str, now: DateTime<Utc>) -> Result<CustomerRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before = lock_for_change(&mut tx, tenant, id, etag, "etag").await?;
        ensure_live(&before)?;
        let row = store::confirm_data(&mut tx, tenant, id, now).await?;
        let event = pb::CustomerUpdated { customer: Some(customer_to_proto(&row)), changed_paths: vec!["verify_time".to_owned()] };
        emit(&mut tx, tenant, id, &event).await?;
        log_change(&mut tx, tenant, Some(&before), &row, now).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// One customer, deleted or not; NOT_FOUND if there is none.
    pub async fn customer(&self, tenant: Uuid, id: Uuid) -> Result<CustomerRow, Error> {
        // The hottest read: one round trip (the kit's `Table::get`).
        let customer: CustomerRow = store::CUSTOMERS.get(&self.pool, tenant, id).await?.ok_or_else(|| CUSTOMER.not_found(id))?;
        if customer.merged_into.is_none() {
            return Ok(customer);
        }
        // A merged customer is read as its survivor (which may have been merged on in turn), in one snapshot.
        let mut tx = self.begin(tenant).await?;
        let mut customer = customer;
        for _ in 0..MAX_MERGE_HOPS {
            let Some(survivor) = customer.merged_into else { break };
            customer = store::CUSTOMERS.find(&mut tx, tenant, survivor, false).await?.ok_or_else(|| CUSTOMER.not_found(survivor))?;
        }
        tx.commit().await?;
        Ok(customer)
    }

    /// The customers `ids` name, in that order (repeats included); NOT_FOUND
    /// naming the first id without a customer, so that a batch is all or nothing.
    pub async fn customers_by_id(&self, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<CustomerRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = store::batch_get(&mut tx, tenant, ids).await?;
        tx.commit().await?;
        let by_id: HashMap<Uuid, &CustomerRow> = rows.iter().map(|r| (r.id, r)).collect();
        ids.iter().map(|id| by_id.get(id).map(|r| (*r).clone()).ok_or_else(|| CUSTOMER.not_found(*id))).collect()
    }

    /// One page of customers, in the query's keyset order.
    pub async fn customers(&self, tenant: Uuid, query: ListQuery<'_>) -> Result<Vec<CustomerRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = store::list(&mut tx, tenant, query).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

/// Writes `event` about customer `id`; the event type is the message's name.
async fn emit<M: Message + Name>(tx: &mut TenantTx, tenant: Uuid, id: Uuid, event: &M) -> Result<(), Error> {
    outbox::append(tx, tenant, &CUSTOMER.name(id), event).await
}

/// Locks a customer for a change, checking the caller's etag (request field
/// `etag_field`; empty: no check). A malformed etag is rejected before any read.
pub(super) async fn lock_for_change(tx: &mut TenantTx, tenant: Uuid, id: Uuid, etag: &str, etag_field: &str) -> Result<CustomerRow, Error> {
    store::CUSTOMERS.lock_for_change(tx, tenant, id, &CUSTOMER, etag, etag_field).await
}

/// Customer `id`, which must exist (NOT_FOUND) and be live (FAILED_PRECONDITION):
/// the parent of an archive record being added or changed; `lock` keeps it
/// from being deleted until the transaction ends.
pub(super) async fn live_customer(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<CustomerRow, Error> {
    let customer = store::CUSTOMERS.find(tx, tenant, id, lock).await?.ok_or_else(|| CUSTOMER.not_found(id))?;
    ensure_live(&customer)?;
    Ok(customer)
}

/// Whether a change may rename the customer where the tenant requires approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Renaming {
    /// An ordinary update: a rename is refused when the tenant requires approval.
    NeedsApproval,
    /// An approved rename request being applied.
    Approved,
}

/// Replaces live customer `before`'s writable fields (it is locked) with what
/// `edit` makes of it; the same values again change nothing (same etag, no
/// event); otherwise `CustomerUpdated` names the changed paths, changed
/// emails are claimed anew, and the field history is written.
pub(super) async fn change(
    tx: &mut TenantTx,
    tenant: Uuid,
    before: CustomerRow,
    edit: impl FnOnce(&CustomerRow) -> Result<CustomerDraft, Error>,
    renaming: Renaming,
    now: DateTime<Utc>,
) -> Result<CustomerRow, Error> {
    let id = before.id;
    ensure_live(&before)?;
    let mut draft = edit(&before)?;
    draft.consent.stamp(Some(&before.consent.0), now);
    let changed = changed_paths(&before, &draft);
    if changed.is_empty() {
        return Ok(before);
    }
    if renaming == Renaming::NeedsApproval
        && changed.iter().any(|p| NAME_FIELDS.contains(&p.as_str()))
        && store::rename::approval_required(tx, tenant).await?
    {
        return Err(Error::FailedPrecondition {
            reason: "RENAME_NEEDS_APPROVAL",
            message: format!(
                "renaming needs approval in this tenant: ask with crm.profiles.v1.RenameRequestService/CreateRenameRequest \
                 (POST /v1/{}/renameRequests)",
                CUSTOMER.name(id)
            ),
            subject: CUSTOMER.name(id),
        });
    }
    if changed.iter().any(|p| p == "emails") {
        ensure_emails_free(tx, tenant, &draft, id).await?;
        store::replace_emails(tx, tenant, id, &draft.email_addresses()).await?;
    }
    let updated = store::update(tx, tenant, id, &draft, now).await?;
    emit(tx, tenant, id, &pb::CustomerUpdated { customer: Some(customer_to_proto(&updated)), changed_paths: changed }).await?;
    log_change(tx, tenant, Some(&before), &updated, now).await?;
    Ok(updated)
}

/// The customer fields whose history is kept: the writable ones, and the
/// states other calls set (soft delete, disable).
pub(super) const HISTORY_FIELDS: &[&str] = {
    const EXTRA: [&str; 3] = ["delete_time", "disable_time", "disable_reason"];
    const N: usize = WRITABLE_PATHS.len() + EXTRA.len();
    const FIELDS: [&str; N] = {
        let mut out = [""; N];
        let mut i = 0;
        while i < N {
            out[i] = if i < WRITABLE_PATHS.len() { WRITABLE_PATHS[i] } else { EXTRA[i - WRITABLE_PATHS.len()] };
            i += 1;
        }
        out
    };
    &FIELDS
};

/// Writes the field history of customer `after`'s change from `before` (None: created), and moves its segment memberships.
pub(super) async fn log_change(
    tx: &mut TenantTx,
    tenant: Uuid,
    before: Option<&CustomerRow>,
    after: &CustomerRow,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let record = CUSTOMER.name(after.id);
    let change = history::Change { customer: after.id, record: &record, fields: HISTORY_FIELDS, now };
    history::record(tx, tenant, change, before.map(customer_to_proto).as_ref(), Some(&customer_to_proto(after)), mask_pii).await?;
    // Every change of a customer passes here: its segments follow in the same transaction.
    segments::refresh(tx, tenant, &[(after.id, after.delete_time.is_none())], now).await
}

/// FAILED_PRECONDITION for a soft-deleted customer, which takes no changes until undeleted.
fn ensure_live(customer: &CustomerRow) -> Result<(), Error> {
    if customer.delete_time.is_none() {
        return Ok(());
    }
    Err(Error::FailedPrecondition {
        reason: "CUSTOMER_DELETED",
        message: "the customer is deleted; undelete it before changing it".to_owned(),
        subject: CUSTOMER.name(customer.id),
    })
}

/// ALREADY_EXISTS naming the first of the draft's addresses another live
/// customer (not `id`) uses. The claim itself (`store::replace_emails`) is the
/// last word under concurrency; this check names the owner and the field.
async fn ensure_emails_free(tx: &mut TenantTx, tenant: Uuid, draft: &CustomerDraft, id: Uuid) -> Result<(), Error> {
    let conflicts = store::email_conflicts(tx, tenant, &draft.email_addresses(), id).await?;
    match conflicts.first() {
        None => Ok(()),
        Some((address, owner)) => {
            let index = draft.emails.iter().position(|e| &e.address == address).unwrap_or(0);
            Err(Error::AlreadyExists {
                reason: "EMAIL_ALREADY_USED",
                message: format!("customer.emails[{index}].address is already used by {}", CUSTOMER.name(*owner)),
                resource_type: CUSTOMER.type_name,
                name: CUSTOMER.name(*owner),
            })
        }
    }
}
