//! Exports between the store and the file: a stored customer or transaction
//! as the cells of its row (personal cells masked for callers without
//! `pii`), and an export's audit entry as the API shows it.

use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use crm_kit::{Error, money, time::to_timestamp};
use crm_proto::crm::profiles::v1::{self as pb, export::State};
use serde_json::Value;

use crate::{
    domain::{
        export::{CustomerColumn, TransactionColumn, decimal},
        import::Field,
        mask::{self, CellMask},
        sheet::SheetWriter,
    },
    resources::{CUSTOMER, EXPORT, SEGMENT, TRANSACTION},
    store::{CustomerRow, exports::ExportRow, transactions::TransactionRow},
};

/// The stored format ("CSV", "XLSX") a request's `format` asks for.
pub fn format_from_proto(format: i32) -> Result<&'static str, Error> {
    match pb::ExportFormat::try_from(format) {
        Ok(pb::ExportFormat::Unspecified | pb::ExportFormat::Csv) => Ok("CSV"),
        Ok(pb::ExportFormat::Xlsx) => Ok("XLSX"),
        Err(_) => Err(Error::invalid("format", "INVALID_VALUE", "EXPORT_FORMAT_CSV or EXPORT_FORMAT_XLSX")),
    }
}

fn time(t: DateTime<Utc>) -> Cow<'static, str> {
    Cow::Owned(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn score(s: Option<i16>) -> Cow<'static, str> {
    s.map_or(Cow::Borrowed(""), |s| Cow::Owned(s.to_string()))
}

/// A custom attribute's value as a cell: text as it is, numbers and booleans as written, lists and maps as JSON.
fn attribute_cell(value: Option<&Value>) -> Cow<'_, str> {
    match value {
        None | Some(Value::Null) => Cow::Borrowed(""),
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(other) => Cow::Owned(other.to_string()),
    }
}

/// The preferred entry (else the first) and the others, in their order.
fn preferred<T>(entries: &[T], primary: impl Fn(&T) -> bool) -> (Option<&T>, impl Iterator<Item = &T>) {
    let chosen = entries.iter().position(&primary).or((!entries.is_empty()).then_some(0));
    (chosen.map(|i| &entries[i]), entries.iter().enumerate().filter(move |(i, _)| Some(*i) != chosen).map(|(_, e)| e))
}

/// `text` as shown: masked as `how` says, or as it is (None).
fn shown(text: &str, how: Option<CellMask>) -> Cow<'_, str> {
    match how {
        Some(how) => Cow::Owned(mask::cell(text, how)),
        None => Cow::Borrowed(text),
    }
}

/// Writes customer `row` as one row of `columns`; personal cells masked unless `pii`.
pub fn write_customer(row: &CustomerRow, columns: &[CustomerColumn], pii: bool, sheet: &mut SheetWriter) -> std::io::Result<()> {
    let address = row.addresses.0.first();
    let (email, other_emails) = preferred(&row.emails.0, |e| e.primary);
    let (phone, other_phones) = preferred(&row.phones.0, |p| p.primary);
    let (mut other_emails, mut other_phones) = (Some(other_emails), Some(other_phones));
    for column in columns {
        let how = (!pii && column.personal()).then_some(match column {
            CustomerColumn::Field(Field::Email) | CustomerColumn::OtherEmails => CellMask::Email,
            CustomerColumn::Field(Field::Phone) | CustomerColumn::OtherPhones => CellMask::Phone,
            _ => CellMask::Initial,
        });
        let joined = |items: &mut dyn Iterator<Item = &str>| Cow::Owned(items.map(|t| shown(t, how)).collect::<Vec<_>>().join("; "));
        let text: Cow<'_, str> = match column {
            CustomerColumn::ResourceName => Cow::Owned(CUSTOMER.name(row.id)),
            CustomerColumn::Field(Field::DisplayName) => shown(&row.display_name, how),
            CustomerColumn::Field(Field::GivenName) => shown(&row.given_name, how),
            CustomerColumn::Field(Field::FamilyName) => shown(&row.family_name, how),
            CustomerColumn::Kind => Cow::Borrowed(&row.kind),
            CustomerColumn::Field(Field::Email) => email.map_or(Cow::Borrowed(""), |e| shown(&e.address, how)),
            CustomerColumn::OtherEmails => {
                other_emails.take().map_or(Cow::Borrowed(""), |rest| joined(&mut rest.map(|e| e.address.as_str())))
            }
            CustomerColumn::Field(Field::Phone) => phone.map_or(Cow::Borrowed(""), |p| shown(&p.number, how)),
            CustomerColumn::OtherPhones => {
                other_phones.take().map_or(Cow::Borrowed(""), |rest| joined(&mut rest.map(|p| p.number.as_str())))
            }
            CustomerColumn::Field(Field::Company) => Cow::Borrowed(&row.company),
            CustomerColumn::Field(Field::JobTitle) => Cow::Borrowed(&row.job_title),
            CustomerColumn::Field(Field::Industry) => Cow::Borrowed(&row.industry),
            CustomerColumn::CompanySize => Cow::Borrowed(&row.company_size),
            CustomerColumn::Field(Field::Address) => {
                address.map_or(Cow::Borrowed(""), |a| Cow::Owned(shown(&a.lines.join(", "), how).into_owned()))
            }
            CustomerColumn::Field(Field::City) => Cow::Borrowed(address.map_or("", |a| a.city.as_str())),
            CustomerColumn::Field(Field::Region) => Cow::Borrowed(address.map_or("", |a| a.region.as_str())),
            CustomerColumn::Field(Field::PostalCode) => address.map_or(Cow::Borrowed(""), |a| shown(&a.postal_code, how)),
            CustomerColumn::Field(Field::Country) => Cow::Borrowed(address.map_or("", |a| a.country.as_str())),
            CustomerColumn::Field(Field::Birthday) => match (row.birthday_year, row.birthday_month, row.birthday_day) {
                (Some(y), Some(m), Some(d)) => Cow::Owned(shown(&format!("{y:04}-{m:02}-{d:02}"), how).into_owned()),
                (None, Some(m), Some(d)) => Cow::Owned(shown(&format!("{m:02}-{d:02}"), how).into_owned()),
                _ => Cow::Borrowed(""),
            },
            CustomerColumn::Field(Field::Tags) => Cow::Owned(row.tags.join(", ")),
            CustomerColumn::Field(Field::Locale) => Cow::Borrowed(&row.locale),
            CustomerColumn::Field(Field::TimeZone) => Cow::Borrowed(&row.time_zone),
            CustomerColumn::Field(Field::ExternalId) => attribute_cell(row.attributes.0.get("external_id")),
            CustomerColumn::Owner => Cow::Borrowed(&row.owner),
            CustomerColumn::Category => Cow::Borrowed(&row.category),
            CustomerColumn::SourceChannel => Cow::Borrowed(&row.source_channel),
            CustomerColumn::LifecycleStage => Cow::Borrowed(&row.lifecycle_stage),
            CustomerColumn::ValueTier => Cow::Borrowed(&row.value_tier),
            CustomerColumn::ChurnRisk => Cow::Borrowed(&row.churn_risk),
            CustomerColumn::RecencyScore => score(row.recency_score),
            CustomerColumn::FrequencyScore => score(row.frequency_score),
            CustomerColumn::MonetaryScore => score(row.monetary_score),
            CustomerColumn::CreateTime => time(row.create_time),
            CustomerColumn::UpdateTime => time(row.update_time),
            CustomerColumn::VerifyTime => row.verify_time.map_or(Cow::Borrowed(""), time),
            CustomerColumn::Field(Field::Attribute(name)) => {
                Cow::Owned(shown(&attribute_cell(row.attributes.0.get(name)), how).into_owned())
            }
        };
        sheet.cell(&text)?;
    }
    sheet.end_row()
}

