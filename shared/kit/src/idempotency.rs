//! Request-id idempotency (AIP-155) for create-style methods.
//!
//! The key row is inserted in the same transaction as the change it guards.
//! A concurrent retry blocks on the primary key until the first transaction
//! ends: if it committed, the retry reads the stored response; if it rolled
//! back, the retry proceeds as the first. So N identical concurrent requests
//! make exactly one resource. Keys are kept for at least [`RETENTION_HOURS`].

use prost::Message;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{db::TenantTx, error::Error};

/// How long a request id is remembered, at least.
pub const RETENTION_HOURS: i64 = 24;
/// Longest accepted request id.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A request id with the fingerprint of the request it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    method: &'static str,
    request_id: String,
    request_hash: Vec<u8>,
}

/// Outcome of claiming a key.
#[derive(Debug)]
pub enum Claim<R> {
    /// First use: perform the work, then call [`IdempotencyKey::complete`] in the same transaction.
    Fresh,
    /// Seen before with the same request: return this response.
    Replay(R),
}

impl IdempotencyKey {
    /// The key for `request_id`, or `None` when it is empty. `request` must be
    /// the request with its request-id field cleared (prost maps are BTreeMaps
    /// in this workspace, so the encoding is deterministic).
    pub fn new(method: &'static str, request_id: &str, request: &impl Message) -> Result<Option<Self>, Error> {
        if request_id.is_empty() {
            return Ok(None);
        }
        if request_id.len() > MAX_REQUEST_ID_LEN || !request_id.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::invalid(
                "request_id",
                "INVALID_REQUEST_ID",
                format!("request_id must be 1-{MAX_REQUEST_ID_LEN} printable ASCII characters (a UUID is ideal)"),
            ));
        }
        let request_hash = Sha256::digest(request.encode_to_vec()).to_vec();
        Ok(Some(Self { method, request_id: request_id.to_owned(), request_hash }))
    }

    /// The caller's request id.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// Claims the key inside `tx`; see [`Claim`].
    pub async fn claim<R: Message + Default>(&self, tx: &mut TenantTx, tenant: Uuid) -> Result<Claim<R>, Error> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (tenant_id, method, request_id, request_hash) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(self.method)
        .bind(&self.request_id)
        .bind(&self.request_hash)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            return Ok(Claim::Fresh);
        }
        let (hash, response): (Vec<u8>, Option<Vec<u8>>) =
            sqlx::query_as("SELECT request_hash, response FROM idempotency_keys WHERE tenant_id = $1 AND method = $2 AND request_id = $3")
                .bind(tenant)
                .bind(self.method)
                .bind(&self.request_id)
                .fetch_one(&mut **tx)
                .await?;
        if hash != self.request_hash {
            return Err(reused());
        }
        let response = response.ok_or_else(|| Error::internal(anyhow::anyhow!("committed idempotency key without a response")))?;
        R::decode(response.as_slice()).map(Claim::Replay).map_err(Error::internal)
    }

    /// The response of a committed earlier request with this key, if any,
    /// without claiming it: lets a retry be answered before the work (and any
    /// call to another service) starts. REQUEST_ID_REUSED for another request.
    pub async fn completed<R: Message + Default>(&self, tx: &mut TenantTx, tenant: Uuid) -> Result<Option<R>, Error> {
        let stored: Option<(Vec<u8>, Option<Vec<u8>>)> =
            sqlx::query_as("SELECT request_hash, response FROM idempotency_keys WHERE tenant_id = $1 AND method = $2 AND request_id = $3")
                .bind(tenant)
                .bind(self.method)
                .bind(&self.request_id)
                .fetch_optional(&mut **tx)
                .await?;
        let Some((hash, response)) = stored else { return Ok(None) };
        if hash != self.request_hash {
            return Err(reused());
        }
        response.map(|r| R::decode(r.as_slice()).map_err(Error::internal)).transpose()
    }

    /// Stores the response of a fresh claim and forgets this tenant's expired keys.
    pub async fn complete(&self, tx: &mut TenantTx, tenant: Uuid, response: &impl Message) -> Result<(), Error> {
        sqlx::query("UPDATE idempotency_keys SET response = $4 WHERE tenant_id = $1 AND method = $2 AND request_id = $3")
            .bind(tenant)
            .bind(self.method)
            .bind(&self.request_id)
            .bind(response.encode_to_vec())
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM idempotency_keys WHERE tenant_id = $1 AND create_time < now() - make_interval(hours => $2::int)")
            .bind(tenant)
            .bind(RETENTION_HOURS as i32)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Claims `key` (if the request has one) in `tx`: the stored response when
/// this is a retry of a committed request — return it and do nothing else —
/// or `None` to do the work and then [`remember`] its response in the same
/// transaction. Without a key there is nothing to claim.
pub async fn replay<R: Message + Default>(key: Option<&IdempotencyKey>, tx: &mut TenantTx, tenant: Uuid) -> Result<Option<R>, Error> {
    match key {
        Some(key) => match key.claim::<R>(tx, tenant).await? {
            Claim::Replay(response) => Ok(Some(response)),
            Claim::Fresh => Ok(None),
        },
        None => Ok(None),
    }
}

/// Stores the response of the work a [`replay`] claim let through.
pub async fn remember(key: Option<&IdempotencyKey>, tx: &mut TenantTx, tenant: Uuid, response: &impl Message) -> Result<(), Error> {
    match key {
        Some(key) => key.complete(tx, tenant, response).await,
        None => Ok(()),
    }
}

fn reused() -> Error {
    Error::invalid(
        "request_id",
        "REQUEST_ID_REUSED",
        "this request_id was already used with a different request; use a new request_id for a new request",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_request_id_means_no_key() {
        assert!(IdempotencyKey::new("m", "", &prost_types::Duration::default()).unwrap().is_none());
    }

    #[test]
    fn request_ids_are_validated() {
        for bad in ["has space", "tab\t", &"x".repeat(129), "ünïcode"] {
            let err = IdempotencyKey::new("m", bad, &prost_types::Duration::default()).unwrap_err();
            assert_eq!(err.reason(), "INVALID_REQUEST_ID");
        }
    }

    #[test]
    fn the_hash_depends_on_the_request() {
        let a = IdempotencyKey::new("m", "id", &prost_types::Duration { seconds: 1, nanos: 0 }).unwrap().unwrap();
        let b = IdempotencyKey::new("m", "id", &prost_types::Duration { seconds: 2, nanos: 0 }).unwrap().unwrap();
        assert_ne!(a.request_hash, b.request_hash);
    }
}
