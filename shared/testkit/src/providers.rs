//! Real HTTP peers for the SMS and push providers, for tests: one local
//! server that speaks Twilio's Messages API, Aliyun's SMS RPC API and a
//! signed webhook, checks each request's credentials and signature the way
//! the provider does (an independent implementation, not the sender's code),
//! answers like the provider — including throttling and refusals — and keeps
//! what it accepted, so a test asserts on the peer's own record.
//!
//! Behaviour worth knowing:
//! - Above `max_per_second` requests in a second, every kind throttles:
//!   Twilio 429 with error 20429, Aliyun `isv.BUSINESS_LIMIT_CONTROL`, the
//!   webhook 429; each throttled request is counted.
//! - Twilio refuses a `To` that does not start with `+` or starts with
//!   `+1555000` (error 21211); Aliyun one that is not 11 digits
//!   (`isv.MOBILE_NUMBER_ILLEGAL`).
//! - The webhook records every request, repeats included (a real receiver
//!   would drop a repeated Idempotency-Key; the test counts them).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};

use crate::peer::{self, RateWindow};

/// Credentials the peer accepts.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Twilio account SID and auth token.
    pub twilio: (String, String),
    /// Aliyun AccessKey id and secret.
    pub aliyun: (String, String),
    /// The webhook's signing secret.
    pub webhook_secret: String,
    /// Requests per second accepted before throttling (None: no limit).
    pub max_per_second: Option<u32>,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            twilio: ("AC00000000000000000000000000000001".into(), "twilio-test-token".into()),
            aliyun: ("LTAI-test-key".into(), "aliyun-test-secret".into()),
            webhook_secret: "webhook-test-secret".into(),
            max_per_second: None,
        }
    }
}

/// One message a provider accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerMessage {
    /// `twilio`, `aliyun` or `webhook`.
    pub provider: &'static str,
    /// The recipient as the provider got it.
    pub to: String,
    /// The text (Twilio, webhook), or empty (Aliyun sends a template).
    pub body: String,
    /// Aliyun's TemplateParam, the webhook's variables.
    pub params: Value,
    /// Aliyun's OutId, the webhook's Idempotency-Key.
    pub key: String,
    /// The provider's id of the message.
    pub id: String,
    /// Where the sender asked to be told about it (Twilio's `StatusCallback`).
    pub callback: String,
}

#[derive(Default)]
struct Record {
    messages: Vec<PeerMessage>,
    rate: RateWindow,
}

#[derive(Clone)]
struct Peer {
    config: Arc<PeerConfig>,
    record: Arc<Mutex<Record>>,
}

impl Peer {
    /// Whether this request is over the rate (and counts it).
    fn throttle(&self) -> bool {
        self.record.lock().expect("not poisoned").rate.over(self.config.max_per_second)
    }

    fn accept(&self, message: PeerMessage) {
        self.record.lock().expect("not poisoned").messages.push(message);
    }
}

/// A running provider peer (stopped when dropped).
pub struct ProviderPeer {
    /// `http://127.0.0.1:<port>`: Twilio's base URL and Aliyun's endpoint.
    pub url: String,
    /// The credentials it accepts.
    pub config: PeerConfig,
    record: Arc<Mutex<Record>>,
    server: tokio::task::JoinHandle<()>,
}

impl ProviderPeer {
    /// Starts the peer on a free port.
    pub async fn start(config: PeerConfig) -> Self {
        let record = Arc::new(Mutex::new(Record::default()));
        let peer = Peer { config: Arc::new(config.clone()), record: record.clone() };
        let app = Router::new()
            .route("/2010-04-01/Accounts/{sid}/Messages.json", post(twilio_send).get(twilio_list))
            .route("/", get(aliyun))
            .route("/webhook", post(webhook))
            .with_state(peer);
        let (listener, url) = peer::bind().await;
        Self { url, config, record, server: peer::serve(listener, app) }
    }

