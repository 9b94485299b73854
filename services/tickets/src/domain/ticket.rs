//! The ticket as the domain sees it: typed priority, type, channel and
//! status, its SLA tracking, and the status changes it allows with the
//! effects each one implies (see [`Ticket::transition`] and [`Ticket::merge_into`]).
//!
//! The row mapping is declared here as `sqlx` attributes so that the store
//! keeps no second copy of the struct; nothing here does I/O.

use std::fmt;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::status::{InvalidTransition, Status};

/// Declares a stored enum: variants with their stored (and wire short) names,
/// `name`, `parse`, `Display` and `TryFrom<String>` for the row mapping.
macro_rules! stored_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Stored name, e.g. "URGENT".
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a stored name.
            pub fn parse(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.name() == name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownName;
            fn try_from(name: String) -> Result<Self, UnknownName> {
                Self::parse(&name).ok_or(UnknownName(name))
            }
        }
    };
}

/// A stored name no variant has (a corrupt row).
#[derive(Debug, thiserror::Error)]
#[error("unknown stored value {0:?}")]
pub struct UnknownName(String);

stored_enum!(
    /// How urgent a ticket is, most urgent first.
    Priority {
        /// Drop everything.
        Urgent = "URGENT",
        /// Before normal work.
        High = "HIGH",
        /// The default.
        Normal = "NORMAL",
        /// When there is time.
        Low = "LOW",
    }
);

impl Priority {
    /// The more urgent of the two (declaration order is most urgent first).
    pub fn more_urgent(self, other: Priority) -> Priority {
        let urgency = |p: Priority| Self::ALL.iter().position(|q| *q == p);
        if urgency(other) < urgency(self) { other } else { self }
    }

    /// One level more urgent (URGENT stays URGENT): an escalation.
    pub fn raised(self) -> Self {
        match self {
            Self::Low => Self::Normal,
            Self::Normal => Self::High,
            Self::High | Self::Urgent => Self::Urgent,
        }
    }
}

stored_enum!(
    /// What the customer brings.
    TicketType {
        /// Asks something.
        Question = "QUESTION",
        /// Something is broken.
        Problem = "PROBLEM",
        /// Is unhappy with us.
        Complaint = "COMPLAINT",
        /// Wants something done.
        Request = "REQUEST",
    }
);

stored_enum!(
    /// Where the ticket came in.
    Channel {
        /// A phone call.
        Phone = "PHONE",
        /// An email.
        Email = "EMAIL",
        /// A chat.
        Chat = "CHAT",
        /// A web form.
        Web = "WEB",
        /// Social media.
        Social = "SOCIAL",
        /// The service hotline.
        Hotline = "HOTLINE",
        /// Another system through the API.
        Api = "API",
    }
);

impl TryFrom<String> for Status {
    type Error = UnknownName;
    fn try_from(name: String) -> Result<Self, UnknownName> {
        Status::parse(&name).ok_or(UnknownName(name))
    }
}

/// A ticket.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Ticket {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub subject: String,
    pub description: String,
    #[sqlx(rename = "type", try_from = "String")]
    pub kind: TicketType,
    /// `None` when the caller did not say.
    #[sqlx(try_from = "String")]
    pub channel: OptionalChannel,
    #[sqlx(try_from = "String")]
    pub priority: Priority,
    pub category: String,
    pub tags: Vec<String>,
    #[sqlx(try_from = "String")]
    pub status: Status,
    /// Agent id, or empty.
    pub assignee: String,
    /// Team resource name (`teams/{id}`), or empty.
    pub team: String,
    pub first_response_time: Option<DateTime<Utc>>,
    pub resolve_time: Option<DateTime<Utc>>,
    pub pending_since: Option<DateTime<Utc>>,
    /// PENDING time banked so far.
    pub pending_ms: i64,
    /// Incremented by every change; the etag.
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub delete_time: Option<DateTime<Utc>>,
    pub answer_article_id: Option<Uuid>,
    pub merged_into: Option<Uuid>,
    pub reopen_count: i32,
    #[sqlx(flatten)]
    pub sla: SlaTracking,
}

/// Most tags on a ticket.
pub const MAX_TAGS: usize = 50;

/// A validated new ticket (or the editable fields of an update).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    pub customer_id: Uuid,
    pub subject: String,
    pub description: String,
    pub kind: TicketType,
    pub channel: OptionalChannel,
    pub priority: Priority,
    pub category: String,
    pub tags: Vec<String>,
    pub assignee: String,
    pub team: String,
}

impl NewTicket {
    /// The update-mask paths whose values differ from `current`'s, in mask order.
    pub fn changed_paths(&self, current: &Ticket) -> Vec<&'static str> {
        [
            ("subject", self.subject != current.subject),
            ("description", self.description != current.description),
            ("type", self.kind != current.kind),
            ("channel", self.channel != current.channel),
            ("priority", self.priority != current.priority),
            ("category", self.category != current.category),
            ("tags", self.tags != current.tags),
            ("team", self.team != current.team),
        ]
        .into_iter()
        .filter_map(|(path, changed)| changed.then_some(path))
        .collect()
    }
}

