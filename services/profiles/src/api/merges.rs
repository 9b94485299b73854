//! `crm.profiles.v1.MergeService` (`customers.merge`: agents and admins):
//! merge duplicates into a survivor, undo a merge, read a merge log.

use chrono::Utc;
use crm_kit::{Error, auth::caller, idempotency::IdempotencyKey, respond};
use crm_proto::crm::profiles::v1::{self as pb, merge_service_server::MergeService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::customers::visible;
use crate::{
    app::{
        App,
        merges::{MAX_DUPLICATES, MergeRequest},
    },
    permissions,
    resources::{CUSTOMER, CUSTOMER_MERGE},
    store::CustomerRow,
    wire::{
        customer_to_proto, draft_from_proto,
        merges::{CHOOSABLE, combine, merge_to_proto},
    },
};

/// Handlers of MergeService.
#[derive(Clone)]
pub struct MergeApi {
    app: App,
}

impl MergeApi {
    /// Handlers over `app`.
    pub fn new(app: App) -> Self {
        Self { app }
    }
}

/// The survivor, the duplicates and the field choices of a request, checked
/// before any work: 1 to 10 distinct duplicates, none the survivor; each
/// choice a choosable field and one of the merged customers.
fn parse(r: &pb::MergeCustomersRequest, actor: &str) -> Result<MergeRequest, Error> {
    let survivor = CUSTOMER.parse(&r.survivor, "survivor")?;
    if r.duplicates.is_empty() || r.duplicates.len() > MAX_DUPLICATES {
        return Err(Error::invalid("duplicates", "INVALID_BATCH_SIZE", format!("1 to {MAX_DUPLICATES} customers")));
    }
    let mut duplicates = Vec::with_capacity(r.duplicates.len());
    for (i, name) in r.duplicates.iter().enumerate() {
        let field = format!("duplicates[{i}]");
        let id = CUSTOMER.parse(name, &field)?;
        if id == survivor {
            return Err(Error::invalid(&field, "SELF_MERGE", "a customer cannot be merged into itself"));
        }
        if duplicates.contains(&id) {
            return Err(Error::invalid(&field, "DUPLICATE_NAME", "each customer once"));
        }
        duplicates.push(id);
    }
    let mut sources: Vec<(String, Uuid)> = Vec::new();
    for (path, name) in &r.field_sources {
        let field = format!("field_sources[{path}]");
        if !CHOOSABLE.contains(&path.as_str()) {
            return Err(Error::invalid(&field, "NOT_CHOOSABLE", format!("choose among: {}", CHOOSABLE.join(", "))));
        }
        let source = CUSTOMER.parse(name, &field)?;
        if source != survivor && !duplicates.contains(&source) {
            return Err(Error::invalid(&field, "NOT_MERGED", "the survivor or one of the duplicates"));
        }
        sources.push((path.clone(), source));
    }
    sources.sort();
    Ok(MergeRequest { survivor, duplicates, field_sources: sources, actor: actor.to_owned() })
}

#[tonic::async_trait]
impl MergeService for MergeApi {
    #[tracing::instrument(skip_all)]
    async fn merge_customers(&self, request: Request<pb::MergeCustomersRequest>) -> Result<Response<pb::MergeCustomersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_MERGE)?;
            let r = request.into_inner();
            let key = IdempotencyKey::new(
                "MergeCustomers",
                &r.request_id,
                &pb::MergeCustomersRequest { request_id: String::new(), ..r.clone() },
            )?;
            let request = parse(&r, &principal.subject)?;
            let now = Utc::now();
            let chosen = request.field_sources.clone();
            let combine = move |survivor: &CustomerRow, others: &[CustomerRow]| {
                let all: Vec<pb::Customer> = std::iter::once(survivor).chain(others).map(customer_to_proto).collect();
                let ids: Vec<Uuid> = std::iter::once(survivor.id).chain(others.iter().map(|o| o.id)).collect();
                let chosen: Vec<(String, &pb::Customer)> =
                    chosen.iter().filter_map(|(path, id)| ids.iter().position(|i| i == id).map(|at| (path.clone(), &all[at]))).collect();
                let merged = combine(&all[0], &all[1..], &chosen);
                draft_from_proto(&merged, "survivor", now).map_err(|violations| Error::InvalidArgument { violations })
            };
            // Stored unmasked, so that a retry is masked for whoever sends it.
            let respond = |log: &_, survivor: &CustomerRow| pb::MergeCustomersResponse {
                customer_merge: Some(merge_to_proto(log)),
                survivor: Some(customer_to_proto(survivor)),
            };
            let response = self.app.merge(principal.tenant, request, key.as_ref(), now, combine, respond).await?;
            Ok(pb::MergeCustomersResponse { survivor: response.survivor.map(|c| visible(&principal, c)), ..response })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn unmerge_customers(
        &self,
        request: Request<pb::UnmergeCustomersRequest>,
    ) -> Result<Response<pb::UnmergeCustomersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_MERGE)?;
            let id = CUSTOMER_MERGE.parse(&request.get_ref().name, "name")?;
            let log = self.app.unmerge(principal.tenant, id, Utc::now()).await?;
            Ok(pb::UnmergeCustomersResponse { customer_merge: Some(merge_to_proto(&log)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_customer_merge(
        &self,
        request: Request<pb::GetCustomerMergeRequest>,
    ) -> Result<Response<pb::GetCustomerMergeResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            let id = CUSTOMER_MERGE.parse(&request.get_ref().name, "name")?;
            Ok(pb::GetCustomerMergeResponse { customer_merge: Some(merge_to_proto(&self.app.merge_log(principal.tenant, id).await?)) })
        })
        .await
    }
}
