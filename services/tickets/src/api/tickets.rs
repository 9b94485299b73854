//! `crm.tickets.v1.TicketService`: permission checks, validation, the
//! transaction around each change with its timeline entry and outbox event.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    auth::{Permission, caller},
    db::{TenantTx, begin_tenant},
    etag,
    fieldmask::UpdateMask,
    filter::{FieldType, FilterField, FilterSchema},
    idempotency::{Claim, IdempotencyKey},
    outbox,
    pagination::{PageTokenCodec, QueryFingerprint, page_size},
};
use crm_proto::crm::tickets::v1::{self as pb, ticket_service_server::TicketService};
use sqlx::PgPool;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use super::access::{Scope, scope};
use super::convert::{
    TICKET_TYPE, WRITABLE_PATHS, comment_input, comment_to_proto, copy_field, event_to_proto, new_ticket, parse_ticket_name, same_field,
    ticket_name, ticket_to_proto,
};
use crate::{
    domain::{
        classify::{Intake, classify},
        status::Status,
    },
    profiles::ProfilesClient,
    store::{self, StatusChange, TicketRow},
};

/// Fields `ListTickets.filter` accepts.
static TICKET_FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField {
            name: "status",
            sql: "t.status",
            ty: FieldType::Enum { values: &["NEW", "OPEN", "PENDING", "RESOLVED", "CLOSED"], prefix: "STATUS_" },
        },
        FilterField {
            name: "priority",
            sql: "t.priority",
            ty: FieldType::Enum { values: &["URGENT", "HIGH", "NORMAL", "LOW"], prefix: "PRIORITY_" },
        },
        FilterField {
            name: "type",
            sql: "t.type",
            ty: FieldType::Enum { values: &["QUESTION", "PROBLEM", "COMPLAINT", "REQUEST"], prefix: "TICKET_TYPE_" },
        },
        FilterField {
            name: "channel",
            sql: "t.channel",
            ty: FieldType::Enum { values: &["PHONE", "EMAIL", "CHAT", "WEB", "SOCIAL", "HOTLINE", "API"], prefix: "CHANNEL_" },
        },
        FilterField { name: "assignee", sql: "t.assignee", ty: FieldType::Text },
        FilterField { name: "team", sql: "t.team", ty: FieldType::Text },
        FilterField { name: "customer", sql: "('customers/' || t.customer_id::text)", ty: FieldType::Text },
        FilterField { name: "category", sql: "t.category", ty: FieldType::Text },
        FilterField { name: "tags", sql: "t.tags", ty: FieldType::TextArray },
        FilterField { name: "create_time", sql: "t.create_time", ty: FieldType::Timestamp },
        FilterField { name: "update_time", sql: "t.update_time", ty: FieldType::Timestamp },
    ],
};

/// Outbox event types.
mod event_types {
    pub const CREATED: &str = "crm.tickets.v1.TicketCreated";
    pub const STATUS_CHANGED: &str = "crm.tickets.v1.TicketStatusChanged";
    pub const COMMENTED: &str = "crm.tickets.v1.TicketCommented";
    pub const UPDATED: &str = "crm.tickets.v1.TicketUpdated";
    pub const ASSIGNED: &str = "crm.tickets.v1.TicketAssigned";
    pub const DELETED: &str = "crm.tickets.v1.TicketDeleted";
    pub const UNDELETED: &str = "crm.tickets.v1.TicketUndeleted";
}

/// Handlers of TicketService.
#[derive(Clone)]
pub struct TicketApi {
    pool: PgPool,
    page_tokens: PageTokenCodec,
    profiles: ProfilesClient,
    follow_up_delay: chrono::Duration,
}

impl TicketApi {
    /// Handlers over `pool`, checking customers with `profiles`; resolutions
    /// schedule a follow-up `follow_up_delay` later.
    pub fn new(pool: PgPool, page_tokens: PageTokenCodec, profiles: ProfilesClient, follow_up_delay: chrono::Duration) -> Self {
        Self { pool, page_tokens, profiles, follow_up_delay }
    }
}

pub(super) fn not_found(id: Uuid) -> Error {
    Error::NotFound { resource_type: TICKET_TYPE, name: ticket_name(id) }
}

async fn existing(tx: &mut TenantTx, tenant: Uuid, id: Uuid, lock: bool) -> Result<TicketRow, Error> {
    store::find(tx, tenant, id, lock).await?.ok_or_else(|| not_found(id))
}

