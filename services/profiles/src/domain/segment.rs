//! Segments: a segment's writable data after validation, and the guard rails.

/// Most segments per tenant: every customer change evaluates every dynamic one.
pub const MAX_SEGMENTS: i64 = 100;
/// Most customers per AddSegmentMembers / RemoveSegmentMembers call.
pub const MAX_MEMBERS_PER_CALL: usize = 1000;

/// A segment as a request describes it, validated (its filter checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentDraft {
    pub display_name: String,
    pub description: String,
    /// DYNAMIC or STATIC.
    pub kind: String,
    /// The dynamic segment's filter; empty for a static one.
    pub filter: String,
    /// Whether the filter compares against the current time, so that the
    /// segment must be refilled as time passes.
    pub time_relative: bool,
}
