//! Journeys' definitions: created and edited as a draft (checked each time:
//! its shape by the domain, its templates and holiday here, its segments and
//! filters by the handler against profiles), published as immutable
//! versions, paused and resumed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    idempotency::{self, IdempotencyKey},
};
use prost::Message;
use uuid::Uuid;

use super::App;
use crate::{
    domain::{
        blueprints::Blueprint,
        journey::{Action, Definition, Problem, Trigger},
        questionnaire::SURVEY_LINK,
    },
    resources::{JOURNEY, TEMPLATE},
    store::{
        holidays as stored_holidays,
        journeys::{self, JOURNEYS, JourneyRow},
        templates::{TEMPLATES, TemplateRow},
    },
    wire::journeys::problems_to_error,
};

/// A journey's editable part.
#[derive(Debug, Clone)]
pub struct JourneyDraft {
    pub display_name: String,
    pub definition: Definition,
}

/// INVALID_ARGUMENT naming each step whose template is missing or lacks a locked variable,
/// and the trigger if its holiday is not in the calendar.
async fn check_references(tx: &mut crm_kit::db::TenantTx, tenant: Uuid, d: &Definition) -> Result<(), Error> {
    let ids: Vec<Uuid> = d.templates().iter().filter_map(|t| t.parse().ok()).collect();
    let found: Vec<TemplateRow> = TEMPLATES.find_many(tx, tenant, &ids).await?;
    let templates: BTreeMap<String, &TemplateRow> = found.iter().map(|t| (t.id.to_string(), t)).collect();
    let mut problems = Vec::new();
    let sends = d.steps.iter().flat_map(|step| match &step.action {
        Action::Send { template, variables, ab, questionnaire, .. } => {
            std::iter::once((step, template, variables, questionnaire.is_some()))
                .chain(ab.iter().flat_map(|t| t.variants.iter().map(move |v| (step, &v.template, &v.variables, questionnaire.is_some()))))
                .collect()
        }
        _ => Vec::new(),
    });
    for (step, template, variables, surveys) in sends {
        match templates.get(template) {
            None => problems.push(Problem {
                subject: step.id.clone(),
                reason: "UNKNOWN_TEMPLATE",
                message: format!("{} is not a template of this tenant", TEMPLATE.name(template.parse().unwrap_or_default())),
            }),
            Some(t) => {
                if surveys && !t.variables.iter().any(|v| v == SURVEY_LINK) {
                    problems.push(Problem {
                        subject: step.id.clone(),
                        reason: "MISSING_SURVEY_LINK",
                        message: format!("the questionnaire's invitation reaches the message as {{{{ vars.{SURVEY_LINK} }}}}, which the template does not show"),
                    });
                }
                for locked in t.locked_variables.iter().filter(|l| variables.get(*l).is_none_or(|v| v.trim().is_empty())) {
                    problems.push(Problem {
                        subject: step.id.clone(),
                        reason: "MISSING_LOCKED_VARIABLE",
                        message: format!("the template requires vars.{locked}"),
                    });
                }
            }
        }
    }
    for step in &d.steps {
        let Action::Send { questionnaire: Some(questionnaire), .. } = &step.action else { continue };
        let id: Uuid = questionnaire.parse().unwrap_or_default();
        let found: Option<crate::store::questionnaires::QuestionnaireRow> =
            crate::store::questionnaires::QUESTIONNAIRES.find(tx, tenant, id, false).await?;
        if found.is_none() {
            problems.push(Problem {
                subject: step.id.clone(),
                reason: "UNKNOWN_QUESTIONNAIRE",
                message: format!("questionnaires/{questionnaire} is not a questionnaire of this tenant"),
            });
        }
    }
    if let Trigger::Holiday { holiday, .. } = &d.trigger {
        let stored = stored_holidays::find(tx, tenant, holiday, false).await?;
        let known = crate::domain::holidays::built_in(holiday).is_some() || stored.is_some();
        if !known {
            problems.push(Problem {
                subject: "trigger".to_owned(),
                reason: "UNKNOWN_HOLIDAY",
                message: format!("holidays/{holiday} is not in this tenant's calendar"),
            });
        } else if stored.is_some_and(|h| h.disabled) {
            problems.push(Problem {
                subject: "trigger".to_owned(),
                reason: "HOLIDAY_DISABLED",
                message: format!("holidays/{holiday} is disabled in this tenant's calendar; enable it first"),
            });
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems_to_error(d, &problems)),
    }
}

/// INVALID_ARGUMENT for every problem of the definition's own shape.
pub fn check_shape(d: &Definition) -> Result<(), Error> {
    let problems = d.check();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems_to_error(d, &problems)),
    }
}

/// FAILED_PRECONDITION for a move the journey's state does not allow.
fn wrong_state(row: &JourneyRow, wanted: &str) -> Error {
    Error::FailedPrecondition {
        reason: "INVALID_JOURNEY_STATE",
        message: format!("the journey is {}; {wanted}", row.state),
        subject: JOURNEY.name(row.id),
    }
}

