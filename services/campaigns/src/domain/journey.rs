//! A journey's definition — a trigger, then a graph of steps — and the
//! checks a definition must pass before it is saved: well-formed step ids,
//! every `next` naming a step, every step reachable from the first, no loop
//! that could run without waiting (a customer would be messaged in a tight
//! circle), and each step's own numbers. References to templates and
//! segments are checked against their owners by the use case; this module
//! names what to check.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{ab_test::AbTest, is_slug};

/// The most steps a journey has.
pub const MAX_STEPS: usize = 100;
/// The longest single wait.
pub const MAX_WAIT_DAYS: i64 = 366;
/// The longest a coupon a step issues stays valid.
pub const MAX_COUPON_DAYS: i32 = 1095;
/// The most points one step grants.
pub const MAX_POINTS_PER_STEP: i64 = 1_000_000;

/// What starts a customer on a journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// An event of the suite's streams about the customer.
    Event(EventTrigger),
    /// The customer's birthday, at this local time of day (minutes after midnight).
    Birthday { minute_of_day: u16 },
    /// A holiday of the tenant's calendar (its id), at this local time of day.
    Holiday { holiday: String, minute_of_day: u16 },
    /// Only an explicit EnterJourney call.
    Api,
}

/// The events a journey can start on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventTrigger {
    CustomerCreated,
    /// The customer entered segment `segment` (its id in profiles).
    SegmentEntered {
        segment: String,
    },
    /// The customer left segment `segment`.
    SegmentLeft {
        segment: String,
    },
    /// The customer's value tier changed.
    TierChanged,
    /// A transaction was recorded for the customer.
    TransactionCreated,
    /// A ticket of the customer was resolved (tickets' stream).
    TicketResolved,
    /// A complaint of the customer was opened (tickets' stream).
    ComplaintOpened,
}

/// One step of a journey.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Unique in the journey: 1-63 lowercase letters, digits and hyphens, starting with a letter.
    pub id: String,
    pub action: Action,
}

/// What a step does, and where the customer goes next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Sends template `template` (its id) through the contact policy and the
    /// ledger; with `ab`, one of its variants (or nothing, in the holdout).
    Send {
        template: String,
        variables: BTreeMap<String, String>,
        next: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ab: Option<AbTest>,
        /// A questionnaire (its id) the message invites the customer to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        questionnaire: Option<String>,
    },
    /// Waits a number of minutes, or until the next local time of day.
    Wait { wait: Wait, next: Option<String> },
    /// Goes one way or the other on the customer.
    Branch { condition: Condition, if_true: String, if_false: String },
    /// Tags the customer (and removes tags) in profiles.
    UpdateCustomer { add_tags: Vec<String>, remove_tags: Vec<String>, next: Option<String> },
    /// Grants loyalty points (expiring after `expire_days`, 0: never).
    GrantPoints { points: i64, expire_days: i32, reason: String, next: Option<String> },
    /// Waits until the customer reaches `goal` (then `next`) or `timeout_minutes` pass (then `on_timeout`).
    WaitForGoal { goal: String, timeout_minutes: i64, next: Option<String>, on_timeout: Option<String> },
    /// Issues a single-use coupon worth `value_minor` of `currency`, valid for `valid_days`.
    IssueCoupon { currency: String, value_minor: i64, valid_days: i32, description: String, next: Option<String> },
    /// Ends the run.
    Exit,
}

/// How long a wait step holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    Minutes(i64),
    /// Until this local time of day (minutes after midnight) comes next.
    UntilMinuteOfDay(u16),
}

/// What a branch asks about the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Whether the customer is a member of segment `segment` (its id in profiles).
    InSegment { segment: String },
    /// Whether the customer matches an AIP-160 filter over profiles' customers.
    Matches { filter: String },
    /// Whether the customer reached `goal` since the run started.
    GoalReached { goal: String },
}

/// Whether a customer may start the same journey again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reentry {
    Never,
    AfterDays(i64),
    Always,
}

/// A whole definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    pub trigger: Trigger,
    /// The first is where every run starts.
    pub steps: Vec<Step>,
    pub reentry: Reentry,
    /// The run ends early when the customer makes a purchase (a transaction is recorded).
    pub exit_on_purchase: bool,
}

/// A problem with a definition, naming the step (or field) it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The offending step's id, or a field of the journey (`trigger`, `steps`, `reentry`).
    pub subject: String,
    pub reason: &'static str,
    pub message: String,
}

fn problem(subject: &str, reason: &'static str, message: impl Into<String>) -> Problem {
    Problem { subject: subject.to_owned(), reason, message: message.into() }
}

