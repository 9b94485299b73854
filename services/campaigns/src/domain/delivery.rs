//! A delivery's lifecycle in the ledger, and what an attempt's outcome
//! makes of it.
//!
//! ```text
//!   (accepted) ──► QUEUED ──claim──► SUBMITTING ──accepted──► SENT
//!        │            ▲                  │
//!        │            ├──throttled ──────┤  (the attempt does not count)
//!        │            └──temporary, ─────┤
//!        │               attempts left   └──permanent (a hard bounce too), or the last attempt──► FAILED
//!        └──the contact policy refuses──► SKIPPED
//!   QUEUED ──its campaign is cancelled──► CANCELLED
//! ```
//! A row found SUBMITTING when its claim's lease ran out was being sent when
//! its sender stopped: it is reconciled, never silently dropped (see
//! `jobs::delivery`).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    Submitting,
    Sent,
    Failed,
    Skipped,
    Cancelled,
}

impl Status {
    /// Stored and API short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::Submitting => "SUBMITTING",
            Self::Sent => "SENT",
            Self::Failed => "FAILED",
            Self::Skipped => "SKIPPED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Queued, Self::Submitting, Self::Sent, Self::Failed, Self::Skipped, Self::Cancelled].into_iter().find(|s| s.as_str() == name)
    }
}

impl TryFrom<String> for Status {
    type Error = super::channel::UnknownName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| super::channel::UnknownName::new("delivery status", value))
    }
}

/// What the provider said to one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted, under the provider's message id.
    Accepted { message_id: String },
    /// Refused for now (throttled, unavailable, a 4xx SMTP reply): try again later.
    Temporary { error: String },
    /// Refused for good (a 5xx SMTP reply, a refused request): do not try again.
    Permanent { error: String },
    /// Refused for good because the address does not exist (a hard bounce:
    /// SMTP 5.1.x, an invalid phone number): do not try again, and send
    /// nothing more to that address.
    Bounced { error: String },
    /// The provider asks us to slow down (HTTP 429, a rate-limit code): the
    /// message waits `retry_after` and this attempt does not count.
    Throttled { error: String, retry_after: Duration },
}

impl Outcome {
    /// A short name of the kind of outcome (spans, metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Accepted { .. } => "accepted",
            Self::Temporary { .. } => "temporary",
            Self::Permanent { .. } => "permanent",
            Self::Bounced { .. } => "bounced",
            Self::Throttled { .. } => "throttled",
        }
    }
}

/// What to record after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// SENT.
    Sent { message_id: String },
    /// Back to QUEUED until `at`.
    Retry { at: DateTime<Utc>, error: String },
    /// FAILED; `bounced` when the address itself is bad (suppress it).
    Failed { error: String, bounced: bool },
    /// Back to QUEUED until `at`, the attempt not counted (throttling is no failure).
    Throttled { at: DateTime<Utc>, error: String },
}

/// Whether an SMTP refusal (`code` such as `550`, `text` the reply) says the
/// address does not exist — a hard bounce — rather than refusing this
/// message (policy, content, size). The enhanced status code decides when
/// there is one (RFC 3463: `5.1.x` is a bad destination address, `5.7.x` a
/// policy refusal, ...); without one, 550, 551 and 553 are address refusals.
pub fn is_hard_bounce(code: &str, text: &str) -> bool {
    let enhanced = text.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ':').find(|w| {
        let mut parts = w.split('.');
        matches!((parts.next(), parts.next(), parts.next(), parts.next()), (Some("5"), Some(b), Some(c), None)
            if !b.is_empty() && !c.is_empty() && b.chars().chain(c.chars()).all(|ch| ch.is_ascii_digit()))
    });
    match enhanced {
        Some(status) => status.starts_with("5.1."),
        None => matches!(code, "550" | "551" | "553"),
    }
}

