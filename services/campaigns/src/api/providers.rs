//! `crm.campaigns.v1.ProviderService`: administrators configure the tenant's
//! providers. A relay's host must resolve to public addresses (SSRF), checked
//! here before anything is stored and again on every connection.

use chrono::Utc;
use crm_kit::{
    Error,
    auth::caller,
    fieldmask::UpdateMask,
    idempotency::IdempotencyKey,
    pagination::{PageTokenCodec, Pager},
    required, respond,
};
use crm_proto::crm::campaigns::v1::{self as pb, provider_service_server::ProviderService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    app::{App, providers::ProviderDraft},
    domain::channel::Channel,
    permissions,
    resources::PROVIDER,
    store::providers::{ProviderRow, ProviderSettings},
    wire::{
        channel_from,
        providers::{aliyun_settings, fcm_settings, provider_to, smtp_settings, twilio_settings, webhook_settings},
    },
};

const WRITABLE: &[&str] = &["display_name", "max_per_second", "smtp", "twilio", "aliyun_sms", "webhook", "fcm"];

/// Handlers of ProviderService.
#[derive(Clone)]
pub struct ProviderApi {
    app: App,
    page_tokens: PageTokenCodec,
}

impl ProviderApi {
    /// Handlers over `app`.
    pub fn new(app: App, page_tokens: PageTokenCodec) -> Self {
        Self { app, page_tokens }
    }

    /// `row` as the API shows it, with its callback URL (for an SMTP relay, where its bounce reports go; FCM calls nothing back).
    fn shown(&self, tenant: Uuid, row: &ProviderRow) -> pb::Provider {
        let mut provider = provider_to(row);
        if !matches!(row.settings.0, ProviderSettings::Fcm(_)) {
            provider.callback_url = self.app.links().callback_url(tenant, row.id).unwrap_or_default();
        }
        provider
    }

    /// A validated draft of `p` for `channel`, its relay's address checked.
    async fn draft(&self, p: &pb::Provider, channel: Channel) -> Result<ProviderDraft, Error> {
        let display_name = p.display_name.trim().to_owned();
        if display_name.is_empty() || display_name.chars().count() > 200 {
            return Err(Error::invalid("provider.display_name", "INVALID_VALUE", "1-200 characters"));
        }
        if !(0..=100_000).contains(&p.max_per_second) {
            return Err(Error::invalid("provider.max_per_second", "OUT_OF_RANGE", "0 (no limit) to 100 000"));
        }
        use pb::provider::Settings;
        let allow = self.app.senders().allow_private();
        let mut dkim_private_key = None;
        // Each URL the provider will be called at, checked like a relay's host.
        let mut urls = Vec::new();
        let (settings, password) = match (&p.settings, channel) {
            (Some(Settings::Smtp(smtp)), Channel::Email) => {
                let (settings, secrets) = smtp_settings(smtp, "provider.smtp")?;
                crm_kit::egress::resolve(&settings.host, settings.port, allow)
                    .await
                    .map_err(|e| Error::invalid("provider.smtp.host", "HOST_NOT_ALLOWED", e.to_string()))?;
                dkim_private_key = secrets.dkim_private_key;
                (ProviderSettings::Smtp(settings), secrets.password)
            }
            (Some(Settings::Twilio(t)), Channel::Sms) => {
                let (settings, token) = twilio_settings(t, "provider.twilio")?;
                urls.push(("provider.twilio.base_url", settings.base_url.clone()));
                (ProviderSettings::Twilio(settings), token)
            }
            (Some(Settings::AliyunSms(a)), Channel::Sms) => {
                let (settings, secret) = aliyun_settings(a, "provider.aliyun_sms")?;
                urls.push(("provider.aliyun_sms.endpoint", settings.endpoint.clone()));
                (ProviderSettings::AliyunSms(settings), secret)
            }
            (Some(Settings::Webhook(w)), Channel::Sms | Channel::Push) => {
                let (settings, secret) = webhook_settings(w, "provider.webhook")?;
                urls.push(("provider.webhook.url", settings.url.clone()));
                (ProviderSettings::Webhook(settings), secret)
            }
            (Some(Settings::Fcm(f)), Channel::Push) => {
                let (settings, key, token_uri) = fcm_settings(f, "provider.fcm")?;
                urls.push(("provider.fcm.base_url", settings.base_url.clone()));
                if let Some(token_uri) = token_uri {
                    urls.push(("provider.fcm.service_account_key", token_uri));
                }
                (ProviderSettings::Fcm(settings), key)
            }
            (Some(other), _) => {
                let (name, serves) = match other {
                    Settings::Smtp(_) => ("smtp", "email"),
                    Settings::Twilio(_) => ("twilio", "SMS"),
                    Settings::AliyunSms(_) => ("aliyun_sms", "SMS"),
                    Settings::Webhook(_) => ("webhook", "SMS and push"),
                    Settings::Fcm(_) => ("fcm", "push"),
                };
                return Err(Error::invalid(
                    format!("provider.{name}"),
                    "NOT_FOR_CHANNEL",
                    format!("a {name} provider sends {serves} only"),
                ));
            }
            (None, _) => {
                return Err(Error::invalid(
                    "provider.settings",
                    "REQUIRED",
                    format!(
                        "the {channel} channel's provider settings are required (email: smtp; SMS: twilio, aliyun_sms or webhook; push: fcm or webhook)"
                    ),
                ));
            }
        };
        for (field, url) in urls {
            crm_kit::egress::check_target(field, &url, allow)
                .await
                .map_err(|refused| Error::InvalidArgument { violations: vec![refused] })?;
        }
        Ok(ProviderDraft { display_name, channel, max_per_second: p.max_per_second, settings, password, dkim_private_key })
    }
}

