//! The pure half of bulk export (issue 15): the columns a customer or a
//! transaction export can have, under the names an import maps at once (an
//! exported file can be edited and imported back), which of them carry
//! personal data, and amounts in major units. No I/O.

use std::borrow::Cow;

use super::import::{Field, field_named, name_of};

/// A column of a customer export: a field an import fills, under the name
/// the import maps it by, or one only an export writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerColumn {
    /// A field an import fills: `email` and `phone` are the primary address
    /// and number (else the first), `address` the first address's street
    /// lines (", "-separated), `birthday` "1990-03-02" or "03-02", `tags`
    /// ", "-separated, `external_id` and `attributes.<name>` custom attributes.
    Field(Field),
    /// "customers/{id}".
    ResourceName,
    Kind,
    /// The other emails, "; "-separated (an import splits them again).
    OtherEmails,
    /// The other phone numbers, "; "-separated.
    OtherPhones,
    CompanySize,
    Owner,
    Category,
    SourceChannel,
    LifecycleStage,
    ValueTier,
    ChurnRisk,
    RecencyScore,
    FrequencyScore,
    MonetaryScore,
    CreateTime,
    UpdateTime,
    VerifyTime,
}

/// The columns only an export writes, and their names.
const EXPORT_ONLY: &[(CustomerColumn, &str)] = &[
    (CustomerColumn::ResourceName, "resource_name"),
    (CustomerColumn::Kind, "kind"),
    (CustomerColumn::OtherEmails, "other_emails"),
    (CustomerColumn::OtherPhones, "other_phones"),
    (CustomerColumn::CompanySize, "company_size"),
    (CustomerColumn::Owner, "owner"),
    (CustomerColumn::Category, "category"),
    (CustomerColumn::SourceChannel, "source_channel"),
    (CustomerColumn::LifecycleStage, "lifecycle_stage"),
    (CustomerColumn::ValueTier, "value_tier"),
    (CustomerColumn::ChurnRisk, "churn_risk"),
    (CustomerColumn::RecencyScore, "recency_score"),
    (CustomerColumn::FrequencyScore, "frequency_score"),
    (CustomerColumn::MonetaryScore, "monetary_score"),
    (CustomerColumn::CreateTime, "create_time"),
    (CustomerColumn::UpdateTime, "update_time"),
    (CustomerColumn::VerifyTime, "verify_time"),
];

/// The default columns, in order.
const DEFAULTS: &[CustomerColumn] = &[
    CustomerColumn::ResourceName,
    CustomerColumn::Field(Field::DisplayName),
    CustomerColumn::Field(Field::GivenName),
    CustomerColumn::Field(Field::FamilyName),
    CustomerColumn::Kind,
    CustomerColumn::Field(Field::Email),
    CustomerColumn::OtherEmails,
    CustomerColumn::Field(Field::Phone),
    CustomerColumn::OtherPhones,
    CustomerColumn::Field(Field::Company),
    CustomerColumn::Field(Field::JobTitle),
    CustomerColumn::Field(Field::Industry),
    CustomerColumn::Field(Field::Address),
    CustomerColumn::Field(Field::City),
    CustomerColumn::Field(Field::Region),
    CustomerColumn::Field(Field::PostalCode),
    CustomerColumn::Field(Field::Country),
    CustomerColumn::Field(Field::Birthday),
    CustomerColumn::Field(Field::Tags),
    CustomerColumn::Field(Field::Locale),
    CustomerColumn::Field(Field::TimeZone),
    CustomerColumn::Field(Field::ExternalId),
    CustomerColumn::Owner,
    CustomerColumn::Category,
    CustomerColumn::SourceChannel,
    CustomerColumn::LifecycleStage,
    CustomerColumn::ValueTier,
    CustomerColumn::CreateTime,
    CustomerColumn::UpdateTime,
];

/// The most columns an export may ask for.
pub const MAX_COLUMNS: usize = 200;

impl CustomerColumn {
    /// The column named `name` ("email", "attributes.来源"); None for an unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        // A name an import can fill, an export can write; `attributes.external_id` is the external id.
        match Field::parse(name) {
            Some(Field::Attribute(attribute)) if attribute == "external_id" => Some(Self::Field(Field::ExternalId)),
            Some(field) => Some(Self::Field(field)),
            None => EXPORT_ONLY.iter().find(|(_, n)| *n == name).map(|(column, _)| column.clone()),
        }
    }

    /// Its name, as [`CustomerColumn::parse`] reads it and the header row shows it.
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            Self::Field(field) => field.name(),
            column => Cow::Borrowed(EXPORT_ONLY.iter().find(|(c, _)| c == column).map_or("", |(_, n)| *n)),
        }
    }

    /// Whether its cells are personal data (a custom attribute may hold anything).
    pub fn personal(&self) -> bool {
        match self {
            Self::Field(field) => field.personal() || matches!(field, Field::Attribute(_)),
            column => matches!(column, Self::OtherEmails | Self::OtherPhones),
        }
    }

    /// The default columns, in order.
    pub fn defaults() -> Vec<Self> {
        DEFAULTS.to_vec()
    }
}

/// A column of a transaction export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionColumn {
    /// "customers/{c}/transactions/{t}".
    ResourceName,
    /// "customers/{c}".
    Customer,
    ExternalId,
    Kind,
    CurrencyCode,
    /// The amount in major units ("123.45").
    Amount,
    OccurTime,
    Channel,
    Store,
    /// "product × quantity @ unit price", "; "-separated.
    LineItems,
    CreateTime,
}

