//! The wire form of tickets: proto ⇄ domain conversions and the validation of
//! incoming tickets and comments. Handlers use it for requests and responses,
//! use cases for the events they write, so it sits below both and imports
//! neither. Conversions take `now`; none reads the clock.

use chrono::{DateTime, Duration, Utc};
use crm_kit::{Error, FieldViolation, etag, protoenum, time};
use crm_proto::crm::tickets::v1 as pb;

use crate::{
    domain::{
        sla::SlaState,
        ticket::{Channel, MAX_TAGS, NewTicket, OptionalChannel, Priority, Ticket, TicketType},
    },
    resources::{ARTICLE, CUSTOMER, SLA_POLICY, TICKET},
    store::{CommentRow, EventRow},
};

const MAX_TEXT: usize = 20_000;
const MAX_ATTACHMENTS: usize = 20;

fn text(violations: &mut Vec<FieldViolation>, field: &str, value: &str, required: bool, max: usize) -> String {
    let value = value.trim();
    if required && value.is_empty() {
        violations.push(FieldViolation::new(field, "REQUIRED", format!("{field} is required")));
    } else if value.chars().count() > max {
        violations.push(FieldViolation::new(field, "TOO_LONG", format!("at most {max} characters")));
    } else if value.contains('\0') {
        violations.push(FieldViolation::new(field, "INVALID_CHARACTERS", "must not contain NUL (U+0000) characters"));
    }
    value.to_owned()
}

/// The domain value of wire enum number `value`; `None` for 0 (unspecified)
/// and, with a violation on `field`, for a number the proto does not know.
fn enum_field<T>(
    violations: &mut Vec<FieldViolation>,
    field: &str,
    short_name: Result<String, (&'static str, String)>,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    match short_name {
        Ok(name) => parse(&name),
        Err((reason, message)) => {
            violations.push(FieldViolation::new(field, reason, message));
            None
        }
    }
}

