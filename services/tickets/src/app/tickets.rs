//! Tickets themselves: intake (classification, SLA start, dispatch), edits,
//! soft deletion, comments, and the reads behind Get/List.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::TenantTx,
    filter::CheckedFilter,
    idempotency::{self, IdempotencyKey},
};
use crm_proto::crm::tickets::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{
    context::{App, ensure_live, existing, lock_for_change},
    dispatch,
    dispatch::ensure_team,
    events,
    lifecycle::{self, Move},
    sla,
};
use crate::{
    domain::{
        access::Scope,
        classify::{Intake, classify},
        status::Status,
        ticket::{NewTicket, Ticket},
    },
    resources::TICKET,
    store::{self, CommentRow, EventRow},
};

/// A new ticket whose customer the profiles service confirmed.
#[derive(Debug, Clone)]
pub struct CheckedTicket {
    /// Its id, taken with the creation time so that id order is creation order
    /// (the team queue hands out oldest first).
    pub id: Uuid,
    pub ticket: NewTicket,
    /// The customer's category: VIP, REGULAR, NEW, POTENTIAL or "".
    pub customer_category: String,
}

/// A new comment.
#[derive(Debug, Clone)]
pub struct NewComment {
    pub body: String,
    pub public: bool,
    pub attachments: Vec<String>,
}

/// One page of a ticket list, newest first.
#[derive(Debug, Clone)]
pub struct TicketQuery<'a> {
    /// Only this customer's tickets (a customer caller).
    pub customer: Option<Uuid>,
    pub filter: &'a CheckedFilter,
    pub show_deleted: bool,
    /// Keyset: (create_time, id) of the last ticket of the previous page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

