//! A spreadsheet row, through its column correspondence, into a customer:
//! the cells fill a `Customer` message, which is then checked exactly as
//! CreateCustomer checks one ([`super::draft_from_proto`]), so an imported
//! row and a created customer are refused for the same reasons; each
//! problem is named by the column (and cell) it came from.

use chrono::{DateTime, Utc};
use crm_kit::FieldViolation;
use crm_proto::{
    crm::{
        common::v1::{EmailAddress, PhoneNumber, PostalAddress},
        profiles::v1 as pb,
    },
    google::r#type::Date,
};
use prost_types::{Struct, Value, value::Kind};

use super::draft_from_proto;
use crate::domain::{
    customer::CustomerDraft,
    fields,
    import::{Field, MatchKey, Rule, Settings, international, parse_birthday, split_contacts, split_tags, unneutralise},
};

/// Which field column `column` (0-based) fills.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap {
    pub column: usize,
    pub field: Field,
}

/// What is wrong with a row: the column (None: the row as a whole), the
/// customer field, the reason and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub column: Option<usize>,
    pub field: String,
    pub reason: &'static str,
    pub message: String,
}

/// A row read through its mapping, not yet checked: the customer message
/// its cells fill, which column filled which part, and the cells that could
/// not be read at all.
#[derive(Debug, Clone)]
pub struct RowCustomer {
    customer: pb::Customer,
    origin: Vec<(String, usize)>,
    problems: Vec<RowProblem>,
    filled: Vec<Field>,
}

/// The customer row `cells` describes under `mapping` (national phone
/// numbers with `calling_code` in front, e.g. "86").
pub fn read_row(cells: &[&str], mapping: &[ColumnMap], calling_code: &str) -> RowCustomer {
    let mut customer = pb::Customer::default();
    // Which column each part of the message came from: the longest path prefix names a violation's column.
    let mut origin: Vec<(String, usize)> = Vec::new();
    let mut problems = Vec::new();
    let mut filled = Vec::new();
    let mut address = PostalAddress::default();
    let mut attributes = Struct::default();
    for map in mapping {
        let Some(cell) = cells.get(map.column).map(|c| unneutralise(c.trim()).trim()).filter(|c| !c.is_empty()) else { continue };
        if !filled.contains(&map.field) {
            filled.push(map.field.clone());
        }
        let mut text = |target: &mut String, path: &str| {
            *target = cell.to_owned();
            origin.push((path.to_owned(), map.column));
        };
        match &map.field {
            Field::DisplayName => text(&mut customer.display_name, "display_name"),
            Field::GivenName => text(&mut customer.given_name, "given_name"),
            Field::FamilyName => text(&mut customer.family_name, "family_name"),
            Field::Company => text(&mut customer.company, "company"),
            Field::JobTitle => text(&mut customer.job_title, "job_title"),
            Field::Industry => text(&mut customer.industry, "industry"),
            Field::Locale => text(&mut customer.locale, "locale"),
            Field::TimeZone => text(&mut customer.time_zone, "time_zone"),
            Field::City => text(&mut address.city, "addresses[0].city"),
            Field::Region => text(&mut address.region, "addresses[0].region"),
            Field::PostalCode => text(&mut address.postal_code, "addresses[0].postal_code"),
            Field::Country => text(&mut address.country, "addresses[0].country"),
            Field::Address => {
                address.lines = vec![cell.to_owned()];
                origin.push(("addresses[0].lines".to_owned(), map.column));
            }
            Field::Email => {
                for address in split_contacts(cell) {
                    origin.push((format!("emails[{}]", customer.emails.len()), map.column));
                    let primary = customer.emails.is_empty();
                    customer.emails.push(EmailAddress { address: address.to_owned(), label: String::new(), primary });
                }
            }
            Field::Phone => {
                for number in split_contacts(cell) {
                    origin.push((format!("phones[{}]", customer.phones.len()), map.column));
                    let primary = customer.phones.is_empty();
                    customer.phones.push(PhoneNumber {
                        number: international(number, calling_code).into_owned(),
                        label: String::new(),
                        primary,
                    });
                }
            }
            Field::Tags => {
                for tag in split_tags(cell) {
                    origin.push((format!("tags[{}]", customer.tags.len()), map.column));
                    customer.tags.push(tag);
                }
                origin.push(("tags".to_owned(), map.column));
            }
            Field::Birthday => match parse_birthday(cell) {
                Some((year, month, day)) => {
                    let (month, day) = (i32::try_from(month).unwrap_or(0), i32::try_from(day).unwrap_or(0));
                    customer.birthday = Some(Date { year: year.unwrap_or(0), month, day });
                    origin.push(("birthday".to_owned(), map.column));
                }
                None => problems.push(RowProblem {
                    column: Some(map.column),
                    field: "birthday".to_owned(),
                    reason: "INVALID_DATE",
                    message: "a date such as 1990-03-02, 1990/3/2, 1990年3月2日 or 3月2日".to_owned(),
                }),
            },
            Field::ExternalId => attribute(&mut attributes, &mut origin, EXTERNAL_ID, cell, map.column),
            Field::Attribute(name) => attribute(&mut attributes, &mut origin, name, cell, map.column),
        }
    }
    if address != PostalAddress::default() {
        customer.addresses.push(address);
    }
    if !attributes.fields.is_empty() {
        customer.attributes = Some(attributes);
    }
    RowCustomer { customer, origin, problems, filled }
}

