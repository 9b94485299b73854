//! Payment accounts (客户帐号) as archive records (see `archive`): at most
//! one primary per customer — asked for a second, the answer names the
//! current one; the database's partial unique index decides between
//! concurrent writers. Events carry the account number masked.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Table, TenantTx},
    resource::ChildResourceType,
};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::archive::ArchiveRecord;
use crate::{
    domain::payment_account::PaymentAccountDraft,
    resources::{CUSTOMER, PAYMENT_ACCOUNT},
    store::payment_accounts::{self as store, PAYMENT_ACCOUNTS, PaymentAccountRow, SecondPrimary},
    wire::payment_accounts::{WRITABLE, changed_paths, mask_pii, to_proto},
};

/// Payment accounts as archive records.
pub struct PaymentAccounts;

impl ArchiveRecord for PaymentAccounts {
    type Row = PaymentAccountRow;
    type Changed = pb::PaymentAccountChanged;
    type Draft = PaymentAccountDraft;
    const TABLE: Table = PAYMENT_ACCOUNTS;
    const RESOURCE: ChildResourceType = PAYMENT_ACCOUNT;
    const ETAG_FIELD: &'static str = "payment_account.etag";
    type Proto = pb::PaymentAccount;
    const WRITABLE: &'static [&'static str] = WRITABLE;

    fn to_proto(row: &Self::Row) -> pb::PaymentAccount {
        to_proto(row)
    }

    fn mask_pii(record: &mut pb::PaymentAccount) {
        mask_pii(record);
    }

    fn changed(row: &PaymentAccountRow, changed_paths: Vec<String>, deleted: bool) -> pb::PaymentAccountChanged {
        let mut account = to_proto(row);
        mask_pii(&mut account);
        pb::PaymentAccountChanged { payment_account: Some(account), changed_paths, deleted }
    }

    fn changed_paths(before: &PaymentAccountRow, after: &PaymentAccountRow) -> Vec<String> {
        changed_paths(&to_proto(before), &to_proto(after))
    }

    /// FAILED_PRECONDITION `PRIMARY_ACCOUNT_EXISTS` naming the customer's
    /// primary account when the draft asks to be primary too.
    async fn check(tx: &mut TenantTx, tenant: Uuid, customer: Uuid, id: Option<Uuid>, draft: &PaymentAccountDraft) -> Result<(), Error> {
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

    async fn insert(
        tx: &mut TenantTx,
        tenant: Uuid,
        customer: Uuid,
        id: Uuid,
        draft: &PaymentAccountDraft,
        now: DateTime<Utc>,
    ) -> Result<PaymentAccountRow, Error> {
        store::insert(tx, tenant, customer, id, draft, now).await?.map_err(|SecondPrimary| raced(customer))
    }

    async fn update(
        tx: &mut TenantTx,
        tenant: Uuid,
        (customer, id): (Uuid, Uuid),
        draft: &PaymentAccountDraft,
        now: DateTime<Utc>,
    ) -> Result<PaymentAccountRow, Error> {
        store::update(tx, tenant, id, draft, now).await?.map_err(|SecondPrimary| raced(customer))
    }
}

/// The refusal when a concurrent writer made another account primary first (the database's index said so).
fn raced(customer: Uuid) -> Error {
    Error::FailedPrecondition {
        reason: "PRIMARY_ACCOUNT_EXISTS",
        message: "another account of the customer was just made primary".to_owned(),
        subject: CUSTOMER.name(customer),
    }
}
