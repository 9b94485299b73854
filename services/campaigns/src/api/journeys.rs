//! `crm.campaigns.v1.JourneyService`: journeys' definitions, versions and
//! state, and the runs customers make through them. Reading needs
//! `journeys.read`, entering a customer `journeys.enter`, changing `journeys.run`. A
//! definition is checked on every save: its shape (domain), its segments and
//! branch filters against profiles (with the caller's own token, before any
//! transaction), its templates and holiday in the use case.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::caller,
    client::Caller,
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    required, respond,
};
use crm_proto::crm::campaigns::v1::{self as pb, journey_service_server::JourneyService};
use tonic::{Request, Response, Status};

use crate::{
    app::{
        App,
        journeys::{JourneyDraft, check_shape},
    },
    domain::{
        blueprints::{BLUEPRINTS, blueprint},
        journey::{Action, Condition, Definition, EventTrigger, Trigger},
    },
    permissions,
    profiles::ProfilesClient,
    resources::{CUSTOMER, JOURNEY, JOURNEY_RUN, TEMPLATE},
    store::journey_runs::RunScope,
    wire::{
        display_name,
        journeys::{definition_from, journey_to, run_to},
    },
};

/// The longest journey name, in characters.
const MAX_JOURNEY_NAME: usize = 200;

/// Handlers of JourneyService.
#[derive(Clone)]
pub struct JourneyApi {
    app: App,
    page_tokens: PageTokenCodec,
    profiles: ProfilesClient,
}

impl JourneyApi {
    /// Handlers over `app`, checking segments and filters with `profiles`.
    pub fn new(app: App, page_tokens: PageTokenCodec, profiles: ProfilesClient) -> Self {
        Self { app, page_tokens, profiles }
    }

