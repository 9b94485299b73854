//! A spreadsheet row, through its column correspondence, into a
//! transaction: the cells fill a `Transaction` message, which is then checked
//! exactly as BatchCreateTransactions checks one ([`draft_from_proto`]), so an
//! imported row and a recorded transaction are refused for the same reasons;
//! the customer column says whose it is (found in the batch, by the app).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use crm_kit::time::to_timestamp;
use crm_proto::{crm::profiles::v1 as pb, google::r#type::Money};
use uuid::Uuid;

use super::{
    customer_ref::{CustomerColumn, CustomerField, CustomerRef, blank_customer, customer_field, customer_of, read_customer_ref},
    import::{RowProblem, located},
    transactions::draft_from_proto,
};
use crate::domain::{
    import::unneutralise,
    transaction::TransactionDraft,
    transaction_import::{ITEM_FIELDS, TransactionField, parse_amount, parse_kind, parse_line_items, parse_time},
};

/// How a transaction sheet is read: which field each column fills, and
/// what cells leave to the settings.
#[derive(Debug, Clone)]
pub struct TransactionSheet {
    /// (0-based column, field) for each mapped column.
    pub mapping: Vec<(usize, TransactionField)>,
    /// The zone of times written without an offset.
    pub zone: Tz,
    /// The currency of rows without a currency cell ("" when there is none).
    pub currency_code: String,
    /// Put before national phone numbers, e.g. "86".
    pub calling_code: String,
}

customer_field!(TransactionField);

/// A transaction row read and checked alone: whose it is, and the
/// transaction (its customer not yet known: nil), or every problem of the row.
#[derive(Debug, Clone)]
pub struct RowTransaction {
    pub customer: Option<CustomerRef>,
    /// The row's external id ("" when it has none).
    pub external_id: String,
    pub draft: Result<TransactionDraft, Vec<RowProblem>>,
}

/// The transaction row `cells` describes on `sheet`, checked as of `now`.
pub fn read_transaction_row(cells: &[&str], sheet: &TransactionSheet, now: DateTime<Utc>) -> RowTransaction {
    let mut t = pb::Transaction { kind: pb::TransactionKind::Purchase as i32, ..Default::default() };
    let mut origin: Vec<(String, usize)> = Vec::new();
    let mut problems = Vec::new();
    let mut customer = None;
    let (mut amount, mut currency) = (None, None);
    let mut item = pb::TransactionLineItem { quantity: 1, ..Default::default() };
    let mut bad = |column: usize, field: &str, reason: &'static str, message: &str| {
        problems.push(RowProblem { column: Some(column), field: field.to_owned(), reason, message: message.to_owned() });
    };
    for (column, field) in &sheet.mapping {
        let (column, field) = (*column, *field);
        let Some(cell) = cells.get(column).map(|c| unneutralise(c.trim()).trim()).filter(|c| !c.is_empty()) else { continue };
        origin.push((field.name().to_owned(), column));
        match field {
            TransactionField::Customer
            | TransactionField::CustomerEmail
            | TransactionField::CustomerPhone
            | TransactionField::CustomerExternalId => {
                let kind = field.customer_column().unwrap_or(CustomerColumn::Name);
                match read_customer_ref(kind, cell, column, &sheet.calling_code) {
                    Ok(r) => customer = Some(r),
                    Err(problem) => bad(column, &problem.field, problem.reason, &problem.message),
                }
            }
            TransactionField::ExternalId => t.external_id = cell.to_owned(),
            TransactionField::Kind => match parse_kind(cell) {
                Some("REFUND") => t.kind = pb::TransactionKind::Refund as i32,
                Some(_) => {}
                None => bad(column, "kind", "INVALID_KIND", "PURCHASE or REFUND (购买/退款)"),
            },
            TransactionField::Amount => match parse_amount(cell) {
                Some(units_nanos) => amount = Some(units_nanos),
                None => bad(column, "amount", "INVALID_AMOUNT", "a number such as 1234.50 or 1,234.50"),
            },
            TransactionField::CurrencyCode => {
                currency = Some(cell.to_uppercase());
                origin.push(("amount.currency_code".to_owned(), column));
            }
            TransactionField::OccurTime => match parse_time(cell, &sheet.zone) {
                Some(at) => t.occur_time = Some(to_timestamp(at)),
                None => bad(
                    column,
                    "occur_time",
                    "INVALID_TIME",
                    "a time such as 2026-11-27 10:30:00, 2026/11/27 or 2026-11-27T10:30:00+08:00 (one that exists in the time zone)",
                ),
            },
            TransactionField::Channel => t.channel = cell.to_owned(),
            TransactionField::Store => t.store = cell.to_owned(),
            TransactionField::LineItems => match line_items(cell) {
                Ok(items) => t.line_items = items,
                Err(i) => {
                    bad(column, "line_items", "INVALID_LINE_ITEMS", &format!("item {} is not \"product × quantity @ unit price\"", i + 1))
                }
            },
            TransactionField::Product => item.product = cell.to_owned(),
            TransactionField::Sku => item.sku = cell.to_owned(),
            TransactionField::Quantity => match cell.parse() {
                Ok(quantity) => item.quantity = quantity,
                Err(_) => bad(column, "quantity", "INVALID_QUANTITY", "a whole number, at least 1"),
            },
            TransactionField::UnitPrice => match parse_amount(cell) {
                Some((units, nanos)) => item.unit_price = Some(Money { currency_code: String::new(), units, nanos }),
                None => bad(column, "unit_price", "INVALID_AMOUNT", "a number such as 12.50"),
            },
        }
    }
    // One item per row: the item columns, when any of them is filled.
    if origin.iter().any(|(path, _)| ITEM_FIELDS.iter().any(|f| f.name() == path)) {
        for (field, part) in [("product", "product"), ("sku", "sku"), ("quantity", "quantity"), ("unit_price", "unit_price")] {
            if let Some(column) = origin.iter().find(|(path, _)| path == field).map(|(_, c)| *c) {
                origin.push((format!("line_items[0].{part}"), column));
            }
        }
        t.line_items.push(item);
    }
    if let Some((units, nanos)) = amount {
        let currency_code = currency.unwrap_or_else(|| sheet.currency_code.clone());
        t.amount = Some(Money { currency_code, units, nanos });
    }
    if customer.is_none() && !problems.iter().any(|p| p.field.starts_with("customer")) {
        problems.push(blank_customer(customer_of(&sheet.mapping)));
    }
    let external_id = t.external_id.clone();
    let draft = match draft_from_proto(&t, Uuid::nil(), "transaction", now) {
        Ok(draft) if problems.is_empty() => Ok(draft),
        Ok(_) => Err(problems),
        Err(violations) => {
            // A cell that could not be read is not also missing.
            let unread: Vec<String> = problems.iter().map(|p| p.field.clone()).collect();
            problems.extend(located(violations, "transaction.", &origin).into_iter().filter(|p| !unread.contains(&p.field)));
            Err(problems)
        }
    };
    RowTransaction { customer, external_id, draft }
}

