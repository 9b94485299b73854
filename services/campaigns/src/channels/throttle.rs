//! A token bucket per provider: at most `rate` messages per second, with a
//! burst of up to one second's worth after a quiet spell.

use std::time::Duration;

use tokio::{sync::Mutex, time::Instant};

/// Paces sends to `rate` per second.
pub struct Bucket {
    interval: Duration,
    burst: Duration,
    /// The instant the next token is free.
    next: Mutex<Instant>,
}

impl Bucket {
    /// A bucket of `rate` (> 0) tokens per second.
    pub fn new(rate: u32) -> Self {
        let interval = Duration::from_secs(1) / rate.max(1);
        Self { interval, burst: Duration::from_secs(1), next: Mutex::new(Instant::now()) }
    }

    /// Waits for a token.
    pub async fn take(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            // Unused capacity accrues for at most `burst`.
            let slot = (*next).max(now.checked_sub(self.burst).unwrap_or(now));
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
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
}
