//! The health report as last built in this isolate, kept so that `GET /health` reads Redis at
//! most once per fresh window (`MEMORY_TIER_TTL`) per isolate. It outlives requests (the edge
//! holds one per isolate, like the isolate cache); a cron run in this isolate forgets it,
//! because the run changes the task statuses the report is made of. Kept apart from the route
//! so that [`crate::App`] can carry it without the route's dependencies.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

/// The last report and when it was built (ms since the epoch). `std::sync::Mutex`: held only
/// to copy the value in or out, never across an await.
#[derive(Default)]
pub struct KeptReport {
    kept: Mutex<Option<(i64, Value)>>,
}

impl KeptReport {
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(i64, Value)>> {
        self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The kept report if it was built less than `window` before `now`; `None` when none was
    /// kept, it is older, or it was forgotten.
    pub fn fresh(&self, now: i64, window: Duration) -> Option<Value> {
        let slot = self.slot();
        let (at, report) = slot.as_ref()?;
        (now - at < window.as_millis() as i64).then(|| report.clone())
    }

    /// Keeps `report`, built at `now`, in place of any earlier one.
    pub fn keep(&self, report: Value, now: i64) {
        *self.slot() = Some((now, report));
    }

    /// Forgets the kept report: the task statuses it was made of just changed.
    pub fn forget(&self) {
        *self.slot() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_fresh_within_its_window_and_gone_once_forgotten() {
        let kept = KeptReport::default();
        let window = Duration::from_secs(2);
        assert_eq!(kept.fresh(0, window), None);
        kept.keep(serde_json::json!({ "status": "ok" }), 1_000);
        assert_eq!(kept.fresh(2_999, window), Some(serde_json::json!({ "status": "ok" })));
        assert_eq!(kept.fresh(3_000, window), None, "the window is open at its end");
        kept.forget();
        assert_eq!(kept.fresh(1_001, window), None);
    }
}
