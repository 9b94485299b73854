//! Satisfaction surveys: created at a ticket's first resolution, answered once
//! through a one-time token that carries tenant and survey id and is signed
//! (`crm_kit::link`), so answering needs no login and no stored secret.

use chrono::Utc;
use crm_kit::{Error, auth::caller, db::begin_tenant, link::LinkSigner, outbox, respond, time};
use crm_proto::crm::tickets::v1::{self as pb, survey_service_server::SurveyService};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::store::{
    self,
    surveys::{self, SurveyRow},
};
use crate::{
    permissions,
    resources::{SURVEY, TICKET},
    wire::parse_period,
};

/// Handlers of SurveyService.
#[derive(Clone)]
pub struct SurveyApi {
    pool: PgPool,
    links: LinkSigner,
}

impl SurveyApi {
    /// Handlers over `pool`, signing answer tokens with `key`.
    pub fn new(pool: PgPool, key: Vec<u8>) -> Self {
        Self { pool, links: LinkSigner::new(key) }
    }

    /// (tenant, survey) of a genuine token.
    fn verify(&self, token: &str) -> Result<(Uuid, Uuid), Error> {
        self.links
            .verify(token)
            .ok_or_else(|| Error::Unauthenticated { reason: "INVALID_SURVEY_TOKEN", message: "the survey link is invalid".to_owned() })
    }

    fn to_proto(&self, tenant: Uuid, row: &SurveyRow) -> pb::Survey {
        pb::Survey {
            name: SURVEY.name(row.id),
            ticket: TICKET.name(row.ticket_id),
            agent: row.agent.clone(),
            team: row.team.clone(),
            category: row.category.clone(),
            send_time: Some(time::to_timestamp(row.send_time)),
            answer_token: self.links.sign(tenant, row.id),
            csat: row.csat.map_or(0, i32::from),
            nps: row.nps.map(i32::from),
            comment: row.comment.clone(),
            answer_time: row.answer_time.map(time::to_timestamp),
        }
    }
}

#[tonic::async_trait]
impl SurveyService for SurveyApi {
    #[tracing::instrument(skip_all)]
    async fn get_ticket_survey(
        &self,
        request: Request<pb::GetTicketSurveyRequest>,
    ) -> Result<Response<pb::GetTicketSurveyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_WRITE)?;
            let ticket = TICKET.parse(&request.get_ref().ticket, "ticket")?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let row = surveys::for_ticket(&mut tx, principal.tenant, ticket)
                .await?
                .ok_or_else(|| Error::NotFound { resource_type: SURVEY.type_name, name: format!("{}/survey", TICKET.name(ticket)) })?;
            tx.commit().await?;
            Ok(pb::GetTicketSurveyResponse { survey: Some(self.to_proto(principal.tenant, &row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn answer_survey(&self, request: Request<pb::AnswerSurveyRequest>) -> Result<Response<pb::AnswerSurveyResponse>, Status> {
        respond(async move {
            let r = request.into_inner();
            let (tenant, id) = self.verify(&r.token)?;
            let mut violations = Vec::new();
            if !(1..=5).contains(&r.csat) {
                violations.push(crm_kit::FieldViolation::new("csat", "INVALID_SCORE", "csat must be 1-5"));
            }
            if r.nps.is_some_and(|n| !(0..=10).contains(&n)) {
                violations.push(crm_kit::FieldViolation::new("nps", "INVALID_SCORE", "nps must be 0-10"));
            }
            if r.comment.chars().count() > 2000 {
                violations.push(crm_kit::FieldViolation::new("comment", "TOO_LONG", "at most 2000 characters"));
            }
            if !violations.is_empty() {
                return Err(Error::InvalidArgument { violations });
            }
            let mut tx = begin_tenant(&self.pool, tenant).await?;
            let survey = surveys::lock(&mut tx, tenant, id).await?.ok_or_else(|| Error::Unauthenticated {
                reason: "INVALID_SURVEY_TOKEN",
                message: "the survey link is invalid".to_owned(),
            })?;
            if survey.answer_time.is_some() {
                return Err(Error::FailedPrecondition {
                    reason: "SURVEY_ALREADY_ANSWERED",
                    message: "this survey was already answered; thank you".to_owned(),
                    subject: SURVEY.name(id),
                });
            }
            let now = Utc::now();
            let nps = r.nps.map(|n| n as i16);
            surveys::answer(&mut tx, tenant, id, r.csat as i16, nps, r.comment.trim(), now).await?;
            let detail = match nps {
                Some(n) => format!("CSAT {}, NPS {n}", r.csat),
                None => format!("CSAT {}", r.csat),
            };
            store::append_event(&mut tx, tenant, survey.ticket_id, "SURVEY_ANSWERED", "customer", &detail, now).await?;
            let ticket = TICKET.name(survey.ticket_id);
            let event = pb::SurveyAnswered { ticket: ticket.clone(), csat: r.csat, nps: r.nps };
            outbox::append(&mut tx, tenant, &ticket, &event).await?;
            tx.commit().await?;
            Ok(pb::AnswerSurveyResponse {})
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_satisfaction_summary(
        &self,
        request: Request<pb::GetSatisfactionSummaryRequest>,
    ) -> Result<Response<pb::GetSatisfactionSummaryResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::TICKETS_READ)?;
            let r = request.into_inner();
            let column = match pb::SummaryGrouping::try_from(r.group_by) {
                Ok(pb::SummaryGrouping::Agent) => "agent",
                Ok(pb::SummaryGrouping::Team) => "team",
                Ok(pb::SummaryGrouping::Category) => "category",
                _ => return Err(Error::invalid("group_by", "INVALID_GROUPING", "group by AGENT, TEAM or CATEGORY")),
            };
            let (from, to) = parse_period(r.start_time.as_ref(), r.end_time.as_ref())?;
            let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
            let rows = surveys::summary(&mut tx, principal.tenant, column, from, to).await?;
            tx.commit().await?;
            let groups = rows
                .into_iter()
                .map(|g| pb::SatisfactionGroup {
                    key: g.key,
                    surveys_sent: g.sent,
                    responses: g.responses,
                    response_rate: if g.sent == 0 { 0.0 } else { g.responses as f64 / g.sent as f64 },
                    csat_average: g.csat_average.unwrap_or(0.0),
                    nps: g.nps.unwrap_or(0.0),
                })
                .collect();
            Ok(pb::GetSatisfactionSummaryResponse { groups })
        })
        .await
    }
}
