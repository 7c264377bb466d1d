//! [`Flights`]: single-flight for read-through exchange calls within one isolate. Concurrent
//! cache misses for the same key share one exchange call ([`SingleFlight`]) instead of each
//! calling MEXC, which would multiply the request weight MEXC rate-limits by. The leader's
//! call is what spends the isolate's [`MissBudget`]. Lives as long as the isolate.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

pub use super::budget::MissBudget;
use crate::exchange::{ExchangeError, Fetched};
use crate::single_flight::{Role, SingleFlight, Wait};

type Outcome = Result<Fetched<Value>, ExchangeError>;

#[derive(Default)]
pub struct Flights {
    calls: SingleFlight<Outcome>,
    /// What read-through misses may still cost the exchange account.
    pub budget: MissBudget,
    exchange_calls: AtomicU64,
    refusals: AtomicU64,
}

impl Flights {
    /// Runs `fetch` for `key` unless one is in flight, in which case it waits for that one's
    /// result as `wait` says. Returns the outcome and whether this call did the fetching.
    pub async fn run<F: Future<Output = Outcome>>(
        &self,
        key: &str,
        fetch: impl FnOnce() -> F,
        wait: impl FnOnce() -> Wait,
    ) -> (Outcome, bool) {
        let (outcome, role) = self.calls.run(key, fetch, wait).await;
        (outcome, role == Role::Ran)
    }

    /// Counts an exchange call made for a miss (`/metrics`).
    pub fn count_call(&self) {
        self.exchange_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a miss the budget refused (`/metrics`).
    pub fn count_refusal(&self) {
        self.refusals.fetch_add(1, Ordering::Relaxed);
    }

    pub fn exchange_calls(&self) -> u64 {
        self.exchange_calls.load(Ordering::Relaxed)
    }

    pub fn budget_refusals(&self) -> u64 {
        self.refusals.load(Ordering::Relaxed)
    }
}
