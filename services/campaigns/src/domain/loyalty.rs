//! Loyalty points: which granted lots a redemption consumes (the soonest to
//! expire first, then the oldest; lots that never expire last), and the
//! limits of a booking.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The most points one booking moves.
pub const MAX_POINTS: i64 = 1_000_000_000;
/// The longest reason, in characters.
pub const MAX_REASON: usize = 200;

/// A granted lot with points left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lot {
    pub id: Uuid,
    pub remaining: i64,
    /// None: never expires.
    pub expire_time: Option<DateTime<Utc>>,
}

/// What a redemption takes from each lot: (lot, points), in the order taken;
/// None when the lots hold fewer than `points` together.
pub fn consume(lots: &[Lot], points: i64) -> Option<Vec<(Uuid, i64)>> {
    let mut ordered: Vec<&Lot> = lots.iter().filter(|l| l.remaining > 0).collect();
    // Expiring lots first, soonest first; UUIDv7 ids order lots of the same expiry by age.
    ordered.sort_by_key(|l| (l.expire_time.is_none(), l.expire_time, l.id));
    let mut left = points;
    let mut taken = Vec::new();
    for lot in ordered {
        if left == 0 {
            break;
        }
        let take = lot.remaining.min(left);
        taken.push((lot.id, take));
        left -= take;
    }
    (left == 0).then_some(taken)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use proptest::prelude::*;

    use super::*;

    fn lot(n: u128, remaining: i64, expires_in_days: Option<i64>) -> Lot {
        Lot { id: Uuid::from_u128(n), remaining, expire_time: expires_in_days.map(|d| Utc::now() + Duration::days(d)) }
    }

    #[test]
    fn the_soonest_to_expire_go_first_and_never_expiring_ones_last() {
        let lots = [lot(1, 100, None), lot(2, 50, Some(30)), lot(3, 30, Some(5))];
        assert_eq!(consume(&lots, 60), Some(vec![(Uuid::from_u128(3), 30), (Uuid::from_u128(2), 30)]));
        assert_eq!(consume(&lots, 180), Some(vec![(Uuid::from_u128(3), 30), (Uuid::from_u128(2), 50), (Uuid::from_u128(1), 100)]));
        assert_eq!(consume(&lots, 181), None);
    }

    proptest! {
        #[test]
        fn a_redemption_takes_exactly_its_points_and_no_lot_below_zero(
            remaining in proptest::collection::vec(0i64..1000, 0..12),
            points in 1i64..5000,
        ) {
            let lots: Vec<Lot> = remaining.iter().enumerate().map(|(i, r)| lot(i as u128, *r, (i % 3 != 0).then_some(i as i64))).collect();
            let total: i64 = remaining.iter().sum();
            match consume(&lots, points) {
                Some(taken) => {
                    prop_assert!(total >= points);
                    prop_assert_eq!(taken.iter().map(|(_, p)| p).sum::<i64>(), points);
                    for (id, p) in taken {
                        let lot = lots.iter().find(|l| l.id == id).unwrap();
                        prop_assert!(p > 0 && p <= lot.remaining);
                    }
                }
                None => prop_assert!(total < points),
            }
        }
    }
}
