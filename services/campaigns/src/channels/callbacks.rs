//! What providers send back, in each provider's own wire format, checked
//! before anything is believed:
//! - Twilio: a form POST — a status callback (`MessageSid`, `MessageStatus`,
//!   `ErrorCode`) or an incoming message (`MessageSid`, `From`, `To`,
//!   `Body`) — signed in `X-Twilio-Signature`: base64 HMAC-SHA1 under the
//!   account's auth token of the URL followed by every parameter's name and
//!   value, sorted by name.
//! - Aliyun: a JSON array pushed over HTTP — SmsReport items (`success`,
//!   `err_code`, `biz_id`, `out_id`) or SmsUp items (`phone_number`,
//!   `content`, `sequence_id`). Aliyun signs nothing: the signed callback URL
//!   is the credential.
//! - The webhook provider: `{"receipts": [{"id": "deliveries/…", "status":
//!   "DELIVERED" | "UNDELIVERED", "error": "…"}], "inbound": [{"id", "from",
//!   "to", "text"}]}`, signed in `X-CRM-Signature` exactly as the messages
//!   it receives (`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`),
//!   at most five minutes old.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;
use sha1::Sha1;
use uuid::Uuid;

use crate::domain::inbound::{Inbound, MessageKey, Receipt, Report};

/// How old a webhook callback's signature may be, in seconds (replays later are refused).
const WEBHOOK_TOLERANCE_SECONDS: i64 = 300;

/// Why a callback is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    /// The signature is missing, wrong or too old: nothing is believed.
    #[error("the callback's signature is missing, does not match or is too old")]
    BadSignature,
    /// Signed (or unsigned by design) but not the provider's format.
    #[error("the callback is not in the provider's format: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> CallbackError {
    CallbackError::Malformed(what.into())
}

/// Twilio's signature of a POST to `url` with form `params`.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(twilio_mac(auth_token, url, params).finalize().into_bytes())
}

