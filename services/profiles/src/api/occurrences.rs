//! `crm.profiles.v1.OccurrenceService`: staff with `archive.write` (agents,
//! admins) record, change and remove what happened to a customer;
//! `archive.read` reads it, descriptions masked for callers without `pii`; a
//! customer reads their own.
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
use crm_proto::crm::profiles::v1::{self as pb, occurrence_service_server::OccurrenceService};
use tonic::{Request, Response, Status};

use super::archive;
use crate::{
    app::{App, occurrences::Occurrences},
    domain::{access::sees_pii, occurrence::OccurrenceDraft},
    permissions,
    resources::{CUSTOMER, OCCURRENCE},
    store::occurrences::OccurrenceRow,
    wire::occurrences::{WRITABLE, copy_field, draft_from_proto, mask_pii, to_proto},
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

/// `row` as `principal` may see it.
fn shown(principal: &Principal, row: &OccurrenceRow) -> pb::Occurrence {
    let mut occurrence = to_proto(row);
    if !sees_pii(principal, row.customer_id) {
        mask_pii(&mut occurrence);
    }
    occurrence
}

/// PERMISSION_DENIED unless the caller is staff with `archive.write` (customers do not write here).
fn require_writer(principal: &Principal) -> Result<(), Error> {
    principal.require(permissions::ARCHIVE_WRITE)
}

/// The validated draft of `occurrence`; `principal` is its agent when it names none.
fn to_draft(occurrence: &pb::Occurrence, principal: &Principal) -> Result<OccurrenceDraft, Error> {
    draft_from_proto(occurrence, "occurrence", &principal.subject, Utc::now()).map_err(|violations| Error::InvalidArgument { violations })
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
            require_writer(&principal)?;
            let request = request.into_inner();
            let customer = CUSTOMER.parse(&request.parent, "parent")?;
            let key = IdempotencyKey::new(
                "CreateOccurrence",
                &request.request_id,
                &pb::CreateOccurrenceRequest { request_id: String::new(), ..request.clone() },
            )?;
            let draft = to_draft(&required(request.occurrence, "occurrence")?, &principal)?;
            self.app
                .create_record::<Occurrences, _>(principal.tenant, customer, draft, key.as_ref(), Utc::now(), |row| {
                    pb::CreateOccurrenceResponse { occurrence: Some(shown(&principal, row)) }
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_occurrence(&self, request: Request<pb::GetOccurrenceRequest>) -> Result<Response<pb::GetOccurrenceResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let row = archive::get::<Occurrences>(&self.app, &principal, &request.get_ref().name).await?;
            Ok(pb::GetOccurrenceResponse { occurrence: Some(shown(&principal, &row)) })
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
            let request = request.get_ref();
            let page = (request.parent.as_str(), request.page_size, request.page_token.as_str());
            let (rows, next_page_token) =
                archive::list::<Occurrences>(&self.app, &self.page_tokens, &principal, "ListOccurrences", page).await?;
            Ok(pb::ListOccurrencesResponse { occurrences: rows.iter().map(|r| shown(&principal, r)).collect(), next_page_token })
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
            require_writer(&principal)?;
            let pb::UpdateOccurrenceRequest { occurrence, update_mask } = request.into_inner();
            let input = required(occurrence, "occurrence")?;
            let (customer, id) = OCCURRENCE.parse(&input.name, "occurrence.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            let row = self
                .app
                .update_record::<Occurrences>(
                    principal.tenant,
                    (customer, id),
                    &input.etag,
                    |stored| {
                        let mut merged = to_proto(stored);
                        for path in &paths {
                            copy_field(&mut merged, &input, path);
                        }
                        to_draft(&merged, &principal)
                    },
                    Utc::now(),
                )
                .await?;
            Ok(pb::UpdateOccurrenceResponse { occurrence: Some(shown(&principal, &row)) })
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
