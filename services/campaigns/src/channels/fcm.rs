//! Push through Firebase Cloud Messaging's HTTP v1 API: `POST
//! {base}/v1/projects/{project}/messages:send` with `{"message": {"token", "notification",
//! "data", "android", "apns", "webpush"}}` and an OAuth 2.0 bearer token.
//!
//! The token is minted from the tenant's service account key (RFC 7523: a
//! JWT signed RS256 by the key, `aud` the key's `token_uri`, scope
//! `firebase.messaging`, exchanged at `token_uri` for an access token) and
//! cached until a minute before it expires; one refresh at a time.
//!
//! A push goes to each of the customer's registered devices. FCM answers
//! each with the message's `name`, or an error whose `FcmError.errorCode`
//! says what went wrong: `UNREGISTERED` (404) and `SENDER_ID_MISMATCH` (403)
//! mean the token is dead (the app was uninstalled, or it belongs to another
//! project) and it is forgotten; `QUOTA_EXCEEDED` (429) throttles; 5xx are
//! temporary. FCM takes no idempotency key: every message carries its
//! delivery id as Android's collapse key and notification tag, APNs'
//! `apns-collapse-id` and Web Push's `Topic`, so a message re-submitted
//! after a crash (or a retry after a partly failed fan-out) replaces the
//! first on the device instead of showing twice.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Client, Url};
use serde::{Deserialize, Serialize};

use super::{
    http::{self, HttpSetupError},
    message::{Handover, Outgoing},
};
use crate::{domain::delivery::Outcome, store::providers::FcmSettings};

/// The OAuth scope FCM's send API needs.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// Where Google's service account keys exchange their JWTs (a key file names its own).
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// An access token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The parts of a service account key file the sender uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub client_email: String,
    #[serde(default)]
    pub private_key_id: String,
    #[serde(default)]
    pub private_key: String,
    #[serde(default)]
    pub token_uri: String,
}

impl ServiceAccount {
    /// The key file `json`, checked: a service account with an email and an
    /// RSA private key (PKCS#8 PEM, as Google issues them); an empty
    /// `token_uri` means Google's. The error names what is wrong.
    pub fn parse(json: &str) -> Result<(Self, EncodingKey), String> {
        let mut account: Self = serde_json::from_str(json).map_err(|_| "not a service account key file (JSON)".to_owned())?;
        if account.kind != "service_account" {
            return Err("the key file's type must be \"service_account\"".into());
        }
        if account.client_email.is_empty() || account.client_email.len() > 320 {
            return Err("the key file has no client_email".into());
        }
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|_| "the key file's private_key is not an RSA private key in PEM".to_owned())?;
        if account.token_uri.is_empty() {
            account.token_uri = GOOGLE_TOKEN_URI.into();
        }
        Ok((account, key))
    }
}

/// What FCM said about one device.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceAnswer {
    /// Accepted under this message name.
    Accepted(String),
    /// The token is dead: forget it.
    Unregistered,
    /// Refused (throttled, unavailable, invalid).
    Refused(Outcome),
}