#[tonic::async_trait]
impl ProviderService for ProviderApi {
    #[tracing::instrument(skip_all)]
    async fn create_provider(&self, request: Request<pb::CreateProviderRequest>) -> Result<Response<pb::CreateProviderResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::PROVIDERS_CONFIGURE)?;
            let request = request.into_inner();
            let key = IdempotencyKey::new(
                "CreateProvider",
                &request.request_id,
                &pb::CreateProviderRequest { request_id: String::new(), ..request.clone() },
            )?;
            let input = required(request.provider, "provider")?;
            let draft = self.draft(&input, channel_from(input.channel, "provider.channel")?).await?;
            self.app
                .create_provider(principal.tenant, draft, key.as_ref(), Utc::now(), |row| pb::CreateProviderResponse {
                    provider: Some(self.shown(principal.tenant, row)),
                })
                .await
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn get_provider(&self, request: Request<pb::GetProviderRequest>) -> Result<Response<pb::GetProviderResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::PROVIDERS_CONFIGURE)?;
            let id = PROVIDER.parse(&request.get_ref().name, "name")?;
            Ok(pb::GetProviderResponse { provider: Some(self.shown(principal.tenant, &self.app.provider(principal.tenant, id).await?)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn list_providers(&self, request: Request<pb::ListProvidersRequest>) -> Result<Response<pb::ListProvidersResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::PROVIDERS_CONFIGURE)?;
            let request = request.get_ref();
            let pager = Pager::new(&self.page_tokens);
            let page = pager.start(request.page_size, &request.page_token, &["ListProviders", &principal.tenant.to_string()])?;
            let rows = self.app.providers(principal.tenant, page.after.clone(), page.fetch_limit()).await?;
            let (rows, next_page_token) = pager.finish(&page, rows, |p| (p.display_name.clone(), p.id));
            Ok(pb::ListProvidersResponse { providers: rows.iter().map(|row| self.shown(principal.tenant, row)).collect(), next_page_token })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn update_provider(&self, request: Request<pb::UpdateProviderRequest>) -> Result<Response<pb::UpdateProviderResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::PROVIDERS_CONFIGURE)?;
            let pb::UpdateProviderRequest { provider, update_mask } = request.into_inner();
            let input = required(provider, "provider")?;
            let id = PROVIDER.parse(&input.name, "provider.name")?;
            let paths = UpdateMask::parse(update_mask.as_ref(), WRITABLE)?.resolve(WRITABLE);
            // The draft needs a DNS lookup, which must not happen inside the
            // transaction: read, merge and check first; the etag is checked again in it.
            let stored = self.app.provider(principal.tenant, id).await?;
            let mut merged = provider_to(&stored);
            for path in &paths {
                match *path {
                    "display_name" => merged.display_name.clone_from(&input.display_name),
                    "max_per_second" => merged.max_per_second = input.max_per_second,
                    // The settings are one oneof: naming any of its kinds replaces it.
                    _ => merged.settings.clone_from(&input.settings),
                }
            }
            // An FCM key file kept as stored keeps its service account; another kind's secret is no key file.
            if let Some(pb::provider::Settings::Fcm(new)) = &mut merged.settings
                && new.service_account_key.is_empty()
            {
                match &stored.settings.0 {
                    ProviderSettings::Fcm(old) => new.client_email.clone_from(&old.client_email),
                    _ => {
                        return Err(Error::invalid(
                            "provider.fcm.service_account_key",
                            "REQUIRED",
                            "FCM needs the project's service account key file",
                        ));
                    }
                }
            }
            let draft = self.draft(&merged, stored.channel).await?;
            let etag = if input.etag.is_empty() { crm_kit::etag::of_revision(stored.revision) } else { input.etag.clone() };
            let row = self.app.update_provider(principal.tenant, id, &etag, |_| Ok(draft), Utc::now()).await?;
            Ok(pb::UpdateProviderResponse { provider: Some(self.shown(principal.tenant, &row)) })
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn delete_provider(&self, request: Request<pb::DeleteProviderRequest>) -> Result<Response<pb::DeleteProviderResponse>, Status> {
        respond(async move {
            let principal = caller(&request)?;
            principal.require(permissions::PROVIDERS_CONFIGURE)?;
            let id = PROVIDER.parse(&request.get_ref().name, "name")?;
            self.app.delete_provider(principal.tenant, id, &request.get_ref().etag).await?;
            Ok(pb::DeleteProviderResponse {})
        })
        .await
    }
}
