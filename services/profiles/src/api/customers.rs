//! `crm.profiles.v1.CustomerService`: permission checks, validation, the
//! transaction around each change with its outbox event, and PII masking of
//! every response.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::{Permission, Principal, caller},
    db::{TenantTx, begin_tenant},
    fieldmask::UpdateMask,
    idempotency::{Claim, IdempotencyKey},
    outbox,
    pagination::{PageTokenCodec, QueryFingerprint, page_size},
};
use crm_proto::crm::profiles::v1::{self as pb, customer_service_server::CustomerService};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::listing::{CUSTOMER_FILTER, PII_FILTER_FIELDS, key_from_token, key_of, order_fingerprint, parse_order_by};
use crate::{
    domain::{
        access::{Reach, WRITABLE_PATHS, may_write, reach, sees_pii},
        customer::CustomerDraft,
    },
    resources::CUSTOMER,
    store::{self, CustomerRow, ListQuery},
    wire::{copy_field, customer_to_proto, draft_from_proto, mask_pii, same_field},
};

/// Most names in one BatchGetCustomers call.
const MAX_BATCH: usize = 1000;

/// Handlers of CustomerService.
#[derive(Clone)]
pub struct CustomerApi {
    pool: PgPool,
    page_tokens: PageTokenCodec,
}

impl CustomerApi {
    /// Handlers over `pool`, signing page tokens with `page_tokens`.
    pub fn new(pool: PgPool, page_tokens: PageTokenCodec) -> Self {
        Self { pool, page_tokens }
    }
}

/// PERMISSION_DENIED naming `staff_permission` unless the caller holds it or
/// acts for itself as a customer; checked before anything is read.
fn require_staff_or_self(principal: &Principal, staff_permission: Permission) -> Result<(), Error> {
    if principal.can(staff_permission) || principal.can(Permission::CustomersSelf) {
        Ok(())
    } else {
        Err(Error::PermissionDenied { permission: staff_permission.name().to_owned() })
    }
}

/// OK when `principal` may act on customer `id` with `staff_permission`
/// (see [`reach`]): PERMISSION_DENIED, or NOT_FOUND for another customer's record.
fn authorize(principal: &Principal, id: Uuid, staff_permission: Permission) -> Result<(), Error> {
    match reach(principal, id, staff_permission) {
        Reach::Granted => Ok(()),
        Reach::Hidden => Err(CUSTOMER.not_found(id)),
        Reach::Denied(permission) => Err(Error::PermissionDenied { permission: permission.name().to_owned() }),
    }
}

/// The customer as `principal` may see it.
fn visible(principal: &Principal, mut customer: pb::Customer) -> pb::Customer {
    let own = CUSTOMER.parse(&customer.name, "name").is_ok_and(|id| sees_pii(principal, id));
    if !own {
        mask_pii(&mut customer);
    }
    customer
}

/// ALREADY_EXISTS naming the first address another live customer uses.
async fn ensure_emails_free(tx: &mut TenantTx, tenant: Uuid, draft: &CustomerDraft, id: Uuid, field_prefix: &str) -> Result<(), Error> {
    let conflicts = store::email_conflicts(tx, tenant, &draft.email_addresses(), id).await?;
    match conflicts.first() {
        None => Ok(()),
        Some((address, owner)) => {
            let index = draft.emails.iter().position(|e| &e.address == address).unwrap_or(0);
            Err(Error::AlreadyExists {
                reason: "EMAIL_ALREADY_USED",
                message: format!("{field_prefix}.emails[{index}].address is already used by {}", CUSTOMER.name(*owner)),
                resource_type: CUSTOMER.type_name,
                name: CUSTOMER.name(*owner),
            })
        }
    }
}

