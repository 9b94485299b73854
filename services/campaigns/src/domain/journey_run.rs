//! A customer's run through a journey version: which entries count as the
//! same start (the entry key), what a step leads to, and when a wait ends.
//! The runner (`jobs::journeys`) asks profiles what a step needs, then the
//! use case records the step and this module's answer in one transaction.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use super::{
    journey::{Action, Definition, EventTrigger, Reentry, Step, Wait},
    rules::next_local_time,
};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// Takes its next step as soon as the runner gets to it.
    Active,
    /// In a wait step until its due time.
    Waiting,
    /// Went through to the end (or an exit step).
    Completed,
    /// Left early.
    Exited,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Waiting => "WAITING",
            Self::Completed => "COMPLETED",
            Self::Exited => "EXITED",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "WAITING" => Self::Waiting,
            "COMPLETED" => Self::Completed,
            "EXITED" => Self::Exited,
            _ => Self::Active,
        }
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Finished,
    ExitStep,
    GoalReached,
    CustomerGone,
    Cancelled,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finished => "FINISHED",
            Self::ExitStep => "EXIT_STEP",
            Self::GoalReached => "GOAL_REACHED",
            Self::CustomerGone => "CUSTOMER_GONE",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// The state a run that ends this way is left in.
    pub fn state(self) -> RunState {
        match self {
            Self::Finished | Self::ExitStep => RunState::Completed,
            Self::GoalReached | Self::CustomerGone | Self::Cancelled => RunState::Exited,
        }
    }
}

/// What a step did, as its history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    NotSent,
    Waited,
    BranchTrue,
    BranchFalse,
    Updated,
    PointsGranted,
    CouponIssued,
    AwaitingGoal,
    HeldOut,
    Exited,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "SENT",
            Self::NotSent => "NOT_SENT",
            Self::Waited => "WAITED",
            Self::BranchTrue => "BRANCH_TRUE",
            Self::BranchFalse => "BRANCH_FALSE",
            Self::Updated => "UPDATED",
            Self::PointsGranted => "POINTS_GRANTED",
            Self::CouponIssued => "COUPON_ISSUED",
            Self::AwaitingGoal => "AWAITING_GOAL",
            Self::HeldOut => "HELD_OUT",
            Self::Exited => "EXITED",
            Self::Failed => "FAILED",
        }
    }
}

/// What happened to a customer, from an event of another service's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerEvent {
    pub customer: Uuid,
    pub event: EventTrigger,
    /// The ticket it is about (tickets' events): runs it starts keep it, so a survey they send is about it.
    pub ticket: Option<Uuid>,
}

/// The entry key of journeys a customer starts once, whatever the trigger and version.
pub const ONCE: &str = "once";

/// The key under which an entry by `trigger_key` (the event's stream
/// position, the request id, the birthday's year) is stored: two entries
/// with the same key are the same start.
pub fn entry_key(reentry: Reentry, trigger_key: &str) -> String {
    match reentry {
        Reentry::Never => ONCE.to_owned(),
        Reentry::AfterDays(_) | Reentry::Always => trigger_key.to_owned(),
    }
}

/// Whether a customer whose last start was `last_start` may start again at `now`.
pub fn may_reenter(reentry: Reentry, last_start: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    match (reentry, last_start) {
        (_, None) | (Reentry::Always, _) => true,
        (Reentry::Never, Some(_)) => false,
        (Reentry::AfterDays(days), Some(last)) => now - last >= Duration::days(days),
    }
}

/// Where a run goes after a step: on to another step now, into a wait, or to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// Take this step next, now.
    To(String),
    /// Stay in this wait step until then.
    WaitUntil(DateTime<Utc>),
    /// End.
    End(EndReason),
}

fn to_next(next: &Option<String>) -> Move {
    match next {
        Some(step) => Move::To(step.clone()),
        None => Move::End(EndReason::Finished),
    }
}

/// The step `id` of `definition`.
pub fn step<'a>(definition: &'a Definition, id: &str) -> Option<&'a Step> {
    definition.steps.iter().find(|s| s.id == id)
}

/// Where a run goes after `step` is done (a wait step: once its wait is
/// over); `branch` is a branch's answer, or for a goal wait whether the goal was reached.
pub fn after(step: &Step, branch: bool) -> Move {
    match &step.action {
        Action::Send { next, .. }
        | Action::Wait { next, .. }
        | Action::UpdateCustomer { next, .. }
        | Action::GrantPoints { next, .. }
        | Action::IssueCoupon { next, .. } => to_next(next),
        Action::Branch { if_true, if_false, .. } => Move::To(if branch { if_true } else { if_false }.clone()),
        // `branch`: whether the goal was reached (else the wait timed out).
        Action::WaitForGoal { next, on_timeout, .. } => to_next(if branch { next } else { on_timeout }),
        Action::Exit => Move::End(EndReason::ExitStep),
    }
}