/// The attribute an external id column fills.
pub const EXTERNAL_ID: &str = "external_id";

impl RowCustomer {
    /// The row's value of `key`, as stored customers are looked up by it
    /// (a normalised email, an E.164 phone, the external id); None when the
    /// row has none (or one that is not valid).
    pub fn key(&self, key: MatchKey) -> Option<String> {
        match key {
            // The matcher compares whole customers, in the batch.
            MatchKey::None | MatchKey::Duplicates => None,
            MatchKey::Email => self.customer.emails.first().and_then(|e| fields::email(&e.address).ok()),
            MatchKey::Phone => self.customer.phones.first().and_then(|p| fields::phone(&p.number).ok()),
            MatchKey::ExternalId => self.external_id().map(str::to_owned),
        }
    }

    /// The row's valid email addresses, normalised as claims are.
    pub fn emails(&self) -> Vec<String> {
        self.customer.emails.iter().filter_map(|e| fields::email(&e.address).ok()).collect()
    }

    fn external_id(&self) -> Option<&str> {
        let value = self.customer.attributes.as_ref()?.fields.get(EXTERNAL_ID)?;
        match &value.kind {
            Some(Kind::StringValue(id)) => Some(id),
            _ => None,
        }
    }

    /// The customer to write, checked as of `now` exactly as CreateCustomer
    /// checks one: the row alone (a new customer), or the row applied to
    /// `stored` under `settings`' conflict rules (an update); or every problem
    /// of the row, each with its column.
    pub fn into_draft(self, stored: Option<(pb::Customer, &Settings)>, now: DateTime<Utc>) -> Result<CustomerDraft, Vec<RowProblem>> {
        let RowCustomer { customer, origin, mut problems, filled } = self;
        let customer = match stored {
            None => customer,
            Some((mut stored, settings)) => {
                for field in &filled {
                    apply(&mut stored, &customer, field, settings.rule_for(field));
                }
                stored
            }
        };
        match draft_from_proto(&customer, "customer", now) {
            Ok(draft) if problems.is_empty() => Ok(draft),
            Ok(_) => Err(problems),
            Err(violations) => {
                problems.extend(located(violations, "customer.", &origin));
                Err(problems)
            }
        }
    }
}

