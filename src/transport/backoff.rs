//! When to try again after a failure: exponential backoff with "equal
//! jitter" (half the delay fixed, half random), one schedule for every
//! transport's reconnections and retries.

use std::time::Duration;

use tokio::time::Instant;

/// First delay after a failure.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Longest delay between two attempts.
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Consecutive failures, and the earliest next attempt they allow.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
    next_attempt: Option<Instant>,
}

impl Backoff {
    /// Waits until the next attempt may go.
    pub(crate) async fn wait(&self) {
        if let Some(at) = self.next_attempt {
            tokio::time::sleep_until(at).await;
        }
    }

    /// An attempt failed: the next waits [`delay`] of the failures in a row.
    pub(crate) fn failed(&mut self) {
        self.failed_at_least(Duration::ZERO);
    }

    /// An attempt failed, and the peer asked for `floor` before the next
    /// one: the next waits the longer of the two.
    pub(crate) fn failed_at_least(&mut self, floor: Duration) {
        self.failures = self.failures.saturating_add(1);
        self.next_attempt = Some(Instant::now() + delay(self.failures).max(floor));
    }

    /// An attempt went through: the next may go at once, but the failures
    /// in a row still count, so that a connection that dies young is
    /// retried more slowly than the last one.
    pub(crate) fn went_through(&mut self) {
        self.next_attempt = None;
    }

    /// Delivery is known to work: the count of failures starts over.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
    }

    /// Whether the next attempt has to wait.
    #[cfg(test)]
    pub(crate) fn is_waiting(&self) -> bool {
        self.next_attempt.is_some()
    }
}

/// The delay after `failures` failures in a row: [`BACKOFF_BASE`], doubling
/// with each failure up to [`BACKOFF_CAP`]; half of it fixed, half random.
pub(crate) fn delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let full = BACKOFF_BASE.saturating_mul(1u32 << exp).min(BACKOFF_CAP);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_schedule_100_ms_doubling_to_5_s_half_random() {
        let ms = Duration::from_millis;
        // The full delay of each failure in a row; the delay lies in its
        // upper half.
        let schedule = [
            (1, ms(100)),
            (2, ms(200)),
            (3, ms(400)),
            (4, ms(800)),
            (5, ms(1600)),
            (6, ms(3200)),
            (7, ms(5000)),
            (8, ms(5000)),
            (40, ms(5000)),
            (u32::MAX, ms(5000)),
        ];
        for (failures, full) in schedule {
            let delays: Vec<Duration> = (0..200).map(|_| delay(failures)).collect();
            for d in &delays {
                assert!(*d >= full / 2 && *d <= full, "{failures}: {d:?}");
            }
            // Random, not fixed: the delays spread over the upper half.
            let low = delays.iter().filter(|d| **d < full * 3 / 4).count();
            assert!((20..=180).contains(&low), "{failures}: {low} of 200 low");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failures_in_a_row_wait_longer_until_reset() {
        let mut backoff = Backoff::default();
        let start = Instant::now();
        backoff.wait().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        for _ in 0..3 {
            backoff.failed();
        }
        // Third failure: 400 ms at the most, 200 at the least.
        backoff.wait().await;
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited <= Duration::from_millis(400));
        backoff.went_through();
        assert!(!backoff.is_waiting());
        backoff.failed();
        assert!(backoff.next_attempt.unwrap() - Instant::now() >= Duration::from_millis(400));
        backoff.reset();
        backoff.failed();
        assert!(backoff.next_attempt.unwrap() - Instant::now() <= Duration::from_millis(100));
        // A peer's request for a longer wait wins.
        backoff.failed_at_least(Duration::from_secs(30));
        assert!(backoff.next_attempt.unwrap() - Instant::now() >= Duration::from_secs(30));
    }
}
