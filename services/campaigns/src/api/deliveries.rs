//! `crm.campaigns.v1.DeliveryService`: notices in, the sent log out. Readers
//! without `pii` see addresses and rendered text masked and cannot filter by
//! address.

use std::collections::BTreeMap;

use chrono::Utc;
use crm_kit::{
    Error,
    auth::{Principal, caller},
    client::Caller,
    filter::{FieldType, FilterField, FilterSchema},
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    respond,
};
use crm_proto::crm::campaigns::v1::{self as pb, delivery_service_server::DeliveryService};
use tonic::{Request, Response, Status};

use crate::{
    app::{App, notices::Notice},
    permissions,
    profiles::ProfilesClient,
    resources::{CUSTOMER, DELIVERY, TEMPLATE},
    store::deliveries::DeliveryRow,
    wire::{View, delivery_to, masked},
};

static DELIVERY_FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField { name: "customer", sql: "('customers/' || d.customer_id::text)", ty: FieldType::Text },
        FilterField { name: "recipient", sql: "d.recipient", ty: FieldType::Text },
        FilterField { name: "template", sql: "('templates/' || d.template_id::text)", ty: FieldType::Text },
        FilterField { name: "campaign", sql: "('campaigns/' || d.campaign_id::text)", ty: FieldType::Text },
        FilterField { name: "ab_variant", sql: "d.variant", ty: FieldType::Text },
        FilterField { name: "channel", sql: "d.channel", ty: FieldType::Enum { values: &["EMAIL", "SMS", "PUSH"], prefix: "CHANNEL_" } },
        FilterField {
            name: "status",
            sql: "d.status",
            ty: FieldType::Enum { values: &["QUEUED", "SUBMITTING", "SENT", "FAILED", "SKIPPED", "CANCELLED"], prefix: "DELIVERY_STATUS_" },
        },
        FilterField { name: "kind", sql: "d.kind", ty: FieldType::Enum { values: &["NOTICE", "CAMPAIGN"], prefix: "DELIVERY_KIND_" } },
        FilterField {
            name: "skip_reason",
            sql: "d.skip_reason",
            ty: FieldType::Enum {
                values: &[
                    "NO_ADDRESS",
                    "NO_CONSENT",
                    "DO_NOT_CONTACT",
                    "CUSTOMER_DELETED",
                    "FREQUENCY_CAP",
                    "OPEN_COMPLAINT",
                    "SUPPRESSED",
                ],
                prefix: "SKIP_REASON_",
            },
        },
        FilterField {
            name: "receipt_status",
            sql: "d.receipt_status",
            ty: FieldType::Enum { values: &["DELIVERED", "UNDELIVERED"], prefix: "RECEIPT_STATUS_" },
        },
        FilterField { name: "create_time", sql: "d.create_time", ty: FieldType::Timestamp },
    ],
};

/// Variables per notice, and their sizes.
const MAX_VARIABLES: usize = 100;

/// Handlers of DeliveryService.
#[derive(Clone)]
pub struct DeliveryApi {
    app: App,
    page_tokens: PageTokenCodec,
    profiles: ProfilesClient,
}

impl DeliveryApi {
    /// Handlers over `app`, reading recipients from `profiles`.
    pub fn new(app: App, page_tokens: PageTokenCodec, profiles: ProfilesClient) -> Self {
        Self { app, page_tokens, profiles }
    }
}

fn view_for(principal: &Principal) -> View {
    if principal.can(permissions::PII) { View::Full } else { View::Masked }
}

fn check_variables(variables: &BTreeMap<String, String>) -> Result<(), Error> {
    if variables.len() > MAX_VARIABLES || variables.iter().any(|(k, v)| k.is_empty() || k.len() > 64 || v.len() > 10_000) {
        return Err(Error::invalid(
            "variables",
            "INVALID_VARIABLES",
            "at most 100 variables, names of 1-64 and values of at most 10 000 bytes",
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl DeliveryService for DeliveryApi {
    #[tracing::instrument(skip_all)]
    async fn send_notice(&self, request: Request<pb::SendNoticeRequest>) -> Result<Response<pb::SendNoticeResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::NOTICES_SEND)?;
            let from = Caller::of(&request);
            let request = request.into_inner();
            let template = TEMPLATE.parse(&request.template, "template")?;
            let customer = CUSTOMER.parse(&request.customer, "customer")?;
            check_variables(&request.variables)?;
            let fingerprint = pb::SendNoticeRequest { request_id: String::new(), ..request.clone() };
            let key = IdempotencyKey::new("SendNotice", &request.request_id, &fingerprint)?.ok_or_else(|| {
                Error::invalid("request_id", "REQUIRED", "a notice needs a request_id, so that a retry never sends it twice")
            })?;
            // Journeys' messages carry "journeys/…" request ids in the same ledger: a caller's may not look like one.
            if request.request_id.starts_with("journeys/") {
                return Err(Error::invalid(
                    "request_id",
                    "RESERVED_REQUEST_ID",
                    "request ids starting with \"journeys/\" are the journeys'",
                ));
            }
            let view = view_for(&principal);
            let respond = |row: &DeliveryRow| pb::SendNoticeResponse { delivery: Some(delivery_to(row, View::Full)) };
            // A retry is answered from the ledger without asking profiles again.
            let response = match self.app.notice_replay::<pb::SendNoticeResponse>(principal.tenant, &key).await? {
                Some(replay) => replay,
                None => {
                    let recipient = self.profiles.customer(&from, customer, "customer").await?;
                    let notice = Notice { template, customer: &recipient, variables: &request.variables, request_id: &request.request_id };
                    self.app.send_notice(principal.tenant, notice, &key, Utc::now(), respond).await?
                }
            };
            // The stored response is complete; what this caller may see of it is decided per call.
            Ok(match view {
                View::Full => response,
                _ => pb::SendNoticeResponse { delivery: response.delivery.map(masked) },
            })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_delivery(&self, request: Request<pb::GetDeliveryRequest>) -> Result<Response<pb::GetDeliveryResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::DELIVERIES_READ)?;
            let id = DELIVERY.parse(&request.get_ref().name, "name")?;
            let row = self.app.delivery(principal.tenant, id).await?;
            Ok(pb::GetDeliveryResponse { delivery: Some(delivery_to(&row, view_for(&principal))) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_deliveries(&self, request: Request<pb::ListDeliveriesRequest>) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::DELIVERIES_READ)?;
            let request = request.get_ref();
            let filter = DELIVERY_FILTER.check(&request.filter)?;
            if filter.mentions("recipient") {
                principal
                    .require(permissions::PII)
                    .map_err(|_| Error::PermissionDenied { permission: "pii (filter by recipient)".into() })?;
            }
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(
                request.page_size,
                &request.page_token,
                &["ListDeliveries", &principal.tenant.to_string(), request.filter.trim()],
            )?;
            let rows = self.app.deliveries(principal.tenant, &filter, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |d| d.id);
            let view = view_for(&principal);
            Ok(pb::ListDeliveriesResponse { deliveries: rows.iter().map(|d| delivery_to(d, view)).collect(), next_page_token })
        })
        .await
    }
}
