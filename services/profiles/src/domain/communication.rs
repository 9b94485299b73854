//! A communication record's writable data after validation (沟通记录).

use chrono::{DateTime, NaiveDate, Utc};

/// Longest content, in bytes.
pub const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Longest duration, in seconds.
pub const MAX_DURATION_SECONDS: i64 = 24 * 3600;

/// A communication record as a request describes it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunicationDraft {
    /// CALL, EMAIL, MEETING, VISIT, SMS, CHAT or NOTE.
    pub kind: String,
    /// "", INBOUND or OUTBOUND.
    pub direction: String,
    pub subject: String,
    pub content: String,
    pub occur_time: DateTime<Utc>,
    pub duration_seconds: Option<i32>,
    /// Who handled it; the caller when a create leaves it empty.
    pub agent: String,
    pub outcome: String,
    pub next_contact_date: Option<NaiveDate>,
}
