//! Conversions between `chrono` and protobuf well-known time types.

use chrono::{DateTime, TimeZone, Utc};
use prost_types::Timestamp;

/// A protobuf timestamp for `t`.
pub fn to_timestamp(t: DateTime<Utc>) -> Timestamp {
    Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

/// The instant of a protobuf timestamp, or `None` when it is out of range.
pub fn from_timestamp(t: &Timestamp) -> Option<DateTime<Utc>> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return None;
    }
    Utc.timestamp_opt(t.seconds, t.nanos as u32).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_at_microsecond_precision() {
        let t = Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap();
        assert_eq!(from_timestamp(&to_timestamp(t)), Some(t));
        assert_eq!(from_timestamp(&Timestamp { seconds: 0, nanos: -1 }), None);
        assert_eq!(from_timestamp(&Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    }
}