/// A channel that may be unset (stored as "").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OptionalChannel(pub Option<Channel>);

impl OptionalChannel {
    /// Stored name, "" when unset.
    pub fn name(self) -> &'static str {
        self.0.map_or("", Channel::name)
    }
}

impl TryFrom<String> for OptionalChannel {
    type Error = UnknownName;
    fn try_from(name: String) -> Result<Self, UnknownName> {
        if name.is_empty() { Ok(Self(None)) } else { Channel::try_from(name).map(|c| Self(Some(c))) }
    }
}

impl fmt::Display for OptionalChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_none() { "an unknown channel" } else { self.name() })
    }
}

/// A ticket's SLA tracking: the policy chosen at intake, each target's clock
/// and due instants, and which warnings and breaches the SLA job recorded.
#[derive(Debug, Clone, Default, sqlx::FromRow, PartialEq)]
pub struct SlaTracking {
    pub sla_policy_id: Option<Uuid>,
    pub sla_calendar_id: Option<Uuid>,
    pub sla_warning_ratio: f64,
    pub fr_target_ms: Option<i64>,
    pub fr_consumed_ms: i64,
    pub fr_since: Option<DateTime<Utc>>,
    pub fr_due: Option<DateTime<Utc>>,
    pub fr_warn_at: Option<DateTime<Utc>>,
    pub fr_breached: bool,
    pub res_target_ms: Option<i64>,
    pub res_consumed_ms: i64,
    pub res_since: Option<DateTime<Utc>>,
    pub res_due: Option<DateTime<Utc>>,
    pub res_warn_at: Option<DateTime<Utc>>,
    pub res_breached: bool,
    pub fr_warn_recorded: bool,
    pub fr_breach_recorded: bool,
    pub res_warn_recorded: bool,
    pub res_breach_recorded: bool,
}

impl SlaTracking {
    /// When the SLA job next has something to record, if ever: an unrecorded
    /// warning or breach instant, or at once for a breach found at a pause.
    pub fn next_check(&self) -> Option<DateTime<Utc>> {
        let at_once = DateTime::<Utc>::UNIX_EPOCH;
        let candidates = [
            (!self.fr_warn_recorded).then_some(self.fr_warn_at).flatten(),
            (!self.fr_breach_recorded).then_some(if self.fr_breached { Some(at_once) } else { self.fr_due }).flatten(),
            (!self.res_warn_recorded).then_some(self.res_warn_at).flatten(),
            (!self.res_breach_recorded).then_some(if self.res_breached { Some(at_once) } else { self.res_due }).flatten(),
        ];
        candidates.into_iter().flatten().min()
    }
}

/// The columns a status change sets.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub status: Status,
    pub pending_since: Option<DateTime<Utc>>,
    /// PENDING time banked, including the stretch that ends now.
    pub pending_ms: i64,
    pub resolve_time: Option<DateTime<Utc>>,
    /// A RESOLVED ticket going back to OPEN.
    pub reopened: bool,
}

/// What happens to the ticket's follow-up visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowUpEffect {
    /// Nothing changes.
    Keep,
    /// Resolved: schedule a visit with the assignee.
    Schedule,
    /// Worked again: a scheduled visit is no longer needed.
    Cancel,
}

/// A status change the state machine allowed, with everything it implies.
/// The application layer carries these out in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    /// The columns to store.
    pub change: StatusChange,
    /// The follow-up visit.
    pub follow_up: FollowUpEffect,
    /// Resolved: send the satisfaction survey (once per ticket).
    pub send_survey: bool,
    /// The assignee stops working on it: hand out what waits in the team's queue.
    /// (The SLA clocks always follow a new status: they run only while NEW or OPEN.)
    pub frees_capacity: bool,
}

impl Ticket {
    /// Checks a move to `to` at `now` and returns what it implies.
    pub fn transition(&self, to: Status, now: DateTime<Utc>) -> Result<Transition, InvalidTransition> {
        self.status.transition(to)?;
        Ok(self.effects(to, now, true))
    }

    /// Closes this ticket as a duplicate folded into another one: the one
    /// documented way to CLOSED that skips RESOLVED ([`Status::close_as_duplicate`]).
    /// No follow-up and no survey: the customer's matter lives on in the survivor.
    pub fn merge_into(&self, now: DateTime<Utc>) -> Result<Transition, InvalidTransition> {
        let to = self.status.close_as_duplicate()?;
        Ok(self.effects(to, now, false))
    }

