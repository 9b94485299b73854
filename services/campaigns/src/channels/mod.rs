//! Delivery channels: a sender per configured provider, built from its
//! stored settings and decrypted credentials, cached per provider revision,
//! and paced by the provider's rate.
//!
//! # Layout
//! - [`email`] — SMTP.
//! - [`twilio`], [`aliyun`] — SMS through Twilio's and Aliyun's APIs.
//! - [`webhook`] — a signed webhook (SMS or push through any gateway).
//! - [`fcm`] — push through Firebase Cloud Messaging.
//! - [`callbacks`] — what the providers send back (receipts, inbound messages), verified.
//! - [`dsn`] — email bounce reports (RFC 3464), forwarded to the SMTP provider's callback URL.
//! - `message` — the rendered message a channel sends, and what handing it over made.
//! - `http` — the HTTP providers' pinned clients and status meanings.
//! - `throttle` — the per-provider token bucket.

pub mod aliyun;
pub mod callbacks;
pub mod dsn;
pub mod email;
pub mod fcm;
mod http;
mod message;
mod throttle;
pub mod twilio;
pub mod webhook;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use uuid::Uuid;

use chrono::{DateTime, Utc};
use crm_kit::sealed::SecretCipher;

pub use self::message::{Handover, Outgoing};
use self::{
    aliyun::AliyunSender,
    email::{Email, SmtpSender},
    fcm::FcmSender,
    throttle::Bucket,
    twilio::TwilioSender,
    webhook::WebhookSender,
};
use crate::{
    domain::delivery::Outcome,
    store::providers::{ProviderRow, ProviderSettings},
};

/// Messages of one SMTP relay between their SUBMITTING mark and the record
/// of the relay's answer, per replica: twice the connections a relay gets,
/// so that while one message's mark or record commits, another uses the
/// connection — a connection never idles through a commit. It is also the
/// most messages one crash can leave SUBMITTING per relay and replica, to be
/// re-submitted under their Message-ID (a slot is held until the answer is
/// recorded, so a message handed over and not yet recorded still counts).
pub const IN_FLIGHT_PER_PROVIDER: usize = 2 * email::POOL_SIZE as usize;

/// The same for HTTP providers, which multiplex requests rather than hold a
/// connection per message: enough that the mark's commit and the request's
/// round trip do not cap the rate below the provider's (at ~15 ms each,
/// 64 in flight allow ~4 000/s). A crash can leave this many SUBMITTING;
/// they are looked up at the provider or carry an idempotency key, never
/// blindly re-sent.
pub const IN_FLIGHT_PER_HTTP_PROVIDER: usize = 64;

/// A provider ready to send.
pub struct Sender {
    revision: i64,
    /// [`IN_FLIGHT_PER_PROVIDER`] (SMTP) or [`IN_FLIGHT_PER_HTTP_PROVIDER`] permits: a message is marked SUBMITTING
    /// only once it holds one, so it never waits long for a connection.
    slots: Arc<Semaphore>,
    bucket: Bucket,
    channel: ChannelSender,
}

enum ChannelSender {
    // Boxed: with its DKIM key an SMTP sender (with its signing key an FCM one) is several times the size of the others.
    Smtp(Box<SmtpSender>),
    Twilio(TwilioSender),
    Aliyun(AliyunSender),
    Webhook(WebhookSender),
    Fcm(Box<FcmSender>),
}

/// Senders by (tenant, provider); a changed provider (new revision) gets a new one.
type SenderCache = HashMap<(Uuid, Uuid), Arc<Sender>>;

/// The senders of every provider this replica has used.
#[derive(Clone)]
pub struct Senders {
    cipher: SecretCipher,
    allow_private: bool,
    cache: Arc<Mutex<SenderCache>>,
}

impl Senders {
    /// Senders whose credentials `cipher` opens; `allow_private` admits
    /// relays on internal addresses (development and tests only).
    pub fn new(cipher: SecretCipher, allow_private: bool) -> Self {
        Self { cipher, allow_private, cache: Arc::default() }
    }

    /// The credential cipher (providers' use cases seal with it).
    pub fn cipher(&self) -> &SecretCipher {
        &self.cipher
    }