/// When a run entering wait step `wait` at `now` goes on, in the customer's zone `zone`.
pub fn wake_time(wait: Wait, zone: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    match wait {
        Wait::Minutes(minutes) => now + Duration::minutes(minutes),
        // "Until 09:00" at 09:00 itself waits for tomorrow's: a wait always waits.
        Wait::UntilMinuteOfDay(minute) => next_local_time(zone, u32::from(minute), now + Duration::seconds(1)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chrono::TimeZone;

    use super::*;
    use crate::domain::journey::Condition;

    #[test]
    fn entry_keys_make_never_once_and_the_others_once_per_trigger() {
        assert_eq!(entry_key(Reentry::Never, "profiles/7"), "once");
        assert_eq!(entry_key(Reentry::Always, "profiles/7"), "profiles/7");
        assert_eq!(entry_key(Reentry::AfterDays(30), "requests/a"), "requests/a");
    }

    #[test]
    fn reentry_after_days_counts_from_the_last_start() {
        let now = Utc.with_ymd_and_hms(2027, 3, 1, 12, 0, 0).unwrap();
        assert!(may_reenter(Reentry::Never, None, now));
        assert!(!may_reenter(Reentry::Never, Some(now - Duration::days(999)), now));
        assert!(may_reenter(Reentry::Always, Some(now), now));
        assert!(!may_reenter(Reentry::AfterDays(30), Some(now - Duration::days(29)), now));
        assert!(may_reenter(Reentry::AfterDays(30), Some(now - Duration::days(30)), now));
    }

    #[test]
    fn steps_lead_on_and_branches_choose() {
        let send = Step {
            id: "s".into(),
            action: Action::Send {
                template: "t".into(),
                variables: BTreeMap::new(),
                next: Some("b".into()),
                ab: None,
                questionnaire: None,
            },
        };
        assert_eq!(after(&send, false), Move::To("b".into()));
        let branch = Step {
            id: "b".into(),
            action: Action::Branch { condition: Condition::InSegment { segment: "x".into() }, if_true: "y".into(), if_false: "n".into() },
        };
        assert_eq!(after(&branch, true), Move::To("y".into()));
        assert_eq!(after(&branch, false), Move::To("n".into()));
        let last = Step { id: "u".into(), action: Action::UpdateCustomer { add_tags: vec!["a".into()], remove_tags: vec![], next: None } };
        assert_eq!(after(&last, false), Move::End(EndReason::Finished));
        assert_eq!(after(&Step { id: "e".into(), action: Action::Exit }, false), Move::End(EndReason::ExitStep));
        let wait = Step { id: "w".into(), action: Action::Wait { wait: Wait::Minutes(5), next: Some("s".into()) } };
        assert_eq!(after(&wait, false), Move::To("s".into()));
    }

    #[test]
    fn a_wait_until_a_time_of_day_waits_for_the_next_one_in_the_customers_zone() {
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        // 08:00 in Shanghai is 00:00 UTC: 09:00 is an hour away.
        let now = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        assert_eq!(wake_time(Wait::UntilMinuteOfDay(9 * 60), zone, now), Utc.with_ymd_and_hms(2027, 3, 1, 1, 0, 0).unwrap());
        // At 09:00 exactly it is tomorrow's 09:00.
        let at_nine = Utc.with_ymd_and_hms(2027, 3, 1, 1, 0, 0).unwrap();
        assert_eq!(wake_time(Wait::UntilMinuteOfDay(9 * 60), zone, at_nine), Utc.with_ymd_and_hms(2027, 3, 2, 1, 0, 0).unwrap());
        assert_eq!(wake_time(Wait::Minutes(90), zone, now), now + Duration::minutes(90));
        // Half a minute before 09:00 it is today's 09:00, not tomorrow's.
        let almost = Utc.with_ymd_and_hms(2027, 3, 1, 0, 59, 30).unwrap();
        assert_eq!(wake_time(Wait::UntilMinuteOfDay(9 * 60), zone, almost), Utc.with_ymd_and_hms(2027, 3, 1, 1, 0, 0).unwrap());
    }
}
