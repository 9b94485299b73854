//! The wire form of transactions: requests validated into a
//! [`TransactionDraft`] (every bad field reported), `google.type.Money` as
//! exact minor units, and stored rows and spending back out.

use chrono::{DateTime, SubsecRound, Utc};
use crm_kit::{FieldViolation, money, time};
use crm_proto::crm::profiles::v1 as pb;
use uuid::Uuid;

use super::{Violations, enum_short};
use crate::{
    domain::{
        fields,
        transaction::{LineItemDraft, MAX_LINE_ITEMS, TransactionDraft},
    },
    resources::{TRANSACTION, spending_name},
    store::transactions::{SpendingRow, TransactionRow},
};

/// Validates transaction `t` of `customer` at `now`, its violations named under `prefix`.
pub fn draft_from_proto(
    t: &pb::Transaction,
    customer: Uuid,
    prefix: &str,
    now: DateTime<Utc>,
) -> Result<TransactionDraft, Vec<FieldViolation>> {
    let mut v = Violations { prefix, found: Vec::new() };
    let external_id = match fields::short_text(&t.external_id, 200) {
        Ok(id) if id.is_empty() => {
            v.add("external_id", "REQUIRED", "the recording system's id of the transaction");
            None
        }
        other => v.check("external_id", other),
    };
    let kind = match enum_short(t.kind, |n| pb::TransactionKind::try_from(n).ok(), |e| e.as_str_name(), "TRANSACTION_KIND_") {
        Ok(kind) if !kind.is_empty() => Some(kind),
        _ => {
            v.add("kind", "INVALID_KIND", "TRANSACTION_KIND_PURCHASE or TRANSACTION_KIND_REFUND");
            None
        }
    };
    let amount = match &t.amount {
        None => {
            v.add("amount", "REQUIRED", "the amount paid or refunded");
            None
        }
        Some(m) => match money::to_minor(m, None) {
            Ok(a) if a.minor < 0 => {
                v.add("amount", "NEGATIVE_AMOUNT", "zero or more; a refund is a transaction of kind REFUND");
                None
            }
            other => v.check("amount", other),
        },
    };
    let occur_time = match t.occur_time.as_ref().and_then(time::from_timestamp) {
        Some(t) if t <= now + chrono::Duration::minutes(1) => Some(t.trunc_subsecs(6)),
        _ => {
            v.add("occur_time", "INVALID_OCCUR_TIME", "required: when it happened, not in the future");
            None
        }
    };
    let channel = v.check("channel", fields::short_text(&t.channel, 100));
    let store = v.check("store", fields::short_text(&t.store, 200));
    let line_items = line_items(&mut v, &t.line_items, amount.as_ref().map(|a| a.currency.as_str()));
    let draft = (|| {
        let amount = amount?;
        Some(TransactionDraft {
            customer,
            external_id: external_id?,
            kind: kind?,
            currency_code: amount.currency,
            amount_minor: amount.minor,
            occur_time: occur_time?,
            channel: channel?,
            store: store?,
            line_items: line_items?,
        })
    })();
    match draft {
        Some(draft) if v.found.is_empty() => Ok(draft),
        _ => Err(v.found),
    }
}

