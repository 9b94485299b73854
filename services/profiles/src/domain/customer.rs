//! A customer's writable data after validation, and the rules that apply to
//! it as a whole (one primary contact per list, consent timestamps).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::fields::Birthday;

/// An email address of a customer, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailEntry {
    /// Lower-cased address.
    pub address: String,
    /// Label such as "work".
    #[serde(default)]
    pub label: String,
    /// Preferred address.
    #[serde(default)]
    pub primary: bool,
}

/// A phone number of a customer, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneEntry {
    /// E.164 number.
    pub number: String,
    /// Label such as "mobile".
    #[serde(default)]
    pub label: String,
    /// Preferred number.
    #[serde(default)]
    pub primary: bool,
}

/// A postal address of a customer, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AddressEntry {
    /// Label such as "billing".
    #[serde(default)]
    pub label: String,
    /// Street lines.
    #[serde(default)]
    pub lines: Vec<String>,
    /// City.
    #[serde(default)]
    pub city: String,
    /// Region.
    #[serde(default)]
    pub region: String,
    /// Postal code.
    #[serde(default)]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country.
    #[serde(default)]
    pub country: String,
}

/// Opt-in state of one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChannelConsent {
    /// "" (never asked), "OPTED_IN" or "OPTED_OUT".
    #[serde(default)]
    pub state: String,
    /// When `state` last changed.
    #[serde(default)]
    pub update_time: Option<DateTime<Utc>>,
}

/// Contact permissions of a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Consent {
    /// Email marketing.
    #[serde(default)]
    pub email: ChannelConsent,
    /// SMS marketing.
    #[serde(default)]
    pub sms: ChannelConsent,
    /// Push notifications.
    #[serde(default)]
    pub push: ChannelConsent,
    /// Overrides every channel.
    #[serde(default)]
    pub do_not_contact: bool,
}

impl Consent {
    /// Sets each channel's `update_time`: kept when its state is unchanged
    /// from `previous`, `now` when it changed (or is first set).
    pub fn stamp(&mut self, previous: Option<&Consent>, now: DateTime<Utc>) {
        let default = Consent::default();
        let previous = previous.unwrap_or(&default);
        for (channel, before) in [(&mut self.email, &previous.email), (&mut self.sms, &previous.sms), (&mut self.push, &previous.push)] {
            channel.update_time = if channel.state == before.state {
                before.update_time
            } else if channel.state.is_empty() {
                None
            } else {
                Some(now)
            };
        }
    }
}

/// Every writable field of a customer, validated and normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerDraft {
    /// 1-200 characters.
    pub display_name: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// "", "PERSON" or "ORGANIZATION".
    pub kind: String,
    /// Distinct addresses, at most one primary.
    pub emails: Vec<EmailEntry>,
    /// Distinct numbers, at most one primary.
    pub phones: Vec<PhoneEntry>,
    /// Postal addresses.
    pub addresses: Vec<AddressEntry>,
    /// Company.
    pub company: String,
    /// Job title.
    pub job_title: String,
    /// Industry.
    pub industry: String,
    /// Company size band short name, or "".
    pub company_size: String,
    /// Source channel short name, or "".
    pub source_channel: String,
    /// Birthday.
    pub birthday: Option<Birthday>,
    /// IANA zone or "".
    pub time_zone: String,
    /// BCP 47 tag or "".
    pub locale: String,
    /// Distinct tags in first-seen order.
    pub tags: Vec<String>,
    /// Custom attributes (a JSON object).
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Responsible agent's subject.
    pub owner: String,
    /// Category short name, or "".
    pub category: String,
    /// Contact permissions.
    pub consent: Consent,
    /// When the data was last confirmed.
    pub verify_time: Option<DateTime<Utc>>,
}

impl CustomerDraft {
    /// The lower-cased email addresses, which must be unique per tenant.
    pub fn email_addresses(&self) -> Vec<String> {
        self.emails.iter().map(|e| e.address.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_timestamps_move_only_when_state_changes() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap();
        let t1 = DateTime::from_timestamp(2_000, 0).unwrap();
        let mut first = Consent { email: ChannelConsent { state: "OPTED_IN".into(), update_time: None }, ..Default::default() };
        first.stamp(None, t0);
        assert_eq!(first.email.update_time, Some(t0));
        assert_eq!(first.sms.update_time, None);

        let mut second = first.clone();
        second.sms.state = "OPTED_OUT".into();
        second.email.update_time = Some(t1); // a client cannot move it
        second.stamp(Some(&first), t1);
        assert_eq!(second.email.update_time, Some(t0));
        assert_eq!(second.sms.update_time, Some(t1));
    }
}