/// The items of a line-items cell, priced in the transaction's currency; Err: the 0-based item that cannot be read.
fn line_items(cell: &str) -> Result<Vec<pb::TransactionLineItem>, usize> {
    let items = parse_line_items(cell)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let (units, nanos) = parse_amount(item.unit_price).ok_or(i)?;
            Ok(pb::TransactionLineItem {
                product: item.product.into_owned(),
                sku: String::new(),
                quantity: item.quantity,
                unit_price: Some(Money { currency_code: String::new(), units, nanos }),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sheet(fields: &[TransactionField]) -> TransactionSheet {
        TransactionSheet {
            mapping: fields.iter().copied().enumerate().collect(),
            zone: chrono_tz::Asia::Shanghai,
            currency_code: "CNY".to_owned(),
            calling_code: "86".to_owned(),
        }
    }

    #[test]
    fn a_row_reads_into_the_transaction_it_describes() {
        use TransactionField::*;
        let sheet = sheet(&[CustomerPhone, ExternalId, Kind, Amount, OccurTime, Store, Product, Quantity, UnitPrice]);
        let row = read_transaction_row(
            &["138 0013 8000", "T-1", "退款", "¥1,200.50", "2026-11-01 10:00", "静安店", "茶", "2", "600.25"],
            &sheet,
            Utc::now(),
        );
        assert_eq!(row.customer, Some(CustomerRef::Phone("+8613800138000".into())));
        let draft = row.draft.unwrap();
        assert_eq!((draft.kind.as_str(), draft.currency_code.as_str(), draft.amount_minor), ("REFUND", "CNY", 120_050));
        assert_eq!(draft.occur_time.to_rfc3339(), "2026-11-01T02:00:00+00:00");
        assert_eq!((draft.store.as_str(), draft.line_items.len(), draft.line_items[0].unit_price_minor), ("静安店", 1, 60_025));
    }

    #[test]
    fn every_problem_of_a_row_names_its_column() {
        use TransactionField::*;
        let sheet = sheet(&[CustomerEmail, ExternalId, Amount, CurrencyCode, OccurTime, LineItems]);
        let row = read_transaction_row(&["ada@", "", "12.345", "usd", "2099-01-01", "Tea × 2 @ 1; Cup"], &sheet, Utc::now());
        assert_eq!(row.customer, None);
        let problems = row.draft.unwrap_err();
        let found: Vec<(Option<usize>, &str, &str)> = problems.iter().map(|p| (p.column, p.field.as_str(), p.reason)).collect();
        assert!(found.contains(&(Some(0), "customer_email", "INVALID_EMAIL")), "{found:?}");
        assert!(found.contains(&(Some(5), "line_items", "INVALID_LINE_ITEMS")), "{found:?}");
        assert!(found.iter().any(|(c, f, _)| *c == Some(2) && f.starts_with("amount")), "too many decimals for USD: {found:?}");
        assert!(found.iter().any(|(c, f, _)| *c == Some(4) && *f == "occur_time"), "in the future: {found:?}");
        assert!(found.iter().any(|(_, f, r)| *f == "external_id" && *r == "REQUIRED"), "{found:?}");
    }
}