impl App {
    /// Creates a DRAFT journey (its shape checked by the caller, its references here).
    pub async fn create_journey<R: Message + Default>(
        &self,
        tenant: Uuid,
        draft: JourneyDraft,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&JourneyRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        check_references(&mut tx, tenant, &draft.definition).await?;
        let row = journeys::insert(&mut tx, tenant, Uuid::now_v7(), &draft.display_name, &draft.definition, now).await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Creates a DRAFT journey from built-in `blueprint` with its greeting
    /// card as a new template, in one transaction; a retry with the same
    /// request id returns the first response.
    pub async fn create_journey_from_blueprint<R: Message + Default>(
        &self,
        tenant: Uuid,
        blueprint: &Blueprint,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&JourneyRow, Uuid) -> R,
    ) -> Result<R, Error> {
        let card = blueprint.card();
        let variables = crate::domain::template::check(&card, "template")
            .map_err(|_| Error::Internal(anyhow::anyhow!("the built-in card of {} does not check", blueprint.id)))?;
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        let template = crate::store::templates::insert(&mut tx, tenant, &card, &variables, now).await?;
        let created = crm_proto::crm::campaigns::v1::TemplateCreated { template: Some(crate::wire::template_to(&template)) };
        super::emit(&mut tx, tenant, &TEMPLATE.name(template.id), &created).await?;
        let definition = blueprint.definition(&template.id.to_string());
        let row = journeys::insert(&mut tx, tenant, Uuid::now_v7(), blueprint.display_name, &definition, now).await?;
        let response = respond(&row, template.id);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Journey `id`, or NOT_FOUND.
    pub async fn journey(&self, tenant: Uuid, id: Uuid) -> Result<JourneyRow, Error> {
        JOURNEYS.get(&self.pool, tenant, id).await?.ok_or_else(|| JOURNEY.not_found(id))
    }

    /// A page of journeys, newest first.
    pub async fn journeys(&self, tenant: Uuid, before: Option<Uuid>, limit: i64) -> Result<Vec<JourneyRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = journeys::list(&mut tx, tenant, before, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Replaces the draft with what `edit` makes of the stored one (after the etag check).
    pub async fn update_journey(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&JourneyRow) -> Result<JourneyDraft, Error>,
        now: DateTime<Utc>,
    ) -> Result<JourneyRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row: JourneyRow = JOURNEYS.lock_for_change(&mut tx, tenant, id, &JOURNEY, etag, "journey.etag").await?;
        let draft = edit(&row)?;
        check_shape(&draft.definition)?;
        check_references(&mut tx, tenant, &draft.definition).await?;
        let updated = journeys::update_draft(&mut tx, tenant, id, &draft.display_name, &draft.definition, now).await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Deletes a journey that was never published.
    pub async fn delete_journey(&self, tenant: Uuid, id: Uuid, etag: &str) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let row: JourneyRow = JOURNEYS.lock_for_change(&mut tx, tenant, id, &JOURNEY, etag, "etag").await?;
        if row.published_version > 0 {
            return Err(wrong_state(&row, "a published journey is paused, not deleted (its runs and history stay)"));
        }
        JOURNEYS.delete(&mut tx, tenant, id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Publishes the draft as the next version (its references checked again) and makes the journey ACTIVE (a paused one stays paused).
    pub async fn publish_journey(&self, tenant: Uuid, id: Uuid, etag: &str, now: DateTime<Utc>) -> Result<JourneyRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row: JourneyRow = JOURNEYS.lock_for_change(&mut tx, tenant, id, &JOURNEY, etag, "etag").await?;
        if row.published_version > 0 && !row.has_unpublished_changes {
            tx.commit().await?;
            return Ok(row);
        }
        check_shape(&row.draft.0)?;
        check_references(&mut tx, tenant, &row.draft.0).await?;
        let published = journeys::publish(&mut tx, tenant, id, now).await?;
        let by_date = matches!(row.draft.0.trigger, Trigger::Birthday { .. } | Trigger::Holiday { .. });
        crate::store::journey_runs::set_occasion_journey(&mut tx, tenant, id, by_date).await?;
        super::ab_tests::register_in(&mut tx, tenant, id, published.published_version, &row.draft.0, now).await?;
        // Its trigger may be an event of either stream: from now on the tenant's streams are read.
        crm_kit::follow::follow_tenant(&mut tx, tenant, crate::store::streams::PROFILES).await?;
        crm_kit::follow::follow_tenant(&mut tx, tenant, crate::store::streams::TICKETS).await?;
        tx.commit().await?;
        Ok(published)
    }

    /// Moves an ACTIVE journey to PAUSED (`pause`) or a PAUSED one to ACTIVE; the same move again changes nothing.
    pub async fn set_journey_paused(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        pause: bool,
        now: DateTime<Utc>,
    ) -> Result<JourneyRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row: JourneyRow = JOURNEYS.lock_for_change(&mut tx, tenant, id, &JOURNEY, etag, "etag").await?;
        let (from, to) = if pause { ("ACTIVE", "PAUSED") } else { ("PAUSED", "ACTIVE") };
        let updated = match row.state.as_str() {
            state if state == to => row,
            state if state == from => journeys::set_state(&mut tx, tenant, id, to, now).await?,
            _ => return Err(wrong_state(&row, "publish it first")),
        };
        tx.commit().await?;
        Ok(updated)
    }
}
