//! What a delivery attempt's answer means and when the next one happens.
//! Pure: no I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// 410 Gone: the receiver asks for no more; the webhook is disabled at once.
    Gone,
    /// Anything else (no answer, 3xx — redirects are not followed —, 4xx, 5xx): try again later.
    Failed,
}

/// The verdict on HTTP status `status` (`None`: no answer).
pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        _ => Verdict::Failed,
    }
}

/// How retries are spaced and when a failing webhook is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry; doubled per failure.
    pub base: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// A webhook failing this long is disabled.
    pub disable_after: Duration,
}

impl RetryPolicy {
    /// The delay after the `failures`-th failure in a row (1 for the first):
    /// `base · 2^(failures-1)`, at most `max_delay`, with "equal jitter" — a
    /// random point in its upper half, so that receivers coming back are not
    /// hit by every webhook at once, and never sooner than half the backoff.
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1 << exponent).min(self.max_delay);
        let half = full / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=full - half)
    }

    /// Whether a webhook failing since `since` is given up at `now`.
    pub fn gives_up(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        (now - since).to_std().is_ok_and(|failing| failing >= self.disable_after)
    }
}

/// An event-type filter entry as SQL `LIKE` takes it: the type verbatim
/// (`%`, `_` and `\` escaped), a trailing `*` meaning any suffix.
pub fn like_pattern(filter: &str) -> String {
    let (stem, prefix) = match filter.strip_suffix('*') {
        Some(stem) => (stem, true),
        None => (filter, false),
    };
    let mut pattern = stem.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    if prefix {
        pattern.push('%');
    }
    pattern
}

/// Whether `filter` is a valid event-type filter entry: a dotted name of
/// letters, digits and underscores, optionally ending in `*`.
pub fn valid_type_filter(filter: &str) -> bool {
    let stem = filter.strip_suffix('*').unwrap_or(filter);
    (1..=200).contains(&filter.len())
        && !stem.contains('*')
        && stem.split('.').enumerate().all(|(i, part)| {
            // The part a `*` cuts may be empty ("crm.profiles.v1.*").
            (!part.is_empty() || (filter.ends_with('*') && i == stem.split('.').count() - 1))
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_delivers_and_410_gives_up() {
        assert_eq!(verdict(Some(200)), Verdict::Delivered);
        assert_eq!(verdict(Some(204)), Verdict::Delivered);
        assert_eq!(verdict(Some(410)), Verdict::Gone);
        for status in [Some(301), Some(400), Some(404), Some(429), Some(500), Some(503), None] {
            assert_eq!(verdict(status), Verdict::Failed, "{status:?}");
        }
    }

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let policy = RetryPolicy {
            base: Duration::from_secs(5),
            max_delay: Duration::from_secs(3600),
            disable_after: Duration::from_secs(3 * 86_400),
        };
        for (failures, full) in [(1, 5), (2, 10), (3, 20), (10, 2560), (11, 3600), (40, 3600)] {
            for _ in 0..50 {
                let delay = policy.delay(failures);
                let full = Duration::from_secs(full);
                assert!(delay >= full / 2 && delay <= full, "failure {failures}: {delay:?} outside [{:?}, {full:?}]", full / 2);
            }
        }
        let now = Utc::now();
        assert!(!policy.gives_up(now - chrono::Duration::hours(71), now));
        assert!(policy.gives_up(now - chrono::Duration::hours(72), now));
    }

    #[test]
    fn type_filters_become_escaped_like_patterns() {
        assert_eq!(like_pattern("crm.profiles.v1.CustomerCreated"), "crm.profiles.v1.CustomerCreated");
        assert_eq!(like_pattern("crm.profiles.v1.Customer*"), "crm.profiles.v1.Customer%");
        assert_eq!(like_pattern("crm.x_y.*"), "crm.x\\_y.%");
        for ok in ["crm.profiles.v1.CustomerCreated", "crm.profiles.v1.*", "crm.tickets.v1.Ticket*", "*"] {
            assert!(valid_type_filter(ok), "{ok}");
        }
        for bad in ["", "crm..v1", "crm.profiles.v1.Cust%", "crm.*.v1", "**", "crm profiles", "crm.profiles.v1."] {
            assert!(!valid_type_filter(bad), "{bad}");
        }
    }
}