fn twilio_mac(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// A Twilio status callback or incoming message posted to `url`, signed with `auth_token`.
pub fn twilio(body: &[u8], signature: Option<&str>, url: &str, auth_token: &str) -> Result<Vec<Report>, CallbackError> {
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let claimed = signature.and_then(|s| STANDARD.decode(s.trim()).ok()).ok_or(CallbackError::BadSignature)?;
    twilio_mac(auth_token, url, &params).verify_slice(&claimed).map_err(|_| CallbackError::BadSignature)?;
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let sid = param("MessageSid").or_else(|| param("SmsSid")).filter(|s| !s.is_empty()).ok_or_else(|| malformed("no MessageSid"))?;
    if let Some(status) = param("MessageStatus") {
        let message = MessageKey::Provider(sid.to_owned());
        return Ok(match status {
            "delivered" | "read" => vec![Report::Receipt(Receipt { message, delivered: true, error: String::new(), bounced: false })],
            "undelivered" | "failed" => {
                let error = param("ErrorCode").map_or_else(|| status.to_owned(), |code| format!("{status} (error {code})"));
                vec![Report::Receipt(Receipt { message, delivered: false, error, bounced: false })]
            }
            // queued, sending, sent, accepted, scheduled: not final.
            _ => Vec::new(),
        });
    }
    match (param("From"), param("Body")) {
        (Some(from), Some(text)) => Ok(vec![Report::Inbound(Inbound {
            id: sid.to_owned(),
            from: from.to_owned(),
            to: param("To").unwrap_or_default().to_owned(),
            text: text.to_owned(),
        })]),
        _ => Err(malformed("neither a status callback (MessageStatus) nor an incoming message (From, Body)")),
    }
}

/// A string or number field of an Aliyun item as text.
fn text_of(item: &Value, name: &str) -> String {
    match item.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

/// An Aliyun SmsReport or SmsUp push (a JSON array of either).
pub fn aliyun(body: &[u8]) -> Result<Vec<Report>, CallbackError> {
    let items: Vec<Value> = serde_json::from_slice(body).map_err(|e| malformed(format!("not a JSON array: {e}")))?;
    let mut reports = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if item.get("content").is_some() {
            let id = text_of(item, "sequence_id");
            let from = text_of(item, "phone_number");
            if id.is_empty() || from.is_empty() {
                return Err(malformed(format!("item {i}: an SmsUp item needs sequence_id and phone_number")));
            }
            reports.push(Report::Inbound(Inbound { id, from, to: text_of(item, "dest_code"), text: text_of(item, "content") }));
        } else if let Some(success) = item.get("success") {
            // `success` is a boolean in Aliyun's documentation; "true" as text is taken too.
            let delivered = success.as_bool().unwrap_or_else(|| success.as_str() == Some("true"));
            let message = match Uuid::parse_str(&text_of(item, "out_id")) {
                Ok(delivery) => MessageKey::Delivery(delivery),
                Err(_) => match text_of(item, "biz_id") {
                    biz if !biz.is_empty() => MessageKey::Provider(biz),
                    _ => return Err(malformed(format!("item {i}: an SmsReport item needs out_id or biz_id"))),
                },
            };
            let error = if delivered {
                String::new()
            } else {
                format!("{} {}", text_of(item, "err_code"), text_of(item, "err_msg")).trim().to_owned()
            };
            reports.push(Report::Receipt(Receipt { message, delivered, error, bounced: false }));
        } else {
            return Err(malformed(format!("item {i} is neither an SmsReport nor an SmsUp item")));
        }
    }
    Ok(reports)
}

#[derive(Deserialize)]
struct WebhookCallback {
    #[serde(default)]
    receipts: Vec<WebhookReceipt>,
    #[serde(default)]
    inbound: Vec<WebhookInbound>,
}

#[derive(Deserialize)]
struct WebhookReceipt {
    id: String,
    status: String,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
struct WebhookInbound {
    id: String,
    from: String,
    #[serde(default)]
    to: String,
    text: String,
}

/// The webhook provider's callback, signed with `secret`, checked at `now` (unix seconds).
pub fn webhook(body: &[u8], signature: Option<&str>, secret: &str, now: i64) -> Result<Vec<Report>, CallbackError> {
    let header = signature.ok_or(CallbackError::BadSignature)?;
    let field = |name: &str| header.split(',').find_map(|part| part.trim().strip_prefix(name));
    let timestamp: i64 = field("t=").and_then(|t| t.parse().ok()).ok_or(CallbackError::BadSignature)?;
    let claimed = field("v1=").and_then(|v| hex::decode(v).ok()).ok_or(CallbackError::BadSignature)?;
    if (now - timestamp).abs() > WEBHOOK_TOLERANCE_SECONDS {
        return Err(CallbackError::BadSignature);
    }
    // The same MAC the messages we send carry; compared in constant time.
    super::webhook::mac(secret, timestamp, body).verify_slice(&claimed).map_err(|_| CallbackError::BadSignature)?;
    let callback: WebhookCallback = serde_json::from_slice(body).map_err(|e| malformed(e.to_string()))?;
    let mut reports = Vec::with_capacity(callback.receipts.len() + callback.inbound.len());
    for (i, r) in callback.receipts.into_iter().enumerate() {
        let delivery =
            r.id.strip_prefix("deliveries/")
                .and_then(|id| Uuid::parse_str(id).ok())
                .ok_or_else(|| malformed(format!("receipts[{i}].id must be the message's \"deliveries/{{id}}\"")))?;
        let delivered = match r.status.as_str() {
            "DELIVERED" => true,
            "UNDELIVERED" => false,
            other => return Err(malformed(format!("receipts[{i}].status {other:?} is not DELIVERED or UNDELIVERED"))),
        };
        reports.push(Report::Receipt(Receipt { message: MessageKey::Delivery(delivery), delivered, error: r.error, bounced: false }));
    }
    for m in callback.inbound {
        if m.id.is_empty() || m.from.is_empty() {
            return Err(malformed("an inbound message needs id and from"));
        }
        reports.push(Report::Inbound(Inbound { id: m.id, from: m.from, to: m.to, text: m.text }));
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn twilio_signatures_match_twilios_documented_example() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675310"),
            ("Digits", "1234"),
            ("From", "+14158675310"),
            ("To", "+18005551212"),
        ]);
        assert_eq!(twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &params), "GvWf1cFY/Q7PnoempGyD5oXAezc=");
    }

    fn twilio_form(items: &[(&str, &str)]) -> (Vec<u8>, String) {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(items.iter().copied()).finish().into_bytes();
        (body, twilio_signature("token", "https://crm.example/cb", &pairs(items)))
    }

    #[test]
    fn twilio_final_statuses_and_incoming_messages_are_reports() {
        let url = "https://crm.example/cb";
        let (body, sig) = twilio_form(&[("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("To", "+1555")]);
        assert_eq!(
            twilio(&body, Some(&sig), url, "token").unwrap(),
            vec![Report::Receipt(Receipt {
                message: MessageKey::Provider("SM1".into()),
                delivered: true,
                error: String::new(),
                bounced: false
            })]
        );
        let (body, sig) = twilio_form(&[("MessageSid", "SM2"), ("MessageStatus", "undelivered"), ("ErrorCode", "30005")]);
        let Report::Receipt(r) = &twilio(&body, Some(&sig), url, "token").unwrap()[0] else { panic!() };
        assert!(!r.delivered && r.error == "undelivered (error 30005)", "{r:?}");
        let (body, sig) = twilio_form(&[("MessageSid", "SM3"), ("MessageStatus", "sent")]);
        assert!(twilio(&body, Some(&sig), url, "token").unwrap().is_empty(), "not final");
        let (body, sig) =
            twilio_form(&[("MessageSid", "SM4"), ("From", "+15551234"), ("To", "+1555"), ("Body", "STOP"), ("SmsStatus", "received")]);
        let Report::Inbound(m) = &twilio(&body, Some(&sig), url, "token").unwrap()[0] else { panic!() };
        assert_eq!((m.id.as_str(), m.from.as_str(), m.text.as_str()), ("SM4", "+15551234", "STOP"));
    }

    #[test]
    fn twilio_refuses_a_wrong_missing_or_foreign_signature() {
        let (body, sig) = twilio_form(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")]);
        assert_eq!(twilio(&body, None, "https://crm.example/cb", "token"), Err(CallbackError::BadSignature));
        assert_eq!(twilio(&body, Some(&sig), "https://crm.example/cb", "another token"), Err(CallbackError::BadSignature));
        assert_eq!(twilio(&body, Some(&sig), "https://elsewhere.example/cb", "token"), Err(CallbackError::BadSignature));
        let tampered = String::from_utf8(body).unwrap().replace("delivered", "undelivered");
        assert_eq!(twilio(tampered.as_bytes(), Some(&sig), "https://crm.example/cb", "token"), Err(CallbackError::BadSignature));
    }

    #[test]
    fn aliyun_reports_and_replies_are_read_by_their_fields() {
        let delivery = Uuid::now_v7();
        let body = serde_json::json!([
            {"phone_number": "13800138000", "send_time": "2026-11-26 10:00:00", "report_time": "2026-11-26 10:00:03",
             "success": true, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": "900^1", "out_id": delivery.to_string()},
            {"phone_number": "13800138001", "success": false, "err_code": "MK:0001", "err_msg": "空号", "biz_id": "900^2", "out_id": ""},
            {"phone_number": "13800138000", "send_time": "2026-11-26 10:05:00", "content": "退订", "sign_name": "物业", "dest_code": "1234", "sequence_id": 42}
        ])
        .to_string();
        let reports = aliyun(body.as_bytes()).unwrap();
        assert_eq!(
            reports[0],
            Report::Receipt(Receipt { message: MessageKey::Delivery(delivery), delivered: true, error: String::new(), bounced: false })
        );
        assert_eq!(
            reports[1],
            Report::Receipt(Receipt {
                message: MessageKey::Provider("900^2".into()),
                delivered: false,
                error: "MK:0001 空号".into(),
                bounced: false
            })
        );
        assert_eq!(
            reports[2],
            Report::Inbound(Inbound { id: "42".into(), from: "13800138000".into(), to: "1234".into(), text: "退订".into() })
        );
        assert!(matches!(aliyun(b"{}"), Err(CallbackError::Malformed(_))));
        assert!(matches!(aliyun(br#"[{"phone_number": "1"}]"#), Err(CallbackError::Malformed(_))));
    }

    #[test]
    fn webhook_callbacks_are_signed_fresh_and_well_formed() {
        let delivery = Uuid::now_v7();
        let body = serde_json::json!({
            "receipts": [{"id": format!("deliveries/{delivery}"), "status": "UNDELIVERED", "error": "unreachable"}],
            "inbound": [{"id": "in-1", "from": "+8613800138000", "to": "1069", "text": "TD"}]
        })
        .to_string();
        let now = 1_800_000_000;
        let sig = super::super::webhook::signature("secret", now, body.as_bytes());
        let reports = webhook(body.as_bytes(), Some(&sig), "secret", now + 10).unwrap();
        assert_eq!(
            reports[0],
            Report::Receipt(Receipt {
                message: MessageKey::Delivery(delivery),
                delivered: false,
                error: "unreachable".into(),
                bounced: false
            })
        );
        assert!(matches!(&reports[1], Report::Inbound(m) if m.text == "TD"));
        assert_eq!(webhook(body.as_bytes(), Some(&sig), "other", now), Err(CallbackError::BadSignature));
        assert_eq!(webhook(body.as_bytes(), Some(&sig), "secret", now + 301), Err(CallbackError::BadSignature), "too old: a replay");
        assert_eq!(webhook(body.as_bytes(), None, "secret", now), Err(CallbackError::BadSignature));
        let bad = br#"{"receipts": [{"id": "x", "status": "DELIVERED"}]}"#;
        let sig = super::super::webhook::signature("secret", now, bad);
        assert!(matches!(webhook(bad, Some(&sig), "secret", now), Err(CallbackError::Malformed(_))));
    }
}
