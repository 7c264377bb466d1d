//! [`ClockOffset`]: MEXC's clock minus ours, kept for the isolate rather than measured by every
//! cron invocation. Signed calls need MEXC's time within `recvWindow`; measuring it costs a
//! `/api/v3/time` subrequest, which on Workers is CPU billed to the invocation and one of its
//! 50 subrequests. Two clocks that are both NTP-disciplined drift apart by milliseconds a day,
//! so a measurement is reused for [`ClockOffset::MAX_AGE_MS`]; a call MEXC refuses as outside
//! the window (700003) forgets it and measures again at once.

use std::sync::Mutex;

/// One measurement: the offset and when (our clock, ms) it was taken.
#[derive(Debug, Clone, Copy)]
struct Measured {
    offset_ms: i64,
    at_ms: i64,
}

/// The isolate's last measurement of MEXC's clock offset. `std::sync::Mutex`: held only to
/// copy a value in or out, never across an await.
#[derive(Debug, Default)]
pub struct ClockOffset {
    measured: Mutex<Option<Measured>>,
}

impl ClockOffset {
    /// How long a measurement is reused.
    pub const MAX_AGE_MS: i64 = 15 * 60 * 1000;

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Measured>> {
        self.measured.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The offset, if one was measured within [`Self::MAX_AGE_MS`] of `now_ms`.
    pub fn get(&self, now_ms: i64) -> Option<i64> {
        self.slot().filter(|m| (0..Self::MAX_AGE_MS).contains(&(now_ms - m.at_ms))).map(|m| m.offset_ms)
    }

    pub fn set(&self, offset_ms: i64, now_ms: i64) {
        *self.slot() = Some(Measured { offset_ms, at_ms: now_ms });
    }

    /// Drops the measurement: MEXC said our timestamp was outside its window.
    pub fn forget(&self) {
        *self.slot() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measurement_is_reused_until_it_is_old_or_forgotten() {
        let offset = ClockOffset::default();
        assert_eq!(offset.get(1_000), None);
        offset.set(-250, 1_000);
        assert_eq!(offset.get(1_000 + ClockOffset::MAX_AGE_MS - 1), Some(-250));
        assert_eq!(offset.get(1_000 + ClockOffset::MAX_AGE_MS), None, "too old");
        assert_eq!(offset.get(999), None, "our clock went back: measure again");
        offset.forget();
        assert_eq!(offset.get(1_001), None);
    }
}
