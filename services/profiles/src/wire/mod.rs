//! The wire form of customers: proto ⇄ domain conversions. Incoming
//! `Customer` messages are validated into a [`CustomerDraft`] (collecting
//! every bad field); stored rows go back out as `Customer`; update masks copy
//! and compare per path. Handlers use it for requests and responses, use
//! cases for the events they write and to tell which paths an update changes,
//! so it sits below both and imports neither.

pub mod changes;
pub mod communications;
pub mod customer_ref;
pub mod exports;
pub mod grading;
pub mod import;
pub mod import_jobs;
pub mod merges;
pub mod occupancy_import;
pub mod occurrences;
pub mod payment_accounts;
pub mod premises;
pub mod related_person_import;
pub mod related_persons;
pub mod rename;
pub mod segments;
pub mod transaction_import;
pub mod transactions;

use std::collections::HashSet;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use crm_kit::{FieldViolation, etag, protoenum, protoenum::number as enum_number, time};
use crm_proto::{
    crm::{
        common::v1::{EmailAddress, PhoneNumber, PostalAddress},
        profiles::v1 as pb,
    },
    google::r#type::Date,
};
use prost_types::{Struct, Value, value::Kind};
use serde_json::{Map, Number, Value as Json};

use crate::{
    domain::{
        access::WRITABLE_PATHS,
        customer::{AddressEntry, ChannelConsent, Consent, CustomerDraft, EmailEntry, PhoneEntry},
        fields::{self, Birthday, Rejection},
        mask,
    },
    resources::CUSTOMER,
    store::CustomerRow,
};

/// Most entries per contact list.
const MAX_CONTACTS: usize = 20;
/// Most postal addresses.
const MAX_ADDRESSES: usize = 10;
/// Most tags.
const MAX_TAGS: usize = 50;
/// Largest encoded size of `attributes`.
const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
/// Deepest nesting inside `attributes`.
const MAX_ATTRIBUTES_DEPTH: usize = 10;

/// Collects the violations of one message, with field paths under `prefix`.
struct Violations<'a> {
    prefix: &'a str,
    found: Vec<FieldViolation>,
}

impl Violations<'_> {
    fn check<T>(&mut self, path: impl std::fmt::Display, result: Result<T, Rejection>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err((reason, message)) => {
                self.found.push(FieldViolation::new(format!("{}.{path}", self.prefix), reason, message));
                None
            }
        }
    }

    fn add(&mut self, path: impl std::fmt::Display, reason: &'static str, message: impl Into<String>) {
        self.found.push(FieldViolation::new(format!("{}.{path}", self.prefix), reason, message));
    }
}

/// A request's birthday, validated as of `now` (unset or all zero: none); None when its violation was recorded.
fn birthday_from(v: &mut Violations, d: Option<&Date>, now: DateTime<Utc>) -> Option<Option<Birthday>> {
    match d {
        None | Some(Date { year: 0, month: 0, day: 0 }) => Some(None),
        Some(d) => v.check("birthday", Birthday::parse(d.year, d.month, d.day, now.date_naive())).map(Some),
    }
}

/// A stored birthday (year optional) as a `google.type.Date` (year 0 when unknown).
fn birthday_to(year: Option<i32>, month: Option<i32>, day: Option<i32>) -> Option<Date> {
    month.zip(day).map(|(month, day)| Date { year: year.unwrap_or(0), month, day })
}

/// A `google.type.Date` as a calendar date (all three parts required).
pub fn date_from(d: &Date) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(d.year, u32::try_from(d.month).ok()?, u32::try_from(d.day).ok()?)
}

