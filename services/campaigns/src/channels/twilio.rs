//! SMS through Twilio's Messages API: `POST
//! {base}/2010-04-01/Accounts/{AccountSid}/Messages.json` (form fields `To`,
//! `From` or `MessagingServiceSid`, `Body`, and `StatusCallback` — the
//! provider's callback URL — when the service has a public URL) with HTTP basic auth; 201 with
//! the message's `sid` accepts it. Twilio takes no idempotency key: a
//! message found SUBMITTING after a crash is looked for in the account's
//! message list (same recipient, same text, created since the attempt began)
//! before it is sent again.

use chrono::{DateTime, Utc};
use reqwest::{Client, Url};
use serde::Deserialize;

use super::{
    http::{self, HttpSetupError},
    message::Outgoing,
};
use crate::{domain::delivery::Outcome, store::providers::TwilioSettings};

/// Sends through one Twilio account.
pub struct TwilioSender {
    client: Client,
    messages: Url,
    settings: TwilioSettings,
    auth_token: String,
}

#[derive(Deserialize)]
struct Message {
    sid: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
struct MessageList {
    #[serde(default)]
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

impl TwilioSender {
    /// A sender for `settings` with `auth_token`.
    pub async fn new(settings: &TwilioSettings, auth_token: Option<String>, allow_private: bool) -> Result<Self, HttpSetupError> {
        let base = http::parse_url(&settings.base_url, allow_private)?;
        let client = http::pinned_client(&base, allow_private).await?;
        let messages = base
            .join(&format!("/2010-04-01/Accounts/{}/Messages.json", settings.account_sid))
            .map_err(|_| HttpSetupError::Url(settings.base_url.clone()))?;
        Ok(Self { client, messages, settings: settings.clone(), auth_token: auth_token.unwrap_or_default() })
    }

    /// Submits `m`.
    pub async fn send(&self, m: &Outgoing<'_>) -> Outcome {
        let mut form = vec![("To", m.recipient), ("Body", m.body)];
        if self.settings.messaging_service_sid.is_empty() {
            form.push(("From", self.settings.from.as_str()));
        } else {
            form.push(("MessagingServiceSid", self.settings.messaging_service_sid.as_str()));
        }
        if let Some(url) = m.callback_url {
            // Twilio posts the message's status changes there (delivery receipts).
            form.push(("StatusCallback", url));
        }
        let response =
            self.client.post(self.messages.clone()).basic_auth(&self.settings.account_sid, Some(&self.auth_token)).form(&form).send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return http::unanswered(&e),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return match serde_json::from_str::<Message>(&text) {
                Ok(message) => Outcome::Accepted { message_id: message.sid },
                Err(_) => Outcome::Temporary { error: "Twilio accepted the request but its answer has no message sid".into() },
            };
        }
        let refusal = serde_json::from_str::<TwilioError>(&text).ok();
        let detail = refusal.as_ref().map_or_else(|| text.chars().take(200).collect(), |e| format!("{} {}", e.code, e.message));
        // 21211: not a valid phone number; 21614: not a mobile number — the address is bad: a hard bounce.
        if refusal.is_some_and(|e| matches!(e.code, 21211 | 21614)) {
            return Outcome::Bounced { error: crm_kit::mask::text(&format!("HTTP {}: {detail}", status.as_u16())) };
        }
        http::failure(status, &headers, &detail)
    }

    /// The message `m` if Twilio has it (created since `since`): its outcome, else None.
    pub async fn find(&self, m: &Outgoing<'_>, since: DateTime<Utc>) -> Option<Outcome> {
        let date = since.format("%Y-%m-%d").to_string();
        let response = self
            .client
            .get(self.messages.clone())
            .basic_auth(&self.settings.account_sid, Some(&self.auth_token))
            .query(&[("To", m.recipient), ("DateSent>", date.as_str()), ("PageSize", "1000")])
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let list: MessageList = response.json().await.ok()?;
        list.messages
            .into_iter()
            .find(|sent| sent.to == m.recipient && sent.body == m.body)
            .map(|sent| Outcome::Accepted { message_id: sent.sid })
    }
}
