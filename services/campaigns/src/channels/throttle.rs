//! A token bucket per provider: at most `rate` messages per second (0: no
//! limit), with a burst of up to one second's worth after a quiet spell; and
//! a hold, when the provider asks us to slow down, that delays every
//! following message of that provider until it ends.

use std::time::Duration;

use tokio::{sync::Mutex, time::Instant};

/// Paces sends to one provider.
pub struct Bucket {
    /// Time per token; None: no limit.
    interval: Option<Duration>,
    burst: Duration,
    /// The instant the next token is free.
    next: Mutex<Instant>,
}

impl Bucket {
    /// A bucket of `rate` tokens per second (0: unlimited, holds only).
    pub fn new(rate: u32) -> Self {
        let interval = (rate > 0).then(|| Duration::from_secs(1) / rate);
        Self { interval, burst: Duration::from_secs(1), next: Mutex::new(Instant::now()) }
    }

    /// Waits for a token.
    pub async fn take(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            match self.interval {
                Some(interval) => {
                    // Unused capacity accrues for at most `burst`.
                    let slot = (*next).max(now.checked_sub(self.burst).unwrap_or(now));
                    *next = slot + interval;
                    slot
                }
                None => (*next).max(now),
            }
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Holds every later token for `wait` from now (the provider throttled us).
    pub async fn hold_for(&self, wait: Duration) {
        let mut next = self.next.lock().await;
        *next = (*next).max(Instant::now() + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn paces_to_the_rate_after_the_burst() {
        let bucket = Bucket::new(100);
        tokio::time::advance(Duration::from_secs(5)).await;
        let start = Instant::now();
        for _ in 0..300 {
            bucket.take().await;
        }
        // 100 tokens of burst, then 200 at 10 ms each.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(1990) && elapsed <= Duration::from_millis(2010), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_even_an_unlimited_provider() {
        let bucket = Bucket::new(0);
        let start = Instant::now();
        bucket.take().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        bucket.hold_for(Duration::from_secs(2)).await;
        bucket.take().await;
        assert!(start.elapsed() >= Duration::from_secs(2));
    }
}