/// A calendar date as a `google.type.Date`.
pub fn date_to(d: NaiveDate) -> Date {
    Date { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

/// The date of a request (`field`), or INVALID_ARGUMENT.
pub fn date_field(value: Option<&Date>, field: &str) -> Result<NaiveDate, crm_kit::Error> {
    value
        .and_then(date_from)
        .ok_or_else(|| crm_kit::Error::invalid(field, "INVALID_DATE", "required: a real date with year, month and day"))
}

/// Short stored name of a proto enum value (see `crm_kit::protoenum`).
fn enum_short<E: Copy>(
    value: i32,
    decode: impl Fn(i32) -> Option<E>,
    name: impl Fn(E) -> &'static str,
    prefix: &str,
) -> Result<String, Rejection> {
    protoenum::short_name(value, |v| decode(v).map(&name), prefix)
}

/// Validates an incoming customer; on failure returns one violation per bad field.
pub fn draft_from_proto(c: &pb::Customer, prefix: &str, now: DateTime<Utc>) -> Result<CustomerDraft, Vec<FieldViolation>> {
    let mut v = Violations { prefix, found: Vec::new() };
    let display_name = v.check("display_name", fields::display_name(&c.display_name));
    let given_name = v.check("given_name", fields::short_text(&c.given_name, 100));
    let family_name = v.check("family_name", fields::short_text(&c.family_name, 100));
    let kind = v.check("kind", enum_short(c.kind, |n| pb::CustomerKind::try_from(n).ok(), |e| e.as_str_name(), "CUSTOMER_KIND_"));
    let emails = emails(&mut v, &c.emails);
    let phones = phones(&mut v, &c.phones);
    let addresses = addresses(&mut v, &c.addresses);
    let company = v.check("company", fields::short_text(&c.company, 200));
    let job_title = v.check("job_title", fields::short_text(&c.job_title, 200));
    let industry = v.check("industry", fields::short_text(&c.industry, 200));
    let company_size =
        v.check("company_size", enum_short(c.company_size, |n| pb::CompanySize::try_from(n).ok(), |e| e.as_str_name(), "COMPANY_SIZE_"));
    let source_channel = v.check(
        "source_channel",
        enum_short(c.source_channel, |n| pb::SourceChannel::try_from(n).ok(), |e| e.as_str_name(), "SOURCE_CHANNEL_"),
    );
    let birthday = birthday_from(&mut v, c.birthday.as_ref(), now);
    let time_zone = if c.time_zone.is_empty() { Some(String::new()) } else { v.check("time_zone", fields::time_zone(&c.time_zone)) };
    let locale = if c.locale.is_empty() { Some(String::new()) } else { v.check("locale", fields::locale(&c.locale)) };
    let tags = tags(&mut v, &c.tags);
    let attributes = match &c.attributes {
        None => Some(Map::new()),
        Some(s) => v.check("attributes", attributes_to_json(s)),
    };
    let owner = v.check("owner", fields::short_text(&c.owner, 200));
    let category =
        v.check("category", enum_short(c.category, |n| pb::CustomerCategory::try_from(n).ok(), |e| e.as_str_name(), "CUSTOMER_CATEGORY_"));
    let consent = consent(&mut v, c.consent.as_ref());
    let verify_time = match &c.verify_time {
        None => Some(None),
        Some(t) => match time::from_timestamp(t) {
            Some(t) if t <= now + chrono::Duration::minutes(1) => Some(Some(t)),
            _ => {
                v.add("verify_time", "INVALID_VERIFY_TIME", "must be a valid time, not in the future");
                None
            }
        },
    };
    // A field is None only when its violation was recorded above.
    let draft = (|| {
        Some(CustomerDraft {
            display_name: display_name?,
            given_name: given_name?,
            family_name: family_name?,
            kind: kind?,
            emails: emails?,
            phones: phones?,
            addresses: addresses?,
            company: company?,
            job_title: job_title?,
            industry: industry?,
            company_size: company_size?,
            source_channel: source_channel?,
            birthday: birthday?,
            time_zone: time_zone?,
            locale: locale?,
            tags: tags?,
            attributes: attributes?,
            owner: owner?,
            category: category?,
            consent: consent?,
            verify_time: verify_time?,
        })
    })();
    match draft {
        Some(draft) if v.found.is_empty() => Ok(draft),
        _ => Err(v.found),
    }
}

fn too_many(v: &mut Violations, path: &str, len: usize, max: usize) -> bool {
    if len > max {
        v.add(path, "TOO_MANY_ENTRIES", format!("at most {max} entries"));
    }
    len > max
}

fn one_primary(v: &mut Violations, path: &str, primaries: usize) -> bool {
    if primaries > 1 {
        v.add(path, "MULTIPLE_PRIMARY", "at most one entry may be primary");
    }
    primaries <= 1
}

/// Validates a list of contacts (emails or phones): each value with `parse`,
/// labels, duplicates (`duplicate` reason) and at most one primary.
/// Returns (value, label, primary) triples.
fn contacts<'a>(
    v: &mut Violations,
    list: &str,
    value_field: &str,
    input: impl ExactSizeIterator<Item = (&'a str, &'a str, bool)>,
    parse: fn(&str) -> Result<String, Rejection>,
    duplicate: &'static str,
) -> Option<Vec<(String, String, bool)>> {
    let before = v.found.len();
    if too_many(v, list, input.len(), MAX_CONTACTS) {
        return None;
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, (value, label, primary)) in input.enumerate() {
        let value = v.check(format_args!("{list}[{i}].{value_field}"), parse(value));
        let label = v.check(format_args!("{list}[{i}].label"), fields::short_text(label, 50));
        if let (Some(value), Some(label)) = (value, label) {
            if !seen.insert(value.clone()) {
                v.add(format_args!("{list}[{i}].{value_field}"), duplicate, "this value is listed twice");
            }
            out.push((value, label, primary));
        }
    }
    one_primary(v, list, out.iter().filter(|(_, _, primary)| *primary).count());
    (v.found.len() == before).then_some(out)
}

fn emails(v: &mut Violations, input: &[EmailAddress]) -> Option<Vec<EmailEntry>> {
    let entries = input.iter().map(|e| (e.address.as_str(), e.label.as_str(), e.primary));
    let valid = contacts(v, "emails", "address", entries, fields::email, "DUPLICATE_EMAIL")?;
    Some(valid.into_iter().map(|(address, label, primary)| EmailEntry { address, label, primary }).collect())
}

fn phones(v: &mut Violations, input: &[PhoneNumber]) -> Option<Vec<PhoneEntry>> {
    let entries = input.iter().map(|p| (p.number.as_str(), p.label.as_str(), p.primary));
    let valid = contacts(v, "phones", "number", entries, fields::phone, "DUPLICATE_PHONE")?;
    Some(valid.into_iter().map(|(number, label, primary)| PhoneEntry { number, label, primary }).collect())
}

fn addresses(v: &mut Violations, input: &[PostalAddress]) -> Option<Vec<AddressEntry>> {
    let before = v.found.len();
    if too_many(v, "addresses", input.len(), MAX_ADDRESSES) {
        return None;
    }
    let mut out = Vec::new();
    for (i, a) in input.iter().enumerate() {
        if a.lines.len() > 5 {
            v.add(format_args!("addresses[{i}].lines"), "TOO_MANY_ENTRIES", "at most 5 lines");
        }
        let lines: Vec<_> = a
            .lines
            .iter()
            .enumerate()
            .filter_map(|(j, l)| v.check(format_args!("addresses[{i}].lines[{j}]"), fields::short_text(l, 200)))
            .collect();
        let label = v.check(format_args!("addresses[{i}].label"), fields::short_text(&a.label, 50));
        let city = v.check(format_args!("addresses[{i}].city"), fields::short_text(&a.city, 100));
        let region = v.check(format_args!("addresses[{i}].region"), fields::short_text(&a.region, 100));
        let postal_code = v.check(format_args!("addresses[{i}].postal_code"), fields::short_text(&a.postal_code, 20));
        let country = if a.country.is_empty() {
            Some(String::new())
        } else {
            v.check(format_args!("addresses[{i}].country"), fields::country(&a.country))
        };
        if let (Some(label), Some(city), Some(region), Some(postal_code), Some(country)) = (label, city, region, postal_code, country) {
            out.push(AddressEntry { label, lines, city, region, postal_code, country });
        }
    }
    (v.found.len() == before).then_some(out)
}

fn tags(v: &mut Violations, input: &[String]) -> Option<Vec<String>> {
    let before = v.found.len();
    let mut out: Vec<String> = Vec::new();
    for (i, t) in input.iter().enumerate() {
        if let Some(tag) = v.check(format_args!("tags[{i}]"), fields::tag(t))
            && !out.contains(&tag)
        {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        v.add("tags", "TOO_MANY_ENTRIES", format!("at most {MAX_TAGS} tags"));
    }
    (v.found.len() == before).then_some(out)
}

fn consent(v: &mut Violations, input: Option<&pb::Consent>) -> Option<Consent> {
    let Some(c) = input else { return Some(Consent::default()) };
    let mut channel = |name: &str, ch: Option<&pb::ChannelConsent>| {
        let state = ch.map_or(0, |c| c.state);
        v.check(
            format_args!("consent.{name}.state"),
            enum_short(state, |n| pb::ConsentState::try_from(n).ok(), |e| e.as_str_name(), "CONSENT_STATE_"),
        )
        .map(|state| ChannelConsent { state, update_time: None })
    };
    let email = channel("email", c.email.as_ref());
    let sms = channel("sms", c.sms.as_ref());
    let push = channel("push", c.push.as_ref());
    Some(Consent { email: email?, sms: sms?, push: push?, do_not_contact: c.do_not_contact })
}

fn attributes_to_json(s: &Struct) -> Result<Map<String, Json>, Rejection> {
    use prost::Message;
    if s.encoded_len() > MAX_ATTRIBUTES_BYTES {
        return Err(("ATTRIBUTES_TOO_LARGE", format!("attributes are limited to {MAX_ATTRIBUTES_BYTES} bytes")));
    }
    struct_to_json(s, 0)
}

fn struct_to_json(s: &Struct, depth: usize) -> Result<Map<String, Json>, Rejection> {
    s.fields.iter().map(|(k, v)| Ok((k.clone(), value_to_json(v, depth + 1)?))).collect()
}

fn value_to_json(v: &Value, depth: usize) -> Result<Json, Rejection> {
    if depth > MAX_ATTRIBUTES_DEPTH {
        return Err(("ATTRIBUTES_TOO_DEEP", format!("attributes may nest at most {MAX_ATTRIBUTES_DEPTH} levels")));
    }
    Ok(match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::NumberValue(n)) => Json::Number(Number::from_f64(*n).ok_or(("INVALID_NUMBER", "numbers must be finite".to_owned()))?),
        Some(Kind::StructValue(s)) => Json::Object(struct_to_json(s, depth)?),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(|v| value_to_json(v, depth + 1)).collect::<Result<_, _>>()?),
    })
}

