//! A token bucket per provider: at most `rate` messages per second (0: no
//! limit), with a burst of up to one second's worth after a quiet spell; a
//! hold, when the provider asks us to slow down, that delays every following
//! message of that provider until it ends; and a learned pace.
//!
//! A provider that throttles without saying its limit (a 429 with a
//! `Retry-After`) would otherwise be hit in bursts: full speed until it
//! refuses, a one-second hold, full speed again — 1 000/s of capacity used at
//! ~600/s. So a throttling reply also sets the pace to just under what the
//! provider accepted in the second before it (95 %) — its capacity, as
//! measured, not what we offered — and every twenty seconds without
//! throttling the pace rises by 5 % again, until it is back above the
//! configured rate (a gentle increase, a multiplicative decrease, as TCP's).

use std::{collections::VecDeque, time::Duration};

use tokio::{sync::Mutex, time::Instant};

/// Share of the last second's rate a throttled provider is paced at.
const BACK_OFF: f64 = 0.95;
/// Time without throttling before the learned pace speeds up.
const RECOVER_AFTER: Duration = Duration::from_secs(20);
/// Speed-up per recovery step.
const RECOVER_BY: f64 = 1.05;

/// Paces sends to one provider.
pub struct Bucket {
    /// Time per token as configured; None: no limit.
    configured: Option<Duration>,
    burst: Duration,
    state: Mutex<State>,
}

struct State {
    /// The instant the next token is free.
    next: Instant,
    /// Time per token learned from throttling replies; None: not throttled lately.
    learned: Option<Duration>,
    /// When the learned pace last changed (set by a throttling reply, or sped up).
    last_change: Instant,
    /// When the provider accepted a message, over the last second.
    accepted: VecDeque<Instant>,
}

impl Bucket {
    /// A bucket of `rate` tokens per second (0: unlimited, holds and learned pace only).
    pub fn new(rate: u32) -> Self {
        let configured = (rate > 0).then(|| Duration::from_secs(1) / rate);
        let now = Instant::now();
        Self {
            configured,
            burst: Duration::from_secs(1),
            state: Mutex::new(State { next: now, learned: None, last_change: now, accepted: VecDeque::new() }),
        }
    }

    /// Waits for a token.
    pub async fn take(&self) {
        let slot = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            if let Some(learned) = s.learned
                && now.duration_since(s.last_change) >= RECOVER_AFTER
            {
                let faster = learned.div_f64(RECOVER_BY);
                s.learned = (self.configured.is_none_or(|c| faster > c) && faster > Duration::from_micros(100)).then_some(faster);
                s.last_change = now;
            }
            match self.interval(&s) {
                Some(interval) => {
                    // Unused capacity accrues for at most `burst` (none while a learned pace holds).
                    let burst = if s.learned.is_some() { interval } else { self.burst };
                    let slot = s.next.max(now.checked_sub(burst).unwrap_or(now));
                    s.next = slot + interval;
                    slot
                }
                None => s.next.max(now),
            }
        };
        // A token free now needs no timer (a timer would round up to the next millisecond).
        if slot > Instant::now() {
            tokio::time::sleep_until(slot).await;
        }
    }

    /// The time per token now: the slower of the configured and the learned pace.
    fn interval(&self, s: &State) -> Option<Duration> {
        match (self.configured, s.learned) {
            (Some(c), Some(l)) => Some(c.max(l)),
            (c, l) => c.or(l),
        }
    }

    /// The provider accepted a message now.
    pub async fn accepted(&self) {
        let mut s = self.state.lock().await;
        let now = Instant::now();
        while s.accepted.front().is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1)) {
            s.accepted.pop_front();
        }
        s.accepted.push_back(now);
    }

    /// The provider throttled us: holds every later token for `wait` from
    /// now, and paces at just under what it accepted in the last second.
    pub async fn hold_for(&self, wait: Duration) {
        let mut s = self.state.lock().await;
        let now = Instant::now();
        s.next = s.next.max(now + wait);
        // The replies to requests already in flight when the pace was set
        // arrive together: they say nothing about the new pace.
        if s.learned.is_some() && now.duration_since(s.last_change) < wait.max(Duration::from_secs(1)) {
            return;
        }
        let accepted_last_second = s.accepted.iter().filter(|t| now.duration_since(**t) <= Duration::from_secs(1)).count();
        // A provider that took nothing in the last second is paced at one a second until it recovers.
        s.learned = Some(Duration::from_secs(1).div_f64((accepted_last_second.max(1) as f64 * BACK_OFF).max(1.0)));
        s.last_change = now;
    }

    /// The pace learned from throttling, in messages per second (None: not throttled lately).
    pub async fn learned_rate(&self) -> Option<f64> {
        self.state.lock().await.learned.map(|l| 1.0 / l.as_secs_f64())
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

    #[tokio::test(start_paused = true)]
    async fn a_throttling_provider_is_paced_just_under_what_it_took_then_sped_up_again() {
        let bucket = Bucket::new(0);
        // 1 400 offered in the second before the provider said "slow down", 1 000 of them accepted.
        for i in 0..1400 {
            bucket.take().await;
            if i % 7 < 5 {
                bucket.accepted().await;
            }
            tokio::time::advance(Duration::from_micros(700)).await;
        }
        bucket.hold_for(Duration::from_millis(100)).await;
        let rate = bucket.learned_rate().await.unwrap();
        assert!((940.0..=960.0).contains(&rate), "{rate}");
        // The other requests that were in flight come back throttled too: they change nothing.
        for _ in 0..64 {
            bucket.hold_for(Duration::from_millis(100)).await;
        }
        assert_eq!(bucket.learned_rate().await, Some(rate));
        tokio::time::advance(Duration::from_millis(100)).await;
        let start = Instant::now();
        for _ in 0..950 {
            bucket.take().await;
        }
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(990) && elapsed <= Duration::from_millis(1010), "950 at ~950/s: {elapsed:?}");
        // Twenty quiet seconds later the pace rises by 5 %, and keeps rising.
        tokio::time::advance(RECOVER_AFTER).await;
        bucket.take().await;
        let faster = bucket.learned_rate().await.unwrap();
        assert!((faster / rate - RECOVER_BY).abs() < 0.01, "{rate} -> {faster}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_learned_pace_never_exceeds_the_configured_rate_and_gives_way_to_it() {
        let bucket = Bucket::new(100);
        for _ in 0..50 {
            bucket.take().await;
            bucket.accepted().await;
        }
        bucket.hold_for(Duration::ZERO).await;
        assert!(bucket.learned_rate().await.is_some());
        for _ in 0..30 {
            tokio::time::advance(RECOVER_AFTER).await;
            bucket.take().await;
        }
        assert_eq!(bucket.learned_rate().await, None, "recovered past the configured rate: the configured rate rules again");
    }
}
