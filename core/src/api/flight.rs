//! [`Flights`]: single-flight for exchange calls within one isolate. Concurrent cache misses
//! for the same key share one exchange call: the first caller (the leader) fetches, the
//! others wait for its result instead of each calling MEXC (which would multiply the request
//! weight MEXC rate-limits by). If the leader is dropped mid-flight, the waiters are released
//! and fetch for themselves. The leader's call is what spends the isolate's [`MissBudget`].
//! Lives as long as the isolate.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use futures_channel::oneshot;
use serde_json::Value;

pub use super::budget::MissBudget;
use crate::exchange::{ExchangeError, Fetched};

type Outcome = Result<Fetched<Value>, ExchangeError>;

#[derive(Default)]
pub struct Flights {
    /// Waiters per key being fetched. `std::sync::Mutex`: held only to register or drain.
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<Outcome>>>>,
    /// What read-through misses may still cost the exchange account.
    pub budget: MissBudget,
}

/// Removes the leader's entry however it ends; waiters whose sender is dropped fetch alone.
struct Leader<'a> {
    flights: &'a Flights,
    key: &'a str,
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.flights.lock().remove(self.key);
    }
}

impl Flights {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<Outcome>>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `fetch` for `key` unless one is in flight, in which case it waits for that one's
    /// result. Returns the outcome and whether this call did the fetching.
    pub async fn run<F: Future<Output = Outcome>>(&self, key: &str, fetch: impl FnOnce() -> F) -> (Outcome, bool) {
        let waiter = {
            let mut waiting = self.lock();
            match waiting.get_mut(key) {
                Some(waiters) => {
                    let (sender, receiver) = oneshot::channel();
                    waiters.push(sender);
                    Some(receiver)
                }
                None => {
                    waiting.insert(key.to_owned(), Vec::new());
                    None
                }
            }
        };
        if let Some(receiver) = waiter {
            if let Ok(outcome) = receiver.await {
                return (outcome, false);
            }
            // The leader went away without an answer: fetch ourselves.
            return (fetch().await, true);
        }
        let leader = Leader { flights: self, key };
        let outcome = fetch().await;
        let waiters = self.lock().remove(key).unwrap_or_default();
        drop(leader);
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
        (outcome, true)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use futures_util::future::join_all;

    use super::*;

    /// Pending once (waking itself), then ready.
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }

    #[test]
    fn concurrent_misses_share_one_fetch() {
        let flights = Flights::default();
        let calls = Cell::new(0);
        let fetch = || async {
            calls.set(calls.get() + 1);
            YieldOnce(false).await; // the other callers arrive while this is in flight
            Ok(Fetched { value: Value::from(7), raw: Value::Null, fetched_at_ms: 0, endpoint: "t" })
        };
        let results = futures_executor::block_on(join_all((0..5).map(|_| flights.run("k", fetch))));
        assert!(results.iter().all(|(r, _)| r.as_ref().unwrap().value == 7));
        assert_eq!(calls.get(), 1);
        assert_eq!(results.iter().filter(|(_, leader)| *leader).count(), 1);
        futures_executor::block_on(flights.run("k", fetch)).0.unwrap();
        assert_eq!(calls.get(), 2, "a later miss fetches again");
    }
}