    /// The webhook's URL.
    pub fn webhook_url(&self) -> String {
        format!("{}/webhook", self.url)
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Vec<PeerMessage> {
        self.record.lock().expect("not poisoned").messages.clone()
    }

    /// How many requests were throttled.
    pub fn throttled(&self) -> usize {
        self.record.lock().expect("not poisoned").rate.throttled
    }
}

impl Drop for ProviderPeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The decoded query parameters of `uri`.
fn query_of(uri: &Uri) -> Vec<(String, String)> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect()
}

// --- Twilio ------------------------------------------------------------------------

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({"code": code, "message": message, "status": status.as_u16()}))).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(header::RETRY_AFTER, "1".parse().expect("ASCII"));
    }
    response
}

/// Twilio's `X-Twilio-Signature` of a POST of `params` to `url` under
/// `auth_token` (base64 HMAC-SHA1 of the URL and the sorted name-value
/// pairs) — what a test sends as Twilio calling back. Written out here
/// rather than shared with the service, so that a mistake in one is caught
/// by the other.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let data: String = std::iter::once(url.to_owned()).chain(sorted.iter().map(|(k, v)| format!("{k}{v}"))).collect();
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(auth_token.as_bytes()).expect("any key length");
    mac.update(data.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn twilio_authorized(peer: &Peer, sid: &str, headers: &HeaderMap) -> bool {
    let expected = format!("Basic {}", STANDARD.encode(format!("{}:{}", peer.config.twilio.0, peer.config.twilio.1)));
    sid == peer.config.twilio.0 && headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

async fn twilio_send(State(peer): State<Peer>, Path(sid): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if !twilio_authorized(&peer, &sid, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if peer.throttle() {
        return twilio_error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
    }
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let to = form.get("To").cloned().unwrap_or_default();
    let text = form.get("Body").cloned().unwrap_or_default();
    if !form.contains_key("From") && !form.contains_key("MessagingServiceSid") {
        return twilio_error(StatusCode::BAD_REQUEST, 21603, "A 'From' or 'MessagingServiceSid' parameter is required");
    }
    if !to.starts_with('+') || to.starts_with("+1555000") {
        return twilio_error(StatusCode::BAD_REQUEST, 21211, "The 'To' number is not a valid phone number.");
    }
    let id = format!("SM{}", uuid::Uuid::new_v4().simple());
    peer.accept(PeerMessage {
        provider: "twilio",
        to: to.clone(),
        body: text.clone(),
        params: Value::Null,
        key: String::new(),
        id: id.clone(),
        callback: form.get("StatusCallback").cloned().unwrap_or_default(),
    });
    (StatusCode::CREATED, axum::Json(json!({"sid": id, "to": to, "body": text, "status": "queued"}))).into_response()
}

async fn twilio_list(State(peer): State<Peer>, Path(sid): Path<String>, headers: HeaderMap, uri: Uri) -> Response {
    let q: HashMap<String, String> = query_of(&uri).into_iter().collect();
    if !twilio_authorized(&peer, &sid, &headers) {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    let to = q.get("To").cloned().unwrap_or_default();
    let messages: Vec<Value> = peer
        .record
        .lock()
        .expect("not poisoned")
        .messages
        .iter()
        .filter(|m| m.provider == "twilio" && m.to == to)
        .map(|m| json!({"sid": m.id, "to": m.to, "body": m.body, "status": "delivered"}))
        .collect();
    axum::Json(json!({"messages": messages})).into_response()
}

// --- Aliyun ------------------------------------------------------------------------

/// RFC 3986 percent-encoding as Aliyun specifies it (written out here
/// rather than shared with the sender, so that a mistake in one is caught
/// by the other).
fn aliyun_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn aliyun_answer(code: &str, extra: Value) -> Response {
    let mut body = json!({"Code": code, "Message": if code == "OK" { "OK" } else { code }, "RequestId": uuid::Uuid::new_v4().to_string()});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    axum::Json(body).into_response()
}

async fn aliyun(State(peer): State<Peer>, uri: Uri) -> Response {
    let mut params: BTreeMap<String, String> = query_of(&uri).into_iter().collect();
    let Some(signature) = params.remove("Signature") else { return aliyun_answer("MissingSignature", Value::Null) };
    let canonical = params.iter().map(|(k, v)| format!("{}={}", aliyun_encode(k), aliyun_encode(v))).collect::<Vec<_>>().join("&");
    let to_sign = format!("GET&%2F&{}", aliyun_encode(&canonical));
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{}&", peer.config.aliyun.1).as_bytes()).expect("any key length");
    mac.update(to_sign.as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    if params.get("AccessKeyId") != Some(&peer.config.aliyun.0) {
        return aliyun_answer("InvalidAccessKeyId.NotFound", Value::Null);
    }
    if signature != expected {
        return aliyun_answer("SignatureDoesNotMatch", Value::Null);
    }
    let fresh = params
        .get("Timestamp")
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| chrono::Utc::now().signed_duration_since(t).num_seconds().abs() < 900);
    if !fresh || params.get("SignatureMethod").map(String::as_str) != Some("HMAC-SHA1") {
        return aliyun_answer("InvalidTimeStamp.Expired", Value::Null);
    }
    match params.get("Action").map(String::as_str) {
        Some("SendSms") => {
            if peer.throttle() {
                return aliyun_answer("isv.BUSINESS_LIMIT_CONTROL", Value::Null);
            }
            let to = params.get("PhoneNumbers").cloned().unwrap_or_default();
            if to.len() != 11 || !to.chars().all(|c| c.is_ascii_digit()) {
                return aliyun_answer("isv.MOBILE_NUMBER_ILLEGAL", Value::Null);
            }
            let Ok(template_params) = serde_json::from_str::<Value>(params.get("TemplateParam").map_or("{}", String::as_str)) else {
                return aliyun_answer("isv.INVALID_JSON_PARAM", Value::Null);
            };
            let id = format!("{}^0", uuid::Uuid::new_v4().simple());
            peer.accept(PeerMessage {
                provider: "aliyun",
                to,
                body: String::new(),
                params: template_params,
                key: params.get("OutId").cloned().unwrap_or_default(),
                id: id.clone(),
                callback: String::new(),
            });
            aliyun_answer("OK", json!({"BizId": id}))
        }
        Some("QuerySendDetails") => {
            let to = params.get("PhoneNumber").cloned().unwrap_or_default();
            let details: Vec<Value> = peer
                .record
                .lock()
                .expect("not poisoned")
                .messages
                .iter()
                .filter(|m| m.provider == "aliyun" && m.to == to)
                .map(|m| json!({"PhoneNum": m.to, "OutId": m.key, "SendStatus": 3}))
                .collect();
            aliyun_answer("OK", json!({"TotalCount": details.len(), "SmsSendDetailDTOs": {"SmsSendDetailDTO": details}}))
        }
        _ => aliyun_answer("InvalidAction.NotFound", Value::Null),
    }
}

// --- webhook -------------------------------------------------------------------------

async fn webhook(State(peer): State<Peer>, headers: HeaderMap, body: Bytes) -> Response {
    let header_value = headers.get("x-crm-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let parts: HashMap<&str, &str> = header_value.split(',').filter_map(|p| p.split_once('=')).collect();
    let timestamp = parts.get("t").and_then(|t| t.parse::<i64>().ok());
    let valid = timestamp.is_some_and(|t| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(peer.config.webhook_secret.as_bytes()).expect("any key length");
        mac.update(format!("{t}.").as_bytes());
        mac.update(&body);
        let fresh = (chrono::Utc::now().timestamp() - t).abs() < 300;
        fresh && parts.get("v1").and_then(|v| hex::decode(v).ok()).is_some_and(|sig| mac.verify_slice(&sig).is_ok())
    });
    if !valid {
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    if peer.throttle() {
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, "1")], "slow down").into_response();
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else { return (StatusCode::BAD_REQUEST, "not JSON").into_response() };
    let id = format!("wh-{}", uuid::Uuid::new_v4().simple());
    peer.accept(PeerMessage {
        provider: "webhook",
        to: message["to"].as_str().unwrap_or_default().to_owned(),
        body: message["body"].as_str().unwrap_or_default().to_owned(),
        params: message["variables"].clone(),
        key: headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        id: id.clone(),
        callback: String::new(),
    });
    axum::Json(json!({"id": id})).into_response()
}