/// Locks a ticket for a change, checking the caller's etag.
async fn lock_for_change(tx: &mut TenantTx, tenant: Uuid, id: Uuid, etag: &str) -> Result<TicketRow, Error> {
    let expected_revision = etag::parse(etag, "etag")?;
    let row = existing(tx, tenant, id, true).await?;
    if expected_revision.is_some_and(|r| r != row.revision) {
        return Err(Error::EtagMismatch { resource_type: TICKET_TYPE, name: ticket_name(id) });
    }
    Ok(row)
}

/// INVALID_ARGUMENT unless `team` is empty or a team of the tenant.
pub(crate) async fn ensure_team(tx: &mut TenantTx, tenant: Uuid, team: &str, field: &str) -> Result<(), Error> {
    if team.is_empty() {
        return Ok(());
    }
    let id = super::convert::parse_team_name(team, field)?;
    match store::find_team(tx, tenant, id, false).await? {
        Some(_) => Ok(()),
        None => Err(Error::invalid(field, "UNKNOWN_TEAM", format!("{team:?} is not a team of this tenant"))),
    }
}

/// A requested status change: the target status, who asks, and why (may be empty).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Move<'a> {
    pub to: Status,
    pub actor: &'a str,
    pub reason: &'a str,
}

/// Moves a locked, live ticket to `to`: state machine, pending time, SLA
/// clocks, follow-ups, queue draining, timeline and event, in the caller's transaction.
pub(crate) async fn transition(
    tx: &mut TenantTx,
    tenant: Uuid,
    row: TicketRow,
    change: Move<'_>,
    follow_up_delay: chrono::Duration,
    now: DateTime<Utc>,
) -> Result<pb::Ticket, Error> {
    let Move { to, actor, reason } = change;
    let id = row.id;
    let from = stored_status(&row)?;
    from.transition(to).map_err(|e| Error::FailedPrecondition {
        reason: "INVALID_TRANSITION",
        message: e.to_string(),
        subject: ticket_name(id),
    })?;
    let row = store::set_status(tx, tenant, id, &status_change(&row, from, to, now), now).await?;
    let row = super::sla_tracking::follow(tx, tenant, row, now).await?;
    super::follow_ups::on_transition(tx, tenant, &row, to, follow_up_delay, now).await?;
    if to == Status::Resolved {
        super::surveys::on_resolved(tx, tenant, &row, now).await?;
    }
    if from.is_open() && !to.is_open() && !row.assignee.is_empty() {
        // The assignee has capacity again: hand out what waits in the team's queue.
        super::dispatch::drain_queue(tx, tenant, &row.team, now).await?;
    }
    let detail = if reason.is_empty() { format!("{from} → {to}") } else { format!("{from} → {to}: {reason}") };
    store::append_event(tx, tenant, id, "STATUS_CHANGED", actor, &detail, now).await?;
    let ticket = ticket_to_proto(&row);
    let previous_status = pb::Status::from_str_name(&format!("STATUS_{}", from.name())).map_or(0, |s| s as i32);
    let event = pb::TicketStatusChanged { ticket: Some(ticket.clone()), previous_status };
    outbox::append(tx, tenant, &ticket.name, event_types::STATUS_CHANGED, &event).await?;
    Ok(ticket)
}

/// Applies the tenant's classification rules and the built-in VIP rules to a
/// new ticket; returns a timeline detail when anything matched or changed.
async fn classify_intake(
    tx: &mut TenantTx,
    tenant: Uuid,
    ticket: &mut store::NewTicket,
    customer_category: String,
) -> Result<Option<String>, Error> {
    let rules: Vec<_> = store::list_rules(tx, tenant).await?.iter().map(super::rules::to_domain).collect();
    let intake = Intake {
        subject: ticket.subject.clone(),
        description: ticket.description.clone(),
        channel: ticket.channel.clone(),
        kind: ticket.kind.clone(),
        customer_category,
        category: ticket.category.clone(),
        priority: ticket.priority.clone(),
        team: ticket.team.clone(),
    };
    let (classified, matched) = classify(intake, &rules);
    let mut changes = Vec::new();
    if !matched.is_empty() {
        changes.push(format!("rules at positions {}", matched.iter().map(i32::to_string).collect::<Vec<_>>().join(", ")));
    }
    if classified.priority != ticket.priority {
        changes.push(format!("priority {} → {}", ticket.priority, classified.priority));
    }
    ticket.category = classified.category;
    ticket.priority = classified.priority;
    ticket.team = classified.team;
    Ok((!changes.is_empty()).then(|| changes.join("; ")))
}