/// Validates a ticket for creation (output-only fields are ignored).
pub fn new_ticket(t: &pb::Ticket) -> Result<NewTicket, Error> {
    let mut v = Vec::new();
    let customer_id = CUSTOMER
        .parse_as(&t.customer, "ticket.customer", "INVALID_CUSTOMER")
        .map_err(|e| {
            if let Error::InvalidArgument { violations } = e {
                v.extend(violations)
            }
        })
        .ok();
    let subject = text(&mut v, "ticket.subject", &t.subject, true, 200);
    let description = text(&mut v, "ticket.description", &t.description, false, MAX_TEXT);
    let kind = enum_field(
        &mut v,
        "ticket.type",
        protoenum::short_name(t.r#type, |n| pb::TicketType::try_from(n).ok().map(|e| e.as_str_name()), "TICKET_TYPE_"),
        TicketType::parse,
    );
    let channel = enum_field(
        &mut v,
        "ticket.channel",
        protoenum::short_name(t.channel, |n| pb::Channel::try_from(n).ok().map(|e| e.as_str_name()), "CHANNEL_"),
        Channel::parse,
    );
    let priority = enum_field(
        &mut v,
        "ticket.priority",
        protoenum::short_name(t.priority, |n| pb::Priority::try_from(n).ok().map(|e| e.as_str_name()), "PRIORITY_"),
        Priority::parse,
    );
    let category = text(&mut v, "ticket.category", &t.category, false, 100);
    let assignee = text(&mut v, "ticket.assignee", &t.assignee, false, 200);
    let team = text(&mut v, "ticket.team", &t.team, false, 200);
    let mut tags: Vec<String> = Vec::new();
    for (i, tag) in t.tags.iter().enumerate() {
        let tag = text(&mut v, &format!("ticket.tags[{i}]"), tag, true, 64);
        if !tag.is_empty() && !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.len() > MAX_TAGS {
        v.push(FieldViolation::new("ticket.tags", "TOO_MANY_ENTRIES", format!("at most {MAX_TAGS} tags")));
    }
    match customer_id {
        Some(customer_id) if v.is_empty() => Ok(NewTicket {
            customer_id,
            subject,
            description,
            kind: kind.unwrap_or(TicketType::Question),
            channel: OptionalChannel(channel),
            priority: priority.unwrap_or(Priority::Normal),
            category,
            tags,
            assignee,
            team,
        }),
        _ => Err(Error::InvalidArgument { violations: v }),
    }
}

/// Validates a comment's body and attachments.
pub fn comment_input(c: &pb::Comment) -> Result<(String, Vec<String>), Error> {
    let mut v = Vec::new();
    let body = text(&mut v, "comment.body", &c.body, true, MAX_TEXT);
    if c.attachments.len() > MAX_ATTACHMENTS {
        v.push(FieldViolation::new("comment.attachments", "TOO_MANY_ENTRIES", format!("at most {MAX_ATTACHMENTS} attachments")));
    }
    let attachments =
        c.attachments.iter().enumerate().map(|(i, a)| text(&mut v, &format!("comment.attachments[{i}]"), a, true, 2000)).collect();
    if v.is_empty() { Ok((body, attachments)) } else { Err(Error::InvalidArgument { violations: v }) }
}

/// A ticket as the API returns it, with its SLA states as of `now`.
pub fn ticket_to_proto(row: &Ticket, now: DateTime<Utc>) -> pb::Ticket {
    let (first_response, resolution) = row.sla.states(now);
    pb::Ticket {
        name: TICKET.name(row.id),
        customer: CUSTOMER.name(row.customer_id),
        subject: row.subject.clone(),
        description: row.description.clone(),
        r#type: protoenum::number(row.kind.name(), "TICKET_TYPE_", |s| pb::TicketType::from_str_name(s).map(|e| e as i32)),
        channel: protoenum::number(row.channel.name(), "CHANNEL_", |s| pb::Channel::from_str_name(s).map(|e| e as i32)),
        priority: protoenum::number(row.priority.name(), "PRIORITY_", |s| pb::Priority::from_str_name(s).map(|e| e as i32)),
        category: row.category.clone(),
        tags: row.tags.clone(),
        status: status_number(row.status),
        assignee: row.assignee.clone(),
        team: row.team.clone(),
        first_response_time: row.first_response_time.map(time::to_timestamp),
        resolve_time: row.resolve_time.map(time::to_timestamp),
        pending_duration: Some(prost_types::Duration {
            seconds: Duration::milliseconds(row.pending_ms).num_seconds(),
            nanos: ((row.pending_ms % 1000) * 1_000_000) as i32,
        }),
        create_time: Some(time::to_timestamp(row.create_time)),
        update_time: Some(time::to_timestamp(row.update_time)),
        etag: etag::of_revision(row.revision),
        delete_time: row.delete_time.map(time::to_timestamp),
        sla_policy: row.sla.sla_policy_id.map(|id| SLA_POLICY.name(id)).unwrap_or_default(),
        first_response_due: row.sla.fr_due.map(time::to_timestamp),
        resolution_due: row.sla.res_due.map(time::to_timestamp),
        first_response_sla: sla_state(first_response),
        resolution_sla: sla_state(resolution),
        answer_article: row.answer_article_id.map(|id| ARTICLE.name(id)).unwrap_or_default(),
        merged_into: row.merged_into.map(|id| TICKET.name(id)).unwrap_or_default(),
        reopen_count: row.reopen_count,
    }
}

/// The wire number of a status.
pub fn status_number(status: crate::domain::status::Status) -> i32 {
    protoenum::number(status.name(), "STATUS_", |s| pb::Status::from_str_name(s).map(|e| e as i32))
}

/// The domain status of a wire number; `None` for 0 or an unknown number.
pub fn status_of(number: i32) -> Option<crate::domain::status::Status> {
    pb::Status::try_from(number).ok().and_then(|s| crate::domain::status::Status::parse(s.as_str_name().trim_start_matches("STATUS_")))
}

fn sla_state(state: Option<SlaState>) -> i32 {
    (match state {
        None => pb::SlaState::Unspecified,
        Some(SlaState::OnTrack) => pb::SlaState::OnTrack,
        Some(SlaState::Warning) => pb::SlaState::Warning,
        Some(SlaState::Breached) => pb::SlaState::Breached,
    }) as i32
}

/// Paths UpdateTicket may change.
pub const WRITABLE_PATHS: &[&str] = &["subject", "description", "type", "channel", "priority", "category", "tags", "team"];

crm_kit::mask_fields!(pb::Ticket;
    "subject" => subject,
    "description" => description,
    "type" => r#type,
    "channel" => channel,
    "priority" => priority,
    "category" => category,
    "tags" => tags,
    "team" => team,
);

/// A stored comment as the API returns it.
pub fn comment_to_proto(row: &CommentRow) -> pb::Comment {
    pb::Comment {
        name: format!("{}/comments/{}", TICKET.name(row.ticket_id), row.id),
        body: row.body.clone(),
        public: row.public,
        author: row.author.clone(),
        attachments: row.attachments.clone(),
        create_time: Some(time::to_timestamp(row.create_time)),
    }
}

/// A timeline entry as the API returns it.
pub fn event_to_proto(row: &EventRow) -> pb::TicketEvent {
    pb::TicketEvent {
        name: format!("{}/events/{}", TICKET.name(row.ticket_id), row.id),
        kind: row.kind.clone(),
        actor: row.actor.clone(),
        detail: row.detail.clone(),
        create_time: Some(time::to_timestamp(row.create_time)),
    }
}

/// Longest reporting period.
const MAX_PERIOD_DAYS: i64 = 366;

/// A reporting period `[start, end)` from request timestamps: both required, start first, at most a year long.
pub fn parse_period(
    start: Option<&prost_types::Timestamp>,
    end: Option<&prost_types::Timestamp>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
    let period = start.and_then(time::from_timestamp).zip(end.and_then(time::from_timestamp));
    match period {
        Some((from, to)) if from < to && to - from <= Duration::days(MAX_PERIOD_DAYS) => Ok((from, to)),
        Some((from, to)) if from < to => {
            Err(Error::invalid("end_time", "PERIOD_TOO_LONG", format!("a period spans at most {MAX_PERIOD_DAYS} days")))
        }
        _ => Err(Error::invalid("start_time", "INVALID_PERIOD", "give start_time before end_time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_writable_path_can_be_copied_and_compared() {
        let src = pb::Ticket { subject: "s".into(), priority: 1, tags: vec!["t".into()], team: "x".into(), ..Default::default() };
        for path in WRITABLE_PATHS {
            let mut dst = pb::Ticket::default();
            copy_field(&mut dst, &src, path);
            assert!(same_field(&dst, &src, path), "{path}");
        }
    }

    #[test]
    fn defaults_and_violations() {
        let ok = pb::Ticket {
            customer: CUSTOMER.name(uuid::Uuid::nil()),
            subject: " Broken ".into(),
            tags: vec!["a".into(), "a".into()],
            ..Default::default()
        };
        let t = new_ticket(&ok).unwrap();
        assert_eq!(
            (t.subject.as_str(), t.kind, t.priority, t.channel, t.tags.len()),
            ("Broken", TicketType::Question, Priority::Normal, OptionalChannel(None), 1)
        );

        let bad = pb::Ticket { customer: "people/1".into(), priority: 42, ..Default::default() };
        let Error::InvalidArgument { violations } = new_ticket(&bad).unwrap_err() else { panic!() };
        let fields: Vec<_> = violations.iter().map(|v| (v.field.as_str(), v.reason)).collect();
        assert_eq!(fields, [("ticket.customer", "INVALID_CUSTOMER"), ("ticket.subject", "REQUIRED"), ("ticket.priority", "INVALID_ENUM")]);
    }
}
