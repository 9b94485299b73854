//! A spreadsheet row, through its column correspondence, into a customer:
//! the cells fill a `Customer` message, which is then checked exactly as
//! CreateCustomer checks one ([`super::draft_from_proto`]), so an imported
//! row and a created customer are refused for the same reasons; each
//! problem is named by the column (and cell) it came from.

use chrono::{DateTime, Utc};
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
    import::{Field, international, parse_birthday, split_tags},
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

/// The customer row `cells` describes under `mapping` (national phone
/// numbers with `calling_code` in front, e.g. "86"), checked as of `now`; or
/// every problem of the row, each with its column.
pub fn customer_from_row(
    cells: &[&str],
    mapping: &[ColumnMap],
    calling_code: &str,
    now: DateTime<Utc>,
) -> Result<CustomerDraft, Vec<RowProblem>> {
    let mut customer = pb::Customer::default();
    // Which column each part of the message came from: the longest path prefix names a violation's column.
    let mut origin: Vec<(String, usize)> = Vec::new();
    let mut problems = Vec::new();
    let mut address = PostalAddress::default();
    let mut attributes = Struct::default();
    for map in mapping {
        let Some(cell) = cells.get(map.column).map(|c| c.trim()).filter(|c| !c.is_empty()) else { continue };
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
                origin.push((format!("emails[{}]", customer.emails.len()), map.column));
                let primary = customer.emails.is_empty();
                customer.emails.push(EmailAddress { address: cell.to_owned(), label: String::new(), primary });
            }
            Field::Phone => {
                origin.push((format!("phones[{}]", customer.phones.len()), map.column));
                let primary = customer.phones.is_empty();
                customer.phones.push(PhoneNumber { number: international(cell, calling_code).into_owned(), label: String::new(), primary });
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
            Field::ExternalId => attribute(&mut attributes, &mut origin, "external_id", cell, map.column),
            Field::Attribute(name) => attribute(&mut attributes, &mut origin, name, cell, map.column),
        }
    }
    if address != PostalAddress::default() {
        customer.addresses.push(address);
    }
    if !attributes.fields.is_empty() {
        customer.attributes = Some(attributes);
    }
    match draft_from_proto(&customer, "customer", now) {
        Ok(draft) if problems.is_empty() => Ok(draft),
        Ok(_) => Err(problems),
        Err(violations) => {
            for v in violations {
                let path = v.field.strip_prefix("customer.").unwrap_or(&v.field).to_owned();
                let column = origin
                    .iter()
                    .filter(|(prefix, _)| {
                        path == *prefix || path.starts_with(&format!("{prefix}.")) || path.starts_with(&format!("{prefix}["))
                    })
                    .max_by_key(|(prefix, _)| prefix.len())
                    .map(|(_, column)| *column);
                problems.push(RowProblem { column, field: path, reason: v.reason, message: v.description });
            }
            Err(problems)
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
