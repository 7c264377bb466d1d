//! Time as a trait. `std::time::SystemTime::now()` panics on `wasm32-unknown-unknown`, so the
//! worker reads `Date.now()` and native code the system clock; tests use [`FixedClock`].
//! Storage always holds integer milliseconds since the Unix epoch; people see ISO-8601
//! (see [`crate::codec::iso8601_ms`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock {
    fn now_ms(&self) -> i64;
}

/// The host's clock. Not for wasm32-unknown-unknown, where it would panic.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that only moves when told to: deterministic tests of TTLs and staleness.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn at(ms: i64) -> Self {
        Self(AtomicI64::new(ms))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Waiting, for backoff between retries: `worker::Delay` in the worker, a thread sleep or a
/// runtime timer natively. `?Send` for the same reason as [`crate::http::HttpClient`].
#[async_trait(?Send)]
pub trait Sleep {
    async fn sleep(&self, duration: Duration);
}

/// Blocks the thread: for native callers that drive one future at a time (tests, the CLI).
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadSleep;

#[async_trait(?Send)]
impl Sleep for ThreadSleep {
    async fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// A jittered exponential backoff ("full jitter"): attempt `n` waits a uniformly spread
/// duration in `[0, min(cap, base * 2^n)]`, so retrying clients do not stampede in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    pub fn delay(&self, attempt: u32, seed: u64) -> Duration {
        let ceiling = self.base.saturating_mul(1u32 << attempt.min(16)).min(self.cap);
        let spread = splitmix64(seed ^ u64::from(attempt)) % (ceiling.as_millis() as u64 + 1);
        Duration::from_millis(spread)
    }
}

/// A fast, well-mixed hash of `x` (SplitMix64): enough randomness for jitter, no RNG needed
/// (wasm32-unknown-unknown has no entropy source without JS glue).
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_spread() {
        let backoff = Backoff { base: Duration::from_millis(50), cap: Duration::from_millis(400) };
        let delays: Vec<Duration> = (0..64).map(|seed| backoff.delay(5, seed)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(400)));
        assert!(delays.iter().any(|d| *d != delays[0]), "jitter varies with the seed");
        assert!((0..64).all(|seed| backoff.delay(0, seed) <= Duration::from_millis(50)));
    }
}
