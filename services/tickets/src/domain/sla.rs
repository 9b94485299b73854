//! An SLA clock: business time consumed towards a target, paused while the
//! ticket waits on the customer, with the due time, warning and breach that
//! follow from it; a ticket's two tracked targets ([`SlaTracking`]); the
//! steps the SLA job records ([`due_steps`]) and the escalation of a breach
//! ([`escalation`]).
//!
//! The clock stores only what cannot be recomputed — the business time used
//! before the current running period and when that period began — so due
//! times stay exact however often the ticket is paused and resumed.

use chrono::{DateTime, Duration, Utc};

use super::{
    calendar::BusinessCalendar,
    status::Status,
    ticket::{Priority, SlaTracking, Ticket},
};

/// How close to its target an SLA is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SlaState {
    /// Below the warning threshold.
    OnTrack,
    /// At or past the warning threshold (e.g. 80 % of the target).
    Warning,
    /// The target is used up.
    Breached,
}

/// Business time consumed towards one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaClock {
    /// Business time used in earlier running periods.
    pub consumed: Duration,
    /// Start of the current running period; `None` while paused or stopped.
    pub running_since: Option<DateTime<Utc>>,
}

impl SlaClock {
    /// A clock running from `at`.
    pub fn start(at: DateTime<Utc>) -> Self {
        Self { consumed: Duration::zero(), running_since: Some(at) }
    }

    /// Stops the clock at `at`, banking the business time of the running period.
    pub fn pause(&mut self, calendar: &BusinessCalendar, at: DateTime<Utc>) {
        if let Some(since) = self.running_since.take() {
            self.consumed += calendar.between(since, at);
        }
    }

    /// Runs the clock again from `at` (no effect if it is running).
    pub fn resume(&mut self, at: DateTime<Utc>) {
        self.running_since.get_or_insert(at);
    }

    /// Business time consumed up to `at`.
    pub fn consumed_at(&self, calendar: &BusinessCalendar, at: DateTime<Utc>) -> Duration {
        self.consumed + self.running_since.map_or(Duration::zero(), |since| calendar.between(since, at))
    }

    /// When `target` will be used up if the clock keeps running; `None` while
    /// paused (no due time) or if the calendar never opens again. A target
    /// already used up is due when the current period began.
    pub fn due(&self, calendar: &BusinessCalendar, target: Duration) -> Option<DateTime<Utc>> {
        let since = self.running_since?;
        calendar.add(since, (target - self.consumed).max(Duration::zero()))
    }

    /// The state at `at` for `target`, warning at `warn_ratio` (0.0-1.0) of it.
    pub fn state(&self, calendar: &BusinessCalendar, target: Duration, warn_ratio: f64, at: DateTime<Utc>) -> SlaState {
        let used = self.consumed_at(calendar, at);
        let warn_at = Duration::milliseconds((target.num_milliseconds() as f64 * warn_ratio.clamp(0.0, 1.0)) as i64);
        if used >= target {
            SlaState::Breached
        } else if used >= warn_at {
            SlaState::Warning
        } else {
            SlaState::OnTrack
        }
    }
}

/// Which clocks should run for a ticket: both only while it is NEW or OPEN,
/// first response only until the first public reply.
pub fn clocks_should_run(status: Status, first_response_given: bool) -> (bool, bool) {
    let runs = status.sla_clock_runs();
    (runs && !first_response_given, runs)
}

impl SlaTracking {
    /// The (first response, resolution) targets tracked, if the ticket has a policy.
    pub fn targets(&self) -> (Option<Tracked>, Option<Tracked>) {
        (
            tracked(self.fr_target_ms, self.fr_consumed_ms, self.fr_since, self.fr_breached, self.sla_warning_ratio),
            tracked(self.res_target_ms, self.res_consumed_ms, self.res_since, self.res_breached, self.sla_warning_ratio),
        )
    }

