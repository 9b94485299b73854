//! Use cases of the tickets service. Each public method runs in one tenant
//! transaction and carries out what `domain/` decides — a transition's
//! effects, a dispatch choice, an escalation — through `store/`, writing the
//! timeline entry and the outbox event of every change. Handlers (`api/`)
//! and background jobs (`jobs/`) call these; nothing here sees a gRPC request.
//!
//! # Layout
//! - [`tickets`]: intake, edits, deletion, comments and reads.
//! - [`lifecycle`]: status changes and the effects they imply.
//! - [`dispatch`]: automatic assignment, the team queue, manual assignment.
//! - [`sla`]: SLA clocks (start, follow, rebase), recording warnings and breaches, escalation.
//! - [`merge`]: folding duplicates into one ticket.
//! - [`follow_ups`]: completing follow-up visits.
//! - [`settings`]: the tenant's settings and the values that apply.
//! - `context`: the [`App`] handle and the locked reads a change starts with.
//! - `events`: the outbox events of ticket changes.

mod context;
mod dispatch;
pub mod erasure;
mod events;
pub mod follow_ups;
pub mod lifecycle;
pub mod merge;
pub mod settings;
pub mod sla;
pub mod tickets;

pub use context::App;
pub use dispatch::{Assignment, Member, ensure_team};
pub use lifecycle::Move;
