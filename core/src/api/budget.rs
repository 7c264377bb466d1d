//! [`MissBudget`]: how many exchange calls anonymous read-through may make in one isolate.
//! Every cache miss of a market route costs MEXC request weight on the operator's account, so
//! misses are metered by a GCRA token bucket holding one minute's worth
//! (`READ_THROUGH_MISSES_PER_MINUTE`): a burst of that many, then one per `60 s / rate`.
//! A miss beyond it is refused before any exchange call. Lives as long as the isolate.

use std::sync::Mutex;

/// One minute, the bucket's size in time.
const PERIOD_MS: i64 = 60_000;

#[derive(Default)]
pub struct MissBudget {
    /// GCRA's theoretical arrival time of the next call, ms since the epoch.
    next_at_ms: Mutex<i64>,
}

impl MissBudget {
    /// Takes one call from the budget at `now_ms`, or says in how many milliseconds one will
    /// be available.
    pub fn try_spend(&self, now_ms: i64, per_minute: u32) -> Result<(), i64> {
        let interval = PERIOD_MS / i64::from(per_minute.max(1));
        let mut next_at = self.next_at_ms.lock().unwrap_or_else(|p| p.into_inner());
        let start = (*next_at).max(now_ms);
        let ahead = start + interval - now_ms;
        if ahead > PERIOD_MS {
            return Err(ahead - PERIOD_MS);
        }
        *next_at = start + interval;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_of_burst_then_the_rate() {
        let budget = MissBudget::default();
        let now = 1_000_000;
        for _ in 0..6 {
            budget.try_spend(now, 6).unwrap();
        }
        assert_eq!(budget.try_spend(now, 6), Err(10_000), "the seventh waits one interval");
        assert_eq!(budget.try_spend(now + 9_999, 6), Err(1));
        budget.try_spend(now + 10_000, 6).unwrap();
        assert!(budget.try_spend(now + 10_000, 6).is_err());
    }
}