    /// This tracking with both targets written back, their due and warning instants on `calendar`.
    pub fn with_targets(&self, calendar: &BusinessCalendar, fr: Option<Tracked>, res: Option<Tracked>) -> SlaTracking {
        let mut s = self.clone();
        if let Some(t) = fr {
            let (due, warn) = t.instants(calendar);
            (s.fr_consumed_ms, s.fr_since, s.fr_due, s.fr_warn_at, s.fr_breached) =
                (t.clock.consumed.num_milliseconds(), t.clock.running_since, due, warn, t.breached);
        }
        if let Some(t) = res {
            let (due, warn) = t.instants(calendar);
            (s.res_consumed_ms, s.res_since, s.res_due, s.res_warn_at, s.res_breached) =
                (t.clock.consumed.num_milliseconds(), t.clock.running_since, due, warn, t.breached);
        }
        s
    }

    /// The clocks paused or resumed at `now` to match `should_run` (first response, resolution).
    pub fn followed(&self, calendar: &BusinessCalendar, should_run: (bool, bool), now: DateTime<Utc>) -> SlaTracking {
        let (mut fr, mut res) = self.targets();
        for (target, run) in [(&mut fr, should_run.0), (&mut res, should_run.1)] {
            if let Some(t) = target {
                match (t.clock.running_since.is_some(), run) {
                    (true, false) => t.pause(calendar, now),
                    (false, true) => t.resume(now),
                    _ => {}
                }
            }
        }
        self.with_targets(calendar, fr, res)
    }

    /// The running clocks moved from calendar `old` to `new` at `now`: business
    /// time used so far is banked under `old`, the rest runs on `new`.
    pub fn rebased(&self, old: &BusinessCalendar, new: &BusinessCalendar, now: DateTime<Utc>) -> SlaTracking {
        let (mut fr, mut res) = self.targets();
        for t in [&mut fr, &mut res].into_iter().flatten() {
            if t.clock.running_since.is_some() {
                t.pause(old, now);
                t.resume(now);
            }
        }
        self.with_targets(new, fr, res)
    }

    /// (first response, resolution) states at `now`, from the stored instants only.
    pub fn states(&self, now: DateTime<Utc>) -> (Option<SlaState>, Option<SlaState>) {
        let (fr, res) = self.targets();
        (fr.map(|t| t.state_at(now, self.fr_due, self.fr_warn_at)), res.map(|t| t.state_at(now, self.res_due, self.res_warn_at)))
    }
}

fn tracked(target_ms: Option<i64>, consumed_ms: i64, since: Option<DateTime<Utc>>, breached: bool, ratio: f64) -> Option<Tracked> {
    Some(Tracked {
        target: Duration::milliseconds(target_ms?),
        warn_ratio: ratio,
        clock: SlaClock { consumed: Duration::milliseconds(consumed_ms), running_since: since },
        breached,
    })
}

/// The SLA steps the job records for a ticket at `now`: a warning once its
/// instant passes (or the target is missed), a breach once the target is
/// missed, each at most once per target. Returns the tracking with the
/// "recorded" flags set, and the steps in order.
pub fn due_steps(s: &SlaTracking, now: DateTime<Utc>) -> (SlaTracking, Vec<(SlaStep, SlaTarget)>) {
    let mut s = s.clone();
    let mut steps = Vec::new();
    let targets = [
        (SlaTarget::FirstResponse, s.fr_warn_at, s.fr_due, s.fr_breached, &mut s.fr_warn_recorded, &mut s.fr_breach_recorded),
        (SlaTarget::Resolution, s.res_warn_at, s.res_due, s.res_breached, &mut s.res_warn_recorded, &mut s.res_breach_recorded),
    ];
    for (target, warn_at, due, breached, warn_recorded, breach_recorded) in targets {
        let missed = breached || due.is_some_and(|d| now >= d);
        if !*warn_recorded && (missed || warn_at.is_some_and(|w| now >= w)) {
            *warn_recorded = true;
            steps.push((SlaStep::Warning, target));
        }
        if missed && !*breach_recorded {
            *breach_recorded = true;
            steps.push((SlaStep::Breach, target));
        }
    }
    (s, steps)
}

/// A step the SLA job records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaStep {
    /// The warning share of the target is used up.
    Warning,
    /// The target is missed: escalate.
    Breach,
}

/// One of a ticket's two SLA targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaTarget {
    /// Until the first public reply.
    FirstResponse,
    /// Until the ticket is resolved.
    Resolution,
}

