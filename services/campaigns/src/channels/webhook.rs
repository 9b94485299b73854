//! A signed webhook: each message is POSTed as JSON to the tenant's URL with
//! `Idempotency-Key: <delivery id>` — the receiver drops a key it has seen,
//! so a message re-submitted after a crash arrives once — and
//! `X-CRM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//! under the shared secret, which the receiver checks (and rejects when `t`
//! is old) before trusting the request.

use hmac::{Hmac, Mac};
use reqwest::{Client, Url};
use serde::Deserialize;
use sha2::Sha256;

use super::{
    http::{self, HttpSetupError},
    message::Outgoing,
};
use crate::{domain::delivery::Outcome, store::providers::WebhookSettings};

/// The HMAC-SHA256 under `secret` of `"<timestamp>.<body>"`: what `v1=` carries, both ways.
pub fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header of a body sent at `timestamp`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

/// Sends to one webhook.
pub struct WebhookSender {
    client: Client,
    url: Url,
    secret: String,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    id: String,
}

impl WebhookSender {
    /// A sender for `settings` signing with `secret`.
    pub async fn new(settings: &WebhookSettings, secret: Option<String>, allow_private: bool) -> Result<Self, HttpSetupError> {
        let url = http::parse_url(&settings.url, allow_private)?;
        let client = http::pinned_client(&url, allow_private).await?;
        Ok(Self { client, url, secret: secret.unwrap_or_default() })
    }

    /// Submits `m`.
    pub async fn send(&self, m: &Outgoing<'_>) -> Outcome {
        let body = serde_json::json!({
            "id": crate::resources::DELIVERY.name(m.delivery),
            "channel": m.channel.as_str(),
            "to": m.recipient,
            "subject": m.subject,
            "body": m.body,
            "data": m.data,
            "variables": m.variables,
        })
        .to_string();
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", m.delivery.to_string())
            .header("X-CRM-Signature", signature(&self.secret, chrono::Utc::now().timestamp(), body.as_bytes()))
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return http::unanswered(&e),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            let id = serde_json::from_str::<Answer>(&text).map(|a| a.id).unwrap_or_default();
            return Outcome::Accepted { message_id: if id.is_empty() { m.delivery.to_string() } else { id } };
        }
        http::failure(status, &headers, &text.chars().take(200).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_covers_timestamp_and_body() {
        let a = super::signature("s", 1_700_000_000, b"{}");
        assert!(a.starts_with("t=1700000000,v1="), "{a}");
        assert_ne!(a, super::signature("s", 1_700_000_001, b"{}"));
        assert_ne!(a, super::signature("s", 1_700_000_000, b"{ }"));
        assert_ne!(a, super::signature("t", 1_700_000_000, b"{}"));
    }
}