/// `violations` of a message a row filled as row problems: each field path
/// (without `prefix`) with the column that filled it — the longest path in
/// `origin` (path, column) that the violation's path starts with.
pub fn located(violations: Vec<FieldViolation>, prefix: &str, origin: &[(String, usize)]) -> Vec<RowProblem> {
    violations
        .into_iter()
        .map(|v| {
            let path = v.field.strip_prefix(prefix).unwrap_or(&v.field).to_owned();
            let column = origin
                .iter()
                .filter(|(at, _)| path == *at || path.starts_with(&format!("{at}.")) || path.starts_with(&format!("{at}[")))
                .max_by_key(|(at, _)| at.len())
                .map(|(_, column)| *column);
            RowProblem { column, field: path, reason: v.reason, message: v.description }
        })
        .collect()
}

/// Applies the row's `field` to the stored customer under `rule`: scalars
/// are replaced, kept or filled when blank; lists (emails, phones, tags) are
/// replaced, kept, or added to; attributes go key by key.
fn apply(stored: &mut pb::Customer, row: &pb::Customer, field: &Field, rule: Rule) {
    fn scalar(target: &mut String, value: &str, rule: Rule) {
        if rule == Rule::Overwrite || (rule == Rule::FillBlanks && target.is_empty()) {
            *target = value.to_owned();
        }
    }
    fn list<T: Clone>(target: &mut Vec<T>, values: &[T], rule: Rule, same: impl Fn(&T, &T) -> bool) {
        match rule {
            Rule::Keep => {}
            Rule::Overwrite => *target = values.to_vec(),
            Rule::FillBlanks => {
                for value in values {
                    if !target.iter().any(|t| same(t, value)) {
                        target.push(value.clone());
                    }
                }
            }
        }
    }
    if rule == Rule::Keep {
        return;
    }
    let address = |stored: &mut pb::Customer| {
        if stored.addresses.is_empty() {
            stored.addresses.push(PostalAddress::default());
        }
        stored.addresses.swap_remove(0)
    };
    let row_address = row.addresses.first().cloned().unwrap_or_default();
    let address_part = |stored: &mut pb::Customer, part: fn(&mut PostalAddress) -> &mut String, value: &str| {
        let mut a = address(stored);
        scalar(part(&mut a), value, rule);
        stored.addresses.insert(0, a);
    };
    match field {
        Field::DisplayName => scalar(&mut stored.display_name, &row.display_name, rule),
        Field::GivenName => scalar(&mut stored.given_name, &row.given_name, rule),
        Field::FamilyName => scalar(&mut stored.family_name, &row.family_name, rule),
        Field::Company => scalar(&mut stored.company, &row.company, rule),
        Field::JobTitle => scalar(&mut stored.job_title, &row.job_title, rule),
        Field::Industry => scalar(&mut stored.industry, &row.industry, rule),
        Field::Locale => scalar(&mut stored.locale, &row.locale, rule),
        Field::TimeZone => scalar(&mut stored.time_zone, &row.time_zone, rule),
        Field::City => address_part(stored, |a| &mut a.city, &row_address.city),
        Field::Region => address_part(stored, |a| &mut a.region, &row_address.region),
        Field::PostalCode => address_part(stored, |a| &mut a.postal_code, &row_address.postal_code),
        Field::Country => address_part(stored, |a| &mut a.country, &row_address.country),
        Field::Address => {
            let mut a = address(stored);
            if rule == Rule::Overwrite || a.lines.iter().all(|l| l.is_empty()) {
                a.lines = row_address.lines.clone();
            }
            stored.addresses.insert(0, a);
        }
        Field::Email => {
            list(&mut stored.emails, &row.emails, rule, |a, b| a.address.eq_ignore_ascii_case(&b.address));
            one_primary(stored.emails.iter_mut().map(|e| &mut e.primary));
        }
        Field::Phone => {
            list(&mut stored.phones, &row.phones, rule, |a, b| a.number == b.number);
            one_primary(stored.phones.iter_mut().map(|p| &mut p.primary));
        }
        Field::Tags => list(&mut stored.tags, &row.tags, rule, |a, b| a == b),
        Field::Birthday => {
            if rule == Rule::Overwrite || stored.birthday.is_none() {
                stored.birthday = row.birthday;
            }
        }
        Field::ExternalId | Field::Attribute(_) => {
            let name = match field {
                Field::Attribute(name) => name.as_str(),
                _ => EXTERNAL_ID,
            };
            let Some(value) = row.attributes.as_ref().and_then(|a| a.fields.get(name)) else { return };
            let attributes = stored.attributes.get_or_insert_with(Struct::default);
            let blank = attributes.fields.get(name).is_none_or(|v| matches!(&v.kind, Some(Kind::StringValue(s)) if s.is_empty()));
            if rule == Rule::Overwrite || blank {
                attributes.fields.insert(name.to_owned(), value.clone());
            }
        }
    }
}

