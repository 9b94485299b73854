//! The `tickets`, `ticket_comments` and `ticket_events` tables.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Revisioned, Table, TenantTx, db_span},
    filter::CheckedFilter,
};
use sqlx::{FromRow, Postgres, QueryBuilder};

use crate::domain::ticket::{NewTicket, Priority, SlaTracking, StatusChange, Ticket};
use tracing::Instrument;
use uuid::Uuid;

const COLUMNS: &str = "id, customer_id, subject, description, type, channel, priority, category, tags, status, assignee, team, \
first_response_time, resolve_time, pending_since, pending_ms, revision, create_time, update_time, delete_time, answer_article_id, \
merged_into, reopen_count, sla_policy_id, sla_calendar_id, sla_warning_ratio, fr_target_ms, fr_consumed_ms, fr_since, fr_due, fr_warn_at, fr_breached, \
res_target_ms, res_consumed_ms, res_since, res_due, res_warn_at, res_breached, \
fr_warn_recorded, fr_breach_recorded, res_warn_recorded, res_breach_recorded";

/// The `tickets` table, for the kit's shared statements.
pub const TICKETS: Table = Table { name: "tickets", columns: COLUMNS };

impl Revisioned for Ticket {
    fn revision(&self) -> i64 {
        self.revision
    }
}

/// Stores a ticket's SLA columns (no revision bump: they follow other changes)
/// and keeps its SLA timer in step.
pub async fn set_sla(tx: &mut TenantTx, tenant: Uuid, id: Uuid, s: &SlaTracking) -> Result<Ticket, Error> {
    let sql = format!(
        "UPDATE tickets SET sla_policy_id = $3, sla_calendar_id = $4, sla_warning_ratio = $5,
         fr_target_ms = $6, fr_consumed_ms = $7, fr_since = $8, fr_due = $9, fr_warn_at = $10, fr_breached = $11,
         res_target_ms = $12, res_consumed_ms = $13, res_since = $14, res_due = $15, res_warn_at = $16, res_breached = $17,
         fr_warn_recorded = $18, fr_breach_recorded = $19, res_warn_recorded = $20, res_breach_recorded = $21
         WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    let row = sqlx::query_as::<_, Ticket>(&sql)
        .bind(tenant)
        .bind(id)
        .bind(s.sla_policy_id)
        .bind(s.sla_calendar_id)
        .bind(s.sla_warning_ratio)
        .bind(s.fr_target_ms)
        .bind(s.fr_consumed_ms)
        .bind(s.fr_since)
        .bind(s.fr_due)
        .bind(s.fr_warn_at)
        .bind(s.fr_breached)
        .bind(s.res_target_ms)
        .bind(s.res_consumed_ms)
        .bind(s.res_since)
        .bind(s.res_due)
        .bind(s.res_warn_at)
        .bind(s.res_breached)
        .bind(s.fr_warn_recorded)
        .bind(s.fr_breach_recorded)
        .bind(s.res_warn_recorded)
        .bind(s.res_breach_recorded)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "tickets"))
        .await?;
    match s.next_check() {
        Some(next_at) => {
            sqlx::query(
                "INSERT INTO sla_timers (tenant_id, ticket_id, next_at) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, ticket_id) DO UPDATE SET next_at = EXCLUDED.next_at",
            )
            .bind(tenant)
            .bind(id)
            .bind(next_at)
            .execute(&mut **tx)
            .instrument(db_span("INSERT", "sla_timers"))
            .await?
        }
        None => {
            sqlx::query("DELETE FROM sla_timers WHERE tenant_id = $1 AND ticket_id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&mut **tx)
                .instrument(db_span("DELETE", "sla_timers"))
                .await?
        }
    };
    Ok(row)
}

/// Tickets whose SLA timer is due, across tenants (see migration 1007), oldest first.
pub async fn due_timers(pool: &sqlx::PgPool, limit: i64) -> Result<Vec<(Uuid, Uuid)>, Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('crm.scope', 'sla-scan', true)").execute(&mut *tx).await?;
    let due = sqlx::query_as("SELECT tenant_id, ticket_id FROM sla_timers WHERE next_at <= now() ORDER BY next_at LIMIT $1")
        .bind(limit)
        .fetch_all(&mut *tx)
        .instrument(db_span("SELECT", "sla_timers"))
        .await?;
    tx.commit().await?;
    Ok(due)
}

/// The given tickets, locked, skipping any another worker holds.
pub async fn lock_many(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<Ticket>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM tickets WHERE tenant_id = $1 AND id = ANY($2) FOR UPDATE SKIP LOCKED");
    Ok(sqlx::query_as::<_, Ticket>(&sql).bind(tenant).bind(ids).fetch_all(&mut **tx).instrument(db_span("SELECT", "tickets")).await?)
}

