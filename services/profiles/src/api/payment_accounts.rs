//! `crm.profiles.v1.PaymentAccountService`: staff with `archive.write`
//! (agents, admins) add, change and remove a customer's payment accounts;
//! `archive.read` reads them, account numbers cut to their last four
//! characters for callers without `pii`; a customer reads their own.
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
use crm_proto::crm::profiles::v1::{self as pb, payment_account_service_server::PaymentAccountService};
use tonic::{Request, Response, Status};

use super::archive;
use crate::{
    app::{App, payment_accounts::PaymentAccounts},
    domain::{access::sees_pii, payment_account::PaymentAccountDraft},
    permissions,
    resources::{CUSTOMER, PAYMENT_ACCOUNT},
    store::payment_accounts::PaymentAccountRow,
    wire::payment_accounts::{WRITABLE, copy_field, draft_from_proto, mask_pii, to_proto},
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

/// `row` as `principal` may see it.
fn shown(principal: &Principal, row: &PaymentAccountRow) -> pb::PaymentAccount {
    let mut account = to_proto(row);
    if !sees_pii(principal, row.customer_id) {
        mask_pii(&mut account);
    }
    account
}

/// PERMISSION_DENIED unless the caller is staff with `archive.write` (customers do not write here).
fn require_writer(principal: &Principal) -> Result<(), Error> {
    principal.require(permissions::ARCHIVE_WRITE)
}

fn to_draft(account: &pb::PaymentAccount) -> Result<PaymentAccountDraft, Error> {
    draft_from_proto(account, "payment_account").map_err(|violations| Error::InvalidArgument { violations })
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
            require_writer(&principal)?;
            let request = request.into_inner();
            let customer = CUSTOMER.parse(&request.parent, "parent")?;
            let key = IdempotencyKey::new(
                "CreatePaymentAccount",
                &request.request_id,
                &pb::CreatePaymentAccountRequest { request_id: String::new(), ..request.clone() },
            )?;
            let draft = to_draft(&required(request.payment_account, "payment_account")?)?;
            self.app
                .create_record::<PaymentAccounts, _>(principal.tenant, customer, draft, key.as_ref(), Utc::now(), |row| {
                    pb::CreatePaymentAccountResponse { payment_account: Some(shown(&principal, row)) }
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
            let row = archive::get::<PaymentAccounts>(&self.app, &principal, &request.get_ref().name).await?;
            Ok(pb::GetPaymentAccountResponse { payment_account: Some(shown(&principal, &row)) })
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
            let request = request.get_ref();
            let page = (request.parent.as_str(), request.page_size, request.page_token.as_str());
            let (rows, next_page_token) =
                archive::list::<PaymentAccounts>(&self.app, &self.page_tokens, &principal, "ListPaymentAccounts", page).await?;
            Ok(pb::ListPaymentAccountsResponse { payment_accounts: rows.iter().map(|r| shown(&principal, r)).collect(), next_page_token })
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
            require_writer(&principal)?;
            let pb::UpdatePaymentAccountRequest { payment_account, update_mask } = request.into_inner();
            let input = required(payment_account, "payment_account")?;
            let (customer, id) = PAYMENT_ACCOUNT.parse(&input.name, "payment_account.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            let row = self
                .app
                .update_record::<PaymentAccounts>(
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
            Ok(pb::UpdatePaymentAccountResponse { payment_account: Some(shown(&principal, &row)) })
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
