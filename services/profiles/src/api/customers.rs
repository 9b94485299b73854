//! `crm.profiles.v1.CustomerService`: each handler authorizes, converts the
//! request (`crate::wire`), calls the use case in `crate::app`, and converts
//! the result back, masking PII for callers who may not see it. Who may
//! reach which record, and write which field, is decided here before
//! anything is read, so that permission comes before existence.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    auth::{Permission, Principal, caller},
    fieldmask::UpdateMask,
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager, page_size},
    required, respond,
};
use crm_proto::crm::profiles::v1::{self as pb, customer_service_server::CustomerService};
use tonic::{Request, Response, Status};

use super::authorization::{allow_filter, authorize};
use super::listing::{CUSTOMER_FILTER, TokenKey, key_from_token, key_of, order_fingerprint, parse_order_by};
use crate::{
    app::App,
    domain::{
        access::{WRITABLE_PATHS, may_write, sees_pii},
        customer::CustomerDraft,
    },
    permissions,
    resources::CUSTOMER,
    store::{CustomerRow, ListQuery},
    wire::{copy_field, customer_to_proto, draft_from_proto, mask_pii},
};

/// Most names in one BatchGetCustomers call.
const MAX_BATCH: usize = 1000;

/// Handlers of CustomerService.
#[derive(Clone)]
pub struct CustomerApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl CustomerApi {
    /// Handlers over the use cases of `app`, signing page tokens with `page_tokens`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }
}

/// PERMISSION_DENIED naming `staff_permission` unless the caller holds it or
/// acts for itself as a customer; checked before anything is read.
fn require_staff_or_self(principal: &Principal, staff_permission: Permission) -> Result<(), Error> {
    if principal.can(staff_permission) || principal.can(permissions::CUSTOMERS_SELF) {
        Ok(())
    } else {
        Err(Error::PermissionDenied { permission: staff_permission.name().to_owned() })
    }
}

/// The customer as `principal` may see it.
pub(super) fn visible(principal: &Principal, mut customer: pb::Customer) -> pb::Customer {
    let own = CUSTOMER.parse(&customer.name, "name").is_ok_and(|id| sees_pii(principal, id));
    if !own {
        mask_pii(&mut customer);
    }
    customer
}

/// A stored customer as `principal` may see it.
pub(super) fn shown(principal: &Principal, row: &CustomerRow) -> Option<pb::Customer> {
    Some(visible(principal, customer_to_proto(row)))
}

/// The validated draft of an incoming customer, every bad field reported at once.
fn to_draft(customer: &pb::Customer, now: DateTime<Utc>) -> Result<CustomerDraft, Error> {
    draft_from_proto(customer, "customer", now).map_err(|violations| Error::InvalidArgument { violations })
}

