//! The ticket lifecycle as an explicit state machine.
//!
//! ```text
//! NEW ──► OPEN ◄──► PENDING (waiting on the customer; SLA clock paused)
//!  │       │           │
//!  └───────┴─► RESOLVED ◄┘ ──► CLOSED
//!              │  ▲
//!              └──┘ reopen: RESOLVED → OPEN
//!
//! NEW, OPEN, PENDING ──merge──► CLOSED   (a duplicate folded into another ticket)
//! ```
//!
//! The merge edge is the one way to CLOSED that skips RESOLVED: the duplicate
//! was never solved on its own, its matter lives on in the surviving ticket.
//! It is not a move a caller can request with a status; only MergeTickets
//! takes it, through [`Status::close_as_duplicate`].

use std::fmt;

/// Where a ticket is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Just arrived, not yet worked.
    New,
    /// Being worked.
    Open,
    /// Waiting on the customer; the SLA clock is paused.
    Pending,
    /// Solved; may be reopened or closed.
    Resolved,
    /// Final.
    Closed,
}

/// All statuses, in lifecycle order.
pub const ALL: [Status; 5] = [Status::New, Status::Open, Status::Pending, Status::Resolved, Status::Closed];

impl Status {
    /// The statuses a ticket in `self` may move to.
    pub fn successors(self) -> &'static [Status] {
        use Status::*;
        match self {
            New => &[Open, Pending, Resolved],
            Open => &[Pending, Resolved],
            Pending => &[Open, Resolved],
            Resolved => &[Open, Closed],
            Closed => &[],
        }
    }

    /// Checks a move to `to`, naming the allowed moves when it is invalid.
    pub fn transition(self, to: Status) -> Result<Status, InvalidTransition> {
        if self.successors().contains(&to) { Ok(to) } else { Err(InvalidTransition { from: self, to, allowed: self.successors() }) }
    }

    /// The merge edge: an open ticket (NEW, OPEN, PENDING) closes as a
    /// duplicate; a RESOLVED or CLOSED one cannot be merged.
    pub fn close_as_duplicate(self) -> Result<Status, InvalidTransition> {
        if self.is_open() {
            Ok(Status::Closed)
        } else {
            Err(InvalidTransition { from: self, to: Status::Closed, allowed: self.successors() })
        }
    }

    /// Whether the SLA clock runs in this status (it pauses while waiting on
    /// the customer and stops once the ticket is resolved).
    pub fn sla_clock_runs(self) -> bool {
        matches!(self, Status::New | Status::Open)
    }

    /// Whether the ticket still needs work.
    pub fn is_open(self) -> bool {
        matches!(self, Status::New | Status::Open | Status::Pending)
    }

    /// Stored and wire name, e.g. "PENDING".
    pub fn name(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Open => "OPEN",
            Status::Pending => "PENDING",
            Status::Resolved => "RESOLVED",
            Status::Closed => "CLOSED",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Status> {
        ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A move the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} ticket cannot become {to}; allowed: {}", allowed.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "))]
pub struct InvalidTransition {
    /// Current status.
    pub from: Status,
    /// Requested status.
    pub to: Status,
    /// What would have been allowed.
    pub allowed: &'static [Status],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifecycle_allows_exactly_the_documented_moves() {
        use Status::*;
        let allowed: Vec<(Status, Status)> = ALL.iter().flat_map(|from| from.successors().iter().map(move |to| (*from, *to))).collect();
        assert_eq!(
            allowed,
            [
                (New, Open),
                (New, Pending),
                (New, Resolved),
                (Open, Pending),
                (Open, Resolved),
                (Pending, Open),
                (Pending, Resolved),
                (Resolved, Open),
                (Resolved, Closed)
            ]
        );
        for from in ALL {
            for to in ALL {
                assert_eq!(from.transition(to).is_ok(), allowed.contains(&(from, to)), "{from} → {to}");
            }
        }
    }

    #[test]
    fn invalid_moves_name_the_allowed_ones() {
        let err = Status::Closed.transition(Status::Open).unwrap_err();
        assert_eq!(err.to_string(), "a CLOSED ticket cannot become OPEN; allowed: ");
        let err = Status::Pending.transition(Status::Closed).unwrap_err();
        assert_eq!(err.allowed, &[Status::Open, Status::Resolved]);
    }

    #[test]
    fn the_sla_clock_runs_only_while_the_ticket_is_worked() {
        assert!(Status::New.sla_clock_runs() && Status::Open.sla_clock_runs());
        assert!(!Status::Pending.sla_clock_runs() && !Status::Resolved.sla_clock_runs() && !Status::Closed.sla_clock_runs());
        assert!(ALL.iter().all(|s| Status::parse(s.name()) == Some(*s)));
    }
}
