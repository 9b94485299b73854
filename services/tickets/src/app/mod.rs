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
//! - `events`: the outbox events of ticket changes.

mod dispatch;
mod events;
pub mod follow_ups;
pub mod lifecycle;
pub mod merge;
pub mod sla;
pub mod tickets;

use chrono::Duration;
use crm_kit::{
    Error,
    db::{TenantTx, begin_tenant},
};
use sqlx::PgPool;
use uuid::Uuid;

pub use dispatch::{Assignment, Member, ensure_team};
pub use lifecycle::Move;

use crate::{domain::ticket::Ticket, resources::TICKET, store};

/// The tickets workflow over one database.
#[derive(Clone)]
pub struct App {
    pool: PgPool,
    follow_up_delay: Duration,
}

impl App {
    /// Use cases over `pool`; a resolution schedules its follow-up visit `follow_up_delay` later.
    pub fn new(pool: PgPool, follow_up_delay: Duration) -> Self {
        Self { pool, follow_up_delay }
    }

    /// The pool, for the read-only handlers of configuration resources.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self, tenant: Uuid) -> Result<TenantTx, Error> {
        begin_tenant(&self.pool, tenant).await
    }
}

/// The ticket, or NOT_FOUND; `lock` holds it until the transaction ends.
async fn existing(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<Ticket, Error> {
    store::find(tx, tenant, id, lock).await?.ok_or_else(|| TICKET.not_found(id))
}

/// Locks a ticket for a change, checking the caller's etag (empty: no check).
async fn lock_for_change(tx: &mut TenantTx, tenant: Uuid, id: Uuid, etag: &str) -> Result<Ticket, Error> {
    crm_kit::etag::parse(etag, "etag")?;
    let ticket = existing(tx, tenant, id, true).await?;
    TICKET.check_etag(etag, "etag", id, ticket.revision)?;
    Ok(ticket)
}

/// FAILED_PRECONDITION for a soft-deleted ticket, which takes no work until undeleted.
fn ensure_live(ticket: &Ticket) -> Result<(), Error> {
    if ticket.is_live() {
        return Ok(());
    }
    Err(Error::FailedPrecondition {
        reason: "TICKET_DELETED",
        message: "the ticket is deleted; undelete it first".to_owned(),
        subject: TICKET.name(ticket.id),
    })
}