/// The outcome of a push from its devices' answers: accepted when any device
/// took it (a retry would reach those devices again); else the most hopeful refusal —
/// throttled, then temporary, then permanent; with no device left, permanent.
pub fn combine(answers: &[DeviceAnswer]) -> Outcome {
    if let Some(name) = answers.iter().find_map(|a| match a {
        DeviceAnswer::Accepted(name) => Some(name),
        _ => None,
    }) {
        return Outcome::Accepted { message_id: name.clone() };
    }
    let refusals = || {
        answers.iter().filter_map(|a| match a {
            DeviceAnswer::Refused(outcome) => Some(outcome),
            _ => None,
        })
    };
    let first = |wanted: fn(&Outcome) -> bool| refusals().find(|o| wanted(o)).cloned();
    first(|o| matches!(o, Outcome::Throttled { .. }))
        .or_else(|| first(|o| matches!(o, Outcome::Temporary { .. })))
        .or_else(|| refusals().next().cloned())
        .unwrap_or_else(|| Outcome::Permanent {
            error: match answers.is_empty() {
                true => "the customer has no registered device".into(),
                false => "every device of the customer is unregistered".into(),
            },
        })
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct AccessToken {
    access_token: String,
    #[serde(default)]
    expires_in: u64,
}

#[derive(Deserialize)]
struct Sent {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorStatus,
}

#[derive(Deserialize, Default)]
struct ErrorStatus {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

impl ErrorStatus {
    /// The `FcmError` code among the details, else the status.
    fn code(&self) -> &str {
        self.details.iter().find_map(|d| d.get("errorCode").and_then(|c| c.as_str())).unwrap_or(&self.status)
    }
}

/// Sends through one Firebase project.
pub struct FcmSender {
    api: Client,
    send_url: Url,
    oauth: Client,
    token_uri: Url,
    account: ServiceAccount,
    key: EncodingKey,
    token: tokio::sync::Mutex<Option<(String, Instant)>>,
}

impl FcmSender {
    /// A sender for `settings` with the service account key file `key_file`.
    pub async fn new(settings: &FcmSettings, key_file: Option<String>, allow_private: bool) -> Result<Self, HttpSetupError> {
        let (account, key) = ServiceAccount::parse(key_file.as_deref().unwrap_or_default()).map_err(HttpSetupError::Client)?;
        let base = http::parse_url(&settings.base_url, allow_private)?;
        let send_url = base
            .join(&format!("/v1/projects/{}/messages:send", settings.project_id))
            .map_err(|_| HttpSetupError::Url(settings.base_url.clone()))?;
        let token_uri = http::parse_url(&account.token_uri, allow_private)?;
        let api = http::pinned_client(&base, allow_private).await?;
        let oauth = http::pinned_client(&token_uri, allow_private).await?;
        Ok(Self { api, send_url, oauth, token_uri, account, key, token: tokio::sync::Mutex::new(None) })
    }

    /// A current access token: the cached one, or a new one minted now.
    async fn access_token(&self) -> Result<String, Outcome> {
        let mut cached = self.token.lock().await;
        if let Some((token, _)) = cached.as_ref().filter(|(_, expires)| Instant::now() + RENEW_BEFORE < *expires) {
            return Ok(token.clone());
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Claims { iss: &self.account.client_email, scope: SCOPE, aud: self.token_uri.as_str(), iat: now, exp: now + 3600 };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = (!self.account.private_key_id.is_empty()).then(|| self.account.private_key_id.clone());
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| Outcome::Permanent { error: format!("signing the OAuth assertion: {e}") })?;
        let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())];
        let response = self.oauth.post(self.token_uri.clone()).form(&form).send().await.map_err(|e| http::unanswered(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            // e.g. 400 invalid_grant: the key was revoked or the clock is off.
            let detail = format!("OAuth token endpoint: {}", text.chars().take(200).collect::<String>());
            return Err(http::failure(status, &headers, &detail));
        }
        let token: AccessToken = serde_json::from_str(&text)
            .map_err(|_| Outcome::Temporary { error: "the OAuth token endpoint answered without an access_token".into() })?;
        let lifetime = Duration::from_secs(if token.expires_in == 0 { 3600 } else { token.expires_in });
        *cached = Some((token.access_token.clone(), Instant::now() + lifetime));
        Ok(token.access_token)
    }

    /// Pushes `m` to each of its devices.
    pub async fn send(&self, m: &Outgoing<'_>) -> Handover {
        if m.devices.is_empty() {
            return Handover { outcome: combine(&[]), unregistered_devices: Vec::new() };
        }
        let access = match self.access_token().await {
            Ok(token) => token,
            Err(outcome) => return Handover { outcome, unregistered_devices: Vec::new() },
        };
        let answers = futures::future::join_all(m.devices.iter().map(|token| self.send_to(&access, token, m))).await;
        let unregistered_devices =
            m.devices.iter().zip(&answers).filter(|(_, a)| **a == DeviceAnswer::Unregistered).map(|(t, _)| t.clone()).collect();
        Handover { outcome: combine(&answers), unregistered_devices }
    }

    /// The message to one device, as FCM takes it.
    fn message(token: &str, m: &Outgoing<'_>) -> serde_json::Value {
        let id = m.delivery.to_string();
        let mut data = m.data.clone();
        // The app can tell repeats apart, and report opens against the delivery.
        data.insert("crm_delivery".into(), crate::resources::DELIVERY.name(m.delivery));
        let mut notification = serde_json::json!({ "body": m.body });
        if !m.subject.is_empty() {
            notification["title"] = m.subject.into();
        }
        serde_json::json!({
            "message": {
                "token": token,
                "notification": notification,
                "data": data,
                "android": { "collapse_key": id, "notification": { "tag": id } },
                "apns": { "headers": { "apns-collapse-id": id } },
                "webpush": { "headers": { "Topic": m.delivery.simple().to_string() } },
            }
        })
    }

    async fn send_to(&self, access: &str, token: &str, m: &Outgoing<'_>) -> DeviceAnswer {
        let response = self.api.post(self.send_url.clone()).bearer_auth(access).json(&Self::message(token, m)).send().await;
        let response = match response {
            Ok(r) => r,
            Err(e) => return DeviceAnswer::Refused(http::unanswered(&e)),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return match serde_json::from_str::<Sent>(&text) {
                Ok(sent) if !sent.name.is_empty() => DeviceAnswer::Accepted(sent.name),
                _ => DeviceAnswer::Refused(Outcome::Temporary {
                    error: "FCM accepted the request but its answer has no message name".into(),
                }),
            };
        }
        let error = serde_json::from_str::<ErrorBody>(&text).unwrap_or_default().error;
        match error.code() {
            "UNREGISTERED" | "SENDER_ID_MISMATCH" => return DeviceAnswer::Unregistered,
            "UNAUTHENTICATED" => {
                // Our access token expired early or was revoked: mint another next time.
                *self.token.lock().await = None;
                return DeviceAnswer::Refused(Outcome::Temporary { error: format!("HTTP {}: {}", status.as_u16(), error.message) });
            }
            _ => {}
        }
        DeviceAnswer::Refused(http::failure(status, &headers, &format!("{} {}", error.code(), error.message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temporary() -> DeviceAnswer {
        DeviceAnswer::Refused(Outcome::Temporary { error: "HTTP 503".into() })
    }

    #[test]
    fn one_accepting_device_makes_the_push_sent() {
        let answers = [DeviceAnswer::Unregistered, temporary(), DeviceAnswer::Accepted("projects/p/messages/1".into())];
        assert_eq!(combine(&answers), Outcome::Accepted { message_id: "projects/p/messages/1".into() });
    }

    #[test]
    fn with_no_acceptance_the_most_hopeful_refusal_wins() {
        let throttled = DeviceAnswer::Refused(Outcome::Throttled { error: "429".into(), retry_after: Duration::from_secs(1) });
        let permanent = DeviceAnswer::Refused(Outcome::Permanent { error: "HTTP 400".into() });
        assert!(matches!(combine(&[permanent.clone(), temporary(), throttled]), Outcome::Throttled { .. }));
        assert!(matches!(combine(&[permanent.clone(), temporary()]), Outcome::Temporary { .. }));
        assert!(matches!(combine(&[DeviceAnswer::Unregistered, permanent]), Outcome::Permanent { .. }));
    }

    #[test]
    fn no_live_device_is_a_permanent_failure() {
        assert!(matches!(combine(&[]), Outcome::Permanent { error } if error.contains("no registered device")));
        assert!(matches!(combine(&[DeviceAnswer::Unregistered]), Outcome::Permanent { error } if error.contains("unregistered")));
    }

    #[test]
    fn a_key_file_must_be_a_service_account_with_an_rsa_key() {
        assert!(ServiceAccount::parse("{").is_err());
        assert!(ServiceAccount::parse(r#"{"type":"authorized_user","client_email":"a@b"}"#).is_err());
        let no_key = r#"{"type":"service_account","client_email":"a@p.iam.gserviceaccount.com","private_key":"nope"}"#;
        assert_eq!(ServiceAccount::parse(no_key).err().as_deref(), Some("the key file's private_key is not an RSA private key in PEM"));
    }
}
