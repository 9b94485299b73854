//! The pure half of bulk export (issue 15): the columns a customer or a
//! transaction export can have, under the names an import maps at once (an
//! exported file can be edited and imported back), which of them carry
//! personal data, and amounts in major units. No I/O.

use std::borrow::Cow;

use super::import::Field;

/// A column of a customer export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerColumn {
    /// "customers/{id}".
    ResourceName,
    DisplayName,
    GivenName,
    FamilyName,
    Kind,
    /// The primary email (else the first).
    Email,
    /// The other emails, "; "-separated.
    OtherEmails,
    /// The primary phone number (else the first).
    Phone,
    /// The other phone numbers, "; "-separated.
    OtherPhones,
    Company,
    JobTitle,
    Industry,
    CompanySize,
    /// The first address's street lines, ", "-separated.
    Address,
    City,
    Region,
    PostalCode,
    Country,
    /// "1990-03-02", or "03-02" without a year.
    Birthday,
    /// ", "-separated.
    Tags,
    Locale,
    TimeZone,
    /// The `external_id` custom attribute.
    ExternalId,
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
    /// A custom attribute of this name.
    Attribute(String),
}

/// Each named column, its name, and whether the default set has it (in this order).
const CUSTOMER_COLUMNS: &[(CustomerColumn, &str, bool)] = &[
    (CustomerColumn::ResourceName, "resource_name", true),
    (CustomerColumn::DisplayName, "display_name", true),
    (CustomerColumn::GivenName, "given_name", true),
    (CustomerColumn::FamilyName, "family_name", true),
    (CustomerColumn::Kind, "kind", true),
    (CustomerColumn::Email, "email", true),
    (CustomerColumn::OtherEmails, "other_emails", true),
    (CustomerColumn::Phone, "phone", true),
    (CustomerColumn::OtherPhones, "other_phones", true),
    (CustomerColumn::Company, "company", true),
    (CustomerColumn::JobTitle, "job_title", true),
    (CustomerColumn::Industry, "industry", true),
    (CustomerColumn::CompanySize, "company_size", false),
    (CustomerColumn::Address, "address", true),
    (CustomerColumn::City, "city", true),
    (CustomerColumn::Region, "region", true),
    (CustomerColumn::PostalCode, "postal_code", true),
    (CustomerColumn::Country, "country", true),
    (CustomerColumn::Birthday, "birthday", true),
    (CustomerColumn::Tags, "tags", true),
    (CustomerColumn::Locale, "locale", true),
    (CustomerColumn::TimeZone, "time_zone", true),
    (CustomerColumn::ExternalId, "external_id", true),
    (CustomerColumn::Owner, "owner", true),
    (CustomerColumn::Category, "category", true),
    (CustomerColumn::SourceChannel, "source_channel", true),
    (CustomerColumn::LifecycleStage, "lifecycle_stage", true),
    (CustomerColumn::ValueTier, "value_tier", true),
    (CustomerColumn::ChurnRisk, "churn_risk", false),
    (CustomerColumn::RecencyScore, "recency_score", false),
    (CustomerColumn::FrequencyScore, "frequency_score", false),
    (CustomerColumn::MonetaryScore, "monetary_score", false),
    (CustomerColumn::CreateTime, "create_time", true),
    (CustomerColumn::UpdateTime, "update_time", true),
    (CustomerColumn::VerifyTime, "verify_time", false),
];

/// The most columns an export may ask for.
pub const MAX_COLUMNS: usize = 200;

impl CustomerColumn {
    /// The column named `name` ("email", "attributes.来源"); None for an unknown name.
    pub fn parse(name: &str) -> Option<Self> {
        if name.starts_with("attributes.") {
            // The same rule as an import's column: a name an import can fill, it can export.
            return match Field::parse(name)? {
                Field::Attribute(attribute) if attribute == "external_id" => Some(Self::ExternalId),
                Field::Attribute(attribute) => Some(Self::Attribute(attribute)),
                _ => None,
            };
        }
        CUSTOMER_COLUMNS.iter().find(|(_, n, _)| *n == name).map(|(column, _, _)| column.clone())
    }

    /// Its name, as [`CustomerColumn::parse`] reads it and the header row shows it.
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            Self::Attribute(attribute) => Cow::Owned(format!("attributes.{attribute}")),
            column => Cow::Borrowed(CUSTOMER_COLUMNS.iter().find(|(c, _, _)| c == column).map_or("", |(_, n, _)| *n)),
        }
    }

    /// Whether its cells are personal data (a custom attribute may hold anything).
    pub fn personal(&self) -> bool {
        matches!(
            self,
            Self::DisplayName
                | Self::GivenName
                | Self::FamilyName
                | Self::Email
                | Self::OtherEmails
                | Self::Phone
                | Self::OtherPhones
                | Self::Address
                | Self::PostalCode
                | Self::Birthday
                | Self::Attribute(_)
        )
    }

    /// The default columns, in order.
    pub fn defaults() -> Vec<Self> {
        CUSTOMER_COLUMNS.iter().filter(|(_, _, default)| *default).map(|(c, _, _)| c.clone()).collect()
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
        TRANSACTION_COLUMNS.iter().find(|(_, n)| *n == name).map(|(column, _)| *column)
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        TRANSACTION_COLUMNS.iter().find(|(c, _)| *c == self).map_or("", |(_, n)| *n)
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
        for (column, name, _) in CUSTOMER_COLUMNS {
            assert_eq!(CustomerColumn::parse(name).as_ref(), Some(column), "{name}");
            assert_eq!(column.name(), *name);
        }
        for (column, name) in TRANSACTION_COLUMNS {
            assert_eq!(TransactionColumn::parse(name), Some(*column));
        }
        assert_eq!(CustomerColumn::parse("attributes.来源"), Some(CustomerColumn::Attribute("来源".into())));
        assert_eq!(CustomerColumn::parse("attributes.external_id"), Some(CustomerColumn::ExternalId));
        assert_eq!(CustomerColumn::Attribute("来源".into()).name(), "attributes.来源");
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