/// Each transaction column and its name, in the default order (all of them).
const TRANSACTION_COLUMNS: &[(TransactionColumn, &str)] = &[
    (TransactionColumn::ResourceName, "resource_name"),
    (TransactionColumn::Customer, "customer"),
    (TransactionColumn::ExternalId, "external_id"),
    (TransactionColumn::Kind, "kind"),
    (TransactionColumn::CurrencyCode, "currency_code"),
    (TransactionColumn::Amount, "amount"),
    (TransactionColumn::OccurTime, "occur_time"),
    (TransactionColumn::Channel, "channel"),
    (TransactionColumn::Store, "store"),
    (TransactionColumn::LineItems, "line_items"),
    (TransactionColumn::CreateTime, "create_time"),
];

impl TransactionColumn {
    /// The column named `name`; None for an unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        field_named(TRANSACTION_COLUMNS, name)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        name_of(TRANSACTION_COLUMNS, &self)
    }

    /// Every column, in order.
    pub fn defaults() -> Vec<Self> {
        TRANSACTION_COLUMNS.iter().map(|(c, _)| *c).collect()
    }
}

/// The columns `names` ask for, or the defaults when there are none; an
/// unknown or repeated name is an error naming its index and what went wrong.
pub fn columns<C: PartialEq>(
    names: &[String],
    parse: impl Fn(&str) -> Option<C>,
    defaults: impl FnOnce() -> Vec<C>,
) -> Result<Vec<C>, (usize, &'static str)> {
    if names.is_empty() {
        return Ok(defaults());
    }
    if names.len() > MAX_COLUMNS {
        return Err((MAX_COLUMNS, "TOO_MANY_COLUMNS"));
    }
    let mut columns = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let column = parse(name.trim()).ok_or((i, "UNKNOWN_COLUMN"))?;
        if columns.contains(&column) {
            return Err((i, "DUPLICATE_COLUMN"));
        }
        columns.push(column);
    }
    Ok(columns)
}

/// `minor` units of a currency with `exponent` decimals in major units: 12345, 2 → "123.45".
pub fn decimal(minor: i64, exponent: u32) -> String {
    if exponent == 0 {
        return minor.to_string();
    }
    let scale = 10_i64.pow(exponent);
    let sign = if minor < 0 { "-" } else { "" };
    let (whole, fraction) = (minor.unsigned_abs() / scale.unsigned_abs(), minor.unsigned_abs() % scale.unsigned_abs());
    format!("{sign}{whole}.{fraction:0width$}", width = exponent as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::import::suggest;

    #[test]
    fn every_named_column_reads_back_by_its_name() {
        for column in DEFAULTS.iter().chain(EXPORT_ONLY.iter().map(|(c, _)| c)) {
            assert_eq!(CustomerColumn::parse(&column.name()).as_ref(), Some(column), "{column:?}");
        }
        for (column, name) in TRANSACTION_COLUMNS {
            assert_eq!(TransactionColumn::parse(name), Some(*column));
        }
        assert_eq!(CustomerColumn::parse("attributes.来源"), Some(CustomerColumn::Field(Field::Attribute("来源".into()))));
        assert_eq!(CustomerColumn::parse("attributes.external_id"), Some(CustomerColumn::Field(Field::ExternalId)));
        assert_eq!(CustomerColumn::Field(Field::Attribute("来源".into())).name(), "attributes.来源");
        assert!(CustomerColumn::Field(Field::Attribute("x".into())).personal() && CustomerColumn::OtherEmails.personal());
        assert!(!CustomerColumn::Field(Field::ExternalId).personal() && !CustomerColumn::Owner.personal());
        for bad in ["emails", "attributes.", "attributes. x", "name"] {
            assert_eq!(CustomerColumn::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_import_maps_the_default_header_back_to_the_fields_it_came_from() {
        let headers: Vec<String> = CustomerColumn::defaults().iter().map(|c| c.name().into_owned()).collect();
        let suggested = suggest(&headers);
        for (header, suggestion) in headers.iter().zip(&suggested) {
            match (Field::parse(header), header.as_str()) {
                // Every column an import can fill is suggested for that field with full confidence.
                (Some(field), _) => {
                    assert_eq!(suggestion.field.as_ref(), Some(&field), "{header}");
                    assert!((suggestion.confidence - 1.0).abs() < f32::EPSILON, "{header}");
                }
                // The other addresses and numbers go where the first went (the import splits them again).
                (None, "other_emails") => assert_eq!(suggestion.field, Some(Field::Email)),
                (None, "other_phones") => assert_eq!(suggestion.field, Some(Field::Phone)),
                // The rest (resource name, grades, times...) are never taken for a field.
                (None, _) => assert_eq!(suggestion.field, None, "{header}"),
            }
        }
    }

    #[test]
    fn columns_are_checked_and_default() {
        let parse = |n: &str| TransactionColumn::parse(n);
        assert_eq!(columns(&[], parse, TransactionColumn::defaults).unwrap().len(), TRANSACTION_COLUMNS.len());
        assert_eq!(
            columns(&["amount".into(), "kind".into()], parse, TransactionColumn::defaults).unwrap(),
            vec![TransactionColumn::Amount, TransactionColumn::Kind]
        );
        assert_eq!(columns(&["kind".into(), "nope".into()], parse, TransactionColumn::defaults), Err((1, "UNKNOWN_COLUMN")));
        assert_eq!(columns(&["kind".into(), " kind".into()], parse, TransactionColumn::defaults), Err((1, "DUPLICATE_COLUMN")));
    }

    #[test]
    fn amounts_are_written_in_major_units() {
        assert_eq!(decimal(12_345, 2), "123.45");
        assert_eq!(decimal(5, 2), "0.05");
        assert_eq!(decimal(-5, 2), "-0.05");
        assert_eq!(decimal(700, 0), "700");
        assert_eq!(decimal(1_234, 3), "1.234");
    }
}
