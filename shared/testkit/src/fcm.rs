//! A real HTTP peer for Firebase Cloud Messaging's HTTP v1 API, for tests:
//! Google's OAuth 2.0 token endpoint for service accounts (RFC 7523 JWT
//! bearer grant: the assertion's RS256 signature is checked with the
//! account's public key, its `iss`, `aud`, `scope` and lifetime too) and
//! `POST /v1/projects/{project}/messages:send` (the bearer must be a token
//! this peer issued; the message must name a token and carry string data
//! values only). Answers like FCM — the message `name`, or a google.rpc
//! error whose `FcmError.errorCode` is UNREGISTERED (404) for tokens marked
//! dead, QUOTA_EXCEEDED (429) above the rate — and keeps what it accepted,
//! so a test asserts on the peer's own record. Its implementation is
//! independent of the sender's.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, OnceLock},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::peer::{self, RateWindow};

/// The service account the peer trusts.
const CLIENT_EMAIL: &str = "firebase-adminsdk-test@crm-mobile-test.iam.gserviceaccount.com";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// One RSA key pair per test process (2048-bit generation takes a while): (PKCS#8 private PEM, public PEM).
fn key_pair() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("an RSA key");
        let private_pem = private.to_pkcs8_pem(LineEnding::LF).expect("PEM").to_string();
        let public_pem = private.to_public_key().to_public_key_pem(LineEnding::LF).expect("PEM");
        (private_pem, public_pem)
    })
}

/// A push the peer accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMessage {
    /// The device's registration token.
    pub token: String,
    /// The notification's title and body.
    pub title: String,
    pub body: String,
    /// The data payload.
    pub data: Value,
    /// Android's collapse key and notification tag, APNs' collapse id, Web Push's Topic.
    pub collapse_ids: [String; 4],
    /// The message name FCM answered.
    pub name: String,
}

#[derive(Default)]
struct Record {
    accepted: Vec<PushMessage>,
    access_tokens: HashSet<String>,
    tokens_issued: usize,
    unregistered: HashSet<String>,
    rate: RateWindow,
}

#[derive(Clone)]
struct Peer {
    project: String,
    token_uri: String,
    max_per_second: Option<u32>,
    record: Arc<Mutex<Record>>,
}

/// A running FCM peer (stopped when dropped).
pub struct FcmPeer {
    /// `http://127.0.0.1:<port>`: the API base URL.
    pub url: String,
    /// The Firebase project it serves.
    pub project: String,
    record: Arc<Mutex<Record>>,
    server: tokio::task::JoinHandle<()>,
}

impl FcmPeer {
    /// Starts the peer for `project` on a free port, throttling above `max_per_second` sends.
    pub async fn start(project: &str, max_per_second: Option<u32>) -> Self {
        let (listener, url) = peer::bind().await;
        let record = Arc::new(Mutex::new(Record::default()));
        let peer = Peer { project: project.to_owned(), token_uri: format!("{url}/token"), max_per_second, record: record.clone() };
        let app = Router::new().route("/token", post(token)).route("/v1/projects/{project}/messages:send", post(send)).with_state(peer);
        Self { url, project: project.to_owned(), record, server: peer::serve(listener, app) }
    }

    /// A service account key file, as the Firebase console downloads it, whose key this peer trusts.
    pub fn service_account_key(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": "0123456789abcdef",
            "private_key": key_pair().0,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "token_uri": format!("{}/token", self.url),
        })
        .to_string()
    }

    /// The service account's email.
    pub fn client_email(&self) -> &'static str {
        CLIENT_EMAIL
    }

    /// From now on, sends to `token` answer UNREGISTERED (the app was uninstalled).
    pub fn unregister(&self, token: &str) {
        self.record.lock().expect("not poisoned").unregistered.insert(token.to_owned());
    }

    /// Every push accepted so far, in order.
    pub fn messages(&self) -> Vec<PushMessage> {
        self.record.lock().expect("not poisoned").accepted.clone()
    }

    /// How many access tokens the token endpoint issued.
    pub fn tokens_issued(&self) -> usize {
        self.record.lock().expect("not poisoned").tokens_issued
    }

    /// How many sends were throttled.
    pub fn throttled(&self) -> usize {
        self.record.lock().expect("not poisoned").rate.throttled
    }
}

