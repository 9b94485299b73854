//! Pure customer-domain logic: validated field types, the customer draft,
//! masking and field-level write rules. No I/O.

pub mod access;
pub mod customer;
pub mod fields;
pub mod mask;
