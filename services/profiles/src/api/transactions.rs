//! `crm.profiles.v1.TransactionService`: staff with `archive.write` (agents,
//! admins, service accounts) record transactions, one or up to 1000 at a
//! time; `archive.read` reads them and the spending they add up to; a
//! customer reads their own. Transactions hold no personal data, so nothing
//! is masked. Who may reach the customer is decided before anything is read.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error, FieldViolation,
    auth::{Principal, caller},
    pagination::{PageTokenCodec, Pager},
    protoenum, required, respond,
};
use crm_proto::crm::profiles::v1::{self as pb, transaction_service_server::TransactionService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::{archive::require_writer, authorization::authorize};
use crate::{
    app::App,
    domain::transaction::{MAX_BATCH, TransactionDraft},
    permissions,
    resources::{CUSTOMER, TRANSACTION, parse_spending},
    wire::transactions::{draft_from_proto, spending_to_proto, to_proto},
};

/// Handlers of TransactionService.
#[derive(Clone)]
pub struct TransactionApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl TransactionApi {
    /// Handlers over `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

/// The validated drafts of a batch's `requests` under `parent` ("customers/-":
/// any customer), every bad field of every item reported at once.
fn batch_drafts(parent: &str, requests: &[pb::CreateTransactionRequest], now: DateTime<Utc>) -> Result<Vec<TransactionDraft>, Error> {
    let batch_customer = if parent == "customers/-" { None } else { Some(CUSTOMER.parse(parent, "parent")?) };
    if requests.is_empty() || requests.len() > MAX_BATCH {
        return Err(Error::invalid("requests", "INVALID_BATCH_SIZE", format!("1 to {MAX_BATCH} transactions")));
    }
    let mut violations = Vec::new();
    let mut drafts = Vec::with_capacity(requests.len());
    for (i, request) in requests.iter().enumerate() {
        let customer = match (request.parent.as_str(), batch_customer) {
            ("", Some(customer)) => Some(customer),
            ("", None) => {
                violations.push(FieldViolation::new(
                    format!("requests[{i}].parent"),
                    "REQUIRED",
                    "the customer, in a batch for customers/-",
                ));
                None
            }
            (name, batch) => match CUSTOMER.parse(name, &format!("requests[{i}].parent")) {
                Ok(customer) if batch.is_none_or(|b| b == customer) => Some(customer),
                Ok(_) => {
                    violations.push(FieldViolation::new(
                        format!("requests[{i}].parent"),
                        "PARENT_MISMATCH",
                        format!("must be {parent} or empty"),
                    ));
                    None
                }
                Err(Error::InvalidArgument { violations: found }) => {
                    violations.extend(found);
                    None
                }
                Err(other) => return Err(other),
            },
        };
        let prefix = format!("requests[{i}].transaction");
        let Some(transaction) = &request.transaction else {
            violations.push(FieldViolation::new(prefix, "REQUIRED", "the transaction"));
            continue;
        };
        match draft_from_proto(transaction, customer.unwrap_or_default(), &prefix, now) {
            Ok(draft) => drafts.push(draft),
            Err(found) => violations.extend(found),
        }
    }
    if violations.is_empty() { Ok(drafts) } else { Err(Error::InvalidArgument { violations }) }
}

#[tonic::async_trait]
impl TransactionService for TransactionApi {
    #[tracing::instrument(skip_all)]
    async fn create_transaction(
        &self,
        request: Request<pb::CreateTransactionRequest>,
    ) -> Result<Response<pb::CreateTransactionResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            require_writer(&principal)?;
            let request = request.get_ref();
            let customer = CUSTOMER.parse(&request.parent, "parent")?;
            let now = Utc::now();
            let transaction = required(request.transaction.as_ref(), "transaction")?;
            let draft =
                draft_from_proto(transaction, customer, "transaction", now).map_err(|violations| Error::InvalidArgument { violations })?;
            let mut rows = self.app.record_transactions(principal.tenant, &[draft], now).await?;
            Ok(pb::CreateTransactionResponse { transaction: rows.pop().as_ref().map(to_proto) })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(batch.size = request.get_ref().requests.len()))]
    async fn batch_create_transactions(
        &self,
        request: Request<pb::BatchCreateTransactionsRequest>,
    ) -> Result<Response<pb::BatchCreateTransactionsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            require_writer(&principal)?;
            let request = request.get_ref();
            let now = Utc::now();
            let drafts = batch_drafts(&request.parent, &request.requests, now)?;
            let rows = self.app.record_transactions(principal.tenant, &drafts, now).await?;
            Ok(pb::BatchCreateTransactionsResponse { transactions: rows.iter().map(to_proto).collect() })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_transaction(&self, request: Request<pb::GetTransactionRequest>) -> Result<Response<pb::GetTransactionResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let (customer, id) = TRANSACTION.parse(&request.get_ref().name, "name")?;
            authorize(&principal, customer, permissions::ARCHIVE_READ)?;
            let row = self.app.transaction(principal.tenant, customer, id).await?;
            Ok(pb::GetTransactionResponse { transaction: Some(to_proto(&row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Result<Response<pb::ListTransactionsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let r = request.get_ref();
            let customer = CUSTOMER.parse(&r.parent, "parent")?;
            authorize(&principal, customer, permissions::ARCHIVE_READ)?;
            let kind =
                protoenum::short_name(r.kind, |n| pb::TransactionKind::try_from(n).ok().map(|k| k.as_str_name()), "TRANSACTION_KIND_")
                    .map_err(|(reason, message)| Error::invalid("kind", reason, message))?;
            let kind = (!kind.is_empty()).then_some(kind);
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start::<(DateTime<Utc>, Uuid)>(
                r.page_size,
                &r.page_token,
                &["ListTransactions", &r.parent, kind.as_deref().unwrap_or("")],
            )?;
            let rows = self.app.transactions(principal.tenant, customer, kind.as_deref(), page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |r| (r.occur_time, r.id));
            Ok(pb::ListTransactionsResponse { transactions: rows.iter().map(to_proto).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_customer_spending(
        &self,
        request: Request<pb::GetCustomerSpendingRequest>,
    ) -> Result<Response<pb::GetCustomerSpendingResponse>, Status> {
        respond(async move {
            let principal: Principal = caller(&request)?;
            let customer = parse_spending(&request.get_ref().name, "name")?;
            authorize(&principal, customer, permissions::ARCHIVE_READ)?;
            let rows = self.app.spending(principal.tenant, customer).await?;
            Ok(pb::GetCustomerSpendingResponse { customer_spending: Some(spending_to_proto(customer, &rows)) })
        })
        .await
    }
}
