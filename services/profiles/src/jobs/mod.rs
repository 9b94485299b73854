//! Background work of the profiles service, calling `app/`.
//!
//! # Layout
//! - [`verification`]: the reminders of data that went stale (定期确认).
//! - [`grading`]: the tenants' regrades (RFM cut points, scores, tiers, stages).

pub mod grading;
pub mod verification;