impl Action {
    /// The steps this one may lead to.
    pub fn successors(&self) -> Vec<&str> {
        match self {
            Action::Send { next, .. }
            | Action::Wait { next, .. }
            | Action::UpdateCustomer { next, .. }
            | Action::GrantPoints { next, .. }
            | Action::IssueCoupon { next, .. } => next.iter().map(String::as_str).collect(),
            Action::Branch { if_true, if_false, .. } => vec![if_true.as_str(), if_false.as_str()],
            Action::WaitForGoal { next, on_timeout, .. } => next.iter().chain(on_timeout).map(String::as_str).collect(),
            Action::Exit => Vec::new(),
        }
    }
}

impl Definition {
    /// The templates its send steps use (ids), for the use case to check.
    pub fn templates(&self) -> BTreeSet<&str> {
        self.steps
            .iter()
            .flat_map(|s| match &s.action {
                Action::Send { template, ab, .. } => std::iter::once(template.as_str())
                    .chain(ab.iter().flat_map(|t| t.variants.iter().map(|v| v.template.as_str())))
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    /// The segments its trigger and branches use (ids in profiles), for the use case to check.
    pub fn segments(&self) -> BTreeSet<&str> {
        let from_trigger = match &self.trigger {
            Trigger::Event(EventTrigger::SegmentEntered { segment } | EventTrigger::SegmentLeft { segment }) => Some(segment.as_str()),
            _ => None,
        };
        let from_branches = self.steps.iter().filter_map(|s| match &s.action {
            Action::Branch { condition: Condition::InSegment { segment }, .. } => Some(segment.as_str()),
            _ => None,
        });
        from_trigger.into_iter().chain(from_branches).collect()
    }

    /// Every problem of the definition's shape and numbers, in step order.
    pub fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        match &self.trigger {
            Trigger::Birthday { minute_of_day } | Trigger::Holiday { minute_of_day, .. } if *minute_of_day >= 24 * 60 => {
                problems.push(problem("trigger", "INVALID_TIME_OF_DAY", "a time of day is 00:00-23:59"));
            }
            Trigger::Holiday { holiday, .. } if !is_slug(holiday) => {
                problems.push(problem("trigger", "UNKNOWN_HOLIDAY", format!("{holiday:?} is not a holiday id")));
            }
            _ => {}
        }
        if let Reentry::AfterDays(days) = self.reentry
            && !(1..=3650).contains(&days)
        {
            problems.push(problem("reentry", "INVALID_REENTRY", "re-entry after 1-3650 days"));
        }
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            problems.push(problem("steps", "INVALID_STEPS", format!("a journey has 1-{MAX_STEPS} steps")));
            return problems;
        }
        let mut seen = BTreeSet::new();
        for step in &self.steps {
            if !is_slug(&step.id) {
                problems.push(problem(&step.id, "INVALID_STEP_ID", "1-63 lowercase letters, digits and hyphens, starting with a letter"));
            } else if !seen.insert(step.id.as_str()) {
                problems.push(problem(&step.id, "DUPLICATE_STEP_ID", "another step has this id"));
            }
            problems.extend(check_step(step));
        }
        for step in &self.steps {
            for next in step.action.successors() {
                if !seen.contains(next) {
                    problems.push(problem(&step.id, "UNKNOWN_STEP", format!("leads to {next:?}, which is not a step of this journey")));
                }
            }
        }
        if !problems.is_empty() {
            return problems;
        }
        let by_id: BTreeMap<&str, &Step> = self.steps.iter().map(|s| (s.id.as_str(), s)).collect();
        let reachable = reachable_from(&self.steps[0].id, &by_id);
        problems.extend(
            self.steps
                .iter()
                .filter(|s| !reachable.contains(s.id.as_str()))
                .map(|s| problem(&s.id, "UNREACHABLE_STEP", "no path from the first step leads here")),
        );
        if let Some(step) = loop_without_wait(&self.steps, &by_id) {
            problems.push(problem(step, "LOOP_WITHOUT_WAIT", "this step is on a loop that has no wait step: a run could circle forever"));
        }
        problems
    }
}

/// The problems of one step's own numbers.
fn check_step(step: &Step) -> Vec<Problem> {
    let mut problems = Vec::new();
    match &step.action {
        Action::Send { template, variables, ab, .. } => {
            if template.is_empty() {
                problems.push(problem(&step.id, "MISSING_TEMPLATE", "a send step names its template"));
            }
            for (reason, message) in ab.iter().flat_map(AbTest::check) {
                problems.push(problem(&step.id, reason, message));
            }
            if variables.len() > 50 || variables.iter().any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 1000) {
                problems.push(problem(&step.id, "INVALID_VARIABLES", "at most 50 variables, names of 1-64 characters, values up to 1000"));
            }
        }
        Action::Wait { wait: Wait::Minutes(minutes), .. } if !(1..=MAX_WAIT_DAYS * 24 * 60).contains(minutes) => {
            problems.push(problem(&step.id, "INVALID_WAIT", format!("a wait lasts 1 minute to {MAX_WAIT_DAYS} days")));
        }
        Action::Wait { wait: Wait::UntilMinuteOfDay(minute), .. } if *minute >= 24 * 60 => {
            problems.push(problem(&step.id, "INVALID_TIME_OF_DAY", "a time of day is 00:00-23:59"));
        }
        Action::Branch { condition: Condition::Matches { filter }, .. } if filter.trim().is_empty() || filter.len() > 2000 => {
            problems.push(problem(&step.id, "INVALID_CONDITION", "a branch's filter is 1-2000 characters"));
        }
        Action::UpdateCustomer { add_tags, remove_tags, .. } => {
            if add_tags.is_empty() && remove_tags.is_empty() {
                problems.push(problem(&step.id, "EMPTY_UPDATE", "an update step adds or removes at least one tag"));
            }
            if add_tags.iter().chain(remove_tags).any(|t| t.trim().is_empty() || t.chars().count() > 64) {
                problems.push(problem(&step.id, "INVALID_TAG", "tags are 1-64 characters"));
            }
        }
        Action::GrantPoints { points, expire_days, reason, .. } => {
            if !(1..=MAX_POINTS_PER_STEP).contains(points) {
                problems.push(problem(&step.id, "INVALID_POINTS", format!("a step grants 1-{MAX_POINTS_PER_STEP} points")));
            }
            if !(0..=3650).contains(expire_days) {
                problems.push(problem(&step.id, "INVALID_EXPIRY", "points expire after 1-3650 days, or never (0)"));
            }
            if reason.chars().count() > 200 {
                problems.push(problem(&step.id, "INVALID_REASON", "a reason is up to 200 characters"));
            }
        }
        Action::WaitForGoal { goal, timeout_minutes, .. } => {
            if !is_goal(goal) {
                problems.push(problem(&step.id, "INVALID_GOAL", "PURCHASE, TICKET_RESOLVED or a custom goal's name (a slug)"));
            }
            if !(1..=MAX_WAIT_DAYS * 24 * 60).contains(timeout_minutes) {
                problems.push(problem(&step.id, "INVALID_WAIT", format!("a timeout of 1 minute to {MAX_WAIT_DAYS} days")));
            }
        }
        Action::Branch { condition: Condition::GoalReached { goal }, .. } if !is_goal(goal) => {
            problems.push(problem(&step.id, "INVALID_GOAL", "PURCHASE, TICKET_RESOLVED or a custom goal's name (a slug)"));
        }
        Action::IssueCoupon { valid_days, description, .. } => {
            if !(1..=MAX_COUPON_DAYS).contains(valid_days) {
                problems.push(problem(&step.id, "INVALID_VALIDITY", format!("a coupon is valid for 1-{MAX_COUPON_DAYS} days")));
            }
            if description.chars().count() > 200 {
                problems.push(problem(&step.id, "INVALID_DESCRIPTION", "a description is up to 200 characters"));
            }
        }
        _ => {}
    }
    problems
}

