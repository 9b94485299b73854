//! Follow-up visits: scheduled when a ticket is resolved, cancelled when it is
//! reopened, completed by the agent; an unsatisfied customer reopens the ticket.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::caller,
    db::begin_tenant,
    pagination::{PageTokenCodec, Pager},
    respond, time,
};
use crm_proto::crm::tickets::v1::{self as pb, follow_up_service_server::FollowUpService};
use tonic::{Request, Response, Status as GrpcStatus};

use crate::{
    app::{App, follow_ups::Visit},
    permissions,
    resources::{FOLLOW_UP, TICKET},
    store::follow_ups::{self, FollowUpQuery, FollowUpRow},
};

fn to_proto(row: &FollowUpRow) -> pb::FollowUp {
    let state = match row.state.as_str() {
        "SCHEDULED" => pb::FollowUpState::Scheduled,
        "DONE" => pb::FollowUpState::Done,
        _ => pb::FollowUpState::Cancelled,
    };
    pb::FollowUp {
        name: FOLLOW_UP.name(row.id),
        ticket: TICKET.name(row.ticket_id),
        agent: row.agent.clone(),
        due_time: Some(time::to_timestamp(row.due_time)),
        state: state as i32,
        reached: row.reached,
        satisfied: row.satisfied,
        notes: row.notes.clone(),
        completed_by: row.completed_by.clone(),
        complete_time: row.complete_time.map(time::to_timestamp),
    }
}

/// Handlers of FollowUpService.
#[derive(Clone)]
pub struct FollowUpApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl FollowUpApi {
    /// Handlers over the use cases of `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

#[tonic::async_trait]
impl FollowUpService for FollowUpApi {
    #[tracing::instrument(skip_all)]
    async fn list_follow_ups(&self, request: Request<pb::ListFollowUpsRequest>) -> Result<Response<pb::ListFollowUpsResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let r = request.into_inner();
            let pager = Pager::new(&self.page_tokens);
            let (tenant, due_only, include_closed) = (principal.tenant.to_string(), r.due_only.to_string(), r.include_closed.to_string());
            let page = pager.start(r.page_size, &r.page_token, &["ListFollowUps", &tenant, r.agent.trim(), &due_only, &include_closed])?;
            let query = FollowUpQuery {
                agent: r.agent.trim(),
                due_before: r.due_only.then(Utc::now),
                include_closed: r.include_closed,
                after: page.after,
                limit: page.fetch_limit(),
            };
            let mut tx = begin_tenant(self.app.pool(), principal.tenant).await?;
            let rows = follow_ups::list(&mut tx, principal.tenant, &query).await?;
            tx.commit().await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |f| (f.due_time, f.id));
            Ok(pb::ListFollowUpsResponse { follow_ups: rows.iter().map(to_proto).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn complete_follow_up(
        &self,
        request: Request<pb::CompleteFollowUpRequest>,
    ) -> Result<Response<pb::CompleteFollowUpResponse>, GrpcStatus> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_WRITE)?;
            let r = request.into_inner();
            let id = FOLLOW_UP.parse(&r.name, "name")?;
            let notes = r.notes.trim();
            if notes.chars().count() > 5000 {
                return Err(Error::invalid("notes", "TOO_LONG", "at most 5000 characters"));
            }
            let visit = Visit { reached: r.reached, satisfied: r.satisfied, notes };
            let done = self.app.complete_follow_up(principal.tenant, id, visit, &principal.subject, Utc::now()).await?;
            Ok(pb::CompleteFollowUpResponse { follow_up: Some(to_proto(&done)) })
        })
        .await
    }
}