/// Locks a customer and checks the caller's etag (field `etag_field`) against it.
async fn lock_for_change(tx: &mut TenantTx, tenant: Uuid, id: Uuid, etag: &str, etag_field: &str) -> Result<CustomerRow, Error> {
    let row = store::find(tx, tenant, id, true).await?.ok_or_else(|| CUSTOMER.not_found(id))?;
    CUSTOMER.check_etag(etag, etag_field, id, row.revision)?;
    Ok(row)
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    #[tracing::instrument(skip_all)]
    async fn create_customer(&self, request: Request<pb::CreateCustomerRequest>) -> Result<Response<pb::CreateCustomerResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::CustomersCreate)?;
        let request = request.into_inner();
        let key = IdempotencyKey::new(
            "CreateCustomer",
            &request.request_id,
            &pb::CreateCustomerRequest { request_id: String::new(), ..request.clone() },
        )?;
        let input = request.customer.ok_or_else(|| Error::invalid("customer", "REQUIRED", "customer is required"))?;
        let mut draft = draft_from_proto(&input, "customer").map_err(|violations| Error::InvalidArgument { violations })?;
        let now = Utc::now();
        draft.consent.stamp(None, now);

        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        if let Some(key) = &key
            && let Claim::Replay(response) = key.claim::<pb::CreateCustomerResponse>(&mut tx, tenant).await?
        {
            tx.commit().await.map_err(Error::from)?;
            let customer = response.customer.map(|c| visible(&principal, c));
            return Ok(Response::new(pb::CreateCustomerResponse { customer }));
        }
        let id = Uuid::now_v7();
        ensure_emails_free(&mut tx, tenant, &draft, id, "customer").await?;
        let row = store::insert(&mut tx, tenant, id, &draft, now).await?;
        store::replace_emails(&mut tx, tenant, id, &draft.email_addresses()).await?;
        let customer = customer_to_proto(&row);
        outbox::append(&mut tx, tenant, &customer.name, &pb::CustomerCreated { customer: Some(customer.clone()) }).await?;
        let response = pb::CreateCustomerResponse { customer: Some(customer) };
        if let Some(key) = &key {
            key.complete(&mut tx, tenant, &response).await?;
        }
        tx.commit().await.map_err(Error::from)?;
        tracing::info!(customer = %row.id, "customer created");
        Ok(Response::new(pb::CreateCustomerResponse { customer: response.customer.map(|c| visible(&principal, c)) }))
    }

    #[tracing::instrument(skip_all)]
    async fn get_customer(&self, request: Request<pb::GetCustomerRequest>) -> Result<Response<pb::GetCustomerResponse>, Status> {
        let principal = caller(&request)?;
        require_staff_or_self(&principal, Permission::CustomersRead)?;
        let id = CUSTOMER.parse(&request.get_ref().name, "name")?;
        authorize(&principal, id, Permission::CustomersRead)?;
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        let row = store::find(&mut tx, principal.tenant, id, false).await?.ok_or_else(|| CUSTOMER.not_found(id))?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::GetCustomerResponse { customer: Some(visible(&principal, customer_to_proto(&row))) }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_customer(&self, request: Request<pb::UpdateCustomerRequest>) -> Result<Response<pb::UpdateCustomerResponse>, Status> {
        let principal = caller(&request)?;
        require_staff_or_self(&principal, Permission::CustomersUpdate)?;
        let pb::UpdateCustomerRequest { customer, update_mask } = request.into_inner();
        let input = customer.ok_or_else(|| Error::invalid("customer", "REQUIRED", "customer is required"))?;
        let id = CUSTOMER.parse(&input.name, "customer.name")?;
        // Whose record first: another customer's is NOT_FOUND whatever the mask says.
        authorize(&principal, id, Permission::CustomersUpdate)?;
        let mask = UpdateMask::parse(update_mask.as_ref(), WRITABLE_PATHS)?;
        let paths = mask.resolve(WRITABLE_PATHS);
        // Permission before existence: a caller learns nothing about customers it may not change.
        if let Some(path) = paths.iter().find(|p| !may_write(&principal, p)) {
            return Err(Error::PermissionDenied { permission: format!("customers.update.{path}") }.into());
        }
        crm_kit::etag::parse(&input.etag, "customer.etag")?;

        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let row = lock_for_change(&mut tx, tenant, id, &input.etag, "customer.etag").await?;
        if row.delete_time.is_some() {
            return Err(Error::FailedPrecondition {
                reason: "CUSTOMER_DELETED",
                message: "the customer is deleted; undelete it before changing it".to_owned(),
                subject: CUSTOMER.name(id),
            }
            .into());
        }
        let before = customer_to_proto(&row);
        let mut merged = before.clone();
        for path in &paths {
            copy_field(&mut merged, &input, path);
        }
        let mut draft = draft_from_proto(&merged, "customer").map_err(|violations| Error::InvalidArgument { violations })?;
        let now = Utc::now();
        draft.consent.stamp(Some(&row.consent.0), now);
        // Compare normalised values, so that re-sending the same data is not a change.
        let normalised = customer_to_proto(&apply_draft(row.clone(), &draft));
        let changed: Vec<String> = WRITABLE_PATHS.iter().filter(|p| !same_field(&before, &normalised, p)).map(|p| p.to_string()).collect();
        if changed.is_empty() {
            tx.commit().await.map_err(Error::from)?;
            return Ok(Response::new(pb::UpdateCustomerResponse { customer: Some(visible(&principal, before)) }));
        }
        if changed.iter().any(|p| p == "emails") {
            ensure_emails_free(&mut tx, tenant, &draft, id, "customer").await?;
            store::replace_emails(&mut tx, tenant, id, &draft.email_addresses()).await?;
        }
        let row = store::update(&mut tx, tenant, id, &draft, now).await?;
        let customer = customer_to_proto(&row);
        outbox::append(&mut tx, tenant, &customer.name, &pb::CustomerUpdated { customer: Some(customer.clone()), changed_paths: changed })
            .await?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::UpdateCustomerResponse { customer: Some(visible(&principal, customer)) }))
    }

    #[tracing::instrument(skip_all)]
    async fn delete_customer(&self, request: Request<pb::DeleteCustomerRequest>) -> Result<Response<pb::DeleteCustomerResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::CustomersDelete)?;
        let id = CUSTOMER.parse(&request.get_ref().name, "name")?;
        crm_kit::etag::parse(&request.get_ref().etag, "etag")?;
        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let row = lock_for_change(&mut tx, tenant, id, &request.get_ref().etag, "etag").await?;
        // Deleting twice returns the deleted customer, so that a retried DELETE is harmless.
        let row = if row.delete_time.is_some() {
            row
        } else {
            store::replace_emails(&mut tx, tenant, id, &[]).await?;
            mark_deleted(&mut tx, tenant, id, true).await?
        };
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::DeleteCustomerResponse { customer: Some(visible(&principal, customer_to_proto(&row))) }))
    }

    #[tracing::instrument(skip_all)]
    async fn undelete_customer(
        &self,
        request: Request<pb::UndeleteCustomerRequest>,
    ) -> Result<Response<pb::UndeleteCustomerResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::CustomersDelete)?;
        let id = CUSTOMER.parse(&request.get_ref().name, "name")?;
        crm_kit::etag::parse(&request.get_ref().etag, "etag")?;
        let tenant = principal.tenant;
        let mut tx = begin_tenant(&self.pool, tenant).await?;
        let row = lock_for_change(&mut tx, tenant, id, &request.get_ref().etag, "etag").await?;
        let row = if row.delete_time.is_none() {
            row
        } else {
            let addresses: Vec<String> = row.emails.0.iter().map(|e| e.address.clone()).collect();
            let conflicts = store::email_conflicts(&mut tx, tenant, &addresses, id).await?;
            if let Some((address, owner)) = conflicts.first() {
                return Err(Error::AlreadyExists {
                    reason: "EMAIL_ALREADY_USED",
                    message: format!("cannot undelete: {} now uses {}", CUSTOMER.name(*owner), crate::domain::mask::email(address)),
                    resource_type: CUSTOMER.type_name,
                    name: CUSTOMER.name(*owner),
                }
                .into());
            }
            store::replace_emails(&mut tx, tenant, id, &addresses).await?;
            mark_deleted(&mut tx, tenant, id, false).await?
        };
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::UndeleteCustomerResponse { customer: Some(visible(&principal, customer_to_proto(&row))) }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_customers(&self, request: Request<pb::ListCustomersRequest>) -> Result<Response<pb::ListCustomersResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::CustomersRead)?;
        let request = request.into_inner();
        let limit = page_size(request.page_size)?;
        let filter = CUSTOMER_FILTER.check(&request.filter)?;
        if !principal.can(Permission::Pii)
            && let Some(field) = PII_FILTER_FIELDS.iter().find(|f| filter.mentions(f))
        {
            return Err(Error::PermissionDenied { permission: format!("pii (to filter on {field})") }.into());
        }
        let order = parse_order_by(&request.order_by)?;
        let fingerprint = QueryFingerprint::of(&[
            "ListCustomers",
            &principal.tenant.to_string(),
            request.filter.trim(),
            &order_fingerprint(&order),
            if request.show_deleted { "deleted" } else { "live" },
        ]);
        let after = match self.page_tokens.decode(&request.page_token, &fingerprint)? {
            Some(values) => Some(key_from_token(&values, &order)?),
            None => None,
        };
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        let mut rows = store::list(
            &mut tx,
            principal.tenant,
            ListQuery { filter: &filter, order: &order, after, show_deleted: request.show_deleted, limit: limit as i64 + 1 },
        )
        .await?;
        tx.commit().await.map_err(Error::from)?;
        let next_page_token = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|last| self.page_tokens.encode(&fingerprint, key_of(last, &order))).unwrap_or_default()
        } else {
            String::new()
        };
        let customers = rows.iter().map(|r| visible(&principal, customer_to_proto(r))).collect();
        Ok(Response::new(pb::ListCustomersResponse { customers, next_page_token }))
    }

    #[tracing::instrument(skip_all)]
    async fn batch_get_customers(
        &self,
        request: Request<pb::BatchGetCustomersRequest>,
    ) -> Result<Response<pb::BatchGetCustomersResponse>, Status> {
        let principal = caller(&request)?;
        principal.require(Permission::CustomersRead)?;
        let names = &request.get_ref().names;
        if names.len() > MAX_BATCH {
            return Err(Error::invalid("names", "TOO_MANY_ENTRIES", format!("at most {MAX_BATCH} names per call")).into());
        }
        let ids = names.iter().enumerate().map(|(i, n)| CUSTOMER.parse(n, &format!("names[{i}]"))).collect::<Result<Vec<_>, _>>()?;
        let mut tx = begin_tenant(&self.pool, principal.tenant).await?;
        let rows = store::batch_get(&mut tx, principal.tenant, &ids).await?;
        tx.commit().await.map_err(Error::from)?;
        let by_id: std::collections::HashMap<Uuid, &CustomerRow> = rows.iter().map(|r| (r.id, r)).collect();
        let customers = ids
            .iter()
            .map(|id| by_id.get(id).map(|r| visible(&principal, customer_to_proto(r))).ok_or_else(|| CUSTOMER.not_found(*id)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response::new(pb::BatchGetCustomersResponse { customers }))
    }
}