/// Whether `goal` names a goal: a built-in one or a custom goal's name.
pub fn is_goal(goal: &str) -> bool {
    matches!(goal, "PURCHASE" | "TICKET_RESOLVED") || is_slug(goal)
}

/// Whether a step holds a run for a while (so a loop through it is no tight circle).
fn waits(action: &Action) -> bool {
    matches!(action, Action::Wait { .. } | Action::WaitForGoal { .. })
}

/// The ids reachable from `first`.
fn reachable_from<'a>(first: &'a str, by_id: &BTreeMap<&'a str, &'a Step>) -> BTreeSet<&'a str> {
    let mut reached = BTreeSet::from([first]);
    let mut frontier = vec![first];
    while let Some(id) = frontier.pop() {
        for next in by_id[id].action.successors() {
            if reached.insert(next) {
                frontier.push(next);
            }
        }
    }
    reached
}

/// A step on a cycle of the graph without its wait steps (a loop a run
/// could go round without ever waiting), if there is one.
fn loop_without_wait<'a>(steps: &'a [Step], by_id: &BTreeMap<&'a str, &'a Step>) -> Option<&'a str> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    // Iterative depth-first search over the steps that do not wait; an edge back to an open step closes a loop.
    let mut marks: BTreeMap<&str, Mark> = BTreeMap::new();
    for start in steps.iter().filter(|s| !waits(&s.action)) {
        if marks.contains_key(start.id.as_str()) {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start.id.as_str(), 0)];
        marks.insert(start.id.as_str(), Mark::Open);
        while let Some(&(id, child)) = stack.last() {
            let successors: Vec<&str> = by_id[id].action.successors().into_iter().filter(|n| !waits(&by_id[n].action)).collect();
            match successors.get(child) {
                Some(&next) => {
                    stack.last_mut().expect("not empty").1 += 1;
                    match marks.get(next) {
                        Some(Mark::Open) => return Some(next),
                        Some(Mark::Done) => {}
                        None => {
                            marks.insert(next, Mark::Open);
                            stack.push((next, 0));
                        }
                    }
                }
                None => {
                    marks.insert(id, Mark::Done);
                    stack.pop();
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(id: &str, next: Option<&str>) -> Step {
        Step {
            id: id.into(),
            action: Action::Send {
                template: "t".into(),
                variables: BTreeMap::new(),
                next: next.map(Into::into),
                ab: None,
                questionnaire: None,
            },
        }
    }

    fn wait(id: &str, minutes: i64, next: Option<&str>) -> Step {
        Step { id: id.into(), action: Action::Wait { wait: Wait::Minutes(minutes), next: next.map(Into::into) } }
    }

    fn branch(id: &str, if_true: &str, if_false: &str) -> Step {
        let condition = Condition::InSegment { segment: "s".into() };
        Step { id: id.into(), action: Action::Branch { condition, if_true: if_true.into(), if_false: if_false.into() } }
    }

    fn exit(id: &str) -> Step {
        Step { id: id.into(), action: Action::Exit }
    }

    fn journey(steps: Vec<Step>) -> Definition {
        Definition { trigger: Trigger::Api, steps, reentry: Reentry::Never, exit_on_purchase: false }
    }

    fn reasons(d: &Definition) -> Vec<(String, &'static str)> {
        d.check().into_iter().map(|p| (p.subject, p.reason)).collect()
    }

    #[test]
    fn a_welcome_series_with_a_reminder_loop_through_a_wait_is_fine() {
        let d = journey(vec![
            send("welcome", Some("pause")),
            wait("pause", 3 * 24 * 60, Some("bought")),
            branch("bought", "done", "nudge"),
            send("nudge", Some("pause")),
            exit("done"),
        ]);
        assert_eq!(reasons(&d), []);
        assert_eq!(d.templates(), BTreeSet::from(["t"]));
        assert_eq!(d.segments(), BTreeSet::from(["s"]));
    }

    #[test]
    fn a_loop_without_a_wait_is_refused_naming_a_step_on_it() {
        let d = journey(vec![send("a", Some("b")), branch("b", "c", "d"), send("c", Some("a")), exit("d")]);
        let found = reasons(&d);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, "LOOP_WITHOUT_WAIT");
        assert!(["a", "b", "c"].contains(&found[0].0.as_str()), "{found:?}");
        // A step that leads to itself is the smallest such loop.
        assert_eq!(reasons(&journey(vec![send("a", Some("a"))])), [("a".to_owned(), "LOOP_WITHOUT_WAIT")]);
    }

    #[test]
    fn unreachable_and_unknown_steps_are_named() {
        let d = journey(vec![send("a", Some("c")), send("b", None), exit("c")]);
        assert_eq!(reasons(&d), [("b".to_owned(), "UNREACHABLE_STEP")]);
        let d = journey(vec![send("a", Some("nowhere"))]);
        assert_eq!(reasons(&d), [("a".to_owned(), "UNKNOWN_STEP")]);
        let d = journey(vec![send("a", None), send("a", None)]);
        assert_eq!(reasons(&d), [("a".to_owned(), "DUPLICATE_STEP_ID")]);
        let d = journey(vec![send("Bad Id", None)]);
        assert_eq!(reasons(&d), [("Bad Id".to_owned(), "INVALID_STEP_ID")]);
    }

    #[test]
    fn each_steps_numbers_are_checked() {
        let d = journey(vec![
            wait("w", 0, Some("x")),
            Step { id: "x".into(), action: Action::UpdateCustomer { add_tags: vec![], remove_tags: vec![], next: None } },
        ]);
        assert_eq!(reasons(&d), [("w".to_owned(), "INVALID_WAIT"), ("x".to_owned(), "EMPTY_UPDATE")]);
        let d = Definition { trigger: Trigger::Birthday { minute_of_day: 24 * 60 }, ..journey(vec![exit("e")]) };
        assert_eq!(reasons(&d), [("trigger".to_owned(), "INVALID_TIME_OF_DAY")]);
        let d = Definition { reentry: Reentry::AfterDays(0), ..journey(vec![exit("e")]) };
        assert_eq!(reasons(&d), [("reentry".to_owned(), "INVALID_REENTRY")]);
        assert_eq!(reasons(&journey(vec![])), [("steps".to_owned(), "INVALID_STEPS")]);
    }

    #[test]
    fn a_long_chain_is_checked_without_recursion() {
        let steps: Vec<Step> =
            (0..MAX_STEPS).map(|i| send(&format!("s{i}"), (i + 1 < MAX_STEPS).then(|| format!("s{}", i + 1)).as_deref())).collect();
        assert_eq!(reasons(&journey(steps)), []);
    }
}
