//! Secrets at rest (providers' credentials, webhooks' signing secrets):
//! AES-256-GCM under the service's key (`CRM_CREDENTIALS_KEY`), with the
//! tenant and the owning row's id as associated data, so a ciphertext copied
//! to another row (or tenant) does not decrypt. Stored as nonce ‖ ciphertext.

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const NONCE_LEN: usize = 12;

/// Encrypts and decrypts secrets stored in a tenant's rows.
#[derive(Clone)]
pub struct SecretCipher {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretCipher(***)")
    }
}

/// A stored secret that does not decrypt: the key changed or the row was tampered with.
#[derive(Debug, thiserror::Error)]
#[error("stored secrets do not decrypt with the configured key (was CRM_CREDENTIALS_KEY changed?)")]
pub struct Undecryptable;

impl SecretCipher {
    /// A cipher whose AES-256 key is the SHA-256 of `secret`.
    pub fn new(secret: &[u8]) -> Self {
        let key = Sha256::digest(secret);
        Self { cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)) }
    }

    fn associated(tenant: Uuid, owner: Uuid) -> [u8; 32] {
        let mut aad = [0u8; 32];
        aad[..16].copy_from_slice(tenant.as_bytes());
        aad[16..].copy_from_slice(owner.as_bytes());
        aad
    }

    /// `plain` sealed for row `owner` of `tenant`.
    pub fn seal(&self, tenant: Uuid, owner: Uuid, plain: &str) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = Self::associated(tenant, owner);
        let sealed =
            self.cipher.encrypt(&nonce, Payload { msg: plain.as_bytes(), aad: &aad }).expect("AES-GCM encrypts any length we store");
        [nonce.as_slice(), &sealed].concat()
    }

    /// The plain text of `sealed`, stored for row `owner` of `tenant`.
    pub fn open(&self, tenant: Uuid, owner: Uuid, sealed: &[u8]) -> Result<String, Undecryptable> {
        if sealed.len() < NONCE_LEN {
            return Err(Undecryptable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = Self::associated(tenant, owner);
        let plain = self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad }).map_err(|_| Undecryptable)?;
        String::from_utf8(plain).map_err(|_| Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_credentials_open_only_for_their_row_and_key() {
        let cipher = SecretCipher::new(b"key one");
        let (tenant, provider) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = cipher.seal(tenant, provider, "s3cret");
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"), "no clear text at rest");
        assert_eq!(cipher.open(tenant, provider, &sealed).unwrap(), "s3cret");
        assert!(cipher.open(Uuid::now_v7(), provider, &sealed).is_err(), "another tenant's row");
        assert!(cipher.open(tenant, Uuid::now_v7(), &sealed).is_err(), "another provider's row");
        assert!(SecretCipher::new(b"key two").open(tenant, provider, &sealed).is_err(), "another key");
        assert_ne!(cipher.seal(tenant, provider, "s3cret"), sealed, "a fresh nonce each time");
    }
}