/// Sets or clears `delete_time` and writes the matching event.
async fn mark_deleted(tx: &mut TenantTx, tenant: Uuid, id: Uuid, deleted: bool) -> Result<CustomerRow, Error> {
    let now = Utc::now();
    let row = store::set_delete_time(tx, tenant, id, deleted.then_some(now), now).await?;
    let customer = customer_to_proto(&row);
    let name = customer.name.clone();
    if deleted {
        outbox::append(tx, tenant, &name, &pb::CustomerDeleted { customer: Some(customer) }).await?;
    } else {
        outbox::append(tx, tenant, &name, &pb::CustomerUndeleted { customer: Some(customer) }).await?;
    }
    Ok(row)
}

/// `row` with the draft's values, as the update will store them.
fn apply_draft(mut row: CustomerRow, d: &CustomerDraft) -> CustomerRow {
    use sqlx::types::Json;
    row.display_name = d.display_name.clone();
    row.given_name = d.given_name.clone();
    row.family_name = d.family_name.clone();
    row.kind = d.kind.clone();
    row.emails = Json(d.emails.clone());
    row.phones = Json(d.phones.clone());
    row.addresses = Json(d.addresses.clone());
    row.company = d.company.clone();
    row.job_title = d.job_title.clone();
    row.industry = d.industry.clone();
    row.company_size = d.company_size.clone();
    row.source_channel = d.source_channel.clone();
    row.birthday_year = d.birthday.and_then(|b| b.year);
    row.birthday_month = d.birthday.map(|b| b.month as i32);
    row.birthday_day = d.birthday.map(|b| b.day as i32);
    row.time_zone = d.time_zone.clone();
    row.locale = d.locale.clone();
    row.tags = d.tags.clone();
    row.attributes = Json(d.attributes.clone());
    row.owner = d.owner.clone();
    row.category = d.category.clone();
    row.consent = Json(d.consent.clone());
    row.verify_time = d.verify_time;
    row
}
