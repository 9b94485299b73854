//! Delivery channels: a sender per configured provider, built from its
//! stored settings and decrypted credentials, cached per provider revision,
//! and paced by the provider's rate.
//!
//! # Layout
//! - [`email`] — SMTP.
//! - `throttle` — the per-provider token bucket.

pub mod email;
mod throttle;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use self::{
    email::{Email, SmtpSender},
    throttle::Bucket,
};
use crate::{
    credentials::CredentialCipher,
    domain::delivery::Outcome,
    store::providers::{ProviderRow, ProviderSettings},
};

/// A rendered message, as a channel sends it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub delivery: Uuid,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub html_body: &'a str,
}

/// A provider ready to send.
pub struct Sender {
    revision: i64,
    /// One permit per connection the provider's transport keeps: a message
    /// is marked SUBMITTING only once it can go out at once, never while it
    /// queues for a connection.
    slots: Arc<Semaphore>,
    bucket: Option<Arc<Bucket>>,
    channel: ChannelSender,
}

enum ChannelSender {
    Smtp(SmtpSender),
}

/// Senders by (tenant, provider); a changed provider (new revision) gets a new one.
type SenderCache = HashMap<(Uuid, Uuid), Arc<Sender>>;

/// The senders of every provider this replica has used.
#[derive(Clone)]
pub struct Senders {
    cipher: CredentialCipher,
    allow_private: bool,
    cache: Arc<Mutex<SenderCache>>,
}

impl Senders {
    /// Senders whose credentials `cipher` opens; `allow_private` admits
    /// relays on internal addresses (development and tests only).
    pub fn new(cipher: CredentialCipher, allow_private: bool) -> Self {
        Self { cipher, allow_private, cache: Arc::default() }
    }

    /// The credential cipher (providers' use cases seal with it).
    pub fn cipher(&self) -> &CredentialCipher {
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
        let channel = match &provider.settings.0 {
            ProviderSettings::Smtp(settings) => ChannelSender::Smtp(
                SmtpSender::new(settings, secret, self.allow_private)
                    .await
                    // The relay's name may resolve again later; a refused address is the provider's setting to fix.
                    .map_err(|e| Outcome::Temporary { error: format!("provider {}: {e}", provider.id) })?,
            ),
        };
        let rate = u32::try_from(provider.max_per_second).unwrap_or(0);
        let slots = Arc::new(Semaphore::new(email::POOL_SIZE as usize));
        let sender =
            Arc::new(Sender { revision: provider.revision, slots, bucket: (rate > 0).then(|| Arc::new(Bucket::new(rate))), channel });
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
        if let Some(bucket) = &self.bucket {
            bucket.take().await;
        }
        permit
    }

    /// Hands `message` to the provider and returns its answer.
    pub async fn send(&self, message: Outgoing<'_>) -> Outcome {
        match &self.channel {
            ChannelSender::Smtp(smtp) => {
                smtp.send(Email {
                    delivery: message.delivery,
                    to: message.recipient,
                    subject: message.subject,
                    text: message.body,
                    html: message.html_body,
                })
                .await
            }
        }
    }
}
