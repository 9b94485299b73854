//! List paging (AIP-158): page sizes and opaque, tamper-proof keyset page tokens.
//!
//! A token carries the sort key of the last row returned and a fingerprint of
//! the query it belongs to (tenant, filter, order, flags), signed with
//! HMAC-SHA256. A token that was altered, or is replayed with a different
//! query, is rejected with INVALID_ARGUMENT.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Page size used when the request says 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page returned; larger requests are capped.
pub const MAX_PAGE_SIZE: usize = 1000;

/// Resolves a requested page size: 0 → default, above max → max, negative → INVALID_ARGUMENT.
pub fn page_size(requested: i32) -> Result<usize, Error> {
    match requested {
        n if n < 0 => Err(Error::invalid("page_size", "INVALID_PAGE_SIZE", "page_size must not be negative")),
        0 => Ok(DEFAULT_PAGE_SIZE),
        n => Ok((n as usize).min(MAX_PAGE_SIZE)),
    }
}

/// Signs and verifies page tokens.
#[derive(Clone)]
pub struct PageTokenCodec {
    key: Vec<u8>,
}

impl std::fmt::Debug for PageTokenCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageTokenCodec(***)")
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    /// Query fingerprint.
    q: String,
    /// Sort key of the last row returned.
    k: Vec<serde_json::Value>,
}

const MAC_LEN: usize = 16;

impl PageTokenCodec {
    /// A codec signing with `key`.
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// A token for the page after the row whose sort key is `last_key`.
    pub fn encode(&self, query: &QueryFingerprint, last_key: Vec<serde_json::Value>) -> String {
        let payload = serde_json::to_vec(&Payload { q: query.0.clone(), k: last_key }).expect("serialisable");
        let mut bytes = payload.clone();
        bytes.extend_from_slice(&self.mac(&payload)[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The sort key carried by `token`, or None for an empty token (first page).
    pub fn decode(&self, token: &str, query: &QueryFingerprint) -> Result<Option<Vec<serde_json::Value>>, Error> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || Error::invalid("page_token", "INVALID_PAGE_TOKEN", "the page token is malformed or was altered");
        let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if bytes.len() <= MAC_LEN {
            return Err(invalid());
        }
        let (payload, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload);
        mac.verify_truncated_left(tag).map_err(|_| invalid())?;
        let payload: Payload = serde_json::from_slice(payload).map_err(|_| invalid())?;
        if payload.q != query.0 {
            return Err(Error::invalid(
                "page_token",
                "PAGE_TOKEN_MISMATCH",
                "the page token belongs to a different query; keep filter, order_by and show_deleted unchanged while paging",
            ));
        }
        Ok(Some(payload.k))
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }
}

/// Identifies a query (tenant, method, filter, order, flags) so that a token
/// cannot be replayed against another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryFingerprint(String);

impl QueryFingerprint {
    /// Fingerprint of the given query parts.
    pub fn of(parts: &[&str]) -> Self {
        let mut hash = Sha256::new();
        for part in parts {
            hash.update(part.len().to_le_bytes());
            hash.update(part.as_bytes());
        }
        Self(URL_SAFE_NO_PAD.encode(&hash.finalize()[..12]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codec() -> PageTokenCodec {
        PageTokenCodec::new(b"key")
    }

    #[test]
    fn page_sizes_follow_aip_158() {
        assert_eq!(page_size(0).unwrap(), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7).unwrap(), 7);
        assert_eq!(page_size(5000).unwrap(), MAX_PAGE_SIZE);
        assert_eq!(page_size(-1).unwrap_err().reason(), "INVALID_PAGE_SIZE");
    }

    #[test]
    fn tokens_round_trip() {
        let q = QueryFingerprint::of(&["t", "filter"]);
        let token = codec().encode(&q, vec![json!("Ann"), json!("0190")]);
        assert_eq!(codec().decode(&token, &q).unwrap(), Some(vec![json!("Ann"), json!("0190")]));
        assert_eq!(codec().decode("", &q).unwrap(), None);
    }

    #[test]
    fn tampered_tokens_are_rejected() {
        let q = QueryFingerprint::of(&["t"]);
        let token = codec().encode(&q, vec![json!(1)]);
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[3] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(codec().decode(&tampered, &q).unwrap_err().reason(), "INVALID_PAGE_TOKEN");
        assert_eq!(codec().decode("!!!", &q).unwrap_err().reason(), "INVALID_PAGE_TOKEN");
        assert_eq!(codec().decode("AAAA", &q).unwrap_err().reason(), "INVALID_PAGE_TOKEN");
        assert_eq!(PageTokenCodec::new(b"other").decode(&token, &q).unwrap_err().reason(), "INVALID_PAGE_TOKEN");
    }

    #[test]
    fn tokens_are_bound_to_their_query() {
        let token = codec().encode(&QueryFingerprint::of(&["t", "a"]), vec![json!(1)]);
        let err = codec().decode(&token, &QueryFingerprint::of(&["t", "b"])).unwrap_err();
        assert_eq!(err.reason(), "PAGE_TOKEN_MISMATCH");
        // Length-prefixing keeps part boundaries significant.
        assert_ne!(QueryFingerprint::of(&["ab", "c"]), QueryFingerprint::of(&["a", "bc"]));
    }
}
