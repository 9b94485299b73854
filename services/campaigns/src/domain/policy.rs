//! The contact policy: whether one message may go to one customer, and to
//! which address. Applied to every message before it enters the ledger as
//! QUEUED; a refusal is recorded as SKIPPED with its reason.
//!
//! - A deleted customer gets nothing; a disabled one no marketing.
//! - A customer without an address for the channel gets nothing.
//! - Marketing needs the channel's explicit opt-in and no do-not-contact
//!   flag; transactional messages (fees, arrears, service) do not, because
//!   the customer must receive them.
//! - No marketing to a customer with an open complaint ticket (known from
//!   tickets' event stream; see [`marketing_allowed`]).

use super::{
    channel::{Channel, Purpose},
    customer::{ConsentState, Customer},
};

/// Why a message is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// No address for the channel.
    NoAddress,
    /// No marketing opt-in for the channel.
    NoConsent,
    /// The customer asked not to be contacted for marketing.
    DoNotContact,
    /// The record is deleted.
    CustomerDeleted,
    /// The tenant's frequency cap for the channel is reached.
    FrequencyCap,
    /// The customer has an open complaint ticket.
    OpenComplaint,
    /// The address bounced hard before.
    Suppressed,
    /// The customer is disabled in profiles (marketing only).
    CustomerDisabled,
}

impl SkipReason {
    /// Stored and API short name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoAddress => "NO_ADDRESS",
            Self::NoConsent => "NO_CONSENT",
            Self::DoNotContact => "DO_NOT_CONTACT",
            Self::CustomerDeleted => "CUSTOMER_DELETED",
            Self::FrequencyCap => "FREQUENCY_CAP",
            Self::OpenComplaint => "OPEN_COMPLAINT",
            Self::Suppressed => "SUPPRESSED",
            Self::CustomerDisabled => "CUSTOMER_DISABLED",
        }
    }
}

/// The address `customer` is reached at on `channel` for a message of
/// `purpose`, or why the message must not be sent.
pub fn address(customer: &Customer, channel: Channel, purpose: Purpose) -> Result<String, SkipReason> {
    if customer.deleted {
        return Err(SkipReason::CustomerDeleted);
    }
    let (address, consent) = match channel {
        Channel::Email => (customer.email.clone(), customer.consent.email),
        Channel::Sms => (customer.phone.clone(), customer.consent.sms),
        // Push goes to the customer's devices; until device tokens are kept,
        // the customer id addresses them at the provider.
        Channel::Push => (Some(customer.id.to_string()), customer.consent.push),
    };
    let address = address.filter(|a| !a.is_empty()).ok_or(SkipReason::NoAddress)?;
    if purpose == Purpose::Marketing {
        if customer.disabled {
            return Err(SkipReason::CustomerDisabled);
        }
        if customer.consent.do_not_contact {
            return Err(SkipReason::DoNotContact);
        }
        if consent != ConsentState::OptedIn {
            return Err(SkipReason::NoConsent);
        }
    }
    Ok(address)
}

/// Whether marketing may reach a customer who has `open_complaints` open complaint tickets.
pub fn marketing_allowed(purpose: Purpose, open_complaints: bool) -> Result<(), SkipReason> {
    if purpose == Purpose::Marketing && open_complaints { Err(SkipReason::OpenComplaint) } else { Ok(()) }
}

/// What stops a message beyond the customer's record, in the order it is
/// reported: an address that bounced hard (any purpose), then, for
/// marketing, an unsubscribe profiles has not recorded yet and an open complaint.
pub fn beyond_record(purpose: Purpose, suppressed: bool, unsubscribed: bool, open_complaint: bool) -> Result<(), SkipReason> {
    if suppressed {
        return Err(SkipReason::Suppressed);
    }
    if purpose == Purpose::Marketing && unsubscribed {
        return Err(SkipReason::NoConsent);
    }
    marketing_allowed(purpose, open_complaint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::customer::Consent;

    fn reachable() -> Customer {
        Customer {
            email: Some("li@example.com".into()),
            phone: Some("+8613800138000".into()),
            consent: Consent { email: ConsentState::OptedIn, sms: ConsentState::OptedIn, ..Consent::default() },
            ..Customer::default()
        }
    }

    #[test]
    fn marketing_needs_opt_in_and_no_do_not_contact() {
        let mut c = reachable();
        assert_eq!(address(&c, Channel::Email, Purpose::Marketing).as_deref(), Ok("li@example.com"));
        c.consent.email = ConsentState::Unknown;
        assert_eq!(address(&c, Channel::Email, Purpose::Marketing), Err(SkipReason::NoConsent));
        c.consent.sms = ConsentState::OptedIn;
        c.consent.do_not_contact = true;
        assert_eq!(address(&c, Channel::Sms, Purpose::Marketing), Err(SkipReason::DoNotContact));
    }

    #[test]
    fn a_disabled_customer_gets_notices_but_no_marketing() {
        let c = Customer { disabled: true, ..reachable() };
        assert_eq!(address(&c, Channel::Email, Purpose::Marketing), Err(SkipReason::CustomerDisabled));
        assert_eq!(address(&c, Channel::Email, Purpose::Transactional).as_deref(), Ok("li@example.com"));
    }

    #[test]
    fn transactional_notices_ignore_marketing_consent() {
        let mut c = reachable();
        c.consent.sms = ConsentState::OptedOut;
        c.consent.do_not_contact = true;
        assert_eq!(address(&c, Channel::Sms, Purpose::Transactional).as_deref(), Ok("+8613800138000"));
    }

    #[test]
    fn an_open_complaint_stops_marketing_only() {
        assert_eq!(marketing_allowed(Purpose::Marketing, true), Err(SkipReason::OpenComplaint));
        assert_eq!(marketing_allowed(Purpose::Transactional, true), Ok(()));
        assert_eq!(marketing_allowed(Purpose::Marketing, false), Ok(()));
    }

    #[test]
    fn nobody_reaches_a_deleted_customer_or_a_missing_address() {
        let mut c = reachable();
        c.email = None;
        assert_eq!(address(&c, Channel::Email, Purpose::Transactional), Err(SkipReason::NoAddress));
        c.deleted = true;
        assert_eq!(address(&c, Channel::Sms, Purpose::Transactional), Err(SkipReason::CustomerDeleted));
    }

    #[test]
    fn beyond_the_record_a_bounce_stops_everything_and_the_rest_only_marketing() {
        assert_eq!(beyond_record(Purpose::Transactional, true, false, false), Err(SkipReason::Suppressed));
        assert_eq!(beyond_record(Purpose::Transactional, false, true, true), Ok(()));
        assert_eq!(beyond_record(Purpose::Marketing, false, true, true), Err(SkipReason::NoConsent));
        assert_eq!(beyond_record(Purpose::Marketing, false, false, true), Err(SkipReason::OpenComplaint));
        assert_eq!(beyond_record(Purpose::Marketing, false, false, false), Ok(()));
    }
}
