//! `crm.profiles.v1.CommunicationService`: staff with `archive.write`
//! (agents, admins) record, change and remove contacts with a customer and
//! read the follow-ups due; `archive.read` reads the records, their text
//! masked for callers without `pii`; a customer reads their own.
//! Who may reach the customer is decided before anything is read.

use chrono::{NaiveDate, Utc};
use crm_kit::{
    Error,
    auth::{Principal, caller},
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    respond,
};
use crm_proto::crm::profiles::v1::{self as pb, communication_service_server::CommunicationService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::archive::{self, ArchiveWire};
use crate::{
    app::{App, communications::Communications},
    permissions,
    wire::{
        communications::{copy_field, draft_from_proto},
        date_field,
    },
};

/// Handlers of CommunicationService.
#[derive(Clone)]
pub struct CommunicationApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl CommunicationApi {
    /// Handlers over `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

impl ArchiveWire for Communications {
    const FIELD: &'static str = "communication";

    fn copy_field(dst: &mut pb::Communication, src: &pb::Communication, path: &str) {
        copy_field(dst, src, path);
    }

    fn name_and_etag(record: &pb::Communication) -> (&str, &str) {
        (&record.name, &record.etag)
    }

    fn draft(record: &pb::Communication, principal: &Principal) -> Result<Self::Draft, Error> {
        draft_from_proto(record, Self::FIELD, &principal.subject, Utc::now()).map_err(|violations| Error::InvalidArgument { violations })
    }
}

#[tonic::async_trait]
impl CommunicationService for CommunicationApi {
    #[tracing::instrument(skip_all)]
    async fn create_communication(
        &self,
        request: Request<pb::CreateCommunicationRequest>,
    ) -> Result<Response<pb::CreateCommunicationResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            archive::require_writer(&principal)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateCommunication",
                &request.request_id,
                &pb::CreateCommunicationRequest { request_id: String::new(), ..request.clone() },
            )?;
            archive::create::<Communications, _>(&self.app, &principal, &request.parent, request.communication, key.as_ref(), |record| {
                pb::CreateCommunicationResponse { communication: Some(record) }
            })
            .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_communication(
        &self,
        request: Request<pb::GetCommunicationRequest>,
    ) -> Result<Response<pb::GetCommunicationResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let record = archive::get::<Communications>(&self.app, &principal, &request.get_ref().name).await?;
            Ok(pb::GetCommunicationResponse { communication: Some(record) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_communications(
        &self,
        request: Request<pb::ListCommunicationsRequest>,
    ) -> Result<Response<pb::ListCommunicationsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let r = request.get_ref();
            let page = (r.parent.as_str(), r.page_size, r.page_token.as_str());
            let (communications, next_page_token) =
                archive::list::<Communications>(&self.app, &self.page_tokens, &principal, "ListCommunications", page).await?;
            Ok(pb::ListCommunicationsResponse { communications, next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_communication(
        &self,
        request: Request<pb::UpdateCommunicationRequest>,
    ) -> Result<Response<pb::UpdateCommunicationResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let pb::UpdateCommunicationRequest { communication, update_mask } = request.into_inner();
            let record = archive::update::<Communications>(&self.app, &principal, communication, update_mask.as_ref()).await?;
            Ok(pb::UpdateCommunicationResponse { communication: Some(record) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_due_reminders(
        &self,
        request: Request<pb::ListDueRemindersRequest>,
    ) -> Result<Response<pb::ListDueRemindersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            // Follow-ups are the agents' work list: staff who write the archive.
            principal.require(permissions::ARCHIVE_WRITE)?;
            let request = request.get_ref();
            let agent = match request.agent.as_str() {
                "" => Some(principal.subject.as_str()),
                "*" => None,
                name => Some(name),
            };
            let due_by = match &request.due_by {
                None => Utc::now().date_naive(),
                Some(date) => date_field(Some(date), "due_by")?,
            };
            let pager = Pager::new(&self.page_tokens);
            let query = ["ListDueReminders", agent.unwrap_or("*"), &due_by.to_string()];
            let page = pager.start::<(NaiveDate, Uuid)>(request.page_size, &request.page_token, &query)?;
            let rows = self.app.due_reminders(principal.tenant, agent, due_by, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |r| (r.next_contact_date.unwrap_or_default(), r.id));
            Ok(pb::ListDueRemindersResponse {
                communications: rows.iter().map(|r| archive::shown::<Communications>(&principal, r)).collect(),
                next_page_token,
            })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_communication(
        &self,
        request: Request<pb::DeleteCommunicationRequest>,
    ) -> Result<Response<pb::DeleteCommunicationResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            archive::delete::<Communications>(&self.app, &principal, &request.get_ref().name, &request.get_ref().etag).await?;
            Ok(pb::DeleteCommunicationResponse {})
        })
        .await
    }
}
