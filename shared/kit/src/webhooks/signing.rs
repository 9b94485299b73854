//! Signatures as the Standard Webhooks convention has them
//! (<https://www.standardwebhooks.com>): a secret `whsec_<base64 of the key>`;
//! headers `webhook-id` (the event id), `webhook-timestamp` (Unix seconds) and
//! `webhook-signature`, a space-separated list of `v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">` — one per valid secret, so that a receiver
//! rotating its secret accepts either. Pure: no I/O.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a new secret.
const SECRET_BYTES: usize = 32;

/// A new secret in its text form, `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; SECRET_BYTES];
    rand::thread_rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The key bytes of secret `text` (`whsec_` + base64); `None` when it is not one.
pub fn secret_key(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text.strip_prefix(SECRET_PREFIX)?).ok().filter(|key| !key.is_empty())
}

/// `v1,<signature>` of `body` sent as message `id` at `timestamp`, under `key`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per key, space-separated.
pub fn signature_header<'k>(keys: impl IntoIterator<Item = &'k [u8]>, id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.into_iter().map(|key| sign(key, id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// Whether `header` holds a valid signature of `body` under `key` — what a
/// receiver checks (it should also refuse timestamps far from its clock).
/// Compared in constant time.
pub fn verify(key: &[u8], id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    header
        .split(' ')
        .filter_map(|sig| sig.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .any(|sig| mac.clone().verify_slice(&sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks reference implementations' test vector.
    #[test]
    fn signs_as_the_standard_webhooks_libraries_do() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body, &signature));
        assert!(!verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_331, body, &signature), "another timestamp");
        assert!(!verify(&key, "msg_other", 1_614_265_330, body, &signature), "another id");
        assert!(!verify(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, b"{}", &signature), "another body");
    }

    #[test]
    fn while_rotating_either_secret_verifies() {
        let (old, new) = (secret_key(&new_secret()).unwrap(), secret_key(&new_secret()).unwrap());
        let header = signature_header([new.as_slice(), old.as_slice()], "evt", 7, b"body");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&old, "evt", 7, b"body", &header));
        assert!(verify(&new, "evt", 7, b"body", &header));
        assert!(!verify(&secret_key(&new_secret()).unwrap(), "evt", 7, b"body", &header));
    }

    #[test]
    fn secrets_are_32_random_bytes_behind_the_prefix() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(secret_key(&a).unwrap().len(), 32);
        assert!(secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none(), "no prefix");
        assert!(secret_key("whsec_not base64!").is_none());
        assert!(secret_key("whsec_").is_none());
    }
}
