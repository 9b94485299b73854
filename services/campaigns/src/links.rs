//! Unsubscribe links: each marketing delivery's link carries the tenant and
//! the delivery, signed (`crm_kit::link`) with a key of this purpose, and
//! points at the gateway's public URL.

use crm_kit::{Error, link::LinkSigner};
use uuid::Uuid;

/// Mints and checks the links, and knows where they point.
#[derive(Debug, Clone)]
pub struct UnsubscribeLinks {
    signer: LinkSigner,
    /// The gateway's public URL, without a trailing `/`; links need one.
    public_url: Option<String>,
}

impl UnsubscribeLinks {
    /// Links signed with `key`, pointing at `public_url` (the gateway as the
    /// internet reaches it); without one, messages carry no link.
    pub fn new(key: Vec<u8>, public_url: Option<&str>) -> Self {
        let public_url = public_url.map(|u| u.trim().trim_end_matches('/').to_owned()).filter(|u| !u.is_empty());
        Self { signer: LinkSigner::new(key), public_url }
    }

    /// The link's token for `delivery` of `tenant`.
    pub fn token(&self, tenant: Uuid, delivery: Uuid) -> String {
        self.signer.sign(tenant, delivery)
    }

    /// The one-click URL (RFC 8058) for `delivery`, when a public URL is configured.
    pub fn url(&self, tenant: Uuid, delivery: Uuid) -> Option<String> {
        let base = self.public_url.as_ref()?;
        Some(format!("{base}/v1/unsubscribeLinks/{}:unsubscribe", self.token(tenant, delivery)))
    }

    /// (tenant, delivery) of a genuine resource name `unsubscribeLinks/{token}`.
    pub fn resolve(&self, name: &str) -> Result<(Uuid, Uuid), Error> {
        name.strip_prefix("unsubscribeLinks/").and_then(|token| self.signer.verify(token)).ok_or_else(invalid_link)
    }
}

/// The answer to every link that is not genuine — the same for a forged one
/// and one whose message is gone, so that links cannot be probed.
pub fn invalid_link() -> Error {
    Error::Unauthenticated { reason: "INVALID_UNSUBSCRIBE_LINK", message: "this unsubscribe link is not valid".to_owned() }
}
