//! The wire form of merges: what the survivor becomes (chosen fields from
//! their source, the rest combined), and the merge log as the API returns it.

use std::collections::BTreeMap;

use chrono::Duration;
use crm_kit::time;
use crm_proto::crm::{
    common::v1::{EmailAddress, PhoneNumber},
    profiles::v1 as pb,
};
use uuid::Uuid;

use super::copy_field;
use crate::{
    resources::{CUSTOMER, CUSTOMER_MERGE},
    store::merges::{KINDS, MergeRow},
};

/// The fields a merge may take from a chosen customer.
pub const CHOOSABLE: &[&str] = &[
    "display_name",
    "given_name",
    "family_name",
    "company",
    "job_title",
    "industry",
    "company_size",
    "source_channel",
    "birthday",
    "time_zone",
    "locale",
    "owner",
    "category",
    "consent",
    "emails",
    "phones",
    "addresses",
    "tags",
    "attributes",
];

/// How long a merge can be undone.
pub const UNMERGE_WINDOW: Duration = Duration::days(30);

/// What `survivor` becomes when `others` merge into it: each field of
/// `chosen` (path, customer) from that customer; every other field the
/// survivor's, or where it is empty the first of the others' that is not;
/// emails, phones, addresses and tags the union (only the survivor's
/// primaries stay primary); attributes merged key by key, the survivor's
/// winning; consent the strictest per channel (a refusal stands).
pub fn combine(survivor: &pb::Customer, others: &[pb::Customer], chosen: &[(String, &pb::Customer)]) -> pb::Customer {
    let mut merged = survivor.clone();
    for other in others {
        fill_text(&mut merged.given_name, &other.given_name);
        fill_text(&mut merged.family_name, &other.family_name);
        fill_text(&mut merged.company, &other.company);
        fill_text(&mut merged.job_title, &other.job_title);
        fill_text(&mut merged.industry, &other.industry);
        fill_text(&mut merged.time_zone, &other.time_zone);
        fill_text(&mut merged.locale, &other.locale);
        fill_text(&mut merged.owner, &other.owner);
        for (field, value) in [
            (&mut merged.company_size, other.company_size),
            (&mut merged.source_channel, other.source_channel),
            (&mut merged.category, other.category),
        ] {
            if *field == 0 {
                *field = value;
            }
        }
        if merged.birthday.is_none() {
            merged.birthday = other.birthday;
        }
        for email in &other.emails {
            if !merged.emails.iter().any(|e| e.address == email.address) {
                merged.emails.push(EmailAddress { primary: false, ..email.clone() });
            }
        }
        for phone in &other.phones {
            if !merged.phones.iter().any(|p| p.number == phone.number) {
                merged.phones.push(PhoneNumber { primary: false, ..phone.clone() });
            }
        }
        for address in &other.addresses {
            if !merged.addresses.contains(address) {
                merged.addresses.push(address.clone());
            }
        }
        for tag in &other.tags {
            if !merged.tags.contains(tag) {
                merged.tags.push(tag.clone());
            }
        }
        if let (Some(into), Some(from)) = (merged.attributes.as_mut(), other.attributes.as_ref()) {
            for (key, value) in &from.fields {
                into.fields.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        if let Some(from) = &other.consent {
            strictest_consent(merged.consent.get_or_insert_with(Default::default), from);
        }
    }
    for (path, source) in chosen {
        copy_field(&mut merged, source, path);
    }
    merged
}

/// The stricter of two consents, channel by channel: a refusal anywhere
/// stands (the merged customer's addresses are now the survivor's, and
/// whoever said no must not be written to), then a consent over none.
fn strictest_consent(into: &mut pb::Consent, from: &pb::Consent) {
    let rank = |c: &Option<pb::ChannelConsent>| match c.as_ref().map(|c| c.state()) {
        Some(pb::ConsentState::OptedOut) => 2,
        Some(pb::ConsentState::OptedIn) => 1,
        _ => 0,
    };
    for (mine, theirs) in [(&mut into.email, &from.email), (&mut into.sms, &from.sms), (&mut into.push, &from.push)] {
        if rank(theirs) > rank(mine) && (rank(theirs) == 2 || rank(mine) == 0) {
            *mine = *theirs;
        }
    }
    into.do_not_contact |= from.do_not_contact;
}

fn fill_text(into: &mut String, from: &str) {
    if into.is_empty() && !from.is_empty() {
        *into = from.to_owned();
    }
}

/// A merge log as the API returns it.
pub fn merge_to_proto(m: &MergeRow) -> pb::CustomerMerge {
    let mut moved_records: BTreeMap<String, i32> = KINDS.iter().map(|k| ((*k).to_owned(), 0)).collect();
    for record in m.moved.iter() {
        *moved_records.entry(record.kind.clone()).or_default() += 1;
    }
    moved_records.insert("staticSegments".to_owned(), i32::try_from(m.static_joined.len()).unwrap_or(i32::MAX));
    pb::CustomerMerge {
        name: CUSTOMER_MERGE.name(m.id),
        survivor: CUSTOMER.name(m.survivor_id),
        merged: m.merged_ids.iter().map(|id| CUSTOMER.name(*id)).collect(),
        field_sources: m.field_sources.iter().map(|(path, id): &(String, Uuid)| (path.clone(), CUSTOMER.name(*id))).collect(),
        moved_records: moved_records.into_iter().collect(),
        actor: m.actor.clone(),
        merge_time: Some(time::to_timestamp(m.merge_time)),
        unmerge_deadline: Some(time::to_timestamp(m.merge_time + UNMERGE_WINDOW)),
        unmerge_time: m.unmerge_time.map(time::to_timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(address: &str, primary: bool) -> EmailAddress {
        EmailAddress { address: address.into(), label: String::new(), primary }
    }

    #[test]
    fn the_survivor_keeps_its_values_fills_its_gaps_and_takes_the_union_of_lists() {
        let survivor = pb::Customer {
            display_name: "Ann Lee".into(),
            company: "Acme".into(),
            emails: vec![email("ann@acme.com", true)],
            tags: vec!["gold".into()],
            ..Default::default()
        };
        let other = pb::Customer {
            display_name: "Ann L.".into(),
            company: "Other".into(),
            job_title: "CTO".into(),
            emails: vec![email("ann@home.net", true), email("ann@acme.com", false)],
            phones: vec![PhoneNumber { number: "+8613800000001".into(), label: String::new(), primary: true }],
            tags: vec!["vip".into(), "gold".into()],
            ..Default::default()
        };
        let merged = combine(&survivor, std::slice::from_ref(&other), &[]);
        assert_eq!((merged.display_name.as_str(), merged.company.as_str(), merged.job_title.as_str()), ("Ann Lee", "Acme", "CTO"));
        assert_eq!(merged.emails, [email("ann@acme.com", true), email("ann@home.net", false)]);
        assert!(!merged.phones[0].primary, "only the survivor's primaries stay primary");
        assert_eq!(merged.tags, ["gold", "vip"]);

        let opted_out = |state: pb::ConsentState| pb::ChannelConsent { state: state as i32, update_time: None };
        let refusing = pb::Customer {
            consent: Some(pb::Consent { email: Some(opted_out(pb::ConsentState::OptedOut)), do_not_contact: true, ..Default::default() }),
            ..Default::default()
        };
        let keen = pb::Customer {
            consent: Some(pb::Consent {
                email: Some(opted_out(pb::ConsentState::OptedIn)),
                sms: Some(opted_out(pb::ConsentState::OptedIn)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let consent = combine(&keen, std::slice::from_ref(&refusing), &[]).consent.unwrap();
        assert_eq!(consent.email.unwrap().state(), pb::ConsentState::OptedOut, "a refusal stands");
        assert_eq!(consent.sms.unwrap().state(), pb::ConsentState::OptedIn);
        assert!(consent.do_not_contact);

        let chosen = combine(&survivor, std::slice::from_ref(&other), &[("display_name".into(), &other), ("emails".into(), &other)]);
        assert_eq!(chosen.display_name, "Ann L.");
        assert_eq!(chosen.emails, other.emails, "a chosen list is taken whole");
    }
}