/// The line items, priced in `currency` (None when the amount was refused).
fn line_items(v: &mut Violations, items: &[pb::TransactionLineItem], currency: Option<&str>) -> Option<Vec<LineItemDraft>> {
    if items.len() > MAX_LINE_ITEMS {
        v.add("line_items", "TOO_MANY_ENTRIES", format!("at most {MAX_LINE_ITEMS} line items"));
        return None;
    }
    let mut drafts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let product = match fields::short_text(&item.product, 200) {
            Ok(p) if p.is_empty() => {
                v.add(format!("line_items[{i}].product"), "REQUIRED", "the product's name");
                None
            }
            other => v.check(format!("line_items[{i}].product"), other),
        };
        let sku = v.check(format!("line_items[{i}].sku"), fields::short_text(&item.sku, 100));
        if item.quantity < 1 {
            v.add(format!("line_items[{i}].quantity"), "INVALID_QUANTITY", "at least 1");
        }
        let price = match (&item.unit_price, currency) {
            (None, _) => Some(0),
            (Some(m), Some(currency)) if !m.currency_code.is_empty() && m.currency_code != currency => {
                v.add(
                    format!("line_items[{i}].unit_price.currency_code"),
                    "CURRENCY_MISMATCH",
                    format!("must be the amount's, {currency}"),
                );
                None
            }
            // The amount's violation already fails the draft; its currency is unknown.
            (Some(_), None) => Some(0),
            (Some(m), Some(currency)) => match money::to_minor(m, Some(currency)) {
                Ok(a) if a.minor < 0 => {
                    v.add(format!("line_items[{i}].unit_price"), "NEGATIVE_AMOUNT", "zero or more");
                    None
                }
                other => v.check(format!("line_items[{i}].unit_price"), other.map(|a| a.minor)),
            },
        };
        if let (Some(product), Some(sku), Some(unit_price_minor)) = (product, sku, price) {
            drafts.push(LineItemDraft { product, sku, quantity: item.quantity, unit_price_minor });
        }
    }
    (drafts.len() == items.len()).then_some(drafts)
}

/// A stored transaction as the API returns it.
pub fn to_proto(row: &TransactionRow) -> pb::Transaction {
    pb::Transaction {
        name: TRANSACTION.name(row.customer_id, row.id),
        external_id: row.external_id.clone(),
        kind: crm_kit::protoenum::number(&row.kind, "TRANSACTION_KIND_", |s| pb::TransactionKind::from_str_name(s).map(|e| e as i32)),
        line_items: row
            .line_items
            .iter()
            .map(|item| pb::TransactionLineItem {
                product: item.product.clone(),
                sku: item.sku.clone(),
                quantity: item.quantity,
                unit_price: Some(money::from_minor(&row.currency_code, item.unit_price_minor)),
            })
            .collect(),
        amount: Some(money::from_minor(&row.currency_code, row.amount_minor)),
        occur_time: Some(time::to_timestamp(row.occur_time)),
        channel: row.channel.clone(),
        store: row.store.clone(),
        create_time: Some(time::to_timestamp(row.create_time)),
    }
}

/// Whether stored `row` is what `draft` describes (a re-sent transaction).
pub fn same_transaction(row: &TransactionRow, draft: &TransactionDraft) -> bool {
    row.customer_id == draft.customer
        && row.kind == draft.kind
        && row.currency_code == draft.currency_code
        && row.amount_minor == draft.amount_minor
        && row.occur_time == draft.occur_time
        && row.channel == draft.channel
        && row.store == draft.store
        && row.line_items.len() == draft.line_items.len()
        && row.line_items.iter().zip(&draft.line_items).all(|(stored, sent)| {
            stored.product == sent.product
                && stored.sku == sent.sku
                && stored.quantity == sent.quantity
                && stored.unit_price_minor == sent.unit_price_minor
        })
}

/// `customer`'s spending as the API returns it.
pub fn spending_to_proto(customer: Uuid, rows: &[SpendingRow]) -> pb::CustomerSpending {
    let currencies = rows
        .iter()
        .map(|r| {
            let total = r.purchase_minor.saturating_sub(r.refund_minor);
            pb::CurrencySpending {
                currency_code: r.currency_code.clone(),
                purchase_count: r.purchase_count,
                refund_count: r.refund_count,
                total_spent: Some(money::from_minor(&r.currency_code, total)),
                average_order_value: Some(money::from_minor(&r.currency_code, money::average(total, r.purchase_count))),
                first_purchase_time: r.first_purchase_time.map(time::to_timestamp),
                last_purchase_time: r.last_purchase_time.map(time::to_timestamp),
            }
        })
        .collect();
    pb::CustomerSpending { name: spending_name(customer), currencies }
}
