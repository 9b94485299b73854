//! Follow-up visits: scheduled when a ticket is resolved, cancelled when it is
//! reopened, completed by the agent; an unsatisfied customer reopens the ticket.

use chrono::{DateTime, Duration, Utc};
use crm_kit::{
    Error,
    auth::{Permission, caller},
    db::{TenantTx, begin_tenant},
    outbox, time,
};
use crm_proto::crm::tickets::v1::{self as pb, follow_up_service_server::FollowUpService};
use sqlx::PgPool;
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use super::{
    convert::ticket_to_proto,
    tickets::{Move, transition},
};
use crate::{
    domain::status::Status,
    store::{
        self, TicketRow,
        follow_ups::{self, FollowUpRow, Outcome},
    },
};

/// Keeps follow-ups in step with a status change (called inside `transition`).
pub async fn on_transition(
    tx: &mut TenantTx,
    tenant: Uuid,
    row: &TicketRow,
    to: Status,
    delay: Duration,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    match to {
        Status::Resolved => follow_ups::schedule(tx, tenant, row.id, &row.assignee, now + delay, now).await,
        Status::Open | Status::Pending => follow_ups::cancel_scheduled(tx, tenant, row.id).await,
        Status::New | Status::Closed => Ok(()),
    }
}

fn to_proto(row: &FollowUpRow) -> pb::FollowUp {
    let state = match row.state.as_str() {
        "SCHEDULED" => pb::FollowUpState::Scheduled,
        "DONE" => pb::FollowUpState::Done,
        _ => pb::FollowUpState::Cancelled,
    };
    pb::FollowUp {
        name: format!("followUps/{}", row.id),
        ticket: format!("tickets/{}", row.ticket_id),
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
    pool: PgPool,
    delay: Duration,
}

impl FollowUpApi {
    /// Handlers over `pool`; resolutions schedule follow-ups `delay` later.
    pub fn new(pool: PgPool, delay: Duration) -> Self {
        Self { pool, delay }
    }
}

#[tonic::async_trait]
impl FollowUpService for FollowUpApi {
    async fn list_follow_ups(&self, request: Request<pb::ListFollowUpsRequest>) -> Result<Response<pb::ListFollowUpsResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsRead)?;
        let r = request.into_inner();
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        let rows = follow_ups::list(&mut tx, principal.tenant, r.agent.trim(), r.due_only.then(Utc::now), r.include_closed).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::ListFollowUpsResponse { follow_ups: rows.iter().map(to_proto).collect() }))
    }

    async fn complete_follow_up(
        &self,
        request: Request<pb::CompleteFollowUpRequest>,
    ) -> Result<Response<pb::CompleteFollowUpResponse>, GrpcStatus> {
        let principal = caller(&request)?;
        principal.require(Permission::TicketsWrite)?;
        let r = request.into_inner();
        let id = crm_kit::resource::parse_id(&r.name, "followUps", "name", "INVALID_NAME")?;
        let notes = r.notes.trim();
        if notes.chars().count() > 5000 {
            return Err(Error::invalid("notes", "TOO_LONG", "at most 5000 characters").into());
        }
        let satisfied = r.reached && r.satisfied;
        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let follow_up = follow_ups::lock(&mut tx, tenant, id)
            .await?
            .ok_or_else(|| Error::NotFound { resource_type: "tickets.crm/FollowUp", name: r.name.clone() })?;
        if follow_up.state != "SCHEDULED" {
            return Err(Error::FailedPrecondition {
                reason: "FOLLOW_UP_CLOSED",
                message: format!("this follow-up is {}; only scheduled ones can be completed", follow_up.state.to_lowercase()),
                subject: r.name.clone(),
            }
            .into());
        }
        let now = Utc::now();
        let done = follow_ups::complete(&mut tx, tenant, id, Outcome { reached: r.reached, satisfied, notes, by: &principal.subject }, now)
            .await?;
        let ticket_row = store::find(&mut tx, tenant, follow_up.ticket_id, true)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("follow-up without ticket")))?;
        let outcome = match (r.reached, satisfied) {
            (false, _) => "customer not reached",
            (true, true) => "customer satisfied",
            (true, false) => "customer NOT satisfied",
        };
        let detail = if notes.is_empty() { outcome.to_owned() } else { format!("{outcome}: {notes}") };
        store::append_event(&mut tx, tenant, follow_up.ticket_id, "FOLLOW_UP_COMPLETED", &principal.subject, &detail, now).await?;
        // An unsatisfied customer reopens a resolved ticket; a closed one stays closed (the outcome is on record).
        let ticket =
            if r.reached && !satisfied && Status::parse(&ticket_row.status) == Some(Status::Resolved) && ticket_row.delete_time.is_none() {
                transition(
                    &mut tx,
                    tenant,
                    ticket_row,
                    Move { to: Status::Open, actor: &principal.subject, reason: "customer not satisfied at follow-up" },
                    self.delay,
                    now,
                )
                .await?
            } else {
                ticket_to_proto(&ticket_row)
            };
        let event = pb::FollowUpCompleted { follow_up: r.name.clone(), ticket: Some(ticket.clone()), reached: r.reached, satisfied };
        outbox::append(&mut tx, tenant, &ticket.name, "crm.tickets.v1.FollowUpCompleted", &event).await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::CompleteFollowUpResponse { follow_up: Some(to_proto(&done)) }))
    }
}
