//! The wire form of communication records: requests validated into a
//! [`CommunicationDraft`] (every bad field reported), rows back out as
//! `Communication`, masking, and the per-path copy and compare of updates.

use chrono::{DateTime, Utc};
use crm_kit::{FieldViolation, etag, time};
use crm_proto::{crm::profiles::v1 as pb, google::r#type::Date};

use super::{Violations, date_from, date_to, enum_short};
use crate::{
    domain::{
        communication::{CommunicationDraft, MAX_CONTENT_BYTES, MAX_DURATION_SECONDS},
        fields,
    },
    resources::COMMUNICATION,
    store::communications::CommunicationRow,
};

/// The paths UpdateCommunication may change.
pub const WRITABLE: &[&str] =
    &["kind", "direction", "subject", "content", "occur_time", "duration", "agent", "outcome", "next_contact_date"];

/// Validates an incoming record at `now`; `caller` is the agent when none is given.
pub fn draft_from_proto(
    c: &pb::Communication,
    prefix: &str,
    caller: &str,
    now: DateTime<Utc>,
) -> Result<CommunicationDraft, Vec<FieldViolation>> {
    let mut v = Violations { prefix, found: Vec::new() };
    let kind = match enum_short(c.kind, |n| pb::CommunicationKind::try_from(n).ok(), |e| e.as_str_name(), "COMMUNICATION_KIND_") {
        Ok(kind) if !kind.is_empty() => Some(kind),
        _ => {
            v.add("kind", "INVALID_KIND", "one of COMMUNICATION_KIND_CALL, _EMAIL, _MEETING, _VISIT, _SMS, _CHAT, _NOTE");
            None
        }
    };
    let direction = v.check(
        "direction",
        enum_short(c.direction, |n| pb::CommunicationDirection::try_from(n).ok(), |e| e.as_str_name(), "COMMUNICATION_DIRECTION_"),
    );
    let subject = v.check("subject", fields::short_text(&c.subject, 200));
    let content = if c.content.len() > MAX_CONTENT_BYTES {
        v.add("content", "TOO_LONG", "at most 64 KiB");
        None
    } else {
        Some(c.content.clone())
    };
    let occur_time = match c.occur_time.as_ref().and_then(time::from_timestamp) {
        Some(t) if t <= now + chrono::Duration::minutes(1) => Some(t),
        _ => {
            v.add("occur_time", "INVALID_OCCUR_TIME", "required: when it happened, not in the future");
            None
        }
    };
    let duration_seconds = match &c.duration {
        None => Some(None),
        Some(d) if d.seconds >= 0 && d.seconds <= MAX_DURATION_SECONDS && d.nanos >= 0 => i32::try_from(d.seconds).ok().map(Some),
        Some(_) => {
            v.add("duration", "INVALID_DURATION", "0 to 24 hours");
            None
        }
    };
    let agent = match v.check("agent", fields::short_text(&c.agent, 200)) {
        Some(agent) if agent.is_empty() => Some(caller.chars().take(200).collect()),
        other => other,
    };
    let outcome = v.check("outcome", fields::short_text(&c.outcome, 200));
    let next_contact_date = match &c.next_contact_date {
        None | Some(Date { year: 0, month: 0, day: 0 }) => Some(None),
        Some(d) => match date_from(d) {
            Some(date) => Some(Some(date)),
            None => {
                v.add("next_contact_date", "INVALID_DATE", "a real date with year, month and day");
                None
            }
        },
    };
    let draft = (|| {
        Some(CommunicationDraft {
            kind: kind?,
            direction: direction?,
            subject: subject?,
            content: content?,
            occur_time: occur_time?,
            duration_seconds: duration_seconds?,
            agent: agent?,
            outcome: outcome?,
            next_contact_date: next_contact_date?,
        })
    })();
    match draft {
        Some(draft) if v.found.is_empty() => Ok(draft),
        _ => Err(v.found),
    }
}

/// A stored record as the API returns it (unmasked).
pub fn to_proto(row: &CommunicationRow) -> pb::Communication {
    pb::Communication {
        name: COMMUNICATION.name(row.customer_id, row.id),
        kind: crm_kit::protoenum::number(&row.kind, "COMMUNICATION_KIND_", |s| pb::CommunicationKind::from_str_name(s).map(|e| e as i32)),
        direction: crm_kit::protoenum::number(&row.direction, "COMMUNICATION_DIRECTION_", |s| {
            pb::CommunicationDirection::from_str_name(s).map(|e| e as i32)
        }),
        subject: row.subject.clone(),
        content: row.content.clone(),
        occur_time: Some(time::to_timestamp(row.occur_time)),
        duration: row.duration_seconds.map(|s| prost_types::Duration { seconds: i64::from(s), nanos: 0 }),
        agent: row.agent.clone(),
        outcome: row.outcome.clone(),
        next_contact_date: row.next_contact_date.map(date_to),
        create_time: Some(time::to_timestamp(row.create_time)),
        update_time: Some(time::to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
    }
}

/// Masks digits and email addresses in the subject, content and outcome for callers without `pii`.
pub fn mask_pii(c: &mut pb::Communication) {
    for text in [&mut c.subject, &mut c.content, &mut c.outcome] {
        *text = crm_kit::mask::text(text);
    }
}

/// The writable paths whose value `after` has otherwise than `before`, compared in wire form.
pub fn changed_paths(before: &pb::Communication, after: &pb::Communication) -> Vec<String> {
    WRITABLE.iter().filter(|p| !same_field(before, after, p)).map(|p| (*p).to_owned()).collect()
}

crm_kit::mask_fields!(pb::Communication;
    "kind" => kind,
    "direction" => direction,
    "subject" => subject,
    "content" => content,
    "occur_time" => occur_time,
    "duration" => duration,
    "agent" => agent,
    "outcome" => outcome,
    "next_contact_date" => next_contact_date,
);
