//! Pure marketing-domain logic, no I/O: the campaign lifecycle, channels and purposes, the customer
//! as a recipient, templates (checking and sandboxed rendering), SMS length,
//! opt-out keywords, the contact policy and the tenant's contact rules (caps, quiet hours), the delivery lifecycle and retry timing, and
//! which links of an email are tracked.

pub mod campaign;
pub mod channel;
pub mod customer;
pub mod delivery;
pub mod inbound;
pub mod policy;
pub mod rules;
pub mod sms;
pub mod template;
pub mod tracking;
