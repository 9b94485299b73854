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

/// The sort key of a row in a keyset-paged list, as a page token carries it.
pub trait PageKey: Sized {
    /// The key as JSON values.
    fn to_values(&self) -> Vec<serde_json::Value>;
    /// The key back from a (signed, so well-formed unless the format changed) token.
    fn from_values(values: &[serde_json::Value]) -> Option<Self>;
}

/// Newest-first lists: (create_time, id).
impl PageKey for (chrono::DateTime<chrono::Utc>, uuid::Uuid) {
    fn to_values(&self) -> Vec<serde_json::Value> {
        vec![self.0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into(), self.1.to_string().into()]
    }
    fn from_values(values: &[serde_json::Value]) -> Option<Self> {
        let time = chrono::DateTime::parse_from_rfc3339(values.first()?.as_str()?).ok()?.with_timezone(&chrono::Utc);
        Some((time, uuid::Uuid::parse_str(values.get(1)?.as_str()?).ok()?))
    }
}

/// Newest-first lists of several kinds of row: (time, kind, id).
impl PageKey for (chrono::DateTime<chrono::Utc>, String, uuid::Uuid) {
    fn to_values(&self) -> Vec<serde_json::Value> {
        vec![self.0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into(), self.1.clone().into(), self.2.to_string().into()]
    }
    fn from_values(values: &[serde_json::Value]) -> Option<Self> {
        let time = chrono::DateTime::parse_from_rfc3339(values.first()?.as_str()?).ok()?.with_timezone(&chrono::Utc);
        Some((time, values.get(1)?.as_str()?.to_owned(), uuid::Uuid::parse_str(values.get(2)?.as_str()?).ok()?))
    }
}

/// Lists ordered by a calendar date, then id (e.g. follow-ups by due date).
impl PageKey for (chrono::NaiveDate, uuid::Uuid) {
    fn to_values(&self) -> Vec<serde_json::Value> {
        vec![self.0.to_string().into(), self.1.to_string().into()]
    }
    fn from_values(values: &[serde_json::Value]) -> Option<Self> {
        let date = chrono::NaiveDate::parse_from_str(values.first()?.as_str()?, "%Y-%m-%d").ok()?;
        Some((date, uuid::Uuid::parse_str(values.get(1)?.as_str()?).ok()?))
    }
}

/// Lists ordered by a score, then a pair of ids (e.g. duplicate pairs, most alike first).
impl PageKey for (f64, uuid::Uuid, uuid::Uuid) {
    fn to_values(&self) -> Vec<serde_json::Value> {
        vec![self.0.into(), self.1.to_string().into(), self.2.to_string().into()]
    }
    fn from_values(values: &[serde_json::Value]) -> Option<Self> {
        let id = |i: usize| uuid::Uuid::parse_str(values.get(i)?.as_str()?).ok();
        Some((values.first()?.as_f64()?, id(1)?, id(2)?))
    }
}

/// Lists in id order (UUIDv7 ids are time-ordered).
impl PageKey for uuid::Uuid {
    fn to_values(&self) -> Vec<serde_json::Value> {
        vec![self.to_string().into()]
    }
    fn from_values(values: &[serde_json::Value]) -> Option<Self> {
        uuid::Uuid::parse_str(values.first()?.as_str()?).ok()
    }
}

/// Lists ordered by a text key, then id (e.g. position or agent name).
impl PageKey for (String, uuid::Uuid) {
    fn to_values(&self) -> Vec<serde_json::Value> {
        vec![self.0.clone().into(), self.1.to_string().into()]
    }
    fn from_values(values: &[serde_json::Value]) -> Option<Self> {
        Some((values.first()?.as_str()?.to_owned(), uuid::Uuid::parse_str(values.get(1)?.as_str()?).ok()?))
    }
}

/// Lists ordered by a number, then id (e.g. a rule's position).
impl PageKey for (i64, uuid::Uuid) {
    fn to_values(&self) -> Vec<serde_json::Value> {
        vec![self.0.into(), self.1.to_string().into()]
    }
    fn from_values(values: &[serde_json::Value]) -> Option<Self> {
        Some((values.first()?.as_i64()?, uuid::Uuid::parse_str(values.get(1)?.as_str()?).ok()?))
    }
}

/// Lists ordered by two text keys, then id (e.g. priority and category).
impl PageKey for (String, String, uuid::Uuid) {
    fn to_values(&self) -> Vec<serde_json::Value> {
        vec![self.0.clone().into(), self.1.clone().into(), self.2.to_string().into()]
    }
    fn from_values(values: &[serde_json::Value]) -> Option<Self> {
        Some((
            values.first()?.as_str()?.to_owned(),
            values.get(1)?.as_str()?.to_owned(),
            uuid::Uuid::parse_str(values.get(2)?.as_str()?).ok()?,
        ))
    }
}

/// Lists ordered by a unique number (e.g. a version).
impl PageKey for i64 {
    fn to_values(&self) -> Vec<serde_json::Value> {
        vec![(*self).into()]
    }
    fn from_values(values: &[serde_json::Value]) -> Option<Self> {
        values.first()?.as_i64()
    }
}

