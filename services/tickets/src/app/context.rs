//! What every use case starts from: the [`App`] handle (pool and settings)
//! and the reads a change begins with — the ticket, locked and checked
//! against the caller's etag, and live.

use chrono::Duration;
use crm_kit::{
    Error,
    db::{TenantTx, begin_tenant},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{domain::ticket::Ticket, resources::TICKET, store};

/// The tickets workflow over one database.
#[derive(Clone)]
pub struct App {
    pub(super) pool: PgPool,
    pub(super) follow_up_delay: Duration,
}

impl App {
    /// Use cases over `pool`; a resolution schedules its follow-up visit `follow_up_delay` later.
    pub fn new(pool: PgPool, follow_up_delay: Duration) -> Self {
        Self { pool, follow_up_delay }
    }

    /// The pool, for handlers of configuration resources (teams, rules,
    /// calendars, policies) whose reads and writes are one store call each.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(super) async fn begin(&self, tenant: Uuid) -> Result<TenantTx, Error> {
        begin_tenant(&self.pool, tenant).await
    }
}

/// The ticket, or NOT_FOUND; `lock` holds it until the transaction ends.
pub(super) async fn existing(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<Ticket, Error> {
    store::TICKETS.find(tx, tenant, id, lock).await?.ok_or_else(|| TICKET.not_found(id))
}

/// Locks a ticket for a change, checking the caller's etag (empty: no check).
pub(super) async fn lock_for_change(tx: &mut TenantTx, tenant: Uuid, id: Uuid, etag: &str) -> Result<Ticket, Error> {
    store::TICKETS.lock_for_change(tx, tenant, id, &TICKET, etag, "etag").await
}

/// FAILED_PRECONDITION for a soft-deleted ticket, which takes no work until undeleted.
pub(super) fn ensure_live(ticket: &Ticket) -> Result<(), Error> {
    if ticket.is_live() {
        return Ok(());
    }
    Err(Error::FailedPrecondition {
        reason: "TICKET_DELETED",
        message: "the ticket is deleted; undelete it first".to_owned(),
        subject: TICKET.name(ticket.id),
    })
}
