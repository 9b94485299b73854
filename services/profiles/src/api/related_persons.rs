//! `crm.profiles.v1.RelatedPersonService`: staff with `archive.write` (agents,
//! admins) add, change and remove a customer's related persons; `archive.read`
//! reads them, with phones and emails masked for callers without `pii`; a
//! customer reads their own (another customer's look like they do not exist).
//! Who may reach the customer is decided before anything is read.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::{Principal, caller},
    idempotency::IdempotencyKey,
    pagination::PageTokenCodec,
    respond,
};
use crm_proto::crm::profiles::v1::{self as pb, related_person_service_server::RelatedPersonService};
use tonic::{Request, Response, Status};

use super::archive::{self, ArchiveWire};
use crate::{
    app::{App, related_persons::RelatedPersons},
    wire::related_persons::{copy_field, draft_from_proto},
};

/// Handlers of RelatedPersonService.
#[derive(Clone)]
pub struct RelatedPersonApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl RelatedPersonApi {
    /// Handlers over `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

impl ArchiveWire for RelatedPersons {
    const FIELD: &'static str = "related_person";

    fn copy_field(dst: &mut pb::RelatedPerson, src: &pb::RelatedPerson, path: &str) {
        copy_field(dst, src, path);
    }

    fn name_and_etag(record: &pb::RelatedPerson) -> (&str, &str) {
        (&record.name, &record.etag)
    }

    fn draft(record: &pb::RelatedPerson, _principal: &Principal) -> Result<Self::Draft, Error> {
        draft_from_proto(record, Self::FIELD, Utc::now()).map_err(|violations| Error::InvalidArgument { violations })
    }
}

#[tonic::async_trait]
impl RelatedPersonService for RelatedPersonApi {
    #[tracing::instrument(skip_all)]
    async fn create_related_person(
        &self,
        request: Request<pb::CreateRelatedPersonRequest>,
    ) -> Result<Response<pb::CreateRelatedPersonResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            archive::require_writer(&principal)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateRelatedPerson",
                &request.request_id,
                &pb::CreateRelatedPersonRequest { request_id: String::new(), ..request.clone() },
            )?;
            archive::create::<RelatedPersons, _>(&self.app, &principal, &request.parent, request.related_person, key.as_ref(), |record| {
                pb::CreateRelatedPersonResponse { related_person: Some(record) }
            })
            .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_related_person(
        &self,
        request: Request<pb::GetRelatedPersonRequest>,
    ) -> Result<Response<pb::GetRelatedPersonResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let record = archive::get::<RelatedPersons>(&self.app, &principal, &request.get_ref().name).await?;
            Ok(pb::GetRelatedPersonResponse { related_person: Some(record) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_related_persons(
        &self,
        request: Request<pb::ListRelatedPersonsRequest>,
    ) -> Result<Response<pb::ListRelatedPersonsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let r = request.get_ref();
            let page = (r.parent.as_str(), r.page_size, r.page_token.as_str());
            let (related_persons, next_page_token) =
                archive::list::<RelatedPersons>(&self.app, &self.page_tokens, &principal, "ListRelatedPersons", page).await?;
            Ok(pb::ListRelatedPersonsResponse { related_persons, next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_related_person(
        &self,
        request: Request<pb::UpdateRelatedPersonRequest>,
    ) -> Result<Response<pb::UpdateRelatedPersonResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let pb::UpdateRelatedPersonRequest { related_person, update_mask } = request.into_inner();
            let record = archive::update::<RelatedPersons>(&self.app, &principal, related_person, update_mask.as_ref()).await?;
            Ok(pb::UpdateRelatedPersonResponse { related_person: Some(record) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_related_person(
        &self,
        request: Request<pb::DeleteRelatedPersonRequest>,
    ) -> Result<Response<pb::DeleteRelatedPersonResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            archive::delete::<RelatedPersons>(&self.app, &principal, &request.get_ref().name, &request.get_ref().etag).await?;
            Ok(pb::DeleteRelatedPersonResponse {})
        })
        .await
    }
}
