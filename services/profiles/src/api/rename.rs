//! `crm.profiles.v1.RenameRequestService`: whoever may change a customer's
//! display name asks for a rename (staff with `customers.update` and the
//! name among their writable fields, or the customer themself); holders of
//! `customers.approve_rename` approve or reject; `customers.read` reads.
//! Administrators turn approval on and off (`settings.configure`).

use chrono::Utc;
use crm_kit::{
    Error,
    auth::caller,
    fieldmask::UpdateMask,
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    protoenum, required, respond, time,
};
use crm_proto::crm::profiles::v1::{self as pb, rename_request_service_server::RenameRequestService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::authorization::authorize;
use crate::{
    app::{App, rename::Verdict},
    domain::{access::may_write, fields},
    permissions,
    resources::{CUSTOMER, RENAME_REQUEST},
    wire::rename::{draft_from_proto, to_proto},
};

/// The one name of the settings singleton.
const SETTINGS_NAME: &str = "renameSettings";

/// Handlers of RenameRequestService.
#[derive(Clone)]
pub struct RenameRequestApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl RenameRequestApi {
    /// Handlers over `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }

    /// Approves or rejects the request named `name`, for holders of `customers.approve_rename`.
    async fn review(&self, request: Request<(String, String, String)>, verdict: Verdict) -> Result<pb::RenameRequest, Error> {
        let principal = caller(&request)?;
        principal.require(permissions::CUSTOMERS_APPROVE_RENAME)?;
        let (name, comment, etag) = request.into_inner();
        let (customer, id) = RENAME_REQUEST.parse(&name, "name")?;
        let comment = fields::short_text(&comment, 500).map_err(|(reason, message)| Error::invalid("comment", reason, message))?;
        let row =
            self.app.review_rename(principal.tenant, (customer, id), &etag, (verdict, &principal.subject, &comment), Utc::now()).await?;
        Ok(to_proto(&row))
    }
}

fn settings(approval_required: bool, update_time: Option<chrono::DateTime<Utc>>) -> pb::RenameSettings {
    pb::RenameSettings { name: SETTINGS_NAME.to_owned(), approval_required, update_time: update_time.map(time::to_timestamp) }
}

fn settings_name(name: &str, field: &str) -> Result<(), Error> {
    if name == SETTINGS_NAME { Ok(()) } else { Err(Error::invalid(field, "INVALID_NAME", "the settings are named \"renameSettings\"")) }
}

#[tonic::async_trait]
impl RenameRequestService for RenameRequestApi {
    #[tracing::instrument(skip_all)]
    async fn create_rename_request(
        &self,
        request: Request<pb::CreateRenameRequestRequest>,
    ) -> Result<Response<pb::CreateRenameRequestResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let request = request.into_inner();
            let customer = CUSTOMER.parse(&request.parent, "parent")?;
            authorize(&principal, customer, permissions::CUSTOMERS_UPDATE)?;
            if !may_write(&principal, "display_name") {
                return Err(Error::PermissionDenied { permission: "display_name".to_owned() });
            }
            let record = required(request.rename_request.as_ref(), "rename_request")?;
            let draft = draft_from_proto(record, "rename_request").map_err(|violations| Error::InvalidArgument { violations })?;
            let key = IdempotencyKey::new(
                "CreateRenameRequest",
                &request.request_id,
                &pb::CreateRenameRequestRequest { request_id: String::new(), ..request.clone() },
            )?;
            self.app
                .request_rename(principal.tenant, customer, &draft, &principal.subject, key.as_ref(), Utc::now(), |row| {
                    pb::CreateRenameRequestResponse { rename_request: Some(to_proto(row)) }
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_rename_request(
        &self,
        request: Request<pb::GetRenameRequestRequest>,
    ) -> Result<Response<pb::GetRenameRequestResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let (customer, id) = RENAME_REQUEST.parse(&request.get_ref().name, "name")?;
            authorize(&principal, customer, permissions::CUSTOMERS_READ)?;
            let row = self.app.rename_request(principal.tenant, customer, id).await?;
            Ok(pb::GetRenameRequestResponse { rename_request: Some(to_proto(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_rename_requests(
        &self,
        request: Request<pb::ListRenameRequestsRequest>,
    ) -> Result<Response<pb::ListRenameRequestsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let r = request.get_ref();
            let customer = if r.parent == "customers/-" {
                principal.require(permissions::CUSTOMERS_READ)?;
                None
            } else {
                let customer = CUSTOMER.parse(&r.parent, "parent")?;
                authorize(&principal, customer, permissions::CUSTOMERS_READ)?;
                Some(customer)
            };
            let state = protoenum::short_name(
                r.state,
                |n| pb::RenameRequestState::try_from(n).ok().map(|s| s.as_str_name()),
                "RENAME_REQUEST_STATE_",
            )
            .map_err(|(reason, message)| Error::invalid("state", reason, message))?;
            let state = (!state.is_empty()).then_some(state);
            let pager = Pager::new(&self.page_tokens);
            let page =
                pager.start::<Uuid>(r.page_size, &r.page_token, &["ListRenameRequests", &r.parent, state.as_deref().unwrap_or("")])?;
            let rows = self.app.rename_requests(principal.tenant, (customer, state.as_deref()), page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |r| r.id);
            Ok(pb::ListRenameRequestsResponse { rename_requests: rows.iter().map(to_proto).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn approve_rename_request(
        &self,
        request: Request<pb::ApproveRenameRequestRequest>,
    ) -> Result<Response<pb::ApproveRenameRequestResponse>, Status> {
        respond(async move {
            let request = request.map(|r| (r.name, r.comment, r.etag));
            Ok(pb::ApproveRenameRequestResponse { rename_request: Some(self.review(request, Verdict::Approve).await?) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn reject_rename_request(
        &self,
        request: Request<pb::RejectRenameRequestRequest>,
    ) -> Result<Response<pb::RejectRenameRequestResponse>, Status> {
        respond(async move {
            let request = request.map(|r| (r.name, r.comment, r.etag));
            Ok(pb::RejectRenameRequestResponse { rename_request: Some(self.review(request, Verdict::Reject).await?) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_rename_settings(
        &self,
        request: Request<pb::GetRenameSettingsRequest>,
    ) -> Result<Response<pb::GetRenameSettingsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            settings_name(&request.get_ref().name, "name")?;
            let (approval_required, update_time) = self.app.rename_settings(principal.tenant).await?;
            Ok(pb::GetRenameSettingsResponse { rename_settings: Some(settings(approval_required, update_time)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_rename_settings(
        &self,
        request: Request<pb::UpdateRenameSettingsRequest>,
    ) -> Result<Response<pb::UpdateRenameSettingsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::SETTINGS_CONFIGURE)?;
            let pb::UpdateRenameSettingsRequest { rename_settings, update_mask } = request.into_inner();
            let input = required(rename_settings, "rename_settings")?;
            settings_name(&input.name, "rename_settings.name")?;
            if update_mask.is_some() {
                UpdateMask::parse(update_mask.as_ref(), &["approval_required"])?;
            }
            let now = Utc::now();
            self.app.set_rename_settings(principal.tenant, input.approval_required, now).await?;
            Ok(pb::UpdateRenameSettingsResponse { rename_settings: Some(settings(input.approval_required, Some(now))) })
        })
        .await
    }
}
