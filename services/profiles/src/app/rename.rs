//! Renaming with approval (客户更名单): the tenant's setting, rename
//! requests (one pending per customer), and their review — an approval
//! renames the customer in the same transaction through the ordinary
//! customer change (event, field history), by someone other than the requester.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::TenantTx,
    idempotency::{self, IdempotencyKey},
    outbox,
};
use crm_proto::crm::profiles::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{
    App,
    customers::{Renaming, change, live_customer, lock_for_change},
};
use crate::{
    domain::rename::RenameDraft,
    resources::{CUSTOMER, RENAME_REQUEST},
    store::{
        CustomerRow,
        rename::{self as store, RENAME_REQUESTS, RenameRow},
    },
    wire::{self, rename::to_proto},
};

/// How a reviewer decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Reject,
}

impl App {
    /// Whether renaming needs approval, and when that was last set.
    pub async fn rename_settings(&self, tenant: Uuid) -> Result<(bool, Option<DateTime<Utc>>), Error> {
        let mut tx = self.begin(tenant).await?;
        let settings = store::settings(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(settings.map_or((false, None), |(required, time)| (required, Some(time))))
    }

    /// Turns approval on or off.
    pub async fn set_rename_settings(&self, tenant: Uuid, approval_required: bool, now: DateTime<Utc>) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        store::put_settings(&mut tx, tenant, approval_required, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Asks, as `requester`, to rename live customer `customer`; ALREADY_EXISTS
    /// while another request is pending. With a request id, a retry returns the first response.
    #[allow(clippy::too_many_arguments)]
    pub async fn request_rename<R: Message + Default>(
        &self,
        tenant: Uuid,
        customer: Uuid,
        draft: &RenameDraft,
        requester: &str,
        key: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&RenameRow) -> R + Send,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(key, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        // Locked, so that two requests for one customer are made one after the other.
        let current = live_customer(&mut tx, tenant, customer, true).await?;
        if let Some(pending) = store::pending(&mut tx, tenant, customer).await? {
            return Err(Error::AlreadyExists {
                reason: "RENAME_PENDING",
                message: "a rename request of this customer is pending; it is approved or rejected first".to_owned(),
                resource_type: RENAME_REQUEST.type_name,
                name: RENAME_REQUEST.name(customer, pending.id),
            });
        }
        let previous = [current.display_name.as_str(), current.given_name.as_str(), current.family_name.as_str()];
        let row = store::insert(&mut tx, tenant, (customer, Uuid::now_v7()), draft, previous, requester, now).await?;
        announce(&mut tx, tenant, &row).await?;
        let response = respond(&row);
        idempotency::remember(key, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Rename request `id` of `customer`, or NOT_FOUND.
    pub async fn rename_request(&self, tenant: Uuid, customer: Uuid, id: Uuid) -> Result<RenameRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = RENAME_REQUESTS.find_child(&mut tx, tenant, &RENAME_REQUEST, customer, id, false).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// A page of rename requests of `customer` (None: everyone's), in `state` when given, oldest first.
    pub async fn rename_requests(
        &self,
        tenant: Uuid,
        (customer, state): (Option<Uuid>, Option<&str>),
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<RenameRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(customer) = customer {
            super::existing_customer(&mut tx, tenant, customer).await?;
        }
        let rows = store::page(&mut tx, tenant, (customer, state), after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// Approves (renaming the customer) or rejects pending request `id` of
    /// `customer`, as `reviewer`, who may not be its requester.
    pub async fn review_rename(
        &self,
        tenant: Uuid,
        (customer, id): (Uuid, Uuid),
        etag: &str,
        (verdict, reviewer, comment): (Verdict, &str, &str),
        now: DateTime<Utc>,
    ) -> Result<RenameRow, Error> {
        let mut tx = self.begin(tenant).await?;
        // The customer first, then the request: the order erasure takes them in, so the two never wait on each other in a circle.
        let before = lock_for_change(&mut tx, tenant, customer, "", "etag").await?;
        let request: RenameRow =
            RENAME_REQUESTS.lock_child_for_change(&mut tx, tenant, &RENAME_REQUEST, (customer, id), etag, "etag").await?;
        let name = RENAME_REQUEST.name(customer, id);
        if request.state != "PENDING" {
            return Err(Error::FailedPrecondition {
                reason: "ALREADY_REVIEWED",
                message: format!("the request was {} already", request.state.to_lowercase()),
                subject: name,
            });
        }
        if request.requester == reviewer {
            return Err(Error::FailedPrecondition {
                reason: "OWN_REQUEST",
                message: "a rename request is reviewed by someone other than its requester".to_owned(),
                subject: name,
            });
        }
        let state = match verdict {
            Verdict::Approve => {
                let rename = |row: &CustomerRow| {
                    let mut renamed = wire::customer_to_proto(row);
                    renamed.display_name.clone_from(&request.display_name);
                    renamed.given_name.clone_from(&request.given_name);
                    renamed.family_name.clone_from(&request.family_name);
                    wire::draft_from_proto(&renamed, "rename_request", now).map_err(|violations| Error::InvalidArgument { violations })
                };
                change(&mut tx, tenant, before, rename, Renaming::Approved, now).await?;
                "APPROVED"
            }
            Verdict::Reject => "REJECTED",
        };
        let reviewed = store::review(&mut tx, tenant, id, state, (reviewer, comment), now).await?;
        announce(&mut tx, tenant, &reviewed).await?;
        tx.commit().await?;
        Ok(reviewed)
    }
}

/// Writes `RenameRequestChanged` on the customer's subject.
async fn announce(tx: &mut TenantTx, tenant: Uuid, row: &RenameRow) -> Result<(), Error> {
    outbox::append(tx, tenant, &CUSTOMER.name(row.customer_id), &pb::RenameRequestChanged { rename_request: Some(to_proto(row)) }).await
}