/// Raises the priority and/or reassigns an escalated ticket, bumping the revision.
pub async fn escalate(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    priority: Priority,
    assignee: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, Error> {
    let sql = format!(
        "UPDATE tickets SET priority = $3, assignee = $4, update_time = $5, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as::<_, Ticket>(&sql)
        .bind(tenant)
        .bind(id)
        .bind(priority.name())
        .bind(assignee)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "tickets"))
        .await?)
}

/// `change` (an INSERT or UPDATE of `tickets` without RETURNING) as one
/// statement that also ends the ticket's current stay in
/// `ticket_status_history` and starts the new one, so no status change can
/// miss the history the reports read. `reopened` is an SQL expression; the
/// change's time is the row's new `update_time` (see `at` below).
fn logging_status(change: &str, reopened: &str) -> String {
    // `at`: the change's time, but never before the current stay began — two
    // changes of one ticket take their times before they queue for its row
    // lock (and replicas' clocks differ), so the later one can carry the
    // earlier time.
    format!(
        "WITH changed AS ({change} RETURNING tenant_id, {COLUMNS}),
         current_stay AS (SELECT h.since FROM ticket_status_history h, changed c
                          WHERE h.tenant_id = c.tenant_id AND h.ticket_id = c.id AND h.until IS NULL),
         at AS (SELECT greatest(c.update_time, (SELECT max(since) FROM current_stay)) AS t FROM changed c),
         ended AS (UPDATE ticket_status_history h SET until = (SELECT t FROM at) FROM changed c
                   WHERE h.tenant_id = c.tenant_id AND h.ticket_id = c.id AND h.until IS NULL),
         began AS (INSERT INTO ticket_status_history (tenant_id, ticket_id, status, since, reopened, resolve_time, reopen_count)
                   SELECT tenant_id, id, status, (SELECT t FROM at), {reopened}, resolve_time, reopen_count FROM changed)
         SELECT {COLUMNS} FROM changed"
    )
}

/// Inserts a NEW ticket.
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, id: Uuid, t: &NewTicket, now: DateTime<Utc>) -> Result<Ticket, Error> {
    let sql = logging_status(
        "INSERT INTO tickets (tenant_id, id, customer_id, subject, description, type, channel, priority, category, tags, status, assignee, team, create_time, update_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'NEW', $11, $12, $13, $13)",
        "false",
    );
    Ok(sqlx::query_as::<_, Ticket>(&sql)
        .bind(tenant)
        .bind(id)
        .bind(t.customer_id)
        .bind(&t.subject)
        .bind(&t.description)
        .bind(t.kind.name())
        .bind(t.channel.name())
        .bind(t.priority.name())
        .bind(&t.category)
        .bind(&t.tags)
        .bind(&t.assignee)
        .bind(&t.team)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "tickets"))
        .await?)
}

/// Replaces the editable fields (subject, description, type, channel,
/// priority, category, tags, team) and bumps the revision.
pub async fn update_fields(tx: &mut TenantTx, tenant: Uuid, id: Uuid, t: &NewTicket, now: DateTime<Utc>) -> Result<Ticket, Error> {
    let sql = format!(
        "UPDATE tickets SET subject = $3, description = $4, type = $5, channel = $6, priority = $7, category = $8, tags = $9, team = $10,
         update_time = $11, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as::<_, Ticket>(&sql)
        .bind(tenant)
        .bind(id)
        .bind(&t.subject)
        .bind(&t.description)
        .bind(t.kind.name())
        .bind(t.channel.name())
        .bind(t.priority.name())
        .bind(&t.category)
        .bind(&t.tags)
        .bind(&t.team)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "tickets"))
        .await?)
}

/// Sets the assignee and team and bumps the revision.
pub async fn set_assignment(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    assignee: &str,
    team: &str,
    now: DateTime<Utc>,
) -> Result<Ticket, Error> {
    let sql = format!(
        "UPDATE tickets SET assignee = $3, team = $4, update_time = $5, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as::<_, Ticket>(&sql)
        .bind(tenant)
        .bind(id)
        .bind(assignee)
        .bind(team)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "tickets"))
        .await?)
}