/// Keeps the first primary of a list primary and no other: the stored
/// primary stays, entries a row adds after it are not primary.
fn one_primary<'a>(flags: impl Iterator<Item = &'a mut bool>) {
    let mut seen = false;
    for flag in flags {
        if *flag {
            *flag = !seen;
            seen = true;
        }
    }
}

/// Puts `value` into attribute `name` (a second column of the same name overwrites).
fn attribute(attributes: &mut Struct, origin: &mut Vec<(String, usize)>, name: &str, value: &str, column: usize) {
    attributes.fields.insert(name.to_owned(), Value { kind: Some(Kind::StringValue(value.to_owned())) });
    origin.push((format!("attributes.{name}"), column));
    origin.push(("attributes".to_owned(), column));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new customer from the row `cells` describes (see [`read_row`] and [`RowCustomer::into_draft`]).
    fn customer_from_row(
        cells: &[&str],
        mapping: &[ColumnMap],
        calling_code: &str,
        now: DateTime<Utc>,
    ) -> Result<CustomerDraft, Vec<RowProblem>> {
        read_row(cells, mapping, calling_code).into_draft(None, now)
    }

    fn mapping(fields: &[Field]) -> Vec<ColumnMap> {
        fields.iter().enumerate().map(|(column, field)| ColumnMap { column, field: field.clone() }).collect()
    }

    #[test]
    fn a_row_fills_contacts_address_tags_birthday_and_attributes() {
        let map = mapping(&[
            Field::DisplayName,
            Field::Phone,
            Field::Email,
            Field::Tags,
            Field::Birthday,
            Field::City,
            Field::Address,
            Field::Attribute("来源".into()),
            Field::Phone,
        ]);
        let cells =
            ["张三", "13800138000", "zhang@example.com", "vip、老客户", "1990年3月2日", "上海", "南京路1号", "展会", "021-5000 0000"];
        let draft = customer_from_row(&cells, &map, "86", Utc::now()).unwrap();
        assert_eq!(draft.display_name, "张三");
        assert_eq!(draft.phones.iter().map(|p| p.number.as_str()).collect::<Vec<_>>(), ["+8613800138000", "+862150000000"]);
        assert_eq!(draft.emails.len(), 1);
        assert_eq!(draft.tags, ["vip", "老客户"]);
        assert!(draft.birthday.is_some());
        assert_eq!(draft.addresses.len(), 1);
        assert_eq!(draft.attributes.get("来源").and_then(|v| v.as_str()), Some("展会"));
    }

    #[test]
    fn each_problem_is_named_by_its_column() {
        let map = mapping(&[Field::DisplayName, Field::Email, Field::Birthday, Field::Phone]);
        let problems = customer_from_row(&["", "not-an-email", "soon", "12"], &map, "", Utc::now()).unwrap_err();
        let named: Vec<(Option<usize>, &str)> = problems.iter().map(|p| (p.column, p.reason)).collect();
        assert!(named.contains(&(Some(2), "INVALID_DATE")), "{problems:?}");
        assert!(named.iter().any(|(c, _)| *c == Some(1)), "the email's column: {problems:?}");
        assert!(named.iter().any(|(c, _)| *c == Some(3)), "the phone's column: {problems:?}");
        // No name at all: the field is named, no column filled it.
        assert!(problems.iter().any(|p| p.field == "display_name" && p.column.is_none()), "{problems:?}");
    }
}