    fn effects(&self, to: Status, now: DateTime<Utc>, resolution_path: bool) -> Transition {
        let from = self.status;
        let mut pending_ms = self.pending_ms;
        if from == Status::Pending {
            pending_ms += self.pending_since.map_or(0, |since| (now - since).num_milliseconds().max(0));
        }
        let change = StatusChange {
            status: to,
            pending_since: (to == Status::Pending).then_some(now),
            pending_ms,
            resolve_time: if to == Status::Resolved { Some(now) } else { self.resolve_time },
            reopened: from == Status::Resolved && to == Status::Open,
        };
        let follow_up = match to {
            Status::Resolved if resolution_path => FollowUpEffect::Schedule,
            Status::Open | Status::Pending => FollowUpEffect::Cancel,
            _ => FollowUpEffect::Keep,
        };
        Transition {
            from,
            to,
            change,
            follow_up,
            send_survey: resolution_path && to == Status::Resolved,
            frees_capacity: from.is_open() && !to.is_open() && !self.assignee.is_empty(),
        }
    }

    /// Whether the ticket takes work (not soft-deleted).
    pub fn is_live(&self) -> bool {
        self.delete_time.is_none()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    /// A ticket in `status`; a PENDING one has waited 90 s by `now`.
    fn ticket_at(status: Status, assignee: &str, now: DateTime<Utc>) -> Ticket {
        Ticket {
            id: Uuid::now_v7(),
            customer_id: Uuid::now_v7(),
            subject: "s".into(),
            description: String::new(),
            kind: TicketType::Question,
            channel: OptionalChannel(Some(Channel::Email)),
            priority: Priority::Normal,
            category: String::new(),
            tags: vec![],
            status,
            assignee: assignee.into(),
            team: String::new(),
            first_response_time: None,
            resolve_time: None,
            pending_since: (status == Status::Pending).then(|| now - Duration::seconds(90)),
            pending_ms: 1000,
            revision: 1,
            create_time: now,
            update_time: now,
            delete_time: None,
            answer_article_id: None,
            merged_into: None,
            reopen_count: 0,
            sla: SlaTracking::default(),
        }
    }

    fn ticket(status: Status, assignee: &str) -> Ticket {
        ticket_at(status, assignee, Utc::now())
    }

    #[test]
    fn resolving_schedules_a_follow_up_sends_a_survey_and_frees_capacity() {
        let now = Utc::now();
        let t = ticket_at(Status::Pending, "agent-1", now).transition(Status::Resolved, now).unwrap();
        assert_eq!((t.follow_up, t.send_survey, t.frees_capacity), (FollowUpEffect::Schedule, true, true));
        assert_eq!(t.change.resolve_time, Some(now));
        assert_eq!(t.change.pending_ms, 91_000, "1 s banked before plus the 90 s stretch that ends now");
        assert_eq!(t.change.pending_since, None);
    }

    #[test]
    fn reopening_cancels_the_follow_up_and_counts_a_reopen() {
        let t = ticket(Status::Resolved, "agent-1").transition(Status::Open, Utc::now()).unwrap();
        assert_eq!((t.follow_up, t.send_survey, t.frees_capacity, t.change.reopened), (FollowUpEffect::Cancel, false, false, true));
    }

    #[test]
    fn only_an_assigned_open_ticket_frees_capacity() {
        assert!(!ticket(Status::Open, "").transition(Status::Resolved, Utc::now()).unwrap().frees_capacity);
        assert!(!ticket(Status::Resolved, "a").transition(Status::Closed, Utc::now()).unwrap().frees_capacity);
    }

    #[test]
    fn a_merge_closes_open_work_without_follow_up_or_survey() {
        for status in [Status::New, Status::Open, Status::Pending] {
            let t = ticket(status, "agent-1").merge_into(Utc::now()).unwrap();
            assert_eq!((t.to, t.follow_up, t.send_survey, t.frees_capacity), (Status::Closed, FollowUpEffect::Keep, false, true));
        }
        for status in [Status::Resolved, Status::Closed] {
            assert!(ticket(status, "a").merge_into(Utc::now()).is_err(), "{status}");
        }
        assert!(ticket(Status::New, "").transition(Status::Closed, Utc::now()).is_err(), "only a merge skips RESOLVED");
    }

    #[test]
    fn stored_names_round_trip_and_escalation_rises_one_level() {
        assert!(Priority::ALL.iter().all(|p| Priority::parse(p.name()) == Some(*p)));
        assert!(Channel::ALL.iter().all(|c| Channel::try_from(c.name().to_owned()).is_ok()));
        assert_eq!(OptionalChannel::try_from(String::new()).unwrap(), OptionalChannel(None));
        assert!(TicketType::try_from("NOPE".to_owned()).is_err());
        assert_eq!(
            [Priority::Low, Priority::Normal, Priority::High, Priority::Urgent].map(Priority::raised),
            [Priority::Normal, Priority::High, Priority::Urgent, Priority::Urgent]
        );
    }
}
