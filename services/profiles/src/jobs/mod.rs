//! Background work of the profiles service, calling `app/`.
//!
//! # Layout
//! - [`verification`]: the reminders of data that went stale (定期确认).
//! - [`grading`]: the tenants' regrades (RFM cut points, scores, tiers, stages).
//! - [`duplicates`]: the tenant-wide duplicate scan (match keys and pairs of changed customers).
//! - [`imports`]: the import jobs' runs (a batch of rows per transaction).
//! - [`exports`]: the end of exports whose process died mid-stream.
//! - [`segments`]: the refills of segments whose filter is relative to the current time.

pub mod duplicates;
pub mod exports;
pub mod grading;
pub mod imports;
pub mod segments;
pub mod verification;