/// Applies a status change and bumps the revision.
pub async fn set_status(tx: &mut TenantTx, tenant: Uuid, id: Uuid, change: &StatusChange, now: DateTime<Utc>) -> Result<Ticket, Error> {
    let sql = logging_status(
        "UPDATE tickets SET status = $3, pending_since = $4, pending_ms = $5, resolve_time = $6, update_time = $7, revision = revision + 1,
         reopen_count = reopen_count + $8 WHERE tenant_id = $1 AND id = $2",
        "$8 > 0",
    );
    Ok(sqlx::query_as::<_, Ticket>(&sql)
        .bind(tenant)
        .bind(id)
        .bind(change.status.name())
        .bind(change.pending_since)
        .bind(change.pending_ms)
        .bind(change.resolve_time)
        .bind(now)
        .bind(i32::from(change.reopened))
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "tickets"))
        .await?)
}

/// Records the first public reply (only the first one counts).
pub async fn set_first_response(tx: &mut TenantTx, tenant: Uuid, id: Uuid, now: DateTime<Utc>) -> Result<(), Error> {
    sqlx::query(
        "UPDATE tickets SET first_response_time = $3, update_time = $3, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2 AND first_response_time IS NULL",
    )
    .bind(tenant)
    .bind(id)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("UPDATE", "tickets"))
    .await?;
    Ok(())
}

/// Appends an entry to a ticket's timeline.
pub async fn append_event(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: Uuid,
    kind: &str,
    actor: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO ticket_events (tenant_id, id, ticket_id, kind, actor, detail, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(ticket)
    .bind(kind)
    .bind(actor)
    .bind(detail)
    .bind(now)
    .execute(&mut **tx)
    .instrument(db_span("INSERT", "ticket_events"))
    .await?;
    Ok(())
}

/// A stored comment.
#[derive(Debug, Clone, FromRow)]
pub struct CommentRow {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub body: String,
    pub public: bool,
    pub author: String,
    pub attachments: Vec<String>,
    pub create_time: DateTime<Utc>,
}

/// Stores a comment.
#[allow(clippy::too_many_arguments)] // one column each; a struct would only rename them
pub async fn insert_comment(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: Uuid,
    body: &str,
    public: bool,
    author: &str,
    attachments: &[String],
    now: DateTime<Utc>,
) -> Result<CommentRow, Error> {
    Ok(sqlx::query_as(
        "INSERT INTO ticket_comments (tenant_id, id, ticket_id, body, public, author, attachments, create_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, ticket_id, body, public, author, attachments, create_time",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(ticket)
    .bind(body)
    .bind(public)
    .bind(author)
    .bind(attachments)
    .bind(now)
    .fetch_one(&mut **tx)
    .instrument(db_span("INSERT", "ticket_comments"))
    .await?)
}

/// A page of a ticket's comments, oldest first (after comment `after`); internal notes only when asked.
pub async fn list_comments(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: Uuid,
    include_internal: bool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CommentRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, ticket_id, body, public, author, attachments, create_time FROM ticket_comments
         WHERE tenant_id = $1 AND ticket_id = $2 AND (public OR $3) AND ($4::uuid IS NULL OR id > $4) ORDER BY id LIMIT $5",
    )
    .bind(tenant)
    .bind(ticket)
    .bind(include_internal)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "ticket_comments"))
    .await?)
}

/// A timeline entry.
#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub kind: String,
    pub actor: String,
    pub detail: String,
    pub create_time: DateTime<Utc>,
}

/// A page of a ticket's timeline, oldest first, after entry `after`.
pub async fn list_events(tx: &mut TenantTx, tenant: Uuid, ticket: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<EventRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, ticket_id, kind, actor, detail, create_time FROM ticket_events WHERE tenant_id = $1 AND ticket_id = $2
         AND ($3::uuid IS NULL OR id > $3) ORDER BY id LIMIT $4",
    )
    .bind(tenant)
    .bind(ticket)
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .instrument(db_span("SELECT", "ticket_events"))
    .await?)
}

