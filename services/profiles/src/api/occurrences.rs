//! `crm.profiles.v1.OccurrenceService`: staff with `archive.write` (agents,
//! admins) record, change and remove what happened to a customer;
//! `archive.read` reads it, descriptions masked for callers without `pii`; a
//! customer reads their own.
//! Who may reach the customer is decided before anything is read.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::{Principal, caller},
    idempotency::IdempotencyKey,
    pagination::PageTokenCodec,
    respond,
};
use crm_proto::crm::profiles::v1::{self as pb, occurrence_service_server::OccurrenceService};
use tonic::{Request, Response, Status};

use super::archive::{self, ArchiveWire};
use crate::{
    app::{App, occurrences::Occurrences},
    wire::occurrences::{copy_field, draft_from_proto},
};

/// Handlers of OccurrenceService.
#[derive(Clone)]
pub struct OccurrenceApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl OccurrenceApi {
    /// Handlers over `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

impl ArchiveWire for Occurrences {
    const FIELD: &'static str = "occurrence";

    fn copy_field(dst: &mut pb::Occurrence, src: &pb::Occurrence, path: &str) {
        copy_field(dst, src, path);
    }

    fn name_and_etag(record: &pb::Occurrence) -> (&str, &str) {
        (&record.name, &record.etag)
    }

    fn draft(record: &pb::Occurrence, principal: &Principal) -> Result<Self::Draft, Error> {
        draft_from_proto(record, Self::FIELD, &principal.subject, Utc::now()).map_err(|violations| Error::InvalidArgument { violations })
    }
}

#[tonic::async_trait]
impl OccurrenceService for OccurrenceApi {
    #[tracing::instrument(skip_all)]
    async fn create_occurrence(
        &self,
        request: Request<pb::CreateOccurrenceRequest>,
    ) -> Result<Response<pb::CreateOccurrenceResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            archive::require_writer(&principal)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateOccurrence",
                &request.request_id,
                &pb::CreateOccurrenceRequest { request_id: String::new(), ..request.clone() },
            )?;
            archive::create::<Occurrences, _>(&self.app, &principal, &request.parent, request.occurrence, key.as_ref(), |record| {
                pb::CreateOccurrenceResponse { occurrence: Some(record) }
            })
            .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_occurrence(&self, request: Request<pb::GetOccurrenceRequest>) -> Result<Response<pb::GetOccurrenceResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let record = archive::get::<Occurrences>(&self.app, &principal, &request.get_ref().name).await?;
            Ok(pb::GetOccurrenceResponse { occurrence: Some(record) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_occurrences(
        &self,
        request: Request<pb::ListOccurrencesRequest>,
    ) -> Result<Response<pb::ListOccurrencesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let r = request.get_ref();
            let page = (r.parent.as_str(), r.page_size, r.page_token.as_str());
            let (occurrences, next_page_token) =
                archive::list::<Occurrences>(&self.app, &self.page_tokens, &principal, "ListOccurrences", page).await?;
            Ok(pb::ListOccurrencesResponse { occurrences, next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_occurrence(
        &self,
        request: Request<pb::UpdateOccurrenceRequest>,
    ) -> Result<Response<pb::UpdateOccurrenceResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let pb::UpdateOccurrenceRequest { occurrence, update_mask } = request.into_inner();
            let record = archive::update::<Occurrences>(&self.app, &principal, occurrence, update_mask.as_ref()).await?;
            Ok(pb::UpdateOccurrenceResponse { occurrence: Some(record) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_occurrence(
        &self,
        request: Request<pb::DeleteOccurrenceRequest>,
    ) -> Result<Response<pb::DeleteOccurrenceResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            archive::delete::<Occurrences>(&self.app, &principal, &request.get_ref().name, &request.get_ref().etag).await?;
            Ok(pb::DeleteOccurrenceResponse {})
        })
        .await
    }
}