#[tonic::async_trait]
impl CustomerService for CustomerApi {
    #[tracing::instrument(skip_all)]
    async fn create_customer(&self, request: Request<pb::CreateCustomerRequest>) -> Result<Response<pb::CreateCustomerResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_CREATE)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateCustomer",
                &request.request_id,
                &pb::CreateCustomerRequest { request_id: String::new(), ..request.clone() },
            )?;
            let now = Utc::now();
            let draft = to_draft(&required(request.customer, "customer")?, now)?;
            // Stored unmasked, so that a retry is masked for whoever sends it.
            let respond = |row: &_| pb::CreateCustomerResponse { customer: Some(customer_to_proto(row)) };
            let response = self.app.create(principal.tenant, draft, key.as_ref(), now, respond).await?;
            Ok(pb::CreateCustomerResponse { customer: response.customer.map(|c| visible(&principal, c)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_customer(&self, request: Request<pb::GetCustomerRequest>) -> Result<Response<pb::GetCustomerResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            require_staff_or_self(&principal, permissions::CUSTOMERS_READ)?;
            let id = CUSTOMER.parse(&request.get_ref().name, "name")?;
            authorize(&principal, id, permissions::CUSTOMERS_READ)?;
            let customer = self.app.customer(principal.tenant, id).await?;
            Ok(pb::GetCustomerResponse { customer: shown(&principal, &customer) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_customer(&self, request: Request<pb::UpdateCustomerRequest>) -> Result<Response<pb::UpdateCustomerResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            require_staff_or_self(&principal, permissions::CUSTOMERS_UPDATE)?;
            let pb::UpdateCustomerRequest { customer, update_mask } = request.into_inner();
            let input = required(customer, "customer")?;
            let id = CUSTOMER.parse(&input.name, "customer.name")?;
            // Whose record first: another customer's is NOT_FOUND whatever the mask says.
            authorize(&principal, id, permissions::CUSTOMERS_UPDATE)?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE_PATHS)?.resolve(WRITABLE_PATHS);
            // Permission before existence: a caller learns nothing about customers it may not change.
            if let Some(path) = paths.iter().find(|p| !may_write(&principal, p)) {
                return Err(Error::PermissionDenied { permission: format!("customers.update.{path}") });
            }
            let now = Utc::now();
            let edit = |current: &CustomerRow| {
                let mut merged = customer_to_proto(current);
                for path in &paths {
                    copy_field(&mut merged, &input, path);
                }
                to_draft(&merged, now)
            };
            let updated = self.app.update(principal.tenant, id, &input.etag, edit, now).await?;
            Ok(pb::UpdateCustomerResponse { customer: shown(&principal, &updated) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_customer(&self, request: Request<pb::DeleteCustomerRequest>) -> Result<Response<pb::DeleteCustomerResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_DELETE)?;
            let request = request.get_ref();
            let id = CUSTOMER.parse(&request.name, "name")?;
            let deleted = self.app.delete(principal.tenant, id, &request.etag, Utc::now()).await?;
            Ok(pb::DeleteCustomerResponse { customer: shown(&principal, &deleted) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn undelete_customer(
        &self,
        request: Request<pb::UndeleteCustomerRequest>,
    ) -> Result<Response<pb::UndeleteCustomerResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_DELETE)?;
            let request = request.get_ref();
            let id = CUSTOMER.parse(&request.name, "name")?;
            let restored = self.app.undelete(principal.tenant, id, &request.etag, Utc::now()).await?;
            Ok(pb::UndeleteCustomerResponse { customer: shown(&principal, &restored) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn confirm_customer_data(
        &self,
        request: Request<pb::ConfirmCustomerDataRequest>,
    ) -> Result<Response<pb::ConfirmCustomerDataResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            let request = request.get_ref();
            let id = CUSTOMER.parse(&request.name, "name")?;
            // Staff who update customers, or the customer confirming their own data.
            authorize(&principal, id, permissions::CUSTOMERS_UPDATE)?;
            let row = self.app.confirm_data(principal.tenant, id, &request.etag, Utc::now()).await?;
            Ok(pb::ConfirmCustomerDataResponse { customer: shown(&principal, &row) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_verification_settings(
        &self,
        request: Request<pb::GetVerificationSettingsRequest>,
    ) -> Result<Response<pb::GetVerificationSettingsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            let (fresh_days, update_time) = self.app.verification_settings(principal.tenant).await?;
            let settings = pb::VerificationSettings { fresh_days, update_time: update_time.map(crm_kit::time::to_timestamp) };
            Ok(pb::GetVerificationSettingsResponse { verification_settings: Some(settings) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_verification_settings(
        &self,
        request: Request<pb::UpdateVerificationSettingsRequest>,
    ) -> Result<Response<pb::UpdateVerificationSettingsResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::SETTINGS_CONFIGURE)?;
            let settings = required(request.into_inner().verification_settings, "verification_settings")?;
            if !(0..=3650).contains(&settings.fresh_days) {
                return Err(Error::invalid("verification_settings.fresh_days", "OUT_OF_RANGE", "0 (off) to 3650 days"));
            }
            let now = Utc::now();
            self.app.set_verification_settings(principal.tenant, settings.fresh_days, now).await?;
            let stored = pb::VerificationSettings { fresh_days: settings.fresh_days, update_time: Some(crm_kit::time::to_timestamp(now)) };
            Ok(pb::UpdateVerificationSettingsResponse { verification_settings: Some(stored) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn disable_customer(
        &self,
        request: Request<pb::DisableCustomerRequest>,
    ) -> Result<Response<pb::DisableCustomerResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_DISABLE)?;
            let request = request.get_ref();
            let id = CUSTOMER.parse(&request.name, "name")?;
            let reason = request.reason.trim();
            if reason.is_empty() || reason.chars().count() > 500 {
                return Err(Error::invalid("reason", "INVALID_REASON", "why the customer is disabled, 1-500 characters"));
            }
            let row = self.app.set_disabled(principal.tenant, id, Some(reason), &request.etag, Utc::now()).await?;
            Ok(pb::DisableCustomerResponse { customer: shown(&principal, &row) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn enable_customer(&self, request: Request<pb::EnableCustomerRequest>) -> Result<Response<pb::EnableCustomerResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_DISABLE)?;
            let request = request.get_ref();
            let id = CUSTOMER.parse(&request.name, "name")?;
            let row = self.app.set_disabled(principal.tenant, id, None, &request.etag, Utc::now()).await?;
            Ok(pb::EnableCustomerResponse { customer: shown(&principal, &row) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_customers(&self, request: Request<pb::ListCustomersRequest>) -> Result<Response<pb::ListCustomersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            let request = request.into_inner();
            // A bad page_size is reported before a bad filter or order, as it
            // always was; the pager below checks it again.
            page_size(request.page_size)?;
            let filter = CUSTOMER_FILTER.check(&request.filter)?;
            allow_filter(&principal, &filter)?;
            let order = parse_order_by(&request.order_by)?;
            let pager = Pager::new(&self.page_tokens);
            let tenant = principal.tenant.to_string();
            let deleted = if request.show_deleted { "deleted" } else { "live" };
            let disabled = if request.show_disabled { "disabled" } else { "enabled" };
            let fingerprint = ["ListCustomers", &tenant, request.filter.trim(), &order_fingerprint(&order), deleted, disabled];
            let page = pager.start::<TokenKey>(request.page_size, &request.page_token, &fingerprint)?;
            let after = page.after.as_ref().map(|key| key_from_token(&key.0, &order)).transpose()?;
            let query = ListQuery {
                filter: &filter,
                order: &order,
                after,
                show_deleted: request.show_deleted,
                show_disabled: request.show_disabled,
                segment: None,
                limit: page.fetch_limit(),
            };
            let rows = self.app.customers(principal.tenant, query).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |row| TokenKey(key_of(row, &order)));
            let customers = rows.iter().map(|r| visible(&principal, customer_to_proto(r))).collect();
            Ok(pb::ListCustomersResponse { customers, next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_customer_changes(
        &self,
        request: Request<pb::ListCustomerChangesRequest>,
    ) -> Result<Response<pb::ListCustomerChangesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            super::changes::list(&self.app, &self.page_tokens, &principal, request.get_ref()).await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_customer_timeline(
        &self,
        request: Request<pb::ListCustomerTimelineRequest>,
    ) -> Result<Response<pb::ListCustomerTimelineResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            super::timeline::list(&self.app, &self.page_tokens, &principal, request.get_ref()).await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn export_customer_data(
        &self,
        request: Request<pb::ExportCustomerDataRequest>,
    ) -> Result<Response<pb::ExportCustomerDataResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            super::privacy::export(&self.app, &principal, request.get_ref()).await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn erase_customer(&self, request: Request<pb::EraseCustomerRequest>) -> Result<Response<pb::EraseCustomerResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            super::privacy::erase(&self.app, &principal, request.get_ref()).await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn batch_get_customers(
        &self,
        request: Request<pb::BatchGetCustomersRequest>,
    ) -> Result<Response<pb::BatchGetCustomersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::CUSTOMERS_READ)?;
            let names = &request.get_ref().names;
            if names.len() > MAX_BATCH {
                return Err(Error::invalid("names", "TOO_MANY_ENTRIES", format!("at most {MAX_BATCH} names per call")));
            }
            let ids = names.iter().enumerate().map(|(i, n)| CUSTOMER.parse(n, &format!("names[{i}]"))).collect::<Result<Vec<_>, _>>()?;
            let rows = self.app.customers_by_id(principal.tenant, &ids).await?;
            Ok(pb::BatchGetCustomersResponse { customers: rows.iter().map(|r| visible(&principal, customer_to_proto(r))).collect() })
        })
        .await
    }
}
