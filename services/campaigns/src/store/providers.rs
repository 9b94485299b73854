//! The `providers` table.

use chrono::{DateTime, Utc};
use crm_kit::{
    Error,
    db::{Revisioned, Table, TenantTx, db_span},
    error::violated_constraint,
};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, types::Json};
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::channel::Channel;

/// The non-secret settings of an SMTP relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    /// TLS, STARTTLS or NONE.
    pub security: String,
    pub username: String,
    pub from_address: String,
    pub from_name: String,
    /// DKIM signing domain and selector; empty: unsigned (the key is sealed apart).
    #[serde(default)]
    pub dkim_domain: String,
    #[serde(default)]
    pub dkim_selector: String,
}

/// The non-secret settings of a Twilio account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub from: String,
    pub messaging_service_sid: String,
    /// API base URL, e.g. `https://api.twilio.com`.
    pub base_url: String,
}

/// The non-secret settings of an Aliyun SMS account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliyunSmsSettings {
    pub access_key_id: String,
    pub sign_name: String,
    pub template_code: String,
    /// Endpoint, e.g. `https://dysmsapi.aliyuncs.com`.
    pub endpoint: String,
}

/// The non-secret settings of a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSettings {
    pub url: String,
}

/// The non-secret settings of a Firebase project (the key file is sealed apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FcmSettings {
    pub project_id: String,
    /// The key's service account, shown to administrators.
    pub client_email: String,
    /// API base URL, e.g. `https://fcm.googleapis.com`.
    pub base_url: String,
}

/// Settings of a provider, by kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProviderSettings {
    /// An SMTP relay.
    Smtp(SmtpSettings),
    /// Twilio's Messages API.
    Twilio(TwilioSettings),
    /// Aliyun SMS.
    AliyunSms(AliyunSmsSettings),
    /// A signed webhook.
    Webhook(WebhookSettings),
    /// Firebase Cloud Messaging.
    Fcm(FcmSettings),
}

impl ProviderSettings {
    /// The stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Smtp(_) => "SMTP",
            Self::Twilio(_) => "TWILIO",
            Self::AliyunSms(_) => "ALIYUN_SMS",
            Self::Webhook(_) => "WEBHOOK",
            Self::Fcm(_) => "FCM",
        }
    }
}

/// A stored provider; `credentials` sealed by `crate::credentials`.
#[derive(Debug, Clone, FromRow)]
pub struct ProviderRow {
    pub id: Uuid,
    pub display_name: String,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    pub max_per_second: i32,
    pub settings: Json<ProviderSettings>,
    pub credentials: Option<Vec<u8>>,
    /// The sealed DKIM key of an SMTP provider.
    pub dkim_key: Option<Vec<u8>>,
    pub revision: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Revisioned for ProviderRow {
    fn revision(&self) -> i64 {
        self.revision
    }
}

/// The providers table for find, lock and paging by display name.
pub const PROVIDERS: Table = Table {
    name: "providers",
    columns: "id, display_name, channel, max_per_second, settings, credentials, dkim_key, revision, create_time, update_time",
};

/// What Create and Update write.
#[derive(Debug, Clone)]
pub struct ProviderFields {
    pub display_name: String,
    pub channel: Channel,
    pub max_per_second: i32,
    pub settings: ProviderSettings,
    pub credentials: Option<Vec<u8>>,
    pub dkim_key: Option<Vec<u8>>,
}

fn one_per_channel(err: sqlx::Error, channel: Channel) -> Error {
    match violated_constraint(&err) {
        Some("providers_one_per_channel") => Error::AlreadyExists {
            reason: "PROVIDER_EXISTS",
            message: format!("the tenant already has a {channel} provider; update or delete it"),
            resource_type: crate::resources::PROVIDER.type_name,
            name: String::new(),
        },
        _ => err.into(),
    }
}

/// Inserts provider `id` (its id is chosen first: the credentials are sealed to it).
pub async fn insert(tx: &mut TenantTx, tenant: Uuid, id: Uuid, f: &ProviderFields, now: DateTime<Utc>) -> Result<ProviderRow, Error> {
    let sql = format!(
        "INSERT INTO providers (tenant_id, id, display_name, channel, kind, max_per_second, settings, credentials, create_time, update_time,
             dkim_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10) RETURNING {}",
        PROVIDERS.columns
    );
    sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(&f.display_name)
        .bind(f.channel.as_str())
        .bind(f.settings.kind())
        .bind(f.max_per_second)
        .bind(Json(&f.settings))
        .bind(&f.credentials)
        .bind(now)
        .bind(&f.dkim_key)
        .fetch_one(&mut **tx)
        .instrument(db_span("INSERT", "providers"))
        .await
        .map_err(|e| one_per_channel(e, f.channel))
}

/// Replaces provider `id`'s fields, bumping its revision.
pub async fn update(tx: &mut TenantTx, tenant: Uuid, id: Uuid, f: &ProviderFields, now: DateTime<Utc>) -> Result<ProviderRow, Error> {
    let sql = format!(
        "UPDATE providers SET display_name = $3, kind = $4, max_per_second = $5, settings = $6, credentials = $7, update_time = $8,
         dkim_key = $9, revision = revision + 1 WHERE tenant_id = $1 AND id = $2 RETURNING {}",
        PROVIDERS.columns
    );
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(id)
        .bind(&f.display_name)
        .bind(f.settings.kind())
        .bind(f.max_per_second)
        .bind(Json(&f.settings))
        .bind(&f.credentials)
        .bind(now)
        .bind(&f.dkim_key)
        .fetch_one(&mut **tx)
        .instrument(db_span("UPDATE", "providers"))
        .await?)
}

/// Deletes provider `id`.
pub async fn delete(tx: &mut TenantTx, tenant: Uuid, id: Uuid) -> Result<(), Error> {
    sqlx::query("DELETE FROM providers WHERE tenant_id = $1 AND id = $2")
        .bind(tenant)
        .bind(id)
        .execute(&mut **tx)
        .instrument(db_span("DELETE", "providers"))
        .await?;
    Ok(())
}

/// The tenant's provider for `channel`, if one is configured.
pub async fn for_channel(tx: &mut TenantTx, tenant: Uuid, channel: Channel) -> Result<Option<ProviderRow>, Error> {
    let sql = format!("SELECT {} FROM providers WHERE tenant_id = $1 AND channel = $2", PROVIDERS.columns);
    Ok(sqlx::query_as(&sql)
        .bind(tenant)
        .bind(channel.as_str())
        .fetch_optional(&mut **tx)
        .instrument(db_span("SELECT", "providers"))
        .await?)
}
