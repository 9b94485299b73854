//! `crm.tickets.v1.TicketService`: each handler authorizes, converts the
//! request, calls the use case in `app`, and converts the result back.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    auth::caller,
    client::Caller,
    fieldmask::UpdateMask,
    filter::{FieldType, FilterField, FilterSchema},
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    required, respond,
};
use crm_proto::crm::tickets::v1::{self as pb, ticket_service_server::TicketService};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use super::customer_view;
use crate::{
    app::{
        App, Assignment, Move,
        tickets::{CheckedTicket, NewComment, TicketQuery},
    },
    domain::access::{Scope, scope},
    permissions,
    profiles::ProfilesClient,
    resources::TICKET,
    wire::{WRITABLE_PATHS, comment_input, comment_to_proto, copy_field, event_to_proto, new_ticket, status_of, ticket_to_proto},
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

/// Handlers of TicketService.
#[derive(Clone)]
pub struct TicketApi {
    app: App,
    page_tokens: PageTokenCodec,
    profiles: ProfilesClient,
}

impl TicketApi {
    /// Handlers over the use cases of `app`, checking customers with `profiles`.
    pub fn new(app: App, page_tokens: PageTokenCodec, profiles: ProfilesClient) -> Self {
        Self { app, page_tokens, profiles }
    }
}

/// The ticket field of a response.
fn ticket_field(ticket: &crate::domain::ticket::Ticket, now: DateTime<Utc>) -> Option<pb::Ticket> {
    Some(ticket_to_proto(ticket, now))
}

#[tonic::async_trait]
impl TicketService for TicketApi {
    #[tracing::instrument(skip_all)]
    async fn create_ticket(&self, request: Request<pb::CreateTicketRequest>) -> Result<Response<pb::CreateTicketResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            let scope = scope(&principal, permissions::TICKETS_WRITE)?;
            let caller_context = Caller::of(&request);
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateTicket",
                &request.request_id,
                &pb::CreateTicketRequest { request_id: String::new(), ..request.clone() },
            )?;
            let input = required(request.ticket, "ticket")?;
            scope.check_new_ticket(&input)?;
            let draft = new_ticket(&input)?;
            let tenant = principal.tenant;
            // Stored answers are the full ones; what the caller may see is chosen on the way out, replays included.
            let seen = |r: pb::CreateTicketResponse| pb::CreateTicketResponse { ticket: r.ticket.map(|t| customer_view::ticket(scope, t)) };
            if let Some(replay) = self.app.precheck::<pb::CreateTicketResponse>(tenant, key.as_ref(), &draft.team).await? {
                return Ok(seen(replay));
            }
            // Checked before the transaction opens: no pooled connection waits on profiles.
            let customer_category = self.profiles.check_customer(&caller_context, &input.customer, "ticket.customer").await?;
            let (now, id) = (Utc::now(), Uuid::now_v7());
            let respond = |t: &_| pb::CreateTicketResponse { ticket: ticket_field(t, now) };
            let checked = CheckedTicket { id, ticket: draft, customer_category };
            self.app.open(tenant, checked, key.as_ref(), &principal.subject, now, respond).await.map(seen)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_ticket(&self, request: Request<pb::GetTicketRequest>) -> Result<Response<pb::GetTicketResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            let scope = scope(&principal, permissions::TICKETS_READ)?;
            let id = TICKET.parse(&request.get_ref().name, "name")?;
            let ticket = self.app.ticket(principal.tenant, scope, id).await?;
            Ok(pb::GetTicketResponse { ticket: ticket_field(&ticket, Utc::now()).map(|t| customer_view::ticket(scope, t)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_ticket(&self, request: Request<pb::UpdateTicketRequest>) -> Result<Response<pb::UpdateTicketResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_WRITE)?;
            let pb::UpdateTicketRequest { ticket, update_mask } = request.into_inner();
            let input = required(ticket, "ticket")?;
            let id = TICKET.parse(&input.name, "ticket.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE_PATHS)?.resolve(WRITABLE_PATHS);
            let now = Utc::now();
            let edit = |current: &_| {
                let mut merged = ticket_to_proto(current, now);
                for path in &paths {
                    copy_field(&mut merged, &input, path);
                }
                new_ticket(&merged)
            };
            let updated = self.app.update(principal.tenant, id, &input.etag, edit, &principal.subject, now).await?;
            Ok(pb::UpdateTicketResponse { ticket: ticket_field(&updated, now) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn assign_ticket(&self, request: Request<pb::AssignTicketRequest>) -> Result<Response<pb::AssignTicketResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_WRITE)?;
            let request = request.into_inner();
            let id = TICKET.parse(&request.name, "name")?;
            let (assignee, team) = (request.assignee.trim(), request.team.trim());
            for (field, value) in [("assignee", assignee), ("team", team)] {
                if value.chars().count() > 200 || value.chars().any(char::is_control) {
                    return Err(Error::invalid(field, "INVALID_VALUE", "at most 200 printable characters"));
                }
            }
            let now = Utc::now();
            let to = Assignment { assignee, team };
            let ticket = self.app.assign(principal.tenant, id, &request.etag, to, &principal.subject, now).await?;
            Ok(pb::AssignTicketResponse { ticket: ticket_field(&ticket, now) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_ticket(&self, request: Request<pb::DeleteTicketRequest>) -> Result<Response<pb::DeleteTicketResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_DELETE)?;
            let id = TICKET.parse(&request.get_ref().name, "name")?;
            let now = Utc::now();
            let ticket = self.app.set_deleted(principal.tenant, id, &request.get_ref().etag, true, &principal.subject, now).await?;
            Ok(pb::DeleteTicketResponse { ticket: ticket_field(&ticket, now) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn undelete_ticket(
        &self,
        request: Request<pb::UndeleteTicketRequest>,
    ) -> Result<Response<pb::UndeleteTicketResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_DELETE)?;
            let id = TICKET.parse(&request.get_ref().name, "name")?;
            let now = Utc::now();
            let ticket = self.app.set_deleted(principal.tenant, id, &request.get_ref().etag, false, &principal.subject, now).await?;
            Ok(pb::UndeleteTicketResponse { ticket: ticket_field(&ticket, now) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_tickets(&self, request: Request<pb::ListTicketsRequest>) -> Result<Response<pb::ListTicketsResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            let scope = scope(&principal, permissions::TICKETS_READ)?;
            let request = request.into_inner();
            // Deleted tickets do not exist for a customer.
            if request.show_deleted && scope != Scope::All {
                return Err(Error::PermissionDenied { permission: format!("{} (show_deleted)", permissions::TICKETS_READ.name()) });
            }
            let pager = Pager::new(&self.page_tokens);
            let only = scope.customer().map(|c| c.to_string()).unwrap_or_default();
            let deleted = if request.show_deleted { "deleted" } else { "live" };
            let tenant = principal.tenant.to_string();
            let page =
                pager.start(request.page_size, &request.page_token, &["ListTickets", &tenant, &only, request.filter.trim(), deleted])?;
            let filter = TICKET_FILTER.check(&request.filter)?;
            customer_view::check_filter(scope, &filter)?;
            let query = TicketQuery {
                customer: scope.customer(),
                filter: &filter,
                show_deleted: request.show_deleted,
                after: page.after,
                limit: page.fetch_limit(),
            };
            let rows = self.app.tickets(principal.tenant, query).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |t| (t.create_time, t.id));
            let now = Utc::now();
            let tickets = rows.iter().map(|t| customer_view::ticket(scope, ticket_to_proto(t, now))).collect();
            Ok(pb::ListTicketsResponse { tickets, next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn transition_ticket(
        &self,
        request: Request<pb::TransitionTicketRequest>,
    ) -> Result<Response<pb::TransitionTicketResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_WRITE)?;
            let request = request.into_inner();
            let id = TICKET.parse(&request.name, "name")?;
            let to = status_of(request.status)
                .ok_or_else(|| Error::invalid("status", "INVALID_STATUS", "status must be one of NEW, OPEN, PENDING, RESOLVED, CLOSED"))?;
            if request.reason.chars().count() > 1000 {
                return Err(Error::invalid("reason", "TOO_LONG", "at most 1000 characters"));
            }
            let now = Utc::now();
            let change = Move { to, actor: &principal.subject, reason: request.reason.trim() };
            let ticket = self.app.transition(principal.tenant, id, &request.etag, change, now).await?;
            Ok(pb::TransitionTicketResponse { ticket: ticket_field(&ticket, now) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn merge_tickets(&self, request: Request<pb::MergeTicketsRequest>) -> Result<Response<pb::MergeTicketsResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_WRITE)?;
            let request = request.into_inner();
            let target = TICKET.parse(&request.name, "name")?;
            let sources = super::merge::parse_sources(&request.source_tickets, target)?;
            let now = Utc::now();
            let merged = self.app.merge(principal.tenant, target, &request.etag, &sources, &principal.subject, now).await?;
            Ok(pb::MergeTicketsResponse {
                ticket: ticket_field(&merged.survivor, now),
                merged_tickets: merged.merged.iter().map(|t| ticket_to_proto(t, now)).collect(),
            })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn add_comment(&self, request: Request<pb::AddCommentRequest>) -> Result<Response<pb::AddCommentResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            let scope = scope(&principal, permissions::TICKETS_WRITE)?;
            let request = request.into_inner();
            let id = TICKET.parse(&request.parent, "parent")?;
            let input = required(request.comment, "comment")?;
            scope.check_comment(input.public)?;
            let key = IdempotencyKey::new(
                "AddComment",
                &request.request_id,
                &pb::AddCommentRequest { request_id: String::new(), comment: Some(input.clone()), parent: request.parent.clone() },
            )?;
            let (body, attachments) = comment_input(&input)?;
            let comment = NewComment { body, public: input.public, attachments };
            let respond = |stored: &_| pb::AddCommentResponse { comment: Some(comment_to_proto(stored)) };
            // As for CreateTicket: the view is chosen on the way out, replays included.
            let seen = |r: pb::AddCommentResponse| pb::AddCommentResponse { comment: r.comment.map(|c| customer_view::comment(scope, c)) };
            self.app.comment(principal.tenant, scope, id, comment, key.as_ref(), &principal.subject, Utc::now(), respond).await.map(seen)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_comments(&self, request: Request<pb::ListCommentsRequest>) -> Result<Response<pb::ListCommentsResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            let scope = scope(&principal, permissions::TICKETS_READ)?;
            let request = request.get_ref();
            let id = TICKET.parse(&request.parent, "parent")?;
            if request.include_internal {
                principal.require(permissions::TICKETS_WRITE)?;
            }
            let pager = Pager::new(&self.page_tokens);
            let internal = if request.include_internal { "internal" } else { "public" };
            let page = pager.start(
                request.page_size,
                &request.page_token,
                &["ListComments", &principal.tenant.to_string(), &request.parent, internal],
            )?;
            let rows = self.app.comments(principal.tenant, scope, id, request.include_internal, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |c| c.id);
            let comments = rows.iter().map(|c| customer_view::comment(scope, comment_to_proto(c))).collect();
            Ok(pb::ListCommentsResponse { comments, next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_ticket_events(
        &self,
        request: Request<pb::ListTicketEventsRequest>,
    ) -> Result<Response<pb::ListTicketEventsResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let request = request.get_ref();
            let id: Uuid = TICKET.parse(&request.parent, "parent")?;
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(
                request.page_size,
                &request.page_token,
                &["ListTicketEvents", &principal.tenant.to_string(), &request.parent],
            )?;
            let rows = self.app.timeline(principal.tenant, id, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |e| e.id);
            Ok(pb::ListTicketEventsResponse { events: rows.iter().map(event_to_proto).collect(), next_page_token })
        })
        .await
    }
}