/// Retry timing: the first retry after `base`, doubling per attempt up to
/// `max_delay`, each spread by up to ±`jitter` of itself so that a burst of
/// failures does not come back as a burst.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: i32,
    pub base: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// What attempt number `attempts` (1 for the first) with `outcome` leads to;
    /// `jitter` in [-1, 1] picks the spread.
    pub fn next(&self, outcome: Outcome, attempts: i32, now: DateTime<Utc>, jitter: f64) -> Next {
        match outcome {
            Outcome::Accepted { message_id } => Next::Sent { message_id },
            Outcome::Permanent { error } => Next::Failed { error, bounced: false },
            Outcome::Bounced { error } => Next::Failed { error, bounced: true },
            Outcome::Throttled { error, retry_after } => {
                Next::Throttled { at: now + chrono::Duration::from_std(retry_after).unwrap_or(chrono::Duration::MAX), error }
            }
            Outcome::Temporary { error } if attempts >= self.max_attempts => {
                Next::Failed { error: format!("{error} (gave up after {attempts} attempts)"), bounced: false }
            }
            Outcome::Temporary { error } => {
                let exponent = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(20);
                let delay = self.base.saturating_mul(1 << exponent).min(self.max_delay);
                let spread = delay.mul_f64(0.2 * jitter.clamp(-1.0, 1.0).abs());
                let delay = if jitter < 0.0 { delay.saturating_sub(spread) } else { delay + spread };
                Next::Retry { at: now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX), error }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy { max_attempts: 4, base: Duration::from_secs(5), max_delay: Duration::from_secs(60) };

    fn temporary() -> Outcome {
        Outcome::Temporary { error: "421 try later".into() }
    }

    #[test]
    fn temporary_failures_back_off_exponentially_then_give_up() {
        let now = Utc::now();
        let delays: Vec<i64> = (1..4)
            .map(|n| match POLICY.next(temporary(), n, now, 0.0) {
                Next::Retry { at, .. } => (at - now).num_seconds(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, vec![5, 10, 20]);
        assert!(
            matches!(POLICY.next(temporary(), 4, now, 0.0), Next::Failed { error, bounced: false } if error.contains("after 4 attempts"))
        );
    }

    #[test]
    fn delays_are_capped_and_jittered_within_a_fifth() {
        let now = Utc::now();
        let policy = RetryPolicy { max_attempts: 100, ..POLICY };
        for (jitter, expected) in [(1.0, 72), (-1.0, 48), (0.0, 60)] {
            match policy.next(temporary(), 30, now, jitter) {
                Next::Retry { at, .. } => assert_eq!((at - now).num_seconds(), expected),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn throttling_waits_without_using_up_attempts() {
        let now = Utc::now();
        let throttled = Outcome::Throttled { error: "429".into(), retry_after: Duration::from_secs(2) };
        assert_eq!(POLICY.next(throttled, 99, now, 0.0), Next::Throttled { at: now + chrono::Duration::seconds(2), error: "429".into() });
    }

    #[test]
    fn acceptance_and_permanent_refusal_are_final() {
        let now = Utc::now();
        assert_eq!(POLICY.next(Outcome::Accepted { message_id: "m".into() }, 1, now, 0.0), Next::Sent { message_id: "m".into() });
        assert_eq!(
            POLICY.next(Outcome::Permanent { error: "550".into() }, 1, now, 0.0),
            Next::Failed { error: "550".into(), bounced: false }
        );
        assert_eq!(POLICY.next(Outcome::Bounced { error: "550".into() }, 1, now, 0.0), Next::Failed { error: "550".into(), bounced: true });
    }

    #[test]
    fn only_refusals_of_the_address_are_hard_bounces() {
        assert!(is_hard_bounce("550", "permanent error (550): 5.1.1 mailbox unavailable"));
        assert!(is_hard_bounce("553", "5.1.3 bad destination mailbox address syntax"));
        assert!(is_hard_bounce("550", "mailbox unavailable"), "no enhanced code: 550 refuses the address");
        assert!(!is_hard_bounce("550", "5.7.1 message refused as spam"), "a policy refusal is not a bounce");
        assert!(!is_hard_bounce("552", "5.3.4 message too big"));
        assert!(!is_hard_bounce("554", "transaction failed"));
    }
}
