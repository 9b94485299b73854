//! Links a person follows without logging in — a survey to answer, a mailing
//! list to leave — carry a token naming the tenant and one record, signed
//! with HMAC-SHA256 so that nothing about them needs to be stored: the
//! service that minted the token verifies it, and a forged or altered token
//! is refused the same way as an unknown one. The key is usually
//! [`derived_key`](crate::server::derived_key) with a label per purpose, so a
//! token minted for one purpose is worthless for another.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// Bytes of the tag kept: 128 bits, beyond guessing, and a short link.
const TAG_LEN: usize = 16;
/// Tenant and record ids.
const PAYLOAD_LEN: usize = 32;

/// Mints and checks link tokens under one key.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    /// A signer under `key`.
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload);
        mac
    }

    /// The token for `record` of `tenant`: URL-safe base64, 64 characters.
    pub fn sign(&self, tenant: Uuid, record: Uuid) -> String {
        let mut bytes = [tenant.into_bytes(), record.into_bytes()].concat();
        let tag = self.mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// (tenant, record) of a genuine token; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<(Uuid, Uuid)> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        if bytes.len() != PAYLOAD_LEN + TAG_LEN {
            return None;
        }
        let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
        // Constant-time comparison of the truncated tag.
        self.mac(payload).verify_truncated_left(tag).ok()?;
        Some((Uuid::from_slice(&payload[..16]).ok()?, Uuid::from_slice(&payload[16..]).ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_under_its_key_only() {
        let signer = LinkSigner::new(b"key one".to_vec());
        let (tenant, record) = (Uuid::new_v4(), Uuid::new_v4());
        let token = signer.sign(tenant, record);
        assert_eq!(token.len(), 64);
        assert_eq!(signer.verify(&token), Some((tenant, record)));
        assert_eq!(LinkSigner::new(b"key two".to_vec()).verify(&token), None, "another purpose's key refuses it");
    }

    #[test]
    fn altered_and_malformed_tokens_are_refused() {
        let signer = LinkSigner::new(b"k".to_vec());
        let token = signer.sign(Uuid::new_v4(), Uuid::new_v4());
        // Flip one character of the record id, and one of the tag.
        for at in [30, 60] {
            let mut altered = token.clone().into_bytes();
            altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
            assert_eq!(signer.verify(std::str::from_utf8(&altered).unwrap()), None);
        }
        for bad in ["", "not base64!", &token[..40], &format!("{token}AA")] {
            assert_eq!(signer.verify(bad), None, "{bad:?}");
        }
    }
}
