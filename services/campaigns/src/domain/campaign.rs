//! A campaign's lifecycle and the effects each move implies.
//!
//! ```text
//!  DRAFT ──start──► SCHEDULED ──begin sending──► RUNNING ──complete──► COMPLETED
//!                       │       (schedule time,   │   ▲
//!                       │        audience stored) │   │
//!                       │                    pause│   │resume
//!                       │                         ▼   │
//!                       │                        PAUSED
//!                       └──────────cancel (from SCHEDULED, RUNNING or PAUSED)──────────► CANCELLED
//! ```
//! Only a DRAFT is edited or deleted; COMPLETED and CANCELLED are final.

use chrono::{DateTime, Utc};

/// Where a campaign stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Draft,
    Scheduled,
    Running,
    Paused,
    Completed,
    Cancelled,
}

impl State {
    /// Stored and API short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "DRAFT",
            Self::Scheduled => "SCHEDULED",
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::Completed => "COMPLETED",
            Self::Cancelled => "CANCELLED",
        }
    }

    /// The state named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Draft, Self::Scheduled, Self::Running, Self::Paused, Self::Completed, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

impl TryFrom<String> for State {
    type Error = super::channel::UnknownName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| super::channel::UnknownName::new("campaign state", value))
    }
}

/// A move asked of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// StartCampaign: sending begins at `at` (its schedule time, or now).
    Start {
        at: DateTime<Utc>,
    },
    /// The job stored the audience and the schedule time has come.
    BeginSending,
    Pause,
    Resume,
    Cancel,
    /// The job found nothing left to send.
    Complete,
}

/// What a move requires besides the new state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The campaign job looks at the campaign from `at` on.
    WakeJobAt(DateTime<Utc>),
    /// The campaign job has nothing more to do for it.
    DropJob,
    /// Its queued messages are held (not claimed until released; the first
    /// batch at once, the rest by the campaign job — until then dispatch
    /// sends nothing of a campaign that is not RUNNING anyway).
    HoldQueued,
    /// Its held messages are due (again): those stored by the snapshot wait
    /// until the campaign runs, those of a paused campaign until it resumes
    /// (the first batch at once, the rest by the campaign job).
    ReleaseQueued,
    /// Its queued messages are cancelled and leave the queue (the first
    /// batch at once, the rest by the campaign job).
    CancelQueued,
    /// `start_time` is stamped.
    StampStart,
    /// `run_time` is stamped.
    StampRun,
    /// `end_time` is stamped.
    StampEnd,
}

/// A refused move: the campaign is not in a state that allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidMove {
    pub from: State,
    pub allowed_from: &'static [State],
}

/// The state `from` moves to by `m`, with the effects the move implies.
pub fn apply(from: State, m: Move, now: DateTime<Utc>) -> Result<(State, Vec<Effect>), InvalidMove> {
    use Effect::*;
    use State::*;
    let (allowed_from, to, effects): (&'static [State], State, Vec<Effect>) = match m {
        Move::Start { at } => (&[Draft], Scheduled, vec![StampStart, WakeJobAt(at.max(now))]),
        Move::BeginSending => (&[Scheduled], Running, vec![StampRun, ReleaseQueued, WakeJobAt(now)]),
        Move::Pause => (&[Running], Paused, vec![HoldQueued, WakeJobAt(now)]),
        Move::Resume => (&[Paused], Running, vec![ReleaseQueued, WakeJobAt(now)]),
        // The first batch in the move itself, the rest by the campaign job (a million queued messages do not fit in a request).
        Move::Cancel => (&[Scheduled, Running, Paused], Cancelled, vec![CancelQueued, WakeJobAt(now), StampEnd]),
        Move::Complete => (&[Running], Completed, vec![DropJob, StampEnd]),
    };
    if allowed_from.contains(&from) { Ok((to, effects)) } else { Err(InvalidMove { from, allowed_from }) }
}

/// Whether a campaign in `state` may be edited or deleted.
pub fn editable(state: State) -> bool {
    state == State::Draft
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [State; 6] = [State::Draft, State::Scheduled, State::Running, State::Paused, State::Completed, State::Cancelled];

    #[test]
    fn the_happy_path_runs_from_draft_to_completed() {
        let now = Utc::now();
        let later = now + chrono::Duration::hours(2);
        let (s, e) = apply(State::Draft, Move::Start { at: later }, now).unwrap();
        assert_eq!((s, e), (State::Scheduled, vec![Effect::StampStart, Effect::WakeJobAt(later)]));
        let (s, e) = apply(s, Move::BeginSending, now).unwrap();
        assert_eq!(e, vec![Effect::StampRun, Effect::ReleaseQueued, Effect::WakeJobAt(now)], "the stored audience is released");
        let (s, e) = apply(s, Move::Pause, now).unwrap();
        assert_eq!((s, e), (State::Paused, vec![Effect::HoldQueued, Effect::WakeJobAt(now)]));
        let (s, e) = apply(s, Move::Resume, now).unwrap();
        assert_eq!((s, e), (State::Running, vec![Effect::ReleaseQueued, Effect::WakeJobAt(now)]));
        assert_eq!(apply(s, Move::Complete, now).unwrap().0, State::Completed);
    }

    #[test]
    fn a_schedule_time_in_the_past_means_now() {
        let now = Utc::now();
        let (_, e) = apply(State::Draft, Move::Start { at: now - chrono::Duration::days(1) }, now).unwrap();
        assert_eq!(e, vec![Effect::StampStart, Effect::WakeJobAt(now)]);
    }

    #[test]
    fn final_states_accept_no_move_and_only_drafts_are_edited() {
        let now = Utc::now();
        for end in [State::Completed, State::Cancelled] {
            for m in [Move::Start { at: now }, Move::BeginSending, Move::Pause, Move::Resume, Move::Cancel, Move::Complete] {
                assert!(apply(end, m, now).is_err(), "{end:?} must refuse {m:?}");
            }
        }
        assert_eq!(ALL.iter().filter(|s| editable(**s)).collect::<Vec<_>>(), vec![&State::Draft]);
    }

    #[test]
    fn cancelling_drops_what_is_queued_from_any_live_state() {
        let now = Utc::now();
        for from in [State::Scheduled, State::Running, State::Paused] {
            let (to, effects) = apply(from, Move::Cancel, now).unwrap();
            assert_eq!(to, State::Cancelled);
            assert!(
                effects.contains(&Effect::CancelQueued) && effects.contains(&Effect::WakeJobAt(now)),
                "the job finishes the cancelling"
            );
        }
        assert!(apply(State::Draft, Move::Cancel, now).is_err(), "a draft is deleted, not cancelled");
    }
}
