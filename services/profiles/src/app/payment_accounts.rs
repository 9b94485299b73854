//! Payment accounts (客户帐号): added to a live customer, changed under
//! their etag, removed; each change with its `PaymentAccountChanged` event
//! (account number masked). At most one primary per customer: asked for a
//! second, the answer names the current one; the database's partial unique
//! index decides between concurrent writers.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx},
    idempotency::{self, IdempotencyKey},
    resource::ChildResourceType,
};
use crm_proto::crm::profiles::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{
    App,
    archive::{ArchiveRecord, announce, lock_for_update},
    customers::live_customer,
};
use crate::{
    domain::payment_account::PaymentAccountDraft,
    resources::{CUSTOMER, PAYMENT_ACCOUNT},
    store::payment_accounts::{self as store, PAYMENT_ACCOUNTS, PaymentAccountRow, SecondPrimary},
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
        announce::<PaymentAccounts>(&mut tx, tenant, &row, Vec::new(), false).await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
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
        let before = lock_for_update::<PaymentAccounts>(&mut tx, tenant, (customer, id), etag, "payment_account.etag").await?;
        let draft = edit(&before)?;
        ensure_no_other_primary(&mut tx, tenant, customer, Some(id), &draft).await?;
        let after = store::update(&mut tx, tenant, id, &draft, now).await?.map_err(|SecondPrimary| raced(customer))?;
        let changed = changed_paths(&to_proto(&before), &to_proto(&after));
        if changed.is_empty() {
            // Nothing differs: roll the revision bump back.
            tx.rollback().await?;
            return Ok(before);
        }
        announce::<PaymentAccounts>(&mut tx, tenant, &after, changed, false).await?;
        tx.commit().await?;
        Ok(after)
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

/// Payment accounts as archive records; their events carry the number masked.
pub struct PaymentAccounts;

impl ArchiveRecord for PaymentAccounts {
    type Row = PaymentAccountRow;
    type Changed = pb::PaymentAccountChanged;
    const TABLE: Table = PAYMENT_ACCOUNTS;
    const RESOURCE: ChildResourceType = PAYMENT_ACCOUNT;

    fn changed(row: &PaymentAccountRow, changed_paths: Vec<String>, deleted: bool) -> pb::PaymentAccountChanged {
        let mut account = to_proto(row);
        mask_pii(&mut account);
        pb::PaymentAccountChanged { payment_account: Some(account), changed_paths, deleted }
    }
}