    /// Whether internal addresses are allowed.
    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    async fn sender(&self, tenant: Uuid, provider: &ProviderRow) -> Result<Arc<Sender>, Outcome> {
        let key = (tenant, provider.id);
        if let Some(sender) = self.cache.lock().expect("not poisoned").get(&key).filter(|s| s.revision == provider.revision) {
            return Ok(sender.clone());
        }
        let secret = match &provider.credentials {
            Some(sealed) => Some(self.cipher.open(tenant, provider.id, sealed).map_err(|e| Outcome::Temporary { error: e.to_string() })?),
            None => None,
        };
        // A name may resolve again later; a refused address is the provider's setting to fix: temporary.
        let unusable = |e: &dyn std::fmt::Display| Outcome::Temporary { error: format!("provider {}: {e}", provider.id) };
        let allow = self.allow_private;
        let channel = match &provider.settings.0 {
            ProviderSettings::Smtp(s) => {
                let dkim = match &provider.dkim_key {
                    Some(sealed) => {
                        Some(self.cipher.open(tenant, provider.id, sealed).map_err(|e| Outcome::Temporary { error: e.to_string() })?)
                    }
                    None => None,
                };
                ChannelSender::Smtp(Box::new(SmtpSender::new(s, secret, dkim, allow).await.map_err(|e| unusable(&e))?))
            }
            ProviderSettings::Twilio(s) => ChannelSender::Twilio(TwilioSender::new(s, secret, allow).await.map_err(|e| unusable(&e))?),
            ProviderSettings::AliyunSms(s) => ChannelSender::Aliyun(AliyunSender::new(s, secret, allow).await.map_err(|e| unusable(&e))?),
            ProviderSettings::Webhook(s) => ChannelSender::Webhook(WebhookSender::new(s, secret, allow).await.map_err(|e| unusable(&e))?),
            ProviderSettings::Fcm(s) => ChannelSender::Fcm(Box::new(FcmSender::new(s, secret, allow).await.map_err(|e| unusable(&e))?)),
        };
        let rate = u32::try_from(provider.max_per_second).unwrap_or(0);
        let in_flight = match &channel {
            ChannelSender::Smtp(_) => IN_FLIGHT_PER_PROVIDER,
            _ => IN_FLIGHT_PER_HTTP_PROVIDER,
        };
        let slots = Arc::new(Semaphore::new(in_flight));
        let sender = Arc::new(Sender { revision: provider.revision, slots, bucket: Bucket::new(rate), channel });
        self.cache.lock().expect("not poisoned").insert(key, sender.clone());
        Ok(sender)
    }

    /// The sender of `provider` of `tenant` (built on first use, rebuilt when
    /// the provider changed); an [`Outcome`] when it cannot be built.
    pub async fn get(&self, tenant: Uuid, provider: &ProviderRow) -> Result<Arc<Sender>, Outcome> {
        self.sender(tenant, provider).await
    }
}

impl Sender {
    /// Waits until a connection is free and the provider's rate allows one
    /// more message; the permit is held while the message is sent.
    pub async fn ready(&self) -> OwnedSemaphorePermit {
        let permit = self.slots.clone().acquire_owned().await.expect("never closed");
        self.bucket.take().await;
        permit
    }

    /// Whether it pushes through FCM, to the devices registered here.
    pub fn pushes_to_devices(&self) -> bool {
        matches!(self.channel, ChannelSender::Fcm(_))
    }

    /// Hands `message` to the provider and returns its answer. A throttling
    /// answer also holds every later message of this provider for its wait.
    pub async fn send(&self, message: Outgoing<'_>) -> Handover {
        let kind = match &self.channel {
            ChannelSender::Smtp(_) => "smtp",
            ChannelSender::Twilio(_) => "twilio",
            ChannelSender::Aliyun(_) => "aliyun_sms",
            ChannelSender::Webhook(_) => "webhook",
            ChannelSender::Fcm(_) => "fcm",
        };
        // The provider call as a client span: the leaf of the campaign's or notice's trace.
        let span = tracing::info_span!(
            "provider.send",
            otel.name = %format_args!("{kind} send"),
            otel.kind = "client",
            provider.kind = kind,
            provider.outcome = tracing::field::Empty,
        );
        let handover = self.hand_over(message).instrument(span.clone()).await;
        span.record("provider.outcome", handover.outcome.kind());
        handover
    }

    async fn hand_over(&self, message: Outgoing<'_>) -> Handover {
        let handover: Handover = match &self.channel {
            ChannelSender::Smtp(smtp) => smtp
                .send(Email {
                    delivery: message.delivery,
                    to: message.recipient,
                    subject: message.subject,
                    text: message.body,
                    html: message.html_body,
                    unsubscribe_url: message.unsubscribe_url,
                })
                .await
                .into(),
            ChannelSender::Twilio(twilio) => twilio.send(&message).await.into(),
            ChannelSender::Aliyun(aliyun) => aliyun.send(&message).await.into(),
            ChannelSender::Webhook(webhook) => webhook.send(&message).await.into(),
            ChannelSender::Fcm(fcm) => fcm.send(&message).await,
        };
        let outcome = &handover.outcome;
        if let Outcome::Accepted { .. } = outcome {
            self.bucket.accepted().await;
        }
        if let Outcome::Throttled { retry_after, .. } = outcome {
            self.bucket.hold_for(*retry_after).await;
            if let Some(rate) = self.bucket.learned_rate().await {
                tracing::info!(pace = rate.round(), "the provider throttled us: pacing it at the learned rate (messages/s)");
            }
        }
        handover
    }

    /// Whether the provider already has `message`, handed over by a sender
    /// that stopped before recording the answer (attempt begun at `since`):
    /// its outcome if found; None when it must be sent (again). Providers
    /// with an idempotency key at the receiving end (SMTP's Message-ID, the
    /// webhook's Idempotency-Key) or a collapse key on the device (FCM)
    /// answer None: re-sending is safe there.
    pub async fn find(&self, message: Outgoing<'_>, since: DateTime<Utc>) -> Option<Outcome> {
        match &self.channel {
            ChannelSender::Smtp(_) | ChannelSender::Webhook(_) | ChannelSender::Fcm(_) => None,
            ChannelSender::Twilio(twilio) => twilio.find(&message, since).await,
            ChannelSender::Aliyun(aliyun) => aliyun.find(&message, since).await,
        }
    }
}
