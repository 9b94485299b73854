//! `crm.profiles.v1.PremisesService`: staff with `archive.write` (agents,
//! admins) add and change premises and move customers in and out;
//! `archive.read` reads them; a customer lists their own occupancies.

use chrono::{NaiveDate, Utc};
use crm_kit::{
    Error,
    auth::caller,
    fieldmask::UpdateMask,
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    required, respond,
};
use crm_proto::crm::profiles::v1::{self as pb, premises_service_server::PremisesService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::authorization::authorize;
use crate::{
    app::{App, premises::PremisesView},
    domain::premises::PremisesDraft,
    permissions,
    resources::{CUSTOMER, OCCUPANCY, PREMISES},
    store::premises::MoveIn,
    wire::{
        date_field,
        premises::{WRITABLE, copy_field, draft_from_proto, occupancy_to, premises_to, role_from},
    },
};

/// Handlers of PremisesService.
#[derive(Clone)]
pub struct PremisesApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl PremisesApi {
    /// Handlers over `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

fn to_draft(premises: &pb::Premises) -> Result<PremisesDraft, Error> {
    draft_from_proto(premises, "premises").map_err(|violations| Error::InvalidArgument { violations })
}

fn shown((row, billing): &PremisesView) -> pb::Premises {
    premises_to(row, *billing)
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

#[tonic::async_trait]
impl PremisesService for PremisesApi {
    #[tracing::instrument(skip_all)]
    async fn create_premises(&self, request: Request<pb::CreatePremisesRequest>) -> Result<Response<pb::CreatePremisesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::ARCHIVE_WRITE)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreatePremises",
                &request.request_id,
                &pb::CreatePremisesRequest { request_id: String::new(), ..request.clone() },
            )?;
            let draft = to_draft(&required(request.premises, "premises")?)?;
            self.app
                .create_premises(principal.tenant, draft, key.as_ref(), Utc::now(), |row| pb::CreatePremisesResponse {
                    premises: Some(premises_to(row, None)),
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_premises(&self, request: Request<pb::GetPremisesRequest>) -> Result<Response<pb::GetPremisesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::ARCHIVE_READ)?;
            let id = PREMISES.parse(&request.get_ref().name, "name")?;
            let view = self.app.premises(principal.tenant, id, today()).await?;
            Ok(pb::GetPremisesResponse { premises: Some(shown(&view)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_premises(&self, request: Request<pb::ListPremisesRequest>) -> Result<Response<pb::ListPremisesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::ARCHIVE_READ)?;
            let request = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start::<(String, Uuid)>(request.page_size, &request.page_token, &["ListPremises"])?;
            let views = self.app.premises_page(principal.tenant, page.after.clone(), page.fetch_limit(), today()).await?;
            let (views, next_page_token) = pager.finish(&page, views, |(r, _)| (r.unit_code.clone(), r.id));
            Ok(pb::ListPremisesResponse { premises: views.iter().map(shown).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_premises(&self, request: Request<pb::UpdatePremisesRequest>) -> Result<Response<pb::UpdatePremisesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::ARCHIVE_WRITE)?;
            let pb::UpdatePremisesRequest { premises, update_mask } = request.into_inner();
            let input = required(premises, "premises")?;
            let id = PREMISES.parse(&input.name, "premises.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            self.app
                .update_premises(
                    principal.tenant,
                    id,
                    &input.etag,
                    |stored| {
                        let mut merged = premises_to(stored, None);
                        for path in &paths {
                            copy_field(&mut merged, &input, path);
                        }
                        to_draft(&merged)
                    },
                    Utc::now(),
                )
                .await?;
            let view = self.app.premises(principal.tenant, id, today()).await?;
            Ok(pb::UpdatePremisesResponse { premises: Some(shown(&view)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_premises(&self, request: Request<pb::DeletePremisesRequest>) -> Result<Response<pb::DeletePremisesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::ARCHIVE_WRITE)?;
            let request = request.get_ref();
            let id = PREMISES.parse(&request.name, "name")?;
            self.app.delete_premises(principal.tenant, id, &request.etag).await?;
            Ok(pb::DeletePremisesResponse {})
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn move_in(&self, request: Request<pb::MoveInRequest>) -> Result<Response<pb::MoveInResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::ARCHIVE_WRITE)?;
            let request = request.into_inner();
            let key =
                IdempotencyKey::new("MoveIn", &request.request_id, &pb::MoveInRequest { request_id: String::new(), ..request.clone() })?;
            let m = MoveIn {
                premises: PREMISES.parse(&request.premises, "premises")?,
                customer: CUSTOMER.parse(&request.customer, "customer")?,
                role: role_from(request.role, "role")?.to_owned(),
                date: date_field(request.move_in_date.as_ref(), "move_in_date")?,
                move_out: None,
            };
            self.app
                .move_in(principal.tenant, m, key.as_ref(), Utc::now(), |(row, ended)| pb::MoveInResponse {
                    occupancy: Some(occupancy_to(row)),
                    ended: ended.as_ref().map(occupancy_to),
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn move_out(&self, request: Request<pb::MoveOutRequest>) -> Result<Response<pb::MoveOutResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::ARCHIVE_WRITE)?;
            let request = request.get_ref();
            let name = OCCUPANCY.parse(&request.name, "name")?;
            let date = date_field(request.move_out_date.as_ref(), "move_out_date")?;
            let row = self.app.move_out(principal.tenant, name, date, &request.etag, Utc::now()).await?;
            Ok(pb::MoveOutResponse { occupancy: Some(occupancy_to(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_occupancies(
        &self,
        request: Request<pb::ListOccupanciesRequest>,
    ) -> Result<Response<pb::ListOccupanciesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::ARCHIVE_READ)?;
            let request = request.get_ref();
            let premises = PREMISES.parse(&request.parent, "parent")?;
            let (occupancies, next_page_token) =
                self.history(&principal, true, premises, &request.parent, request.page_size, &request.page_token).await?;
            Ok(pb::ListOccupanciesResponse { occupancies, next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_customer_occupancies(
        &self,
        request: Request<pb::ListCustomerOccupanciesRequest>,
    ) -> Result<Response<pb::ListCustomerOccupanciesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let request = request.get_ref();
            let customer = CUSTOMER.parse(&request.parent, "parent")?;
            authorize(&principal, customer, permissions::ARCHIVE_READ)?;
            let (occupancies, next_page_token) =
                self.history(&principal, false, customer, &request.parent, request.page_size, &request.page_token).await?;
            Ok(pb::ListCustomerOccupanciesResponse { occupancies, next_page_token })
        })
        .await
    }
}

impl PremisesApi {
    /// A page of occupancies of premises (`by_premises`) or of a customer, and the next page's token.
    async fn history(
        &self,
        principal: &crm_kit::auth::Principal,
        by_premises: bool,
        parent: Uuid,
        parent_name: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<pb::Occupancy>, String), Error> {
        let pager = Pager::new(&self.page_tokens);
        let page = pager.start::<(NaiveDate, Uuid)>(page_size, page_token, &["ListOccupancies", parent_name])?;
        let rows = self.app.occupancies(principal.tenant, by_premises, parent, page.after, page.fetch_limit()).await?;
        let (rows, token) = pager.finish(&page, rows, |r| (r.move_in_date, r.id));
        Ok((rows.iter().map(occupancy_to).collect(), token))
    }
}
