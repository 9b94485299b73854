//! Background work of the profiles service, calling `app/`.
//!
//! # Layout
//! - [`verification`]: the reminders of data that went stale (定期确认).
//! - [`grading`]: the tenants' regrades (RFM cut points, scores, tiers, stages).
//! - [`segments`]: the refills of segments whose filter is relative to the current time.

pub mod grading;
pub mod segments;
pub mod verification;