impl SlaTarget {
    /// Name in events, timeline entries and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::FirstResponse => "first_response",
            Self::Resolution => "resolution",
        }
    }
}

/// What escalating a breached ticket changes: one priority level up and, when
/// the team has a lead, the lead takes it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub priority: Priority,
    pub assignee: String,
    /// Timeline detail, e.g. "resolution target missed; priority HIGH → URGENT".
    pub detail: String,
    /// The previous assignee was relieved: their capacity frees up.
    pub frees_capacity: bool,
}

/// The escalation of `ticket` after missing `target`, given the team lead ("" if none).
pub fn escalation(ticket: &Ticket, target: SlaTarget, team_lead: &str) -> Escalation {
    let priority = ticket.priority.raised();
    let assignee = if team_lead.is_empty() { ticket.assignee.clone() } else { team_lead.to_owned() };
    let mut detail = format!("{} target missed", target.name());
    if priority != ticket.priority {
        detail.push_str(&format!("; priority {} → {priority}", ticket.priority));
    }
    if assignee != ticket.assignee {
        let from = if ticket.assignee.is_empty() { "nobody" } else { &ticket.assignee };
        detail.push_str(&format!("; reassigned {from} → {assignee} (team lead)"));
    }
    let frees_capacity = assignee != ticket.assignee && !ticket.assignee.is_empty();
    Escalation { priority, assignee, detail, frees_capacity }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::calendar::Hours;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Weekdays 09:00-17:00 UTC.
    fn weekdays() -> BusinessCalendar {
        let day = vec![Hours::from_hours(9, 17)];
        BusinessCalendar::new(chrono_tz::UTC, [day.clone(), day.clone(), day.clone(), day.clone(), day, vec![], vec![]], []).unwrap()
    }

    #[test]
    fn pausing_moves_the_due_time_by_the_business_time_spent_waiting() {
        let cal = weekdays();
        let target = Duration::hours(4);
        // Monday 2026-11-23 10:00: 4 business hours → due 14:00.
        let mut clock = SlaClock::start(utc("2026-11-23T10:00:00Z"));
        assert_eq!(clock.due(&cal, target), Some(utc("2026-11-23T14:00:00Z")));
        // Waiting on the customer from 11:00 to Tuesday 10:00: no due time meanwhile.
        clock.pause(&cal, utc("2026-11-23T11:00:00Z"));
        assert_eq!(clock.due(&cal, target), None);
        assert_eq!(clock.consumed_at(&cal, utc("2026-11-24T09:30:00Z")), Duration::hours(1));
        clock.resume(utc("2026-11-24T10:00:00Z"));
        // 3 hours left from Tuesday 10:00 → 13:00.
        assert_eq!(clock.due(&cal, target), Some(utc("2026-11-24T13:00:00Z")));
        // Resuming twice keeps the first start.
        clock.resume(utc("2026-11-24T11:00:00Z"));
        assert_eq!(clock.due(&cal, target), Some(utc("2026-11-24T13:00:00Z")));
    }

    #[test]
    fn warning_and_breach_follow_consumed_business_time() {
        let cal = weekdays();
        let target = Duration::hours(10);
        let clock = SlaClock::start(utc("2026-11-23T09:00:00Z"));
        assert_eq!(clock.state(&cal, target, 0.8, utc("2026-11-23T16:59:00Z")), SlaState::OnTrack);
        // 8 h on Monday = 80 % → warning, even through the night.
        assert_eq!(clock.state(&cal, target, 0.8, utc("2026-11-24T08:00:00Z")), SlaState::Warning);
        assert_eq!(clock.state(&cal, target, 0.8, utc("2026-11-24T11:00:00Z")), SlaState::Breached);
        assert_eq!(clock.due(&cal, target), Some(utc("2026-11-24T11:00:00Z")));
    }

    #[test]
    fn a_target_used_up_before_a_pause_is_due_on_resume() {
        let cal = weekdays();
        let mut clock = SlaClock::start(utc("2026-11-23T09:00:00Z"));
        clock.pause(&cal, utc("2026-11-23T12:00:00Z"));
        clock.resume(utc("2026-11-24T09:00:00Z"));
        assert_eq!(clock.due(&cal, Duration::hours(2)), Some(utc("2026-11-24T09:00:00Z")));
    }
}