impl App {
    /// Opens a ticket whose customer was checked beforehand (no connection is
    /// held across that call): classification rules, SLA policy, timeline,
    /// `TicketCreated`, then dispatch within its team. With a request id, a
    /// retry returns the first response (`respond` builds it from the ticket).
    pub async fn open<R: Message + Default>(
        &self,
        tenant: Uuid,
        checked: CheckedTicket,
        request: Option<&IdempotencyKey>,
        actor: &str,
        now: DateTime<Utc>,
        respond: impl FnOnce(&Ticket) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        let CheckedTicket { id, ticket: mut draft, customer_category } = checked;
        ensure_team(&mut tx, tenant, &draft.team, "ticket.team").await?;
        let classification = classify_intake(&mut tx, tenant, &mut draft, &customer_category).await?;
        let ticket = store::insert(&mut tx, tenant, id, &draft, now).await?;
        // A tenant with tickets follows profiles' stream, to erase what it holds of an erased customer.
        crm_kit::follow::follow_tenant(&mut tx, tenant, super::erasure::PROFILES).await?;
        let ticket = sla::start(&mut tx, tenant, ticket, &customer_category, now).await?;
        let detail = format!("{} {} via {}", ticket.priority, ticket.kind, ticket.channel.name());
        store::append_event(&mut tx, tenant, id, "CREATED", actor, &detail, now).await?;
        if let Some(detail) = classification {
            store::append_event(&mut tx, tenant, id, "CLASSIFIED", "classification", &detail, now).await?;
        }
        events::emit(&mut tx, tenant, id, &pb::TicketCreated { ticket: Some(events::wire(&ticket, now)) }).await?;
        // Dispatch within the team, if it names one; otherwise the ticket waits in its queue.
        let ticket = dispatch::assign_new(&mut tx, tenant, ticket, now).await?;
        let response = respond(&ticket);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// What can be decided before the customer check with profiles, in one
    /// short transaction (none is held across that call): the response a
    /// committed earlier attempt with this request id stored, if any; else
    /// INVALID_ARGUMENT for a team that is not the tenant's.
    pub async fn precheck<R: Message + Default>(
        &self,
        tenant: Uuid,
        request: Option<&IdempotencyKey>,
        team: &str,
    ) -> Result<Option<R>, Error> {
        let mut tx = self.begin(tenant).await?;
        let replay = match request {
            Some(key) => key.completed::<R>(&mut tx, tenant).await?,
            None => None,
        };
        if replay.is_none() {
            ensure_team(&mut tx, tenant, team, "ticket.team").await?;
        }
        tx.commit().await?;
        Ok(replay)
    }

    /// Replaces a live ticket's editable fields with what `edit` makes of the
    /// current ticket. Re-sending the same values changes nothing (same etag,
    /// no event); otherwise `TicketUpdated` names the changed paths.
    pub async fn update(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&Ticket) -> Result<NewTicket, Error>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Ticket, Error> {
        let mut tx = self.begin(tenant).await?;
        let before = lock_for_change(&mut tx, tenant, id, etag).await?;
        ensure_live(&before)?;
        let fields = edit(&before)?;
        ensure_team(&mut tx, tenant, &fields.team, "ticket.team").await?;
        let changed = fields.changed_paths(&before);
        if changed.is_empty() {
            tx.commit().await?;
            return Ok(before);
        }
        let updated = store::update_fields(&mut tx, tenant, id, &fields, now).await?;
        store::append_event(&mut tx, tenant, id, "UPDATED", actor, &changed.join(", "), now).await?;
        let event =
            pb::TicketUpdated { ticket: Some(events::wire(&updated, now)), changed_paths: changed.iter().map(|p| p.to_string()).collect() };
        events::emit(&mut tx, tenant, id, &event).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Soft-deletes (`deleted`) or restores a ticket; repeating either is harmless.
    pub async fn set_deleted(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        deleted: bool,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Ticket, Error> {
        let mut tx = self.begin(tenant).await?;
        let ticket = lock_for_change(&mut tx, tenant, id, etag).await?;
        if ticket.delete_time.is_some() == deleted {
            tx.commit().await?;
            return Ok(ticket);
        }
        let ticket = store::TICKETS.set_delete_time(&mut tx, tenant, id, deleted.then_some(now), now).await?;
        let wire = Some(events::wire(&ticket, now));
        if deleted {
            store::append_event(&mut tx, tenant, id, "DELETED", actor, "", now).await?;
            events::emit(&mut tx, tenant, id, &pb::TicketDeleted { ticket: wire }).await?;
        } else {
            store::append_event(&mut tx, tenant, id, "UNDELETED", actor, "", now).await?;
            events::emit(&mut tx, tenant, id, &pb::TicketUndeleted { ticket: wire }).await?;
        }
        tx.commit().await?;
        Ok(ticket)
    }

    /// Adds a comment to a live, not closed ticket the caller reaches. The
    /// staff's first public reply is the first response and stops that clock;
    /// the customer's reply to a PENDING ticket (waiting on them) reopens it.
    /// With a request id, a retry returns the first response (`respond` builds it).
    #[allow(clippy::too_many_arguments)] // the comment, who, when, and its request id
    pub async fn comment<R: Message + Default>(
        &self,
        tenant: Uuid,
        scope: Scope,
        id: Uuid,
        comment: NewComment,
        request: Option<&IdempotencyKey>,
        actor: &str,
        now: DateTime<Utc>,
        respond: impl FnOnce(&CommentRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        let ticket = existing(&mut tx, tenant, id, true).await?;
        // Whose ticket first: a retry on another customer's ticket is NOT_FOUND, not a replay.
        scope.ensure_reaches(&ticket)?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        ensure_live(&ticket)?;
        if ticket.status == Status::Closed {
            return Err(Error::FailedPrecondition {
                reason: "TICKET_CLOSED",
                message: "a closed ticket takes no more comments; open a new ticket".to_owned(),
                subject: TICKET.name(id),
            });
        }
        let stored = store::insert_comment(&mut tx, tenant, id, &comment.body, comment.public, actor, &comment.attachments, now).await?;
        // Only the service's reply counts as the first response, not the customer's own message.
        if comment.public && scope == Scope::All && ticket.first_response_time.is_none() {
            store::set_first_response(&mut tx, tenant, id, now).await?;
            let replied = existing(&mut tx, tenant, id, false).await?;
            sla::follow(&mut tx, tenant, replied, now).await?;
        }
        let kind = if comment.public { "public reply" } else { "internal note" };
        store::append_event(&mut tx, tenant, id, "COMMENTED", actor, kind, now).await?;
        let event = pb::TicketCommented { ticket: TICKET.name(id), comment: Some(crate::wire::comment_to_proto(&stored)) };
        events::emit(&mut tx, tenant, id, &event).await?;
        if matches!(scope, Scope::Customer(_)) && ticket.status == Status::Pending {
            // What the service waited for has come: back to OPEN, the SLA clocks run again.
            let reopen = Move { to: Status::Open, actor, reason: "the customer replied" };
            lifecycle::transition(&mut tx, tenant, ticket, reopen, self.follow_up_delay, now).await?;
        }
        let response = respond(&stored);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// A ticket the caller reaches.
    pub async fn ticket(&self, tenant: Uuid, scope: Scope, id: Uuid) -> Result<Ticket, Error> {
        // The hottest read: one round trip (the kit's `Table::get`).
        let ticket: Ticket = store::TICKETS.get(&self.pool, tenant, id).await?.ok_or_else(|| TICKET.not_found(id))?;
        scope.ensure_reaches(&ticket)?;
        Ok(ticket)
    }

    /// One page of tickets.
    pub async fn tickets(&self, tenant: Uuid, query: TicketQuery<'_>) -> Result<Vec<Ticket>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = store::list(&mut tx, tenant, query.customer, query.filter, query.show_deleted, query.after, query.limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// A page of a reachable ticket's comments, oldest first, after comment
    /// `after`; internal notes only with `include_internal`.
    pub async fn comments(
        &self,
        tenant: Uuid,
        scope: Scope,
        id: Uuid,
        include_internal: bool,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<CommentRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        scope.ensure_reaches(&existing(&mut tx, tenant, id, false).await?)?;
        let rows = store::list_comments(&mut tx, tenant, id, include_internal, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// A page of a ticket's timeline, oldest first, after entry `after`.
    pub async fn timeline(&self, tenant: Uuid, id: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<EventRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        existing(&mut tx, tenant, id, false).await?;
        let rows = store::list_events(&mut tx, tenant, id, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

/// Applies the tenant's classification rules and the built-in VIP rules to a
/// new ticket; returns a timeline detail when anything matched or changed.
async fn classify_intake(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: &mut NewTicket,
    customer_category: &str,
) -> Result<Option<String>, Error> {
    let rules: Vec<_> = store::list_rules(tx, tenant).await?.iter().filter_map(|r| r.rule()).collect();
    let intake = Intake {
        subject: ticket.subject.clone(),
        description: ticket.description.clone(),
        channel: ticket.channel,
        kind: ticket.kind,
        customer_category: customer_category.to_owned(),
        category: ticket.category.clone(),
        priority: ticket.priority,
        team: ticket.team.clone(),
    };
    let (classified, matched) = classify(intake, &rules);
    let priority = classified.priority;
    let mut changes = Vec::new();
    if !matched.is_empty() {
        changes.push(format!("rules at positions {}", matched.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")));
    }
    if priority != ticket.priority {
        changes.push(format!("priority {} → {priority}", ticket.priority));
    }
    ticket.category = classified.category;
    ticket.priority = priority;
    ticket.team = classified.team;
    Ok((!changes.is_empty()).then(|| changes.join("; ")))
}
