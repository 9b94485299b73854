//! `crm.profiles.v1.PaymentAccountService`: staff with `archive.write`
//! (agents, admins) add, change and remove a customer's payment accounts;
//! `archive.read` reads them, account numbers cut to their last four
//! characters for callers without `pii`; a customer reads their own.
//! Who may reach the customer is decided before anything is read.

use crm_kit::{
    Error,
    auth::{Principal, caller},
    idempotency::IdempotencyKey,
    pagination::PageTokenCodec,
    respond,
};
use crm_proto::crm::profiles::v1::{self as pb, payment_account_service_server::PaymentAccountService};
use tonic::{Request, Response, Status};

use super::archive::{self, ArchiveWire};
use crate::{
    app::{App, payment_accounts::PaymentAccounts},
    wire::payment_accounts::{copy_field, draft_from_proto},
};

/// Handlers of PaymentAccountService.
#[derive(Clone)]
pub struct PaymentAccountApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl PaymentAccountApi {
    /// Handlers over `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

impl ArchiveWire for PaymentAccounts {
    const FIELD: &'static str = "payment_account";

    fn copy_field(dst: &mut pb::PaymentAccount, src: &pb::PaymentAccount, path: &str) {
        copy_field(dst, src, path);
    }

    fn name_and_etag(record: &pb::PaymentAccount) -> (&str, &str) {
        (&record.name, &record.etag)
    }

    fn draft(record: &pb::PaymentAccount, _principal: &Principal) -> Result<Self::Draft, Error> {
        draft_from_proto(record, Self::FIELD).map_err(|violations| Error::InvalidArgument { violations })
    }
}

#[tonic::async_trait]
impl PaymentAccountService for PaymentAccountApi {
    #[tracing::instrument(skip_all)]
    async fn create_payment_account(
        &self,
        request: Request<pb::CreatePaymentAccountRequest>,
    ) -> Result<Response<pb::CreatePaymentAccountResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            archive::require_writer(&principal)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreatePaymentAccount",
                &request.request_id,
                &pb::CreatePaymentAccountRequest { request_id: String::new(), ..request.clone() },
            )?;
            archive::create::<PaymentAccounts, _>(&self.app, &principal, &request.parent, request.payment_account, key.as_ref(), |record| {
                pb::CreatePaymentAccountResponse { payment_account: Some(record) }
            })
            .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_payment_account(
        &self,
        request: Request<pb::GetPaymentAccountRequest>,
    ) -> Result<Response<pb::GetPaymentAccountResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let record = archive::get::<PaymentAccounts>(&self.app, &principal, &request.get_ref().name).await?;
            Ok(pb::GetPaymentAccountResponse { payment_account: Some(record) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_payment_accounts(
        &self,
        request: Request<pb::ListPaymentAccountsRequest>,
    ) -> Result<Response<pb::ListPaymentAccountsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let r = request.get_ref();
            let page = (r.parent.as_str(), r.page_size, r.page_token.as_str());
            let (payment_accounts, next_page_token) =
                archive::list::<PaymentAccounts>(&self.app, &self.page_tokens, &principal, "ListPaymentAccounts", page).await?;
            Ok(pb::ListPaymentAccountsResponse { payment_accounts, next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_payment_account(
        &self,
        request: Request<pb::UpdatePaymentAccountRequest>,
    ) -> Result<Response<pb::UpdatePaymentAccountResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let pb::UpdatePaymentAccountRequest { payment_account, update_mask } = request.into_inner();
            let record = archive::update::<PaymentAccounts>(&self.app, &principal, payment_account, update_mask.as_ref()).await?;
            Ok(pb::UpdatePaymentAccountResponse { payment_account: Some(record) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_payment_account(
        &self,
        request: Request<pb::DeletePaymentAccountRequest>,
    ) -> Result<Response<pb::DeletePaymentAccountResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            archive::delete::<PaymentAccounts>(&self.app, &principal, &request.get_ref().name, &request.get_ref().etag).await?;
            Ok(pb::DeletePaymentAccountResponse {})
        })
        .await
    }
}
