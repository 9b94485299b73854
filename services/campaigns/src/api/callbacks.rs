//! `crm.campaigns.v1.ProviderCallbackService`: providers report back here
//! without a login. The signed callback URL names the tenant and the
//! provider; the provider's own signature, where it signs, is checked with
//! its stored credentials before anything is applied. Also the read of what
//! customers sent (ListInboundMessages), which needs a login as usual.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::caller,
    filter::{FieldType, FilterField, FilterSchema},
    pagination::{PageTokenCodec, Pager},
    respond,
    time::to_timestamp,
};
use crm_proto::crm::campaigns::v1::{self as pb, provider_callback_service_server::ProviderCallbackService};
use tonic::{Request, Response, Status, metadata::MetadataMap};

use crate::{
    app::App,
    channels::callbacks::{self, CallbackError},
    domain::inbound::Report,
    jobs::unsubscribes::OptOuts,
    links::invalid_callback,
    permissions,
    resources::{CUSTOMER, PROVIDER},
    store::{
        providers::{ProviderRow, ProviderSettings},
        receipts::InboundRow,
    },
    wire::masked_recipient,
};

static INBOUND_FILTER: FilterSchema = FilterSchema {
    fields: &[
        FilterField { name: "customer", sql: "('customers/' || m.customer_id::text)", ty: FieldType::Text },
        FilterField { name: "provider", sql: "('providers/' || m.provider_id::text)", ty: FieldType::Text },
        FilterField { name: "opt_out", sql: "m.opt_out", ty: FieldType::Bool },
        FilterField { name: "receive_time", sql: "m.receive_time", ty: FieldType::Timestamp },
    ],
};

/// `m` as the API shows it; sender and text masked unless the caller has `pii`.
fn inbound_to(m: &InboundRow, pii: bool) -> pb::InboundMessage {
    let (sender, text) = match pii {
        true => (m.sender.clone(), m.body.clone()),
        false => (masked_recipient(pb::Channel::Sms, &m.sender), crm_kit::mask::text(&m.body)),
    };
    pb::InboundMessage {
        name: format!("inboundMessages/{}", m.id),
        provider: PROVIDER.name(m.provider_id),
        provider_message_id: m.provider_message_id.clone(),
        sender,
        recipient: m.recipient.clone(),
        text,
        customer: m.customer_id.map(|c| CUSTOMER.name(c)).unwrap_or_default(),
        opt_out: m.opt_out,
        receive_time: Some(to_timestamp(m.receive_time)),
    }
}

/// Handlers of ProviderCallbackService.
#[derive(Clone)]
pub struct CallbackApi {
    app: App,
    opt_outs: OptOuts,
    page_tokens: PageTokenCodec,
}

impl CallbackApi {
    /// Handlers over `app`, carrying opt-out keywords to profiles with `opt_outs`.
    pub fn new(app: App, opt_outs: OptOuts, page_tokens: PageTokenCodec) -> Self {
        Self { app, opt_outs, page_tokens }
    }

    /// The reports in `body`, in `provider`'s wire format, verified.
    fn reports(&self, tenant: uuid::Uuid, provider: &ProviderRow, body: &[u8], metadata: &MetadataMap) -> Result<Vec<Report>, Error> {
        let header = |name: &str| metadata.get(name).and_then(|v| v.to_str().ok());
        let secret = || match &provider.credentials {
            Some(sealed) => self.app.senders().cipher().open(tenant, provider.id, sealed).map_err(Error::internal),
            None => Ok(String::new()),
        };
        let parsed = match &provider.settings.0 {
            ProviderSettings::Twilio(_) => {
                // Twilio signs the URL it called: the one this service gave it.
                let url = self.app.links().callback_url(tenant, provider.id).ok_or_else(invalid_callback)?;
                callbacks::twilio(body, header("x-twilio-signature"), &url, &secret()?)
            }
            ProviderSettings::AliyunSms(_) => callbacks::aliyun(body),
            ProviderSettings::Webhook(_) => callbacks::webhook(body, header("x-crm-signature"), &secret()?, Utc::now().timestamp()),
            // Bounce reports forwarded from the envelope sender's mailbox: the signed URL is the credential.
            ProviderSettings::Smtp(_) => crate::channels::dsn::parse(body),
            ProviderSettings::Fcm(_) => {
                return Err(Error::FailedPrecondition {
                    reason: "NO_CALLBACKS",
                    message: "FCM reports nothing back here".to_owned(),
                    subject: crate::resources::PROVIDER.name(provider.id),
                });
            }
        };
        parsed.map_err(|e| match e {
            CallbackError::BadSignature => Error::Unauthenticated { reason: "INVALID_CALLBACK_SIGNATURE", message: e.to_string() },
            CallbackError::Malformed(_) => Error::invalid("payload", "MALFORMED_CALLBACK", e.to_string()),
        })
    }
}

#[tonic::async_trait]
impl ProviderCallbackService for CallbackApi {
    #[tracing::instrument(skip_all)]
    async fn list_inbound_messages(
        &self,
        request: Request<pb::ListInboundMessagesRequest>,
    ) -> Result<Response<pb::ListInboundMessagesResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::DELIVERIES_READ)?;
            let request = request.get_ref();
            let filter = INBOUND_FILTER.check(&request.filter)?;
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(
                request.page_size,
                &request.page_token,
                &["ListInboundMessages", &principal.tenant.to_string(), request.filter.trim()],
            )?;
            let rows = self.app.inbound_messages(principal.tenant, &filter, page.after, page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |m| m.id);
            let pii = principal.can(permissions::PII);
            Ok(pb::ListInboundMessagesResponse { inbound_messages: rows.iter().map(|m| inbound_to(m, pii)).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(provider = tracing::field::Empty))]
    async fn receive_provider_callback(
        &self,
        request: Request<pb::ReceiveProviderCallbackRequest>,
    ) -> Result<Response<pb::ReceiveProviderCallbackResponse>, Status> {
        respond(async move {
            let (metadata, _, r) = request.into_parts();
            let (tenant, provider_id) = self.app.links().resolve_callback(&r.name)?;
            tracing::Span::current().record("provider", tracing::field::display(provider_id));
            // A deleted provider's URL is as invalid as a forged one.
            let provider = self.app.provider(tenant, provider_id).await.map_err(|e| match e {
                Error::NotFound { .. } => invalid_callback(),
                other => other,
            })?;
            let body = r.payload.map(|p| p.data).unwrap_or_default();
            let reports = self.reports(tenant, &provider, &body, &metadata)?;
            let applied = self.app.apply_reports(tenant, provider_id, &reports, Utc::now()).await?;
            for opt_out in &applied.opt_outs {
                if let Err(err) = self.opt_outs.apply(opt_out).await {
                    // Honoured at dispatch already; the job carries it to profiles later.
                    tracing::warn!(error = %crm_kit::error::cause_chain(&err), "profiles did not take an opt-out keyword yet; it stays pending");
                }
            }
            tracing::info!(reports = reports.len(), receipts = applied.receipts, inbound = applied.inbound, "provider callback applied");
            Ok(pb::ReceiveProviderCallbackResponse {
                code: Some(0),
                msg: "accepted".to_owned(),
                receipts: applied.receipts,
                inbound_messages: applied.inbound,
            })
        })
        .await
    }
}
