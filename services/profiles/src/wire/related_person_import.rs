//! A spreadsheet row, through its column correspondence, into a related
//! person: the cells fill a `RelatedPerson` message, which is then checked
//! exactly as CreateRelatedPerson checks one ([`draft_from_proto`]); the
//! customer column says whose they are (found in the batch, by the app).

use chrono::{DateTime, Utc};
use crm_proto::{
    crm::{
        common::v1::{EmailAddress, PhoneNumber},
        profiles::v1 as pb,
    },
    google::r#type::Date,
};

use super::{
    customer_ref::{CustomerColumn, CustomerField, CustomerRef, Sheet, blank_customer, customer_field, read_customer_ref},
    import::{RowProblem, located},
    related_persons::draft_from_proto,
};
use crate::domain::{
    import::{international, parse_birthday, split_contacts, unneutralise},
    related_person::RelatedPersonDraft,
    related_person_import::{PersonField, parse_gender, parse_relation},
};

/// How a sheet of related persons is read.
pub type PersonSheet = Sheet<PersonField>;

customer_field!(PersonField);

/// A related-person row read and checked alone: whose they are, who they
/// are to the file (customer cell, relation, name: a second row with the
/// same is the same person), and the person or every problem of the row.
#[derive(Debug, Clone)]
pub struct RowPerson {
    pub customer: Option<CustomerRef>,
    pub identity: Option<String>,
    pub draft: Result<RelatedPersonDraft, Vec<RowProblem>>,
}

/// The related-person row `cells` describes on `sheet`, checked as of `now`.
pub fn read_person_row(cells: &[&str], sheet: &PersonSheet, now: DateTime<Utc>) -> RowPerson {
    let mut p = pb::RelatedPerson::default();
    let mut origin: Vec<(String, usize)> = Vec::new();
    let mut problems = Vec::new();
    let mut customer = None;
    for (column, field) in &sheet.mapping {
        let (column, field) = (*column, *field);
        let Some(cell) = cells.get(column).map(|c| unneutralise(c.trim()).trim()).filter(|c| !c.is_empty()) else { continue };
        let mut bad = |reason: &'static str, message: &str| {
            problems.push(RowProblem { column: Some(column), field: field.name().to_owned(), reason, message: message.to_owned() })
        };
        match field {
            PersonField::Customer | PersonField::CustomerEmail | PersonField::CustomerPhone | PersonField::CustomerExternalId => {
                let kind = field.customer_column().unwrap_or(CustomerColumn::Name);
                match read_customer_ref(kind, cell, column, &sheet.calling_code) {
                    Ok(r) => customer = Some(r),
                    Err(problem) => problems.push(problem),
                }
            }
            PersonField::DisplayName => {
                p.display_name = cell.to_owned();
                origin.push(("display_name".into(), column));
            }
            PersonField::Relation => match parse_relation(cell) {
                Some(relation) => {
                    p.relation = pb::Relation::from_str_name(&format!("RELATION_{relation}")).map_or(0, |r| r as i32);
                    origin.push(("relation".into(), column));
                }
                None => bad(
                    "INVALID_RELATION",
                    "spouse, child, parent, relative, colleague, assistant or other (配偶/子女/父母/亲属/同事/助理/其他)",
                ),
            },
            PersonField::Phone => {
                for number in split_contacts(cell) {
                    origin.push((format!("phones[{}]", p.phones.len()), column));
                    let primary = p.phones.is_empty();
                    p.phones.push(PhoneNumber {
                        number: international(number, &sheet.calling_code).into_owned(),
                        label: String::new(),
                        primary,
                    });
                }
            }
            PersonField::Email => {
                for address in split_contacts(cell) {
                    origin.push((format!("emails[{}]", p.emails.len()), column));
                    let primary = p.emails.is_empty();
                    p.emails.push(EmailAddress { address: address.to_owned(), label: String::new(), primary });
                }
            }
            PersonField::Gender => match parse_gender(cell) {
                Some(gender) => {
                    p.gender = pb::Gender::from_str_name(&format!("GENDER_{gender}")).map_or(0, |g| g as i32);
                    origin.push(("gender".into(), column));
                }
                None => bad("INVALID_GENDER", "female, male or other (女/男/其他)"),
            },
            PersonField::Birthday => match parse_birthday(cell) {
                Some((year, month, day)) => {
                    let (month, day) = (i32::try_from(month).unwrap_or(0), i32::try_from(day).unwrap_or(0));
                    p.birthday = Some(Date { year: year.unwrap_or(0), month, day });
                    origin.push(("birthday".into(), column));
                }
                None => bad("INVALID_DATE", "a date such as 1990-03-02, 1990/3/2, 1990年3月2日 or 3月2日"),
            },
            PersonField::Note => {
                p.note = cell.to_owned();
                origin.push(("note".into(), column));
            }
            PersonField::LinkedCustomer => {
                p.linked_customer = cell.to_owned();
                origin.push(("linked_customer".into(), column));
            }
        }
    }
    let customer_column = sheet.customer_column();
    if customer.is_none() && !problems.iter().any(|p| p.field.starts_with("customer")) {
        problems.push(blank_customer(customer_column));
    }
    // Who they are to the file: whose (normalised: one customer written two ways is one), the relation and the name.
    let identity = customer.as_ref().map(|r| format!("{}\u{1f}{}\u{1f}{}", r.key(), p.relation, p.display_name.trim().to_lowercase()));
    let draft = match draft_from_proto(&p, "related_person", now) {
        Ok(draft) if problems.is_empty() => Ok(draft),
        Ok(_) => Err(problems),
        Err(violations) => {
            // A cell that could not be read is not also missing.
            let unread: Vec<String> = problems.iter().map(|p| p.field.clone()).collect();
            problems.extend(located(violations, "related_person.", &origin).into_iter().filter(|p| !unread.contains(&p.field)));
            Err(problems)
        }
    };
    RowPerson { customer, identity, draft }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_into_the_person_it_describes_and_each_problem_names_its_column() {
        use PersonField::*;
        let sheet = PersonSheet {
            mapping: vec![(0, CustomerPhone), (1, DisplayName), (2, Relation), (3, Phone), (4, Gender), (5, Birthday)],
            calling_code: "86".into(),
        };
        let row =
            read_person_row(&["13800138000", "李娜", "妻子", "13900139000；+8613700137000", "女", "1990年3月2日"], &sheet, Utc::now());
        assert_eq!(row.customer, Some(CustomerRef::Phone("+8613800138000".into())));
        let draft = row.draft.unwrap();
        assert_eq!((draft.relation.as_str(), draft.display_name.as_str(), draft.gender.as_str()), ("SPOUSE", "李娜", "FEMALE"));
        assert_eq!(draft.phones.len(), 2);

        let row = read_person_row(&["", "", "neighbour", "12", "?", "soon"], &sheet, Utc::now());
        let found: Vec<(Option<usize>, String, &str)> = row.draft.unwrap_err().into_iter().map(|p| (p.column, p.field, p.reason)).collect();
        for expected in [
            (Some(0), "customer_phone".to_owned(), "REQUIRED"),
            (Some(2), "relation".to_owned(), "INVALID_RELATION"),
            (Some(4), "gender".to_owned(), "INVALID_GENDER"),
            (Some(5), "birthday".to_owned(), "INVALID_DATE"),
            (None, "display_name".to_owned(), "REQUIRED"),
        ] {
            assert!(found.contains(&expected), "{expected:?} in {found:?}");
        }
        assert!(found.iter().any(|(c, f, _)| *c == Some(3) && f.starts_with("phones[0]")), "{found:?}");
    }
}