/// One page of tickets, newest first, after `(create_time, id)` when given.
pub async fn list(
    tx: &mut TenantTx,
    tenant: Uuid,
    customer: Option<Uuid>,
    filter: &CheckedFilter,
    show_deleted: bool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Ticket>, Error> {
    let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM tickets t WHERE t.tenant_id = "));
    qb.push_bind(tenant);
    // ANDed outside the caller's filter, which push_and parenthesises: a
    // customer's OR cannot widen the list beyond its own tickets.
    if let Some(customer) = customer {
        qb.push(" AND t.customer_id = ").push_bind(customer);
    }
    if !show_deleted {
        qb.push(" AND t.delete_time IS NULL");
    }
    filter.push_and(&mut qb);
    if let Some((time, id)) = after {
        qb.push(" AND (t.create_time, t.id) < (").push_bind(time).push(", ").push_bind(id).push(")");
    }
    qb.push(" ORDER BY t.create_time DESC, t.id DESC LIMIT ").push_bind(limit);
    Ok(qb.build_query_as::<Ticket>().fetch_all(&mut **tx).instrument(db_span("SELECT", "tickets")).await?)
}

/// The oldest unassigned open tickets of `team` (a resource name), locked, skipping ones locked elsewhere.
pub async fn queued(tx: &mut TenantTx, tenant: Uuid, team: &str, limit: i64) -> Result<Vec<Ticket>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tickets WHERE tenant_id = $1 AND team = $2 AND assignee = ''
         AND status IN ('NEW', 'OPEN', 'PENDING') AND delete_time IS NULL
         ORDER BY create_time, id LIMIT $3 FOR UPDATE SKIP LOCKED"
    );
    Ok(sqlx::query_as::<_, Ticket>(&sql)
        .bind(tenant)
        .bind(team)
        .bind(limit)
        .fetch_all(&mut **tx)
        .instrument(db_span("SELECT", "tickets"))
        .await?)
}

/// Records the knowledge-base article that answered a ticket.
pub async fn set_answer_article(tx: &mut TenantTx, tenant: Uuid, id: Uuid, article: Uuid, now: DateTime<Utc>) -> Result<Ticket, Error> {
    let sql = format!(
        "UPDATE tickets SET answer_article_id = $3, update_time = $4, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as::<_, Ticket>(&sql)
        .bind(tenant)
        .bind(id)
        .bind(article)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "tickets"))
        .await?)
}

/// Applies a merge's status change (see `Ticket::merge_into`) to a duplicate
/// and links it to `target`.
pub async fn set_merged(
    tx: &mut TenantTx,
    tenant: Uuid,
    id: Uuid,
    target: Uuid,
    change: &StatusChange,
    now: DateTime<Utc>,
) -> Result<Ticket, Error> {
    let sql = logging_status(
        "UPDATE tickets SET merged_into = $3, status = $4, pending_since = $5, pending_ms = $6, update_time = $7, revision = revision + 1
         WHERE tenant_id = $1 AND id = $2",
        "false",
    );
    Ok(sqlx::query_as::<_, Ticket>(&sql)
        .bind(tenant)
        .bind(id)
        .bind(target)
        .bind(change.status.name())
        .bind(change.pending_since)
        .bind(change.pending_ms)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "tickets"))
        .await?)
}

/// Sets a ticket's tags (a merge adds the duplicates' tags) and bumps the revision.
pub async fn set_tags(tx: &mut TenantTx, tenant: Uuid, id: Uuid, tags: &[String], now: DateTime<Utc>) -> Result<Ticket, Error> {
    let sql = format!(
        "UPDATE tickets SET tags = $3, update_time = $4, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as::<_, Ticket>(&sql)
        .bind(tenant)
        .bind(id)
        .bind(tags)
        .bind(now)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "tickets"))
        .await?)
}

/// Moves the comments of `from` to ticket `to`, keeping their authors and times.
pub async fn move_comments(tx: &mut TenantTx, tenant: Uuid, from: &[Uuid], to: Uuid) -> Result<u64, Error> {
    Ok(sqlx::query("UPDATE ticket_comments SET ticket_id = $3 WHERE tenant_id = $1 AND ticket_id = ANY($2)")
        .bind(tenant)
        .bind(from)
        .bind(to)
        .execute(&mut **tx)
        .instrument(db_span("UPDATE", "ticket_comments"))
        .await?
        .rows_affected())
}

/// The given tickets, locked in id order (so that concurrent merges cannot deadlock).
pub async fn lock_in_order(tx: &mut TenantTx, tenant: Uuid, ids: &[Uuid]) -> Result<Vec<Ticket>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM tickets WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR UPDATE");
    Ok(sqlx::query_as::<_, Ticket>(&sql).bind(tenant).bind(ids).fetch_all(&mut **tx).instrument(db_span("SELECT", "tickets")).await?)
}

/// Tickets on SLA calendar `calendar` with a running clock, locked in id order.
pub async fn running_on_calendar(tx: &mut TenantTx, tenant: Uuid, calendar: Uuid) -> Result<Vec<Ticket>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tickets WHERE tenant_id = $1 AND sla_calendar_id = $2 AND (fr_since IS NOT NULL OR res_since IS NOT NULL)
         ORDER BY id FOR UPDATE"
    );
    Ok(sqlx::query_as::<_, Ticket>(&sql).bind(tenant).bind(calendar).fetch_all(&mut **tx).instrument(db_span("SELECT", "tickets")).await?)
}
