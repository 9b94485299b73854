//! The wire form of payment accounts: requests validated into a
//! [`PaymentAccountDraft`] (every bad field reported, never echoing an
//! account number), rows back out as `PaymentAccount`, masking, and the
//! per-path copy and compare of updates.

use crm_kit::{FieldViolation, etag, time};
use crm_proto::crm::profiles::v1 as pb;

use super::Violations;
use crate::{
    domain::{
        fields,
        payment_account::{PaymentAccountDraft, account_number, masked_account_number},
    },
    resources::PAYMENT_ACCOUNT,
    store::payment_accounts::PaymentAccountRow,
};

/// The paths UpdatePaymentAccount may change.
pub const WRITABLE: &[&str] = &["holder_name", "bank", "branch", "account_number", "primary"];

/// 1-200 characters of text.
fn required_text(text: &str) -> Result<String, fields::Rejection> {
    match fields::short_text(text, 200)? {
        empty if empty.is_empty() => Err(("REQUIRED", "is required".to_owned())),
        text => Ok(text),
    }
}

/// Validates an incoming payment account; on failure, one violation per bad field.
pub fn draft_from_proto(a: &pb::PaymentAccount, prefix: &str) -> Result<PaymentAccountDraft, Vec<FieldViolation>> {
    let mut v = Violations { prefix, found: Vec::new() };
    let holder_name = v.check("holder_name", required_text(&a.holder_name));
    let bank = v.check("bank", required_text(&a.bank));
    let branch = v.check("branch", fields::short_text(&a.branch, 200));
    let number = account_number(&a.account_number);
    if number.is_none() {
        v.add("account_number", "INVALID_ACCOUNT_NUMBER", "4-34 letters and digits (spaces and dashes are ignored)");
    }
    let draft = (|| {
        Some(PaymentAccountDraft { holder_name: holder_name?, bank: bank?, branch: branch?, account_number: number?, primary: a.primary })
    })();
    match draft {
        Some(draft) if v.found.is_empty() => Ok(draft),
        _ => Err(v.found),
    }
}

/// A stored account as the API returns it (unmasked).
pub fn to_proto(row: &PaymentAccountRow) -> pb::PaymentAccount {
    pb::PaymentAccount {
        name: PAYMENT_ACCOUNT.name(row.customer_id, row.id),
        holder_name: row.holder_name.clone(),
        bank: row.bank.clone(),
        branch: row.branch.clone(),
        account_number: row.account_number.clone(),
        primary: row.is_primary,
        create_time: Some(time::to_timestamp(row.create_time)),
        update_time: Some(time::to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
    }
}

/// Shows only the account number's last four characters (callers without `pii`, events).
pub fn mask_pii(account: &mut pb::PaymentAccount) {
    account.account_number = masked_account_number(&account.account_number);
}

/// The writable paths whose value `after` has otherwise than `before`, compared in wire form.
pub fn changed_paths(before: &pb::PaymentAccount, after: &pb::PaymentAccount) -> Vec<String> {
    WRITABLE.iter().filter(|p| !same_field(before, after, p)).map(|p| (*p).to_owned()).collect()
}

crm_kit::mask_fields!(pb::PaymentAccount;
    "holder_name" => holder_name,
    "bank" => bank,
    "branch" => branch,
    "account_number" => account_number,
    "primary" => primary,
);