/// FAILED_PRECONDITION for a soft-deleted ticket, which takes no work until undeleted.
pub(super) fn ensure_live(row: &TicketRow) -> Result<(), Error> {
    match row.delete_time {
        None => Ok(()),
        Some(_) => Err(Error::FailedPrecondition {
            reason: "TICKET_DELETED",
            message: "the ticket is deleted; undelete it first".to_owned(),
            subject: ticket_name(row.id),
        }),
    }
}

pub(super) fn stored_status(row: &TicketRow) -> Result<Status, Error> {
    Status::parse(&row.status).ok_or_else(|| Error::internal(anyhow::anyhow!("unknown stored status {:?}", row.status)))
}

/// The columns a move from `from` to `to` at `now` sets: PENDING time is
/// banked when the ticket leaves PENDING; resolving stamps the resolve time.
pub(super) fn status_change(row: &TicketRow, from: Status, to: Status, now: DateTime<Utc>) -> StatusChange {
    let mut pending_ms = row.pending_ms;
    if from == Status::Pending {
        pending_ms += row.pending_since.map_or(0, |since| (now - since).num_milliseconds().max(0));
    }
    StatusChange {
        status: to.name(),
        pending_since: (to == Status::Pending).then_some(now),
        pending_ms,
        resolve_time: if to == Status::Resolved { Some(now) } else { row.resolve_time },
        reopened: from == Status::Resolved && to == Status::Open,
    }
}

