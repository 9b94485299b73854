//! Links that work without a login, each carrying the tenant and one record
//! signed (`crm_kit::link`) under a key of its own purpose, pointing at the
//! gateway's public URL:
//! - unsubscribe links, one per marketing delivery (`unsubscribeLinks/{token}`);
//! - provider callback URLs, one per provider (`providerCallbacks/{token}`);
//! - tracking links, one per tracked email (`trackingLinks/{token}`): its
//!   open pixel and its links;
//! - questionnaire invitations, one per invitation (`questionnaireInvitations/{token}`).

use crm_kit::{Error, link::LinkSigner};

use crate::domain::tracking;
use uuid::Uuid;

/// Mints and checks the links, and knows where they point.
#[derive(Debug, Clone)]
pub struct Links {
    unsubscribe: LinkSigner,
    callbacks: LinkSigner,
    tracking: LinkSigner,
    invitations: LinkSigner,
    /// The gateway's public URL, without a trailing `/`; links need one.
    public_url: Option<String>,
}

/// Unsubscribe links' collection.
const UNSUBSCRIBE: &str = "unsubscribeLinks/";
/// Provider callbacks' collection.
const CALLBACKS: &str = "providerCallbacks/";
/// Tracking links' collection.
const TRACKING: &str = "trackingLinks/";
/// Questionnaire invitations' collection.
const INVITATIONS: &str = "questionnaireInvitations/";

impl Links {
    /// Links signed with keys derived by `key_for(purpose)`, pointing at
    /// `public_url` (the gateway as the internet reaches it); without one,
    /// messages carry no link and providers get no callback URL.
    pub fn new(key_for: impl Fn(&[u8]) -> Vec<u8>, public_url: Option<&str>) -> Self {
        let public_url = public_url.map(|u| u.trim().trim_end_matches('/').to_owned()).filter(|u| !u.is_empty());
        Self {
            unsubscribe: LinkSigner::new(key_for(b"crm unsubscribe links")),
            callbacks: LinkSigner::new(key_for(b"crm provider callbacks")),
            tracking: LinkSigner::new(key_for(b"crm tracking links")),
            invitations: LinkSigner::new(key_for(b"crm questionnaire invitations")),
            public_url,
        }
    }

    /// The one-click URL (RFC 8058) for `delivery`, when a public URL is configured.
    pub fn unsubscribe_url(&self, tenant: Uuid, delivery: Uuid) -> Option<String> {
        let base = self.public_url.as_ref()?;
        Some(format!("{base}/v1/{UNSUBSCRIBE}{}:unsubscribe", self.unsubscribe.sign(tenant, delivery)))
    }

    /// Where the customer answers invitation `invitation`, when a public URL is configured.
    pub fn invitation_url(&self, tenant: Uuid, invitation: Uuid) -> Option<String> {
        let base = self.public_url.as_ref()?;
        Some(format!("{base}/v1/{INVITATIONS}{}", self.invitations.sign(tenant, invitation)))
    }

    /// (tenant, invitation) of a genuine `questionnaireInvitations/{token}`.
    pub fn resolve_invitation(&self, name: &str) -> Result<(Uuid, Uuid), Error> {
        name.strip_prefix(INVITATIONS).and_then(|token| self.invitations.verify(token)).ok_or_else(|| Error::Unauthenticated {
            reason: "INVALID_INVITATION_LINK",
            message: "this invitation link is not genuine".to_owned(),
        })
    }

    /// (tenant, delivery) of a genuine `unsubscribeLinks/{token}`.
    pub fn resolve_unsubscribe(&self, name: &str) -> Result<(Uuid, Uuid), Error> {
        name.strip_prefix(UNSUBSCRIBE).and_then(|token| self.unsubscribe.verify(token)).ok_or_else(invalid_link)
    }

    /// Where `provider` of `tenant` reports back, when a public URL is configured.
    pub fn callback_url(&self, tenant: Uuid, provider: Uuid) -> Option<String> {
        let base = self.public_url.as_ref()?;
        Some(format!("{base}/v1/{CALLBACKS}{}:receive", self.callbacks.sign(tenant, provider)))
    }

    /// `html` of `delivery` as it is sent tracked — each tracked link (see
    /// `domain::tracking`) through this service and an open pixel — when a
    /// public URL is configured; `unsubscribe` is its untracked unsubscribe URL.
    pub fn tracked_html(&self, tenant: Uuid, delivery: Uuid, html: &str, unsubscribe: Option<&str>) -> Option<String> {
        let base = self.public_url.as_ref()?;
        let link = format!("{base}/v1/{TRACKING}{}", self.tracking.sign(tenant, delivery));
        let links = tracking::links(html, unsubscribe);
        Some(tracking::tracked(html, &links, |position| format!("{link}:click?link={position}"), &format!("{link}:open")))
    }

    /// (tenant, delivery) of a genuine `trackingLinks/{token}`.
    pub fn resolve_tracking(&self, name: &str) -> Result<(Uuid, Uuid), Error> {
        name.strip_prefix(TRACKING).and_then(|token| self.tracking.verify(token)).ok_or_else(invalid_tracking_link)
    }

    /// (tenant, provider) of a genuine `providerCallbacks/{token}`.
    pub fn resolve_callback(&self, name: &str) -> Result<(Uuid, Uuid), Error> {
        name.strip_prefix(CALLBACKS).and_then(|token| self.callbacks.verify(token)).ok_or_else(invalid_callback)
    }
}

/// The answer to every unsubscribe link that is not genuine — the same for a
/// forged one and one whose message is gone, so that links cannot be probed.
pub fn invalid_link() -> Error {
    Error::Unauthenticated { reason: "INVALID_UNSUBSCRIBE_LINK", message: "this unsubscribe link is not valid".to_owned() }
}

/// The answer to a tracking link that is not genuine or whose message is not sent.
pub fn invalid_tracking_link() -> Error {
    Error::Unauthenticated { reason: "INVALID_TRACKING_LINK", message: "this tracking link is not valid".to_owned() }
}

/// The answer to a callback whose URL is not genuine or whose provider is gone.
pub fn invalid_callback() -> Error {
    Error::Unauthenticated { reason: "INVALID_CALLBACK_URL", message: "this provider callback URL is not valid".to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_verifies_its_own_links_only() {
        let links = Links::new(|label| label.to_vec(), Some("https://crm.example/"));
        let (tenant, id) = (Uuid::now_v7(), Uuid::now_v7());
        let url = links.unsubscribe_url(tenant, id).unwrap();
        let name = url.strip_prefix("https://crm.example/v1/").unwrap().strip_suffix(":unsubscribe").unwrap();
        assert_eq!(links.resolve_unsubscribe(name).unwrap(), (tenant, id));
        let token = name.strip_prefix(UNSUBSCRIBE).unwrap();
        assert!(links.resolve_callback(&format!("{CALLBACKS}{token}")).is_err(), "an unsubscribe token is no callback token");
        let callback = links.callback_url(tenant, id).unwrap();
        let name = callback.strip_prefix("https://crm.example/v1/").unwrap().strip_suffix(":receive").unwrap();
        assert_eq!(links.resolve_callback(name).unwrap(), (tenant, id));
        assert!(Links::new(|l| l.to_vec(), None).unsubscribe_url(tenant, id).is_none());
    }
}
