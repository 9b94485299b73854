//! The channels a message can take and the purposes it can serve, as stored
//! (`EMAIL`, `MARKETING`, ...) and as the API names them.

use std::fmt;

/// A delivery channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Email over SMTP.
    Email,
    /// Text message.
    Sms,
    /// Mobile push notification.
    Push,
}

impl Channel {
    /// Stored and API short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "EMAIL",
            Self::Sms => "SMS",
            Self::Push => "PUSH",
        }
    }

    /// The channel named `name` (a short name).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Email, Self::Sms, Self::Push].into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message is sent: decides whether marketing consent, caps and quiet hours apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Promotion: needs opt-in.
    Marketing,
    /// Notices the customer must get.
    Transactional,
}

impl Purpose {
    /// Stored and API short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Marketing => "MARKETING",
            Self::Transactional => "TRANSACTIONAL",
        }
    }

    /// The purpose named `name` (a short name).
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Marketing, Self::Transactional].into_iter().find(|p| p.as_str() == name)
    }
}

/// A stored short name that is not one of the enum's: the row is corrupt.
#[derive(Debug, thiserror::Error)]
#[error("unknown {kind} {value:?} in the database")]
pub struct UnknownName {
    kind: &'static str,
    value: String,
}

impl UnknownName {
    /// `value` is not a known `kind`.
    pub fn new(kind: &'static str, value: String) -> Self {
        Self { kind, value }
    }
}

impl TryFrom<String> for Channel {
    type Error = UnknownName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or(UnknownName { kind: "channel", value })
    }
}

impl TryFrom<String> for Purpose {
    type Error = UnknownName;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or(UnknownName { kind: "purpose", value })
    }
}
