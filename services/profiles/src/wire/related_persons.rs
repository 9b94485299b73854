//! The wire form of related persons: requests validated into a
//! [`RelatedPersonDraft`] (every bad field reported), rows back out as
//! `RelatedPerson`, masking, and the per-path copy and compare of updates.

use chrono::{DateTime, Utc};
use crm_kit::{FieldViolation, etag, protoenum::number as enum_number, time};
use crm_proto::crm::{
    common::v1::{EmailAddress, PhoneNumber},
    profiles::v1 as pb,
};

use super::{Violations, birthday_from, birthday_to, emails, enum_short, phones};
use crate::{
    domain::{fields, mask, related_person::RelatedPersonDraft},
    resources::{CUSTOMER, RELATED_PERSON},
    store::related_persons::RelatedPersonRow,
};

/// The paths UpdateRelatedPerson may change.
pub const WRITABLE: &[&str] = &["relation", "display_name", "phones", "emails", "gender", "birthday", "note", "linked_customer"];

/// Validates an incoming related person; on failure, one violation per bad field.
pub fn draft_from_proto(p: &pb::RelatedPerson, prefix: &str, now: DateTime<Utc>) -> Result<RelatedPersonDraft, Vec<FieldViolation>> {
    let mut v = Violations { prefix, found: Vec::new() };
    let relation = match pb::Relation::try_from(p.relation) {
        Ok(pb::Relation::Unspecified) | Err(_) => {
            v.add("relation", "INVALID_RELATION", "one of RELATION_SPOUSE, _CHILD, _PARENT, _RELATIVE, _COLLEAGUE, _ASSISTANT, _OTHER");
            None
        }
        Ok(r) => Some(r.as_str_name().trim_start_matches("RELATION_").to_owned()),
    };
    let display_name = v.check("display_name", fields::display_name(&p.display_name));
    let phones = phones(&mut v, &p.phones);
    let emails = emails(&mut v, &p.emails);
    let gender = v.check("gender", enum_short(p.gender, |n| pb::Gender::try_from(n).ok(), |e| e.as_str_name(), "GENDER_"));
    let birthday = birthday_from(&mut v, p.birthday.as_ref(), now);
    let note = v.check("note", fields::short_text(&p.note, 2000));
    let linked_customer = match p.linked_customer.as_str() {
        "" => Some(None),
        name => match CUSTOMER.id_of(name) {
            Some(id) => Some(Some(id)),
            None => {
                v.add("linked_customer", "INVALID_NAME", format!("{name:?} is not a name like \"customers/<uuid>\""));
                None
            }
        },
    };
    let draft = (|| {
        Some(RelatedPersonDraft {
            relation: relation?,
            display_name: display_name?,
            phones: phones?,
            emails: emails?,
            gender: gender?,
            birthday: birthday?,
            note: note?,
            linked_customer: linked_customer?,
        })
    })();
    match draft {
        Some(draft) if v.found.is_empty() => Ok(draft),
        _ => Err(v.found),
    }
}

/// A stored related person as the API returns it (unmasked).
pub fn to_proto(row: &RelatedPersonRow) -> pb::RelatedPerson {
    pb::RelatedPerson {
        name: RELATED_PERSON.name(row.customer_id, row.id),
        relation: enum_number(&row.relation, "RELATION_", |s| pb::Relation::from_str_name(s).map(|e| e as i32)),
        display_name: row.display_name.clone(),
        phones: row.phones.0.iter().map(|p| PhoneNumber { number: p.number.clone(), label: p.label.clone(), primary: p.primary }).collect(),
        emails: row
            .emails
            .0
            .iter()
            .map(|e| EmailAddress { address: e.address.clone(), label: e.label.clone(), primary: e.primary })
            .collect(),
        gender: enum_number(&row.gender, "GENDER_", |s| pb::Gender::from_str_name(s).map(|e| e as i32)),
        birthday: birthday_to(row.birthday_year, row.birthday_month, row.birthday_day),
        note: row.note.clone(),
        linked_customer: row.linked_customer_id.map(|id| CUSTOMER.name(id)).unwrap_or_default(),
        create_time: Some(time::to_timestamp(row.create_time)),
        update_time: Some(time::to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
    }
}

/// Masks phone numbers and email addresses for callers without the `pii` permission.
pub fn mask_pii(person: &mut pb::RelatedPerson) {
    for e in &mut person.emails {
        e.address = mask::email(&e.address);
    }
    for p in &mut person.phones {
        p.number = mask::phone(&p.number);
    }
}

/// The writable paths whose value `after` has otherwise than `before`, compared in wire form.
pub fn changed_paths(before: &pb::RelatedPerson, after: &pb::RelatedPerson) -> Vec<String> {
    WRITABLE.iter().filter(|p| !same_field(before, after, p)).map(|p| (*p).to_owned()).collect()
}

crm_kit::mask_fields!(pb::RelatedPerson;
    "relation" => relation,
    "display_name" => display_name,
    "phones" => phones,
    "emails" => emails,
    "gender" => gender,
    "birthday" => birthday,
    "note" => note,
    "linked_customer" => linked_customer,
);
