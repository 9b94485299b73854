//! Questionnaires: defined, sent by journeys' send steps as invitations
//! (one per run and step) with a signed link, answered through the link
//! once before they expire, and summed up.

use chrono::{DateTime, Utc};
use crm_kit::{Error, FieldViolation};
use sqlx::types::Json;
use uuid::Uuid;

use super::App;
use crate::{
    domain::questionnaire::{self, Answer, Question, Summary},
    resources::QUESTIONNAIRE,
    store::questionnaires::{self, INVITATIONS, InvitationRow, QUESTIONNAIRES, QuestionnaireRow, SentBy},
};

/// `problems` as INVALID_ARGUMENT, one violation each.
fn violations(problems: Vec<(String, &'static str, String)>) -> Error {
    Error::InvalidArgument { violations: problems.into_iter().map(|(f, r, m)| FieldViolation::new(f, r, m)).collect() }
}

impl App {
    /// Creates a questionnaire (its questions checked).
    pub async fn create_questionnaire(
        &self,
        tenant: Uuid,
        display_name: &str,
        questions: Vec<Question>,
        answer_within_days: i32,
        now: DateTime<Utc>,
    ) -> Result<QuestionnaireRow, Error> {
        let problems = questionnaire::check(&questions);
        if !problems.is_empty() {
            return Err(violations(problems));
        }
        let row = QuestionnaireRow {
            id: Uuid::now_v7(),
            display_name: display_name.to_owned(),
            questions: Json(questions),
            answer_within_days,
            create_time: now,
        };
        let mut tx = self.begin(tenant).await?;
        questionnaires::insert(&mut tx, tenant, &row).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Questionnaire `id`, or NOT_FOUND.
    pub async fn questionnaire(&self, tenant: Uuid, id: Uuid) -> Result<QuestionnaireRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let found: Option<QuestionnaireRow> = QUESTIONNAIRES.find(&mut tx, tenant, id, false).await?;
        tx.commit().await?;
        found.ok_or_else(|| QUESTIONNAIRE.not_found(id))
    }

    /// Questionnaire `id`'s invitations sent (by `by`) and answered, and
    /// each question's summary.
    pub async fn questionnaire_results(&self, tenant: Uuid, id: Uuid, by: SentBy) -> Result<(i64, i64, Vec<(String, Summary)>), Error> {
        let row = self.questionnaire(tenant, id).await?;
        let mut tx = self.begin(tenant).await?;
        let (invited, answered) = questionnaires::results(&mut tx, tenant, id, by).await?;
        tx.commit().await?;
        let summaries = questionnaire::summarize(&row.questions.0, &answered);
        Ok((invited, answered.len() as i64, summaries))
    }

    /// Invitation `id` with its questionnaire (the link was verified by the caller).
    pub async fn invitation(&self, tenant: Uuid, id: Uuid) -> Result<(InvitationRow, QuestionnaireRow), Error> {
        let mut tx = self.begin(tenant).await?;
        let found: Option<InvitationRow> = INVITATIONS.find(&mut tx, tenant, id, false).await?;
        let invitation = found.ok_or_else(|| Error::NotFound {
            resource_type: "campaigns.crm/QuestionnaireInvitation",
            name: "questionnaireInvitations/-".into(),
        })?;
        let questionnaire: Option<QuestionnaireRow> = QUESTIONNAIRES.find(&mut tx, tenant, invitation.questionnaire_id, false).await?;
        tx.commit().await?;
        let questionnaire = questionnaire.ok_or_else(|| QUESTIONNAIRE.not_found(invitation.questionnaire_id))?;
        Ok((invitation, questionnaire))
    }

    /// Answers invitation `id` once, before it expires: FAILED_PRECONDITION
    /// `ALREADY_ANSWERED` or `INVITATION_EXPIRED` otherwise; INVALID_ARGUMENT
    /// for answers that do not fit the questions.
    pub async fn answer_invitation(
        &self,
        tenant: Uuid,
        id: Uuid,
        answers: &[Answer],
        now: DateTime<Utc>,
    ) -> Result<(InvitationRow, QuestionnaireRow), Error> {
        let (invitation, questionnaire) = self.invitation(tenant, id).await?;
        let problems = questionnaire::check_answers(&questionnaire.questions.0, answers);
        if !problems.is_empty() {
            return Err(violations(problems));
        }
        let mut tx = self.begin(tenant).await?;
        let answered = questionnaires::answer(&mut tx, tenant, id, answers, now).await?;
        tx.commit().await?;
        let refused = |reason, message: &str| Error::FailedPrecondition {
            reason,
            message: message.to_owned(),
            subject: "questionnaireInvitations/-".to_owned(),
        };
        match answered {
            Some(row) => Ok((row, questionnaire)),
            None if invitation.answer_time.is_some() || invitation.expire_time > now => {
                Err(refused("ALREADY_ANSWERED", "this invitation was answered already"))
            }
            None => Err(refused("INVITATION_EXPIRED", "this invitation can no longer be answered")),
        }
    }
}

/// What a ticket's survey gets from an answered invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketAnswer {
    pub ticket: Uuid,
    /// The first rating answer (tickets' CSAT, 1-5).
    pub csat: i32,
    /// The first NPS answer.
    pub nps: Option<i32>,
    /// The first free-text answer.
    pub comment: String,
}

impl App {
    /// What invitation `id`'s answer gives its ticket's survey; None when
    /// there is nothing to write (no ticket, not answered, no rating).
    pub async fn ticket_answer(&self, tenant: Uuid, id: Uuid) -> Result<Option<TicketAnswer>, Error> {
        let (invitation, questionnaire) = self.invitation(tenant, id).await?;
        let (Some(ticket), Some(Json(answers))) = (invitation.ticket_id, invitation.answers) else { return Ok(None) };
        let kind_of = |a: &Answer| questionnaire.questions.0.iter().find(|q| q.id == a.question).map(|q| q.kind);
        let first = |kind| answers.iter().find(|a| kind_of(a) == Some(kind));
        let Some(csat) = first(questionnaire::Kind::Rating).map(|a| a.score) else { return Ok(None) };
        Ok(Some(TicketAnswer {
            ticket,
            csat,
            nps: first(questionnaire::Kind::Nps).map(|a| a.score),
            comment: first(questionnaire::Kind::Text).map(|a| a.text.clone()).unwrap_or_default(),
        }))
    }

    /// Invitation `id`'s answer is on its ticket (or has nothing for it): its queue row goes.
    pub async fn ticket_answer_done(&self, tenant: Uuid, id: Uuid) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        questionnaires::ticket_answer_done(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Invitation `id`'s ticket write is tried again at `due`.
    pub async fn ticket_answer_later(&self, tenant: Uuid, id: Uuid, due: DateTime<Utc>) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        questionnaires::ticket_answer_later(&mut tx, tenant, id, due).await?;
        tx.commit().await?;
        Ok(())
    }
}