fn json_to_struct(map: &Map<String, Json>) -> Struct {
    Struct { fields: map.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect() }
}

fn json_to_value(v: &Json) -> Value {
    let kind = match v {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(prost_types::ListValue { values: a.iter().map(json_to_value).collect() }),
        Json::Object(o) => Kind::StructValue(json_to_struct(o)),
    };
    Value { kind: Some(kind) }
}

fn channel_to_proto(c: &ChannelConsent) -> Option<pb::ChannelConsent> {
    Some(pb::ChannelConsent {
        state: enum_number(&c.state, "CONSENT_STATE_", |s| pb::ConsentState::from_str_name(s).map(|e| e as i32)),
        update_time: c.update_time.map(time::to_timestamp),
    })
}

fn opt_time(t: Option<DateTime<Utc>>) -> Option<prost_types::Timestamp> {
    t.map(time::to_timestamp)
}

/// A stored customer as the API returns it (unmasked).
pub fn customer_to_proto(row: &CustomerRow) -> pb::Customer {
    pb::Customer {
        name: CUSTOMER.name(row.id),
        display_name: row.display_name.clone(),
        given_name: row.given_name.clone(),
        family_name: row.family_name.clone(),
        kind: enum_number(&row.kind, "CUSTOMER_KIND_", |s| pb::CustomerKind::from_str_name(s).map(|e| e as i32)),
        emails: row
            .emails
            .0
            .iter()
            .map(|e| EmailAddress { address: e.address.clone(), label: e.label.clone(), primary: e.primary })
            .collect(),
        phones: row.phones.0.iter().map(|p| PhoneNumber { number: p.number.clone(), label: p.label.clone(), primary: p.primary }).collect(),
        addresses: row
            .addresses
            .0
            .iter()
            .map(|a| PostalAddress {
                label: a.label.clone(),
                lines: a.lines.clone(),
                city: a.city.clone(),
                region: a.region.clone(),
                postal_code: a.postal_code.clone(),
                country: a.country.clone(),
            })
            .collect(),
        company: row.company.clone(),
        job_title: row.job_title.clone(),
        industry: row.industry.clone(),
        company_size: enum_number(&row.company_size, "COMPANY_SIZE_", |s| pb::CompanySize::from_str_name(s).map(|e| e as i32)),
        source_channel: enum_number(&row.source_channel, "SOURCE_CHANNEL_", |s| pb::SourceChannel::from_str_name(s).map(|e| e as i32)),
        birthday: birthday_to(row.birthday_year, row.birthday_month, row.birthday_day),
        time_zone: row.time_zone.clone(),
        locale: row.locale.clone(),
        tags: row.tags.clone(),
        attributes: Some(json_to_struct(&row.attributes.0)),
        owner: row.owner.clone(),
        category: enum_number(&row.category, "CUSTOMER_CATEGORY_", |s| pb::CustomerCategory::from_str_name(s).map(|e| e as i32)),
        consent: Some(pb::Consent {
            email: channel_to_proto(&row.consent.0.email),
            sms: channel_to_proto(&row.consent.0.sms),
            push: channel_to_proto(&row.consent.0.push),
            do_not_contact: row.consent.0.do_not_contact,
        }),
        value_tier: enum_number(&row.value_tier, "VALUE_TIER_", |s| pb::ValueTier::from_str_name(s).map(|e| e as i32)),
        lifecycle_stage: enum_number(&row.lifecycle_stage, "LIFECYCLE_STAGE_", |s| pb::LifecycleStage::from_str_name(s).map(|e| e as i32)),
        create_time: Some(time::to_timestamp(row.create_time)),
        update_time: Some(time::to_timestamp(row.update_time)),
        delete_time: opt_time(row.delete_time),
        verify_time: opt_time(row.verify_time),
        etag: etag::of_revision(row.revision),
        disable_time: opt_time(row.disable_time),
        disable_reason: row.disable_reason.clone(),
        erase_time: row.erase_time.map(time::to_timestamp),
        recency_score: row.recency_score.map_or(0, i32::from),
        frequency_score: row.frequency_score.map_or(0, i32::from),
        monetary_score: row.monetary_score.map_or(0, i32::from),
        lifecycle_time: row.lifecycle_time.map(time::to_timestamp),
        churn_risk: enum_number(&row.churn_risk, "CHURN_RISK_", |s| pb::ChurnRisk::from_str_name(s).map(|e| e as i32)),
        probability_alive: row.probability_alive,
        expected_purchases: row.expected_purchases,
        expected_value: row.expected_value_minor.map(|minor| crm_kit::money::from_minor(&row.expected_value_currency, minor)),
        merged_into: row.merged_into.map(|id| CUSTOMER.name(id)).unwrap_or_default(),
    }
}

