//! Background work of the profiles service, calling `app/`.
//!
//! # Layout
//! - [`verification`]: the reminders of data that went stale (定期确认).

pub mod verification;