impl Drop for FcmPeer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Deserialize)]
struct Assertion {
    iss: String,
    scope: String,
    iat: i64,
    exp: i64,
}

fn oauth_error(description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant", "error_description": description}))).into_response()
}

async fn token(State(peer): State<Peer>, headers: HeaderMap, body: Bytes) -> Response {
    let form_encoded = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    let field = |name: &str| form_urlencoded::parse(&body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default();
    if !form_encoded || field("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "unsupported_grant_type"}))).into_response();
    }
    let key = DecodingKey::from_rsa_pem(key_pair().1.as_bytes()).expect("the public key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&peer.token_uri]);
    validation.set_required_spec_claims(&["exp", "aud", "iss"]);
    let claims = match jsonwebtoken::decode::<Assertion>(&field("assertion"), &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => return oauth_error(&format!("Invalid JWT: {e}")),
    };
    if claims.iss != CLIENT_EMAIL || !claims.scope.split(' ').any(|s| s == SCOPE) || claims.exp - claims.iat > 3600 {
        return oauth_error("Invalid JWT claims: issuer, scope or lifetime");
    }
    let access = format!("ya29.test-{}", uuid::Uuid::new_v4().simple());
    let mut record = peer.record.lock().expect("not poisoned");
    record.access_tokens.insert(access.clone());
    record.tokens_issued += 1;
    Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"})).into_response()
}

/// A google.rpc error as FCM answers it.
fn fcm_error(status: StatusCode, rpc_status: &str, error_code: Option<&str>, message: &str) -> Response {
    let details: Vec<Value> = error_code
        .map(|code| json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}))
        .into_iter()
        .collect();
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": rpc_status, "details": details}});
    let mut response = (status, Json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(header::RETRY_AFTER, "1".parse().expect("a header value"));
    }
    response
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

async fn send(State(peer): State<Peer>, Path(project): Path<String>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let known = bearer.is_some_and(|b| peer.record.lock().expect("not poisoned").access_tokens.contains(b));
    if !known {
        return fcm_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", None, "Request had invalid authentication credentials.");
    }
    if project != peer.project {
        return fcm_error(StatusCode::FORBIDDEN, "PERMISSION_DENIED", None, "Permission 'cloudmessaging.messages.create' denied");
    }
    let message = &body["message"];
    let token = text(&message["token"]);
    let data_ok = message.get("data").is_none_or(|d| d.as_object().is_some_and(|m| m.values().all(Value::is_string)));
    if token.is_empty() || !data_ok {
        return fcm_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT"), "Invalid message: token or data");
    }
    let mut record = peer.record.lock().expect("not poisoned");
    if record.unregistered.contains(&token) {
        return fcm_error(StatusCode::NOT_FOUND, "NOT_FOUND", Some("UNREGISTERED"), "Requested entity was not found.");
    }
    if record.rate.over(peer.max_per_second) {
        return fcm_error(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"), "Quota exceeded.");
    }
    let name = format!("projects/{project}/messages/0:{}", uuid::Uuid::new_v4().simple());
    record.accepted.push(PushMessage {
        token,
        title: text(&message["notification"]["title"]),
        body: text(&message["notification"]["body"]),
        data: message["data"].clone(),
        collapse_ids: [
            text(&message["android"]["collapse_key"]),
            text(&message["android"]["notification"]["tag"]),
            text(&message["apns"]["headers"]["apns-collapse-id"]),
            text(&message["webpush"]["headers"]["Topic"]),
        ],
        name: name.clone(),
    });
    Json(json!({"name": name})).into_response()
}