fn authorization<T>(request: &Request<T>) -> String {
    request.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

impl TicketApi {
    /// Soft-deletes (`deleted`) or restores a ticket; repeating either is harmless.
    async fn set_deleted(&self, principal: &crm_kit::auth::Principal, id: Uuid, etag: &str, deleted: bool) -> Result<pb::Ticket, Error> {
        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let row = lock_for_change(&mut tx, tenant, id, etag).await?;
        if row.delete_time.is_some() == deleted {
            tx.commit().await?;
            return Ok(ticket_to_proto(&row));
        }
        let now = Utc::now();
        let row = store::set_delete_time(&mut tx, tenant, id, deleted.then_some(now), now).await?;
        let ticket = ticket_to_proto(&row);
        let kind = if deleted { "DELETED" } else { "UNDELETED" };
        store::append_event(&mut tx, tenant, id, kind, &principal.subject, "", now).await?;
        if deleted {
            outbox::append(&mut tx, tenant, &ticket.name, event_types::DELETED, &pb::TicketDeleted { ticket: Some(ticket.clone()) })
                .await?;
        } else {
            outbox::append(&mut tx, tenant, &ticket.name, event_types::UNDELETED, &pb::TicketUndeleted { ticket: Some(ticket.clone()) })
                .await?;
        }
        tx.commit().await?;
        Ok(ticket)
    }
}

#[tonic::async_trait]
impl TicketService for TicketApi {
    #[tracing::instrument(skip_all)]
    async fn create_ticket(&self, request: Request<pb::CreateTicketRequest>) -> Result<Response<pb::CreateTicketResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        let scope = scope(&principal, Permission::TicketsWrite)?;
        let authorization = authorization(&request);
        let request = request.into_inner();
        let key = IdempotencyKey::new(
            "CreateTicket",
            &request.request_id,
            &pb::CreateTicketRequest { request_id: String::new(), ..request.clone() },
        )?;
        let input = request.ticket.ok_or_else(|| Error::invalid("ticket", "REQUIRED", "ticket is required"))?;
        scope.check_new_ticket(&input)?;
        let mut ticket = new_ticket(&input)?;

        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        if let Some(key) = &key
            && let Claim::Replay(response) = key.claim::<pb::CreateTicketResponse>(&mut tx, tenant).await?
        {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(response));
        }
        // Inside the transaction, so that a retry waits for this attempt; on any
        // failure the transaction rolls back and nothing is half-written.
        ensure_team(&mut tx, tenant, &ticket.team, "ticket.team").await?;
        let customer_category = self.profiles.check_customer(&authorization, &input.customer, "ticket.customer").await?;
        let classification = classify_intake(&mut tx, tenant, &mut ticket, customer_category.clone()).await?;
        let now = Utc::now();
        let id = Uuid::now_v7();
        let row = store::insert(&mut tx, tenant, id, &ticket, now).await?;
        let row = super::sla_tracking::start(&mut tx, tenant, row, &customer_category, now).await?;
        store::append_event(
            &mut tx,
            tenant,
            id,
            "CREATED",
            &principal.subject,
            &format!("{} {} via {}", row.priority, row.kind, row.channel),
            now,
        )
        .await?;
        if let Some(detail) = classification {
            store::append_event(&mut tx, tenant, id, "CLASSIFIED", "classification", &detail, now).await?;
        }
        let created = ticket_to_proto(&row);
        outbox::append(&mut tx, tenant, &created.name, event_types::CREATED, &pb::TicketCreated { ticket: Some(created.clone()) }).await?;
        // Dispatch within the team, if it names one; otherwise the ticket waits in its queue.
        let created = ticket_to_proto(&super::dispatch::assign_new(&mut tx, tenant, row, now).await?);
        let response = pb::CreateTicketResponse { ticket: Some(created) };
        if let Some(key) = &key {
            key.complete(&mut tx, tenant, &response).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all)]
    async fn get_ticket(&self, request: Request<pb::GetTicketRequest>) -> Result<Response<pb::GetTicketResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        let scope = scope(&principal, Permission::TicketsRead)?;
        let id = parse_ticket_name(&request.get_ref().name, "name")?;
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        let row = existing(&mut tx, principal.tenant, id, false).await?;
        tx.commit().await.map_err(Error::from)?;
        scope.ensure_reaches(&row)?;
        Ok(Response::new(pb::GetTicketResponse { ticket: Some(ticket_to_proto(&row)) }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_ticket(&self, request: Request<pb::UpdateTicketRequest>) -> Result<Response<pb::UpdateTicketResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsWrite)?;
        let pb::UpdateTicketRequest { ticket, update_mask } = request.into_inner();
        let input = ticket.ok_or_else(|| Error::invalid("ticket", "REQUIRED", "ticket is required"))?;
        let id = parse_ticket_name(&input.name, "ticket.name")?;
        let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE_PATHS)?.resolve(WRITABLE_PATHS);

        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let row = lock_for_change(&mut tx, tenant, id, &input.etag).await?;
        ensure_live(&row)?;
        let before = ticket_to_proto(&row);
        let mut merged = before.clone();
        for path in &paths {
            copy_field(&mut merged, &input, path);
        }
        let fields = new_ticket(&merged)?;
        ensure_team(&mut tx, tenant, &fields.team, "ticket.team").await?;
        // Compare normalised values before writing: re-sending the same data is no change.
        let candidate = ticket_to_proto(&TicketRow {
            subject: fields.subject.clone(),
            description: fields.description.clone(),
            kind: fields.kind.clone(),
            channel: fields.channel.clone(),
            priority: fields.priority.clone(),
            category: fields.category.clone(),
            tags: fields.tags.clone(),
            team: fields.team.clone(),
            ..row
        });
        let changed: Vec<String> = WRITABLE_PATHS.iter().filter(|p| !same_field(&before, &candidate, p)).map(|p| p.to_string()).collect();
        if changed.is_empty() {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(pb::UpdateTicketResponse { ticket: Some(before) }));
        }
        let now = Utc::now();
        let updated = store::update_fields(&mut tx, tenant, id, &fields, now).await?;
        let ticket = ticket_to_proto(&updated);
        store::append_event(&mut tx, tenant, id, "UPDATED", &principal.subject, &changed.join(", "), now).await?;
        outbox::append(
            &mut tx,
            tenant,
            &ticket.name,
            event_types::UPDATED,
            &pb::TicketUpdated { ticket: Some(ticket.clone()), changed_paths: changed },
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::UpdateTicketResponse { ticket: Some(ticket) }))
    }

    #[tracing::instrument(skip_all)]
    async fn assign_ticket(&self, request: Request<pb::AssignTicketRequest>) -> Result<Response<pb::AssignTicketResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsWrite)?;
        let request = request.into_inner();
        let id = parse_ticket_name(&request.name, "name")?;
        let (assignee, team) = (request.assignee.trim(), request.team.trim());
        for (field, value) in [("assignee", assignee), ("team", team)] {
            if value.chars().count() > 200 || value.chars().any(char::is_control) {
                return Err(Error::invalid(field, "INVALID_VALUE", "at most 200 printable characters").into());
            }
        }
        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let row = lock_for_change(&mut tx, tenant, id, &request.etag).await?;
        ensure_live(&row)?;
        if stored_status(&row)? == Status::Closed {
            return Err(Error::FailedPrecondition {
                reason: "TICKET_CLOSED",
                message: "a closed ticket cannot be assigned".to_owned(),
                subject: ticket_name(id),
            }
            .into());
        }
        ensure_team(&mut tx, tenant, team, "team").await?;
        let team = if team.is_empty() { row.team.as_str() } else { team };
        if assignee == row.assignee && team == row.team {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(pb::AssignTicketResponse { ticket: Some(ticket_to_proto(&row)) }));
        }
        let now = Utc::now();
        let updated = store::set_assignment(&mut tx, tenant, id, assignee, team, now).await?;
        let who = |s: &str| if s.is_empty() { "nobody".to_owned() } else { s.to_owned() };
        let detail = format!(
            "{} → {}{}",
            who(&row.assignee),
            who(assignee),
            if team == row.team { String::new() } else { format!(" (team {})", who(team)) }
        );
        store::append_event(&mut tx, tenant, id, "ASSIGNED", &principal.subject, &detail, now).await?;
        if !row.assignee.is_empty() && row.assignee != assignee {
            // The previous assignee has capacity again: hand out what waits in the team's queue.
            super::dispatch::drain_queue(&mut tx, tenant, &row.team, now).await?;
        }
        let ticket = ticket_to_proto(&updated);
        let event = pb::TicketAssigned { ticket: Some(ticket.clone()), previous_assignee: row.assignee.clone() };
        outbox::append(&mut tx, tenant, &ticket.name, event_types::ASSIGNED, &event).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::AssignTicketResponse { ticket: Some(ticket) }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_ticket(&self, request: Request<pb::DeleteTicketRequest>) -> Result<Response<pb::DeleteTicketResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsDelete)?;
        let id = parse_ticket_name(&request.get_ref().name, "name")?;
        let ticket = self.set_deleted(&principal, id, &request.get_ref().etag, true).await?;
        Ok(Response::new(pb::DeleteTicketResponse { ticket: Some(ticket) }))
    }

    #[tracing::instrument(skip_all)]
    async fn undelete_ticket(
        &self,
        request: Request<pb::UndeleteTicketRequest>,
    ) -> Result<Response<pb::UndeleteTicketResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsDelete)?;
        let id = parse_ticket_name(&request.get_ref().name, "name")?;
        let ticket = self.set_deleted(&principal, id, &request.get_ref().etag, false).await?;
        Ok(Response::new(pb::UndeleteTicketResponse { ticket: Some(ticket) }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_tickets(&self, request: Request<pb::ListTicketsRequest>) -> Result<Response<pb::ListTicketsResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        let scope = scope(&principal, Permission::TicketsRead)?;
        let request = request.into_inner();
        // Deleted tickets do not exist for a customer.
        if request.show_deleted && scope != Scope::All {
            return Err(Error::PermissionDenied { permission: format!("{} (show_deleted)", Permission::TicketsRead.name()) }.into());
        }
        let limit = page_size(request.page_size)?;
        let filter = TICKET_FILTER.check(&request.filter)?;
        let deleted = if request.show_deleted { "deleted" } else { "live" };
        let only = scope.customer().map(|c| c.to_string()).unwrap_or_default();
        let fingerprint = QueryFingerprint::of(&["ListTickets", &principal.tenant.to_string(), &only, request.filter.trim(), deleted]);
        let after = match self.page_tokens.decode(&request.page_token, &fingerprint)? {
            None => None,
            Some(key) => {
                let invalid = || Error::invalid("page_token", "INVALID_PAGE_TOKEN", "the page token is malformed or was altered");
                let time = key.first().and_then(|v| v.as_str()).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).ok_or_else(invalid)?;
                let id = key.get(1).and_then(|v| v.as_str()).and_then(|s| Uuid::parse_str(s).ok()).ok_or_else(invalid)?;
                Some((time.with_timezone(&Utc), id))
            }
        };
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        let mut rows =
            store::list(&mut tx, principal.tenant, scope.customer(), &filter, request.show_deleted, after, limit as i64 + 1).await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = if rows.len() > limit {
            rows.truncate(limit);
            let last = rows.last().expect("a full page");
            let key = vec![last.create_time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into(), last.id.to_string().into()];
            self.page_tokens.encode(&fingerprint, key)
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListTicketsResponse { tickets: rows.iter().map(ticket_to_proto).collect(), next_page_token }))
    }

    #[tracing::instrument(skip_all)]
    async fn transition_ticket(
        &self,
        request: Request<pb::TransitionTicketRequest>,
    ) -> Result<Response<pb::TransitionTicketResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsWrite)?;
        let request = request.into_inner();
        let id = parse_ticket_name(&request.name, "name")?;
        let to = pb::Status::try_from(request.status)
            .ok()
            .filter(|s| *s != pb::Status::Unspecified)
            .and_then(|s| Status::parse(s.as_str_name().trim_start_matches("STATUS_")))
            .ok_or_else(|| Error::invalid("status", "INVALID_STATUS", "status must be one of NEW, OPEN, PENDING, RESOLVED, CLOSED"))?;
        if request.reason.chars().count() > 1000 {
            return Err(Error::invalid("reason", "TOO_LONG", "at most 1000 characters").into());
        }
        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let row = lock_for_change(&mut tx, tenant, id, &request.etag).await?;
        ensure_live(&row)?;
        let ticket = transition(
            &mut tx,
            tenant,
            row,
            Move { to, actor: &principal.subject, reason: request.reason.trim() },
            self.follow_up_delay,
            Utc::now(),
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::TransitionTicketResponse { ticket: Some(ticket) }))
    }

    #[tracing::instrument(skip_all)]
    async fn merge_tickets(&self, request: Request<pb::MergeTicketsRequest>) -> Result<Response<pb::MergeTicketsResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsWrite)?;
        Ok(Response::new(super::merge::merge(&self.pool, &principal, request.get_ref()).await?))
    }

    #[tracing::instrument(skip_all)]
    async fn add_comment(&self, request: Request<pb::AddCommentRequest>) -> Result<Response<pb::AddCommentResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        let scope = scope(&principal, Permission::TicketsWrite)?;
        let request = request.into_inner();
        let id = parse_ticket_name(&request.parent, "parent")?;
        let input = request.comment.ok_or_else(|| Error::invalid("comment", "REQUIRED", "comment is required"))?;
        scope.check_comment(input.public)?;
        let (body, attachments) = comment_input(&input)?;

        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let row = existing(&mut tx, tenant, id, true).await?;
        scope.ensure_reaches(&row)?;
        ensure_live(&row)?;
        if stored_status(&row)? == Status::Closed {
            return Err(Error::FailedPrecondition {
                reason: "TICKET_CLOSED",
                message: "a closed ticket takes no more comments; open a new ticket".to_owned(),
                subject: ticket_name(id),
            }
            .into());
        }
        let now = Utc::now();
        let comment = store::insert_comment(&mut tx, tenant, id, &body, input.public, &principal.subject, &attachments, now).await?;
        // Only the service's reply counts as the first response, not the customer's own message.
        if input.public && scope == Scope::All && row.first_response_time.is_none() {
            store::set_first_response(&mut tx, tenant, id, now).await?;
            // The first-response clock stops at the first public reply.
            let replied = existing(&mut tx, tenant, id, false).await?;
            super::sla_tracking::follow(&mut tx, tenant, replied, now).await?;
        }
        let kind = if input.public { "public reply" } else { "internal note" };
        store::append_event(&mut tx, tenant, id, "COMMENTED", &principal.subject, kind, now).await?;
        let comment = comment_to_proto(&comment);
        outbox::append(
            &mut tx,
            tenant,
            &ticket_name(id),
            event_types::COMMENTED,
            &pb::TicketCommented { ticket: ticket_name(id), comment: Some(comment.clone()) },
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::AddCommentResponse { comment: Some(comment) }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_comments(&self, request: Request<pb::ListCommentsRequest>) -> Result<Response<pb::ListCommentsResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        let scope = scope(&principal, Permission::TicketsRead)?;
        let id = parse_ticket_name(&request.get_ref().parent, "parent")?;
        if request.get_ref().include_internal {
            principal.require(Permission::TicketsWrite)?;
        }
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        scope.ensure_reaches(&existing(&mut tx, principal.tenant, id, false).await?)?;
        let rows = store::list_comments(&mut tx, principal.tenant, id, request.get_ref().include_internal).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ListCommentsResponse { comments: rows.iter().map(comment_to_proto).collect() }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_ticket_events(
        &self,
        request: Request<pb::ListTicketEventsRequest>,
    ) -> Result<Response<pb::ListTicketEventsResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsRead)?;
        let id = parse_ticket_name(&request.get_ref().parent, "parent")?;
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        existing(&mut tx, principal.tenant, id, false).await?;
        let rows = store::list_events(&mut tx, principal.tenant, id).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ListTicketEventsResponse { events: rows.iter().map(event_to_proto).collect() }))
    }
}