/// One SLA target being tracked for a ticket: the clock plus what is stored
/// so that reads need no calendar (due and warning instants while running).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tracked {
    /// Business time allowed.
    pub target: Duration,
    /// Share of the target at which the SLA is at risk.
    pub warn_ratio: f64,
    /// The clock.
    pub clock: SlaClock,
    /// Set once the target was found used up when the clock stopped or paused.
    pub breached: bool,
}

impl Tracked {
    /// A target whose clock runs from `at`.
    pub fn start(target: Duration, warn_ratio: f64, at: DateTime<Utc>) -> Self {
        Self { target, warn_ratio, clock: SlaClock::start(at), breached: false }
    }

    /// Stops or pauses the clock at `at`, noting a breach.
    pub fn pause(&mut self, calendar: &BusinessCalendar, at: DateTime<Utc>) {
        self.clock.pause(calendar, at);
        self.breached |= self.clock.consumed >= self.target;
    }

    /// Runs the clock again from `at`.
    pub fn resume(&mut self, at: DateTime<Utc>) {
        self.clock.resume(at);
    }

    fn warn_target(&self) -> Duration {
        Duration::milliseconds((self.target.num_milliseconds() as f64 * self.warn_ratio.clamp(0.0, 1.0)) as i64)
    }

    /// (due, warning) instants while running; `None`s while paused or stopped.
    pub fn instants(&self, calendar: &BusinessCalendar) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        (self.clock.due(calendar, self.target), self.clock.due(calendar, self.warn_target()))
    }

    /// The state at `now` from stored values only: while running, the stored
    /// `due`/`warn_at` instants decide; while paused, the banked business time.
    pub fn state_at(&self, now: DateTime<Utc>, due: Option<DateTime<Utc>>, warn_at: Option<DateTime<Utc>>) -> SlaState {
        if self.breached {
            return SlaState::Breached;
        }
        match (self.clock.running_since, due) {
            (Some(_), Some(due)) if now >= due => SlaState::Breached,
            (Some(_), _) if warn_at.is_some_and(|w| now >= w) => SlaState::Warning,
            (Some(_), _) => SlaState::OnTrack,
            (None, _) if self.clock.consumed >= self.target => SlaState::Breached,
            (None, _) if self.clock.consumed >= self.warn_target() => SlaState::Warning,
            (None, _) => SlaState::OnTrack,
        }
    }
}

#[cfg(test)]
mod tracked_tests {
    use super::*;
    use crate::domain::calendar::BusinessCalendar;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn state_from_stored_instants_matches_the_clock() {
        let cal = BusinessCalendar::always_open(chrono_tz::UTC);
        let start = utc("2026-11-23T10:00:00Z");
        let mut t = Tracked::start(Duration::hours(10), 0.8, start);
        let (due, warn) = t.instants(&cal);
        assert_eq!((due, warn), (Some(utc("2026-11-23T20:00:00Z")), Some(utc("2026-11-23T18:00:00Z"))));
        assert_eq!(t.state_at(utc("2026-11-23T17:59:00Z"), due, warn), SlaState::OnTrack);
        assert_eq!(t.state_at(utc("2026-11-23T18:00:00Z"), due, warn), SlaState::Warning);
        assert_eq!(t.state_at(utc("2026-11-23T20:00:00Z"), due, warn), SlaState::Breached);
        // Paused at 19:00 (9 h used): warning, whatever the wall clock says later.
        t.pause(&cal, utc("2026-11-23T19:00:00Z"));
        assert_eq!(t.instants(&cal), (None, None));
        assert_eq!(t.state_at(utc("2026-12-01T00:00:00Z"), None, None), SlaState::Warning);
        // Stopped after the target: breached for good.
        t.resume(utc("2026-11-24T10:00:00Z"));
        t.pause(&cal, utc("2026-11-24T12:00:00Z"));
        assert!(t.breached);
        t.resume(utc("2026-11-25T10:00:00Z"));
        assert_eq!(t.state_at(utc("2026-11-25T10:00:01Z"), t.instants(&cal).0, t.instants(&cal).1), SlaState::Breached);
    }
}
