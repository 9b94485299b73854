//! The rendered message a channel sends — everything a provider needs,
//! borrowed from the ledger row — and what handing it over made.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::domain::{channel::Channel, delivery::Outcome};

/// A rendered message, as a channel sends it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    pub delivery: Uuid,
    pub channel: Channel,
    pub recipient: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
    pub html_body: &'a str,
    pub data: &'a BTreeMap<String, String>,
    /// The values that filled its slots (`vars.*` and `name`).
    pub variables: &'a BTreeMap<String, String>,
    /// The one-click unsubscribe URL (marketing email, when links are configured).
    pub unsubscribe_url: Option<&'a str>,
    /// Where the provider reports back about it (Twilio's `StatusCallback`), when there is a public URL.
    pub callback_url: Option<&'a str>,
    /// The FCM tokens of the recipient's devices (push through FCM; empty otherwise).
    pub devices: &'a [String],
}

/// What handing one message over made.
#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    /// The provider's answer, to record.
    pub outcome: Outcome,
    /// Device tokens the provider called dead (FCM), to forget.
    pub unregistered_devices: Vec<String>,
}

impl From<Outcome> for Handover {
    fn from(outcome: Outcome) -> Self {
        Self { outcome, unregistered_devices: Vec::new() }
    }
}