/// Masks emails and phone numbers for callers without the `pii` permission.
pub fn mask_pii(customer: &mut pb::Customer) {
    for e in &mut customer.emails {
        e.address = mask::email(&e.address);
    }
    for p in &mut customer.phones {
        p.number = mask::phone(&p.number);
    }
}

crm_kit::mask_fields!(pb::Customer;
    "display_name" => display_name,
    "given_name" => given_name,
    "family_name" => family_name,
    "kind" => kind,
    "emails" => emails,
    "phones" => phones,
    "addresses" => addresses,
    "company" => company,
    "job_title" => job_title,
    "industry" => industry,
    "company_size" => company_size,
    "source_channel" => source_channel,
    "birthday" => birthday,
    "time_zone" => time_zone,
    "locale" => locale,
    "tags" => tags,
    "attributes" => attributes,
    "owner" => owner,
    "category" => category,
    "consent" => consent,
    "verify_time" => verify_time,
);

/// The writable paths whose value `draft` changes in `before`, in proto
/// order. Both sides are compared in their wire form, after normalisation,
/// so that re-sending what a client was given is not a change.
pub fn changed_paths(before: &CustomerRow, draft: &CustomerDraft) -> Vec<String> {
    let (before, after) = (customer_to_proto(before), customer_to_proto(&with_draft(before.clone(), draft)));
    WRITABLE_PATHS.iter().filter(|p| !same_field(&before, &after, p)).map(|p| p.to_string()).collect()
}

