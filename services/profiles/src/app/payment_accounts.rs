//! Payment accounts (客户帐号): added to a live customer, changed under
//! their etag, removed; each change with its `PaymentAccountChanged` event
//! (account number masked). At most one primary per customer: asked for a
//! second, the answer names the current one; the database's partial unique
//! index decides between concurrent writers.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::TenantTx,
    idempotency::{self, IdempotencyKey},
    outbox,
};
use crm_proto::crm::profiles::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{App, customers::live_customer};
use crate::{
    domain::payment_account::PaymentAccountDraft,
    resources::{CUSTOMER, PAYMENT_ACCOUNT},
    store::{
        CUSTOMERS, CustomerRow,
        payment_accounts::{self as store, PAYMENT_ACCOUNTS, PaymentAccountRow, SecondPrimary},
    },
    wire::payment_accounts::{changed_paths, mask_pii, to_proto},
};

impl App {
    /// Adds `draft` to live customer `customer` and writes `PaymentAccountChanged`.
    /// With a request id, a retry returns the first response.
    pub async fn create_payment_account<R: Message + Default>(
        &self,
        tenant: Uuid,
        customer: Uuid,
        draft: PaymentAccountDraft,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&PaymentAccountRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        live_customer(&mut tx, tenant, customer, true).await?;
        ensure_no_other_primary(&mut tx, tenant, customer, None, &draft).await?;
        let row = store::insert(&mut tx, tenant, customer, Uuid::now_v7(), &draft, now).await?.map_err(|SecondPrimary| raced(customer))?;
        emit(&mut tx, tenant, &row, Vec::new(), false).await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Payment account `id` of `customer`, or NOT_FOUND.
    pub async fn payment_account(&self, tenant: Uuid, customer: Uuid, id: Uuid) -> Result<PaymentAccountRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = PAYMENT_ACCOUNTS.find_child(&mut tx, tenant, &PAYMENT_ACCOUNT, customer, id, false).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// A page of `customer`'s payment accounts after `after` (NOT_FOUND when there is no such customer).
    pub async fn payment_accounts(
        &self,
        tenant: Uuid,
        customer: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<PaymentAccountRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        CUSTOMERS.find::<CustomerRow>(&mut tx, tenant, customer, false).await?.ok_or_else(|| CUSTOMER.not_found(customer))?;
        let rows = store::list(&mut tx, tenant, customer, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Replaces payment account `id` with what `edit` makes of it (after the
    /// etag check); re-sending the same values changes nothing (same etag, no event).
    pub async fn update_payment_account(
        &self,
        tenant: Uuid,
        customer: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&PaymentAccountRow) -> Result<PaymentAccountDraft, Error>,
        now: DateTime<Utc>,
    ) -> Result<PaymentAccountRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before: PaymentAccountRow =
            PAYMENT_ACCOUNTS.lock_child_for_change(&mut tx, tenant, &PAYMENT_ACCOUNT, (customer, id), etag, "payment_account.etag").await?;
        live_customer(&mut tx, tenant, customer, false).await?;
        let draft = edit(&before)?;
        ensure_no_other_primary(&mut tx, tenant, customer, Some(id), &draft).await?;
        let after = store::update(&mut tx, tenant, id, &draft, now).await?.map_err(|SecondPrimary| raced(customer))?;
        let changed = changed_paths(&to_proto(&before), &to_proto(&after));
        if changed.is_empty() {
            // Nothing differs: roll the revision bump back.
            tx.rollback().await?;
            return Ok(before);
        }
        emit(&mut tx, tenant, &after, changed, false).await?;
        tx.commit().await?;
        Ok(after)
    }

    /// Removes payment account `id` (etag checked when given) and writes `PaymentAccountChanged` with `deleted`.
    pub async fn delete_payment_account(&self, tenant: Uuid, customer: Uuid, id: Uuid, etag: &str) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let before: PaymentAccountRow =
            PAYMENT_ACCOUNTS.lock_child_for_change(&mut tx, tenant, &PAYMENT_ACCOUNT, (customer, id), etag, "etag").await?;
        store::delete(&mut tx, tenant, id).await?;
        emit(&mut tx, tenant, &before, Vec::new(), true).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// FAILED_PRECONDITION `PRIMARY_ACCOUNT_EXISTS` naming the customer's primary
/// account when `draft` asks to be primary too (`id`: the account being changed).
async fn ensure_no_other_primary(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Uuid,
    id: Option<Uuid>,
    draft: &PaymentAccountDraft,
) -> Result<(), Error> {
    if !draft.primary {
        return Ok(());
    }
    match store::primary_of(tx, tenant, customer).await? {
        Some(primary) if Some(primary) != id => Err(Error::FailedPrecondition {
            reason: "PRIMARY_ACCOUNT_EXISTS",
            message: "the customer has a primary account already: unset it first".to_owned(),
            subject: PAYMENT_ACCOUNT.name(customer, primary),
        }),
        _ => Ok(()),
    }
}

/// The same refusal when a concurrent writer made another account primary first (the database's index said so).
fn raced(customer: Uuid) -> Error {
    Error::FailedPrecondition {
        reason: "PRIMARY_ACCOUNT_EXISTS",
        message: "another account of the customer was just made primary".to_owned(),
        subject: CUSTOMER.name(customer),
    }
}

/// Writes `PaymentAccountChanged` about `row`, its number masked (its customer is the event's subject).
async fn emit(tx: &mut TenantTx, tenant: Uuid, row: &PaymentAccountRow, changed_paths: Vec<String>, deleted: bool) -> Result<(), Error> {
    let mut account = to_proto(row);
    mask_pii(&mut account);
    let event = pb::PaymentAccountChanged { payment_account: Some(account), changed_paths, deleted };
    outbox::append(tx, tenant, &CUSTOMER.name(row.customer_id), &event).await
}
