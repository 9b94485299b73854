//! `crm.profiles.v1.RelatedPersonService`: staff with `archive.write` (agents,
//! admins) add, change and remove a customer's related persons; `archive.read`
//! reads them, with phones and emails masked for callers without `pii`; a
//! customer reads their own (another customer's look like they do not exist).
//! Who may reach the customer is decided before anything is read.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::{Principal, caller},
    fieldmask::UpdateMask,
    idempotency::IdempotencyKey,
    pagination::PageTokenCodec,
    required, respond,
};
use crm_proto::crm::profiles::v1::{self as pb, related_person_service_server::RelatedPersonService};
use tonic::{Request, Response, Status};

use super::archive;
use crate::{
    app::{App, related_persons::RelatedPersons},
    domain::{access::sees_pii, related_person::RelatedPersonDraft},
    permissions,
    resources::{CUSTOMER, RELATED_PERSON},
    store::related_persons::RelatedPersonRow,
    wire::related_persons::{WRITABLE, copy_field, draft_from_proto, mask_pii, to_proto},
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

/// `row` as `principal` may see it.
fn shown(principal: &Principal, row: &RelatedPersonRow) -> pb::RelatedPerson {
    let mut person = to_proto(row);
    if !sees_pii(principal, row.customer_id) {
        mask_pii(&mut person);
    }
    person
}

/// PERMISSION_DENIED unless the caller is staff with `archive.write` (customers do not write here).
fn require_writer(principal: &Principal) -> Result<(), Error> {
    principal.require(permissions::ARCHIVE_WRITE)
}

fn to_draft(person: &pb::RelatedPerson) -> Result<RelatedPersonDraft, Error> {
    draft_from_proto(person, "related_person", Utc::now()).map_err(|violations| Error::InvalidArgument { violations })
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
            require_writer(&principal)?;
            let request = request.into_inner();
            let customer = CUSTOMER.parse(&request.parent, "parent")?;
            let key = IdempotencyKey::new(
                "CreateRelatedPerson",
                &request.request_id,
                &pb::CreateRelatedPersonRequest { request_id: String::new(), ..request.clone() },
            )?;
            let draft = to_draft(&required(request.related_person, "related_person")?)?;
            self.app
                .create_record::<RelatedPersons, _>(principal.tenant, customer, draft, key.as_ref(), Utc::now(), |row| {
                    pb::CreateRelatedPersonResponse { related_person: Some(shown(&principal, row)) }
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
            let row = archive::get::<RelatedPersons>(&self.app, &principal, &request.get_ref().name).await?;
            Ok(pb::GetRelatedPersonResponse { related_person: Some(shown(&principal, &row)) })
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
            let request = request.get_ref();
            let page = (request.parent.as_str(), request.page_size, request.page_token.as_str());
            let (rows, next_page_token) =
                archive::list::<RelatedPersons>(&self.app, &self.page_tokens, &principal, "ListRelatedPersons", page).await?;
            Ok(pb::ListRelatedPersonsResponse { related_persons: rows.iter().map(|r| shown(&principal, r)).collect(), next_page_token })
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
            require_writer(&principal)?;
            let pb::UpdateRelatedPersonRequest { related_person, update_mask } = request.into_inner();
            let input = required(related_person, "related_person")?;
            let (customer, id) = RELATED_PERSON.parse(&input.name, "related_person.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            let row = self
                .app
                .update_record::<RelatedPersons>(
                    principal.tenant,
                    (customer, id),
                    &input.etag,
                    |stored| {
                        let mut merged = to_proto(stored);
                        for path in &paths {
                            copy_field(&mut merged, &input, path);
                        }
                        to_draft(&merged)
                    },
                    Utc::now(),
                )
                .await?;
            Ok(pb::UpdateRelatedPersonResponse { related_person: Some(shown(&principal, &row)) })
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
