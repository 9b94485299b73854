//! `crm.campaigns.v1.QuestionnaireService`: questionnaires defined
//! (`journeys.run`) and read (`journeys.read`); invitations read and
//! answered through their signed link alone (no login).

use chrono::Utc;
use crm_kit::{Error, auth::caller, required, respond};
use crm_proto::crm::campaigns::v1::{self as pb, questionnaire_service_server::QuestionnaireService};
use tonic::{Request, Response, Status};

use crate::{
    app::App,
    permissions,
    resources::{CAMPAIGN, JOURNEY, QUESTIONNAIRE},
    store::questionnaires::SentBy,
    wire::{
        display_name,
        questionnaires::{answers_from, invitation_to, questionnaire_to, questions_from, results_to},
    },
};

/// Handlers of QuestionnaireService.
#[derive(Clone)]
pub struct QuestionnaireApi {
    app: App,
}

impl QuestionnaireApi {
    /// Handlers over `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

#[tonic::async_trait]
impl QuestionnaireService for QuestionnaireApi {
    #[tracing::instrument(skip_all)]
    async fn create_questionnaire(
        &self,
        request: Request<pb::CreateQuestionnaireRequest>,
    ) -> Result<Response<pb::CreateQuestionnaireResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_RUN)?;
            let q = required(request.into_inner().questionnaire, "questionnaire")?;
            let name = display_name(&q.display_name, "questionnaire.display_name", 200)?;
            let days = if q.answer_within_days == 0 { 7 } else { q.answer_within_days };
            if !(1..=90).contains(&days) {
                return Err(Error::invalid("questionnaire.answer_within_days", "INVALID_DAYS", "1-90 days"));
            }
            let row = self.app.create_questionnaire(principal.tenant, &name, questions_from(&q.questions)?, days, Utc::now()).await?;
            Ok(pb::CreateQuestionnaireResponse { questionnaire: Some(questionnaire_to(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_questionnaire(
        &self,
        request: Request<pb::GetQuestionnaireRequest>,
    ) -> Result<Response<pb::GetQuestionnaireResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_READ)?;
            let id = QUESTIONNAIRE.parse(&request.get_ref().name, "name")?;
            Ok(pb::GetQuestionnaireResponse { questionnaire: Some(questionnaire_to(&self.app.questionnaire(principal.tenant, id).await?)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_questionnaire_results(
        &self,
        request: Request<pb::GetQuestionnaireResultsRequest>,
    ) -> Result<Response<pb::GetQuestionnaireResultsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_READ)?;
            let request = request.get_ref();
            let parent = request.name.strip_suffix("/results").unwrap_or_default();
            let id = QUESTIONNAIRE.parse(parent, "name")?;
            let journey = match request.journey.as_str() {
                "" => None,
                name => Some(JOURNEY.parse(name, "journey")?),
            };
            let campaign = match request.campaign.as_str() {
                "" => None,
                name => Some(CAMPAIGN.parse(name, "campaign")?),
            };
            let by = SentBy { journey, campaign };
            let (invited, answered, summaries) = self.app.questionnaire_results(principal.tenant, id, by).await?;
            let row = self.app.questionnaire(principal.tenant, id).await?;
            Ok(pb::GetQuestionnaireResultsResponse { results: Some(results_to(&row, invited, answered, &summaries)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_invitation(&self, request: Request<pb::GetInvitationRequest>) -> Result<Response<pb::GetInvitationResponse>, Status> {
        respond(async move {
            // The signed link is the credential: it names the tenant and the invitation.
            let (tenant, id) = self.app.links().resolve_invitation(&request.get_ref().name)?;
            let (invitation, questionnaire) = self.app.invitation(tenant, id).await?;
            Ok(pb::GetInvitationResponse { invitation: Some(invitation_to(&invitation, &questionnaire)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn answer_invitation(
        &self,
        request: Request<pb::AnswerInvitationRequest>,
    ) -> Result<Response<pb::AnswerInvitationResponse>, Status> {
        respond(async move {
            let request = request.get_ref();
            let (tenant, id) = self.app.links().resolve_invitation(&request.name)?;
            let answers = answers_from(&request.answers);
            let (invitation, questionnaire) = self.app.answer_invitation(tenant, id, &answers, Utc::now()).await?;
            Ok(pb::AnswerInvitationResponse { invitation: Some(invitation_to(&invitation, &questionnaire)) })
        })
        .await
    }
}