/// `row` with the draft's values, as `store::update` will store them.
fn with_draft(mut row: CustomerRow, d: &CustomerDraft) -> CustomerRow {
    use sqlx::types::Json;
    row.display_name = d.display_name.clone();
    row.given_name = d.given_name.clone();
    row.family_name = d.family_name.clone();
    row.kind = d.kind.clone();
    row.emails = Json(d.emails.clone());
    row.phones = Json(d.phones.clone());
    row.addresses = Json(d.addresses.clone());
    row.company = d.company.clone();
    row.job_title = d.job_title.clone();
    row.industry = d.industry.clone();
    row.company_size = d.company_size.clone();
    row.source_channel = d.source_channel.clone();
    row.birthday_year = d.birthday.and_then(|b| b.year);
    row.birthday_month = d.birthday.map(|b| b.month as i32);
    row.birthday_day = d.birthday.map(|b| b.day as i32);
    row.time_zone = d.time_zone.clone();
    row.locale = d.locale.clone();
    row.tags = d.tags.clone();
    row.attributes = Json(d.attributes.clone());
    row.owner = d.owner.clone();
    row.category = d.category.clone();
    row.consent = Json(d.consent.clone());
    row.verify_time = d.verify_time;
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> pb::Customer {
        pb::Customer { display_name: "Ada".into(), ..Default::default() }
    }

    #[test]
    fn every_writable_path_can_be_copied_and_compared() {
        let src = pb::Customer { display_name: "B".into(), tags: vec!["x".into()], ..valid() };
        for path in WRITABLE_PATHS {
            let mut dst = valid();
            copy_field(&mut dst, &src, path);
            assert!(same_field(&dst, &src, path), "{path}");
        }
    }

    #[test]
    fn every_bad_field_is_reported_once_with_its_path() {
        let c = pb::Customer {
            display_name: "".into(),
            emails: vec![EmailAddress { address: "nope".into(), ..Default::default() }],
            phones: vec![PhoneNumber { number: "123".into(), ..Default::default() }],
            addresses: vec![PostalAddress { country: "XX".into(), ..Default::default() }],
            time_zone: "Nowhere/Land".into(),
            category: 99,
            birthday: Some(Date { year: 1990, month: 2, day: 30 }),
            ..Default::default()
        };
        let violations = draft_from_proto(&c, "customer", Utc::now()).unwrap_err();
        let fields: Vec<_> = violations.iter().map(|v| (v.field.as_str(), v.reason)).collect();
        assert_eq!(
            fields,
            [
                ("customer.display_name", "REQUIRED"),
                ("customer.emails[0].address", "INVALID_EMAIL"),
                ("customer.phones[0].number", "INVALID_PHONE"),
                ("customer.addresses[0].country", "INVALID_COUNTRY"),
                ("customer.birthday", "INVALID_BIRTHDAY"),
                ("customer.time_zone", "INVALID_TIME_ZONE"),
                ("customer.category", "INVALID_ENUM"),
            ]
        );
    }

    #[test]
    fn duplicates_and_primaries_are_checked() {
        let c = pb::Customer {
            emails: vec![
                EmailAddress { address: "A@x.com".into(), primary: true, ..Default::default() },
                EmailAddress { address: "a@X.com".into(), primary: true, ..Default::default() },
            ],
            ..valid()
        };
        let reasons: Vec<_> = draft_from_proto(&c, "customer", Utc::now()).unwrap_err().iter().map(|v| v.reason).collect();
        assert_eq!(reasons, ["DUPLICATE_EMAIL", "MULTIPLE_PRIMARY"]);
    }

    #[test]
    fn attributes_are_bounded() {
        let big = Struct { fields: [("k".to_owned(), Value { kind: Some(Kind::StringValue("x".repeat(20_000))) })].into() };
        let c = pb::Customer { attributes: Some(big), ..valid() };
        assert_eq!(draft_from_proto(&c, "customer", Utc::now()).unwrap_err()[0].reason, "ATTRIBUTES_TOO_LARGE");
        let mut deep = Value { kind: Some(Kind::NullValue(0)) };
        for _ in 0..12 {
            deep = Value { kind: Some(Kind::ListValue(prost_types::ListValue { values: vec![deep] })) };
        }
        let c = pb::Customer { attributes: Some(Struct { fields: [("k".to_owned(), deep)].into() }), ..valid() };
        assert_eq!(draft_from_proto(&c, "customer", Utc::now()).unwrap_err()[0].reason, "ATTRIBUTES_TOO_DEEP");
    }

    #[test]
    fn valid_input_is_normalised() {
        let c = pb::Customer {
            display_name: "  Ada ".into(),
            emails: vec![EmailAddress { address: " ADA@Example.com".into(), ..Default::default() }],
            tags: vec!["vip".into(), "vip".into(), "gold".into()],
            category: pb::CustomerCategory::Vip as i32,
            ..Default::default()
        };
        let d = draft_from_proto(&c, "customer", Utc::now()).unwrap();
        assert_eq!(d.display_name, "Ada");
        assert_eq!(d.emails[0].address, "ada@example.com");
        assert_eq!(d.tags, ["vip", "gold"]);
        assert_eq!(d.category, "VIP");
    }
}
