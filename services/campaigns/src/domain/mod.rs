//! Pure marketing-domain logic, no I/O: the holiday calendar (lunar holidays computed from the
//! astronomy of new moons and solar terms), the campaign lifecycle, channels and purposes, the customer
//! as a recipient, templates (checking and sandboxed rendering), SMS length,
//! opt-out keywords, the contact policy and the tenant's contact rules (caps, quiet hours), the delivery lifecycle and retry timing, and
//! which links of an email are tracked.

pub mod ab_test;
pub mod astronomy;
pub mod blueprints;
pub mod campaign;
pub mod channel;
pub mod coupon;
pub mod customer;
pub mod delivery;
pub mod holidays;
pub mod inbound;
pub mod journey;
pub mod journey_run;
pub mod loyalty;
pub mod loyalty_program;
pub mod lunisolar;
pub mod occasions;
pub mod policy;
pub mod questionnaire;
pub mod rules;
pub mod sms;
pub mod template;
pub mod tracking;

/// Whether `id` is a well-formed id a caller chooses (a holiday's, a journey
/// step's): 1-63 lowercase letters, digits and hyphens, starting with a letter.
pub fn is_slug(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}