/// Writes transaction `row` as one row of `columns`.
pub fn write_transaction(row: &TransactionRow, columns: &[TransactionColumn], sheet: &mut SheetWriter) -> std::io::Result<()> {
    let exponent = money::exponent(&row.currency_code).unwrap_or(2);
    for column in columns {
        let text: Cow<'_, str> = match column {
            TransactionColumn::ResourceName => Cow::Owned(TRANSACTION.name(row.customer_id, row.id)),
            TransactionColumn::Customer => Cow::Owned(CUSTOMER.name(row.customer_id)),
            TransactionColumn::ExternalId => Cow::Borrowed(&row.external_id),
            TransactionColumn::Kind => Cow::Borrowed(&row.kind),
            TransactionColumn::CurrencyCode => Cow::Borrowed(&row.currency_code),
            TransactionColumn::Amount => Cow::Owned(decimal(row.amount_minor, exponent)),
            TransactionColumn::OccurTime => time(row.occur_time),
            TransactionColumn::Channel => Cow::Borrowed(&row.channel),
            TransactionColumn::Store => Cow::Borrowed(&row.store),
            TransactionColumn::LineItems => Cow::Owned(
                row.line_items
                    .iter()
                    .map(|item| format!("{} × {} @ {}", item.product, item.quantity, decimal(item.unit_price_minor, exponent)))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            TransactionColumn::CreateTime => time(row.create_time),
        };
        sheet.cell(&text)?;
    }
    sheet.end_row()
}

/// A stored audit entry as the API shows it.
pub fn export_to_proto(row: &ExportRow) -> pb::Export {
    let state = match row.state.as_str() {
        "RUNNING" => State::Running,
        "SUCCEEDED" => State::Succeeded,
        "FAILED" => State::Failed,
        _ => State::Unspecified,
    };
    let kind = match row.kind.as_str() {
        "CUSTOMERS" => pb::export::Kind::Customers,
        "TRANSACTIONS" => pb::export::Kind::Transactions,
        _ => pb::export::Kind::Unspecified,
    };
    let format = if row.format == "XLSX" { pb::ExportFormat::Xlsx } else { pb::ExportFormat::Csv };
    pb::Export {
        name: EXPORT.name(row.id),
        kind: kind as i32,
        format: format as i32,
        actor: row.actor.clone(),
        filter: row.filter.clone(),
        segment: row.segment_id.map(|id| SEGMENT.name(id)).unwrap_or_default(),
        order_by: row.order_by.clone(),
        range_start_time: row.range_start_time.map(to_timestamp),
        range_end_time: row.range_end_time.map(to_timestamp),
        columns: row.columns.clone(),
        personal_data: row.personal_data,
        state: state as i32,
        row_count: row.row_count,
        size_bytes: row.size_bytes,
        failure_message: row.failure_message.clone(),
        create_time: Some(to_timestamp(row.create_time)),
        finish_time: row.finish_time.map(to_timestamp),
    }
}
