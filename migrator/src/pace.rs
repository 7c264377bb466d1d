//! `--rate`: how long `apply` waits after each batch so it moves at most `rate` keys per
//! second on average, with a burst of at most one batch — a token bucket, in the form of
//! GCRA (one "theoretical arrival time" instead of a token count). After a stall (a slow
//! Redis, a long batch) the next batch may go at once, but the time lost is not made up with
//! a burst, which is what a live Redis under a rate limit needs. Owns no I/O: the caller
//! sleeps.

use std::time::{Duration, Instant};

pub struct Pace {
    rate: f64,
    /// The credit a quiet spell earns: one batch's worth of time.
    tolerance: Duration,
    /// When the keys done so far are paid for.
    paid_until: Instant,
}

impl Pace {
    /// At most `rate` keys/s (> 0), batches of at most `batch` keys, starting `now`.
    pub fn new(rate: f64, batch: usize, now: Instant) -> Self {
        Self { rate, tolerance: Duration::from_secs_f64(batch as f64 / rate), paid_until: now }
    }

    /// The largest batch that keeps the pace smooth: one second of keys at most.
    pub fn batch_for(rate: f64, batch: usize) -> usize {
        batch.min(rate.ceil().max(1.0) as usize)
    }

    /// `keys` were just done at `now`: how long to wait before the next batch.
    pub fn after(&mut self, keys: usize, now: Instant) -> Option<Duration> {
        let earliest = now.checked_sub(self.tolerance).unwrap_or(now);
        self.paid_until = self.paid_until.max(earliest) + Duration::from_secs_f64(keys as f64 / self.rate);
        self.paid_until.checked_duration_since(now).filter(|wait| !wait.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn fast_batches_wait_out_their_share_of_each_second() {
        let start = Instant::now();
        let mut pace = Pace::new(1000.0, 100, start);
        // Each batch of 100 takes 10 ms of work; at 1000 keys/s it may take 100 ms.
        let mut now = start;
        for _ in 0..10 {
            now += 10 * MS;
            let wait = pace.after(100, now).unwrap_or_default();
            now += wait;
        }
        let elapsed = now - start;
        assert!(elapsed >= 1000 * MS - MS && elapsed <= 1000 * MS + MS, "1000 keys took {elapsed:?}");
    }

    #[test]
    fn a_stall_earns_one_batch_of_credit_not_a_burst() {
        let start = Instant::now();
        let mut pace = Pace::new(1000.0, 100, start);
        // A 5 s stall, then quick batches: only the first goes without waiting.
        let mut now = start + Duration::from_secs(5);
        assert_eq!(pace.after(100, now), None);
        now += MS;
        let wait = pace.after(100, now).expect("the second batch waits");
        assert!(wait >= 98 * MS && wait <= 100 * MS, "{wait:?}");
    }

    #[test]
    fn batches_shrink_to_one_second_of_keys() {
        assert_eq!(Pace::batch_for(50.0, 500), 50);
        assert_eq!(Pace::batch_for(0.5, 500), 1);
        assert_eq!(Pace::batch_for(10_000.0, 500), 500);
    }
}