/// Lists ordered by a text key alone (unique within the list).
impl PageKey for String {
    fn to_values(&self) -> Vec<serde_json::Value> {
        vec![self.clone().into()]
    }
    fn from_values(values: &[serde_json::Value]) -> Option<Self> {
        Some(values.first()?.as_str()?.to_owned())
    }
}

/// One page asked for: how many rows, after which key. Stores fetch
/// [`fetch_limit`](Self::fetch_limit) rows (one more than the page) so that
/// [`Pager::finish`] knows whether another page follows.
#[derive(Debug, Clone)]
pub struct Page<K> {
    /// Rows on the page.
    pub size: usize,
    /// Key of the last row of the previous page; `None` on the first page.
    pub after: Option<K>,
    query: QueryFingerprint,
}

impl<K> Page<K> {
    /// Rows to fetch: the page plus one, to learn whether more follow.
    pub fn fetch_limit(&self) -> i64 {
        self.size as i64 + 1
    }
}

/// Keyset paging for one List method, used the same way by every List:
/// [`Pager::start`] validates `page_size` and `page_token`, the store fetches
/// `page.fetch_limit()` rows after `page.after`, [`Pager::finish`] cuts the
/// page and signs the next token.
pub struct Pager<'a> {
    codec: &'a PageTokenCodec,
}

impl<'a> Pager<'a> {
    /// Paging with tokens signed by `codec`.
    pub fn new(codec: &'a PageTokenCodec) -> Self {
        Self { codec }
    }

    /// The page a request asks for. `query` names everything that must stay
    /// the same while paging (method, tenant, parent, filter, order, flags).
    pub fn start<K: PageKey>(&self, page_size: i32, page_token: &str, query: &[&str]) -> Result<Page<K>, Error> {
        let size = self::page_size(page_size)?;
        let query = QueryFingerprint::of(query);
        let after = match self.codec.decode(page_token, &query)? {
            None => None,
            Some(values) => Some(
                K::from_values(&values)
                    .ok_or_else(|| Error::invalid("page_token", "INVALID_PAGE_TOKEN", "the page token is malformed or was altered"))?,
            ),
        };
        Ok(Page { size, after, query })
    }

    /// The page's rows and the token of the next page ("" on the last page).
    pub fn finish<T, K: PageKey>(&self, page: &Page<K>, mut rows: Vec<T>, key_of: impl Fn(&T) -> K) -> (Vec<T>, String) {
        if rows.len() <= page.size {
            return (rows, String::new());
        }
        rows.truncate(page.size);
        let token = rows.last().map(|last| self.codec.encode(&page.query, key_of(last).to_values())).unwrap_or_default();
        (rows, token)
    }
}

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
    fn a_pager_cuts_pages_and_resumes_after_the_last_key() {
        let codec = codec();
        let pager = Pager::new(&codec);
        let ids: Vec<uuid::Uuid> = (0..5).map(|_| uuid::Uuid::now_v7()).collect();
        let first: Page<uuid::Uuid> = pager.start(2, "", &["m", "tenant"]).unwrap();
        assert_eq!((first.size, first.after, first.fetch_limit()), (2, None, 3));
        let (rows, token) = pager.finish(&first, ids[..3].to_vec(), |id| *id);
        assert_eq!(rows, ids[..2]);
        let second: Page<uuid::Uuid> = pager.start(2, &token, &["m", "tenant"]).unwrap();
        assert_eq!(second.after, Some(ids[1]));
        assert_eq!(pager.finish(&second, ids[2..4].to_vec(), |id| *id).1, "", "a short page is the last");
        assert_eq!(pager.start::<uuid::Uuid>(2, &token, &["m", "other"]).unwrap_err().reason(), "PAGE_TOKEN_MISMATCH");
        assert_eq!(pager.start::<uuid::Uuid>(-1, "", &["m"]).unwrap_err().reason(), "INVALID_PAGE_SIZE");
        let wrong_shape = codec.encode(&QueryFingerprint::of(&["m"]), vec![json!(7)]);
        assert_eq!(pager.start::<uuid::Uuid>(2, &wrong_shape, &["m"]).unwrap_err().reason(), "INVALID_PAGE_TOKEN");
    }

    #[test]
    fn page_keys_round_trip() {
        let now = chrono::Utc::now();
        let id = uuid::Uuid::now_v7();
        let key = (now, id);
        let back = <(chrono::DateTime<chrono::Utc>, uuid::Uuid)>::from_values(&key.to_values()).unwrap();
        assert_eq!(back.1, id);
        assert_eq!(back.0.timestamp_micros(), now.timestamp_micros());
        assert_eq!(<(i64, uuid::Uuid)>::from_values(&(7, id).to_values()), Some((7, id)));
        assert_eq!(<(String, uuid::Uuid)>::from_values(&("a".to_owned(), id).to_values()), Some(("a".to_owned(), id)));
        assert_eq!(String::from_values(&"agent".to_owned().to_values()), Some("agent".to_owned()));
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
