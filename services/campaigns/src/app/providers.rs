//! Providers: the tenant's delivery settings per channel, with credentials
//! sealed before they reach the database; each change with its event
//! (credentials never in it).

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    idempotency::{self, IdempotencyKey},
};
use crm_proto::crm::campaigns::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{App, emit};
use crate::{
    domain::channel::Channel,
    resources::PROVIDER,
    store::providers::{self as store, PROVIDERS, ProviderFields, ProviderRow, ProviderSettings},
    wire::{channel_to, providers::provider_to},
};

/// A provider as a request describes it; `password` in clear until sealed here.
#[derive(Debug, Clone)]
pub struct ProviderDraft {
    pub display_name: String,
    pub channel: Channel,
    pub max_per_second: i32,
    pub settings: ProviderSettings,
    /// New secret; `None` keeps the stored one (on update) or stores none.
    pub password: Option<String>,
    /// New DKIM key (SMTP); `None` keeps the stored one while the settings name a DKIM domain.
    pub dkim_private_key: Option<String>,
}

impl App {
    /// The fields to store: new secrets sealed, the `stored` ones (credentials, DKIM key) kept where none is given.
    fn fields(
        &self,
        tenant: Uuid,
        id: Uuid,
        draft: ProviderDraft,
        stored: (Option<Vec<u8>>, Option<Vec<u8>>),
    ) -> Result<ProviderFields, Error> {
        let seal = |secret: String| self.senders.cipher().seal(tenant, id, &secret);
        let credentials = draft.password.map(seal).or(stored.0);
        let signs = matches!(&draft.settings, ProviderSettings::Smtp(s) if !s.dkim_domain.is_empty());
        // Turning DKIM off drops the key; turning it on needs one.
        let dkim_key = if signs { draft.dkim_private_key.map(seal).or(stored.1) } else { None };
        if signs && dkim_key.is_none() {
            return Err(Error::invalid("provider.smtp.dkim_private_key", "REQUIRED", "DKIM signing needs the domain's private key"));
        }
        if matches!(draft.settings, ProviderSettings::Fcm(_)) && credentials.is_none() {
            return Err(Error::invalid("provider.fcm.service_account_key", "REQUIRED", "FCM needs the project's service account key file"));
        }
        Ok(ProviderFields {
            display_name: draft.display_name,
            channel: draft.channel,
            max_per_second: draft.max_per_second,
            settings: draft.settings,
            credentials,
            dkim_key,
        })
    }

    /// Stores a new provider (ALREADY_EXISTS when the channel has one) and writes `ProviderChanged`.
    pub async fn create_provider<R: Message + Default>(
        &self,
        tenant: Uuid,
        draft: ProviderDraft,
        request: Option<&IdempotencyKey>,
        now: DateTime<Utc>,
        respond: impl FnOnce(&ProviderRow) -> R,
    ) -> Result<R, Error> {
        let mut tx = self.begin(tenant).await?;
        if let Some(replay) = idempotency::replay(request, &mut tx, tenant).await? {
            tx.commit().await?;
            return Ok(replay);
        }
        let id = Uuid::now_v7();
        let row = store::insert(&mut tx, tenant, id, &self.fields(tenant, id, draft, (None, None))?, now).await?;
        // A tenant that sends is a tenant whose complaints the contact policy must know.
        crm_kit::follow::follow_tenant(&mut tx, tenant, crate::store::streams::TICKETS).await?;
        // And whose customers' erasures it must apply.
        crm_kit::follow::follow_tenant(&mut tx, tenant, crate::store::streams::PROFILES).await?;
        emit(&mut tx, tenant, &PROVIDER.name(id), &pb::ProviderChanged { provider: Some(provider_to(&row)), deleted: false }).await?;
        let response = respond(&row);
        idempotency::remember(request, &mut tx, tenant, &response).await?;
        tx.commit().await?;
        tracing::info!(provider = %id, channel = %row.channel, "provider configured");
        Ok(response)
    }

    /// Replaces provider `id` with what `edit` makes of the stored one (after the etag check).
    pub async fn update_provider(
        &self,
        tenant: Uuid,
        id: Uuid,
        etag: &str,
        edit: impl FnOnce(&ProviderRow) -> Result<ProviderDraft, Error>,
        now: DateTime<Utc>,
    ) -> Result<ProviderRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let before: ProviderRow = PROVIDERS.lock_for_change(&mut tx, tenant, id, &PROVIDER, etag, "provider.etag").await?;
        let draft = edit(&before)?;
        let stored = (before.credentials.clone(), before.dkim_key.clone());
        let row = store::update(&mut tx, tenant, id, &self.fields(tenant, id, draft, stored)?, now).await?;
        emit(&mut tx, tenant, &PROVIDER.name(id), &pb::ProviderChanged { provider: Some(provider_to(&row)), deleted: false }).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Deletes provider `id` (etag checked when given) and writes `ProviderChanged` with `deleted`.
    pub async fn delete_provider(&self, tenant: Uuid, id: Uuid, etag: &str) -> Result<(), Error> {
        let mut tx = self.begin(tenant).await?;
        let before: ProviderRow = PROVIDERS.lock_for_change(&mut tx, tenant, id, &PROVIDER, etag, "etag").await?;
        store::delete(&mut tx, tenant, id).await?;
        let gone = pb::Provider { name: PROVIDER.name(id), channel: channel_to(before.channel) as i32, ..Default::default() };
        emit(&mut tx, tenant, &PROVIDER.name(id), &pb::ProviderChanged { provider: Some(gone), deleted: true }).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Provider `id`, or NOT_FOUND.
    pub async fn provider(&self, tenant: Uuid, id: Uuid) -> Result<ProviderRow, Error> {
        let mut tx = self.begin(tenant).await?;
        let row = PROVIDERS.find(&mut tx, tenant, id, false).await?.ok_or_else(|| PROVIDER.not_found(id))?;
        tx.commit().await?;
        Ok(row)
    }

    /// A page of providers by (display name, id), after `after`.
    pub async fn providers(&self, tenant: Uuid, after: Option<(String, Uuid)>, limit: i64) -> Result<Vec<ProviderRow>, Error> {
        let mut tx = self.begin(tenant).await?;
        let rows = PROVIDERS.page_by_display_name(&mut tx, tenant, after, limit).await?;
        tx.commit().await?;
        Ok(rows)
    }
}