    /// The definition's shape, then what profiles owns: its segments exist and its branch filters parse.
    async fn check(&self, from: &Caller, d: &Definition) -> Result<(), Error> {
        check_shape(d)?;
        if let Trigger::Event(EventTrigger::SegmentEntered { segment } | EventTrigger::SegmentLeft { segment }) = &d.trigger {
            self.profiles.check_segment(from, segment, "journey.trigger.event.segment").await?;
        }
        for (i, step) in d.steps.iter().enumerate() {
            match &step.action {
                Action::Branch { condition: Condition::InSegment { segment }, .. } => {
                    self.profiles.check_segment(from, segment, &format!("journey.steps[{i}].branch.in_segment")).await?;
                }
                Action::Branch { condition: Condition::Matches { filter }, .. } => {
                    self.profiles.customers(from, filter, "", 1, &format!("journey.steps[{i}].branch.filter")).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl JourneyService for JourneyApi {
    #[tracing::instrument(skip_all)]
    async fn create_journey(&self, request: Request<pb::CreateJourneyRequest>) -> Result<Response<pb::CreateJourneyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_RUN)?;
            let from = Caller::of(&request);
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateJourney",
                &request.request_id,
                &pb::CreateJourneyRequest { request_id: String::new(), ..request.clone() },
            )?;
            let journey = required(request.journey, "journey")?;
            let draft = JourneyDraft {
                display_name: display_name(&journey.display_name, "journey.display_name", MAX_JOURNEY_NAME)?,
                definition: definition_from(&journey)?,
            };
            self.check(&from, &draft.definition).await?;
            self.app
                .create_journey(principal.tenant, draft, key.as_ref(), Utc::now(), |row| pb::CreateJourneyResponse {
                    journey: Some(journey_to(row)),
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_journey(&self, request: Request<pb::GetJourneyRequest>) -> Result<Response<pb::GetJourneyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_READ)?;
            let id = JOURNEY.parse(&request.get_ref().name, "name")?;
            Ok(pb::GetJourneyResponse { journey: Some(journey_to(&self.app.journey(principal.tenant, id).await?)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_journeys(&self, request: Request<pb::ListJourneysRequest>) -> Result<Response<pb::ListJourneysResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_READ)?;
            let request = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(request.page_size, &request.page_token, &["ListJourneys", &principal.tenant.to_string()])?;
            let rows = self.app.journeys(principal.tenant, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |j| j.id);
            Ok(pb::ListJourneysResponse { journeys: rows.iter().map(journey_to).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_journey(&self, request: Request<pb::UpdateJourneyRequest>) -> Result<Response<pb::UpdateJourneyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_RUN)?;
            let from = Caller::of(&request);
            let request = request.into_inner();
            let change = required(request.journey, "journey")?;
            let id = JOURNEY.parse(&change.name, "journey.name")?;
            let mask = required(request.update_mask, "update_mask")?;
            const PATHS: [&str; 6] = ["display_name", "trigger", "steps", "reentry", "reentry_days", "exit_on_purchase"];
            if mask.paths.is_empty() {
                return Err(Error::invalid("update_mask", "EMPTY_MASK", format!("name the fields to change: {}", PATHS.join(", "))));
            }
            if let Some(other) = mask.paths.iter().find(|p| !PATHS.contains(&p.as_str())) {
                return Err(Error::invalid("update_mask", "UNKNOWN_FIELD", format!("{other} cannot be changed; {} can", PATHS.join(", "))));
            }
            // The stored draft with the masked fields of the request laid over it, checked before the transaction.
            let current = self.app.journey(principal.tenant, id).await?;
            let mut merged = journey_to(&current);
            for path in &mask.paths {
                match path.as_str() {
                    "display_name" => merged.display_name = change.display_name.clone(),
                    "trigger" => merged.trigger = change.trigger.clone(),
                    "steps" => merged.steps = change.steps.clone(),
                    "reentry" => merged.reentry = change.reentry,
                    "reentry_days" => merged.reentry_days = change.reentry_days,
                    _ => merged.exit_on_purchase = change.exit_on_purchase,
                }
            }
            let draft = JourneyDraft {
                display_name: display_name(&merged.display_name, "journey.display_name", MAX_JOURNEY_NAME)?,
                definition: definition_from(&merged)?,
            };
            self.check(&from, &draft.definition).await?;
            // The draft was merged from a read before the lock: if the journey changed since, the merge is stale.
            let read_revision = current.revision;
            let edit = |locked: &crate::store::journeys::JourneyRow| match locked.revision == read_revision {
                true => Ok(draft),
                false => Err(Error::Conflict),
            };
            let updated = self.app.update_journey(principal.tenant, id, &change.etag, edit, Utc::now()).await?;
            Ok(pb::UpdateJourneyResponse { journey: Some(journey_to(&updated)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_journey(&self, request: Request<pb::DeleteJourneyRequest>) -> Result<Response<pb::DeleteJourneyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_RUN)?;
            let request = request.get_ref();
            let id = JOURNEY.parse(&request.name, "name")?;
            self.app.delete_journey(principal.tenant, id, &request.etag).await?;
            Ok(pb::DeleteJourneyResponse {})
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn publish_journey(&self, request: Request<pb::PublishJourneyRequest>) -> Result<Response<pb::PublishJourneyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_RUN)?;
            let from = Caller::of(&request);
            let request = request.get_ref();
            let id = JOURNEY.parse(&request.name, "name")?;
            // A segment may have been deleted in profiles since the draft was saved.
            let current = self.app.journey(principal.tenant, id).await?;
            self.check(&from, &current.draft.0).await?;
            let published = self.app.publish_journey(principal.tenant, id, &request.etag, Utc::now()).await?;
            Ok(pb::PublishJourneyResponse { journey: Some(journey_to(&published)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn pause_journey(&self, request: Request<pb::PauseJourneyRequest>) -> Result<Response<pb::PauseJourneyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_RUN)?;
            let request = request.get_ref();
            let id = JOURNEY.parse(&request.name, "name")?;
            let paused = self.app.set_journey_paused(principal.tenant, id, &request.etag, true, Utc::now()).await?;
            Ok(pb::PauseJourneyResponse { journey: Some(journey_to(&paused)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn resume_journey(&self, request: Request<pb::ResumeJourneyRequest>) -> Result<Response<pb::ResumeJourneyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_RUN)?;
            let request = request.get_ref();
            let id = JOURNEY.parse(&request.name, "name")?;
            let resumed = self.app.set_journey_paused(principal.tenant, id, &request.etag, false, Utc::now()).await?;
            Ok(pb::ResumeJourneyResponse { journey: Some(journey_to(&resumed)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn enter_journey(&self, request: Request<pb::EnterJourneyRequest>) -> Result<Response<pb::EnterJourneyResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_ENTER)?;
            let from = Caller::of(&request);
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "EnterJourney",
                &request.request_id,
                &pb::EnterJourneyRequest { request_id: String::new(), ..request.clone() },
            )?;
            let journey = JOURNEY.parse(&request.name, "name")?;
            let customer = CUSTOMER.parse(&request.customer, "customer")?;
            // The customer is one of the caller's (their read decides), before anything is written.
            self.profiles.customer(&from, customer, "customer").await?;
            self.app
                .enter_journey(principal.tenant, journey, customer, key.as_ref(), Utc::now(), |run| pb::EnterJourneyResponse {
                    run: Some(run_to(run, &[])),
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_journey_run(&self, request: Request<pb::GetJourneyRunRequest>) -> Result<Response<pb::GetJourneyRunResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_READ)?;
            let (journey, run) = JOURNEY_RUN.parse(&request.get_ref().name, "name")?;
            let (row, steps) = self.app.journey_run(principal.tenant, journey, run).await?;
            Ok(pb::GetJourneyRunResponse { run: Some(run_to(&row, &steps)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_journey_runs(
        &self,
        request: Request<pb::ListJourneyRunsRequest>,
    ) -> Result<Response<pb::ListJourneyRunsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_READ)?;
            let request = request.get_ref();
            let journey = match request.parent.as_str() {
                "journeys/-" => None,
                parent => Some(JOURNEY.parse(parent, "parent")?),
            };
            let customer = match request.customer.as_str() {
                "" => None,
                name => Some(CUSTOMER.parse(name, "customer")?),
            };
            if journey.is_none() && customer.is_none() {
                return Err(Error::invalid("customer", "CUSTOMER_REQUIRED", "across journeys (parent \"journeys/-\") name the customer"));
            }
            let pager = Pager::new(&self.page_tokens);
            let query = ["ListJourneyRuns", &principal.tenant.to_string(), &request.parent, &request.customer];
            let page = pager.start(request.page_size, &request.page_token, &query)?;
            let scope = RunScope { journey, customer };
            let (runs, steps) = self.app.journey_runs(principal.tenant, scope, page.after, page.fetch_limit()).await?;
            let (runs, next_page_token) = pager.finish(&page, runs, |r| r.id);
            Ok(pb::ListJourneyRunsResponse { runs: runs.iter().map(|r| run_to(r, &steps)).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn cancel_journey_run(
        &self,
        request: Request<pb::CancelJourneyRunRequest>,
    ) -> Result<Response<pb::CancelJourneyRunResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_RUN)?;
            let (journey, run) = JOURNEY_RUN.parse(&request.get_ref().name, "name")?;
            self.app.cancel_run(principal.tenant, journey, run, Utc::now()).await?;
            let (row, steps) = self.app.journey_run(principal.tenant, journey, run).await?;
            Ok(pb::CancelJourneyRunResponse { run: Some(run_to(&row, &steps)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_journey_blueprints(
        &self,
        request: Request<pb::ListJourneyBlueprintsRequest>,
    ) -> Result<Response<pb::ListJourneyBlueprintsResponse>, Status> {
        respond(async move {
            caller(&request)?.require(permissions::JOURNEYS_READ)?;
            let blueprints = BLUEPRINTS
                .iter()
                .map(|b| pb::JourneyBlueprint {
                    name: format!("journeyBlueprints/{}", b.id),
                    display_name: b.display_name.to_owned(),
                    description: b.description.to_owned(),
                })
                .collect();
            Ok(pb::ListJourneyBlueprintsResponse { blueprints })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn create_journey_from_blueprint(
        &self,
        request: Request<pb::CreateJourneyFromBlueprintRequest>,
    ) -> Result<Response<pb::CreateJourneyFromBlueprintResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::JOURNEYS_RUN)?;
            principal.require(permissions::TEMPLATES_WRITE)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateJourneyFromBlueprint",
                &request.request_id,
                &pb::CreateJourneyFromBlueprintRequest { request_id: String::new(), ..request.clone() },
            )?;
            let found = request.name.strip_prefix("journeyBlueprints/").and_then(blueprint);
            let Some(blueprint) = found else {
                return Err(Error::NotFound { resource_type: "campaigns.crm/JourneyBlueprint", name: request.name.clone() });
            };
            self.app
                .create_journey_from_blueprint(principal.tenant, blueprint, key.as_ref(), Utc::now(), |row, template| {
                    pb::CreateJourneyFromBlueprintResponse { journey: Some(journey_to(row)), template: TEMPLATE.name(template) }
                })
                .await
        })
        .await
    }
}
