//! Pure marketing-domain logic, no I/O: the holiday calendar (lunar holidays computed from the
//! astronomy of new moons and solar terms), the campaign lifecycle, channels and purposes, the customer
//! as a recipient, templates (checking and sandboxed rendering), SMS length,
//! opt-out keywords, the contact policy and the tenant's contact rules (caps, quiet hours), the delivery lifecycle and retry timing, and
//! which links of an email are tracked.

pub mod astronomy;
pub mod campaign;
pub mod channel;
pub mod customer;
pub mod delivery;
pub mod holidays;
pub mod inbound;
pub mod lunisolar;
pub mod policy;
pub mod rules;
pub mod sms;
pub mod template;
pub mod tracking;
