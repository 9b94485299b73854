//! Pure customer-domain logic: validated field types, the customer and related-person drafts,
//! masking and field-level write rules. No I/O.

pub mod access;
pub mod communication;
pub mod customer;
pub mod export;
pub mod fields;
pub mod grading;
pub mod import;
pub mod lifetime;
pub mod mask;
pub mod matching;
pub mod occupancy_import;
pub mod occurrence;
pub mod optimize;
pub mod payment_account;
pub mod premises;
pub mod related_person;
pub mod related_person_import;
pub mod rename;
pub mod segment;
pub mod sheet;
pub mod transaction;
pub mod transaction_import;
pub mod xlsx;
