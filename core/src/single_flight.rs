//! [`SingleFlight`]: concurrent calls for the same key within one isolate share one call.
//! The first caller (the leader) runs it; callers arriving while it is in flight wait for its
//! result instead of repeating it. If the leader is dropped mid-flight, or a waiter's
//! *patience* runs out first, the waiter runs the call itself. A call that has finished is
//! forgotten at once: this shares work, it caches nothing.
//!
//! How a caller waits is the edge's [`Waiter`], because workerd makes it matter: each request
//! is its own context, and a joined caller is woken by the leader, i.e. runs on in the
//! *leader's* context. Two things go wrong there, both seen in `make bench`
//! (docs/design.md, "Coalesced reads"): a request waiting only on another's work has no
//! pending event of its own, so the runtime may cancel it as hung; and a response built in
//! the leader's context cannot be sent from the joiner's ("Cannot perform I/O on behalf of a
//! different request"). So a [`Wait`] has a *patience* (a timer of the caller's own, which
//! also bounds the wait) and a *resume* step that returns to the caller's context (a promise
//! created there, resolved after the wake-up). Natively neither is needed ([`Unbounded`]).
//!
//! Used for read-through exchange calls ([`crate::api::flight::Flights`]) and for the
//! tiers' Redis reads ([`crate::store::tiered::IsolateCache`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures_channel::oneshot;
use futures_util::future::{select, Either, LocalBoxFuture};

/// In-flight calls by key. `std::sync::Mutex`: held only to register or drain, never across
/// an await.
pub struct SingleFlight<T> {
    waiting: Mutex<HashMap<String, Vec<oneshot::Sender<T>>>>,
}

impl<T> Default for SingleFlight<T> {
    fn default() -> Self {
        Self { waiting: Mutex::new(HashMap::new()) }
    }
}

/// How one caller waits for another's call: until `patience` ends at most, then `resume`
/// before going on. Both are made when the caller starts waiting, in its own context.
pub struct Wait {
    pub patience: LocalBoxFuture<'static, ()>,
    pub resume: LocalBoxFuture<'static, ()>,
}

/// Makes [`Wait`]s (the edge supplies it: see the module doc).
pub trait Waiter {
    /// A wait of at most `patience`.
    fn wait(&self, patience: Duration) -> Wait;
}

/// Waits as long as the call takes and goes on where it was woken: right for a native
/// executor, where there is one context.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unbounded;

impl Waiter for Unbounded {
    fn wait(&self, _patience: Duration) -> Wait {
        Wait { patience: Box::pin(std::future::pending()), resume: Box::pin(std::future::ready(())) }
    }
}

/// Whether a caller ran the call or shared another's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Ran,
    Joined,
}

/// Removes the leader's entry however it ends; waiters whose sender is dropped run alone.
struct Leader<'a, T> {
    flights: &'a SingleFlight<T>,
    key: &'a str,
}

impl<T> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        self.flights.lock().remove(self.key);
    }
}

impl<T> SingleFlight<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<oneshot::Sender<T>>>> {
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many calls are in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }
}

impl<T: Clone> SingleFlight<T> {
    /// Runs `call` for `key` unless one is in flight, in which case it waits for that one's
    /// result (as `wait` says: until its patience ends, then it runs `call` itself).
    pub async fn run<F: Future<Output = T>>(
        &self,
        key: &str,
        call: impl FnOnce() -> F,
        wait: impl FnOnce() -> Wait,
    ) -> (T, Role) {
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
            let Wait { patience, resume } = wait();
            let shared = select(receiver, patience).await;
            resume.await;
            if let Either::Left((Ok(outcome), _)) = shared {
                return (outcome, Role::Joined);
            }
            // The leader went away without an answer, or took too long: run it ourselves.
            return (call().await, Role::Ran);
        }
        let leader = Leader { flights: self, key };
        let outcome = call().await;
        let waiters = self.lock().remove(key).unwrap_or_default();
        drop(leader);
        for waiter in waiters {
            let _ = waiter.send(outcome.clone());
        }
        (outcome, Role::Ran)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use futures_util::future::join_all;
    use std::future::pending;

    use super::*;

    fn forever() -> Wait {
        Unbounded.wait(Duration::ZERO)
    }

    /// Pending once (waking itself), then ready.
    pub(crate) struct YieldOnce(pub bool);

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
    fn concurrent_calls_share_one_and_a_later_call_runs_again() {
        let flights = SingleFlight::<u32>::default();
        let calls = Cell::new(0);
        let call = || async {
            calls.set(calls.get() + 1);
            YieldOnce(false).await; // the other callers arrive while this is in flight
            7
        };
        let results = futures_executor::block_on(join_all((0..5).map(|_| flights.run("k", call, forever))));
        assert!(results.iter().all(|(value, _)| *value == 7));
        assert_eq!(calls.get(), 1);
        assert_eq!(results.iter().filter(|(_, role)| *role == Role::Ran).count(), 1);
        assert_eq!(flights.in_flight(), 0, "a finished call is forgotten");
        futures_executor::block_on(flights.run("k", call, forever));
        assert_eq!(calls.get(), 2, "a later call runs again");
    }

    #[test]
    fn different_keys_do_not_share() {
        let flights = SingleFlight::<String>::default();
        let calls = Cell::new(0);
        let call = |k: &'static str| {
            let calls = &calls;
            move || async move {
                calls.set(calls.get() + 1);
                YieldOnce(false).await;
                k.to_owned()
            }
        };
        let (a, b) = futures_executor::block_on(futures_util::future::join(
            flights.run("a", call("a"), forever),
            flights.run("b", call("b"), forever),
        ));
        assert_eq!((a.0.as_str(), b.0.as_str()), ("a", "b"));
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn waiters_run_alone_when_the_leader_is_dropped() {
        use futures_util::FutureExt;
        let flights = SingleFlight::<u32>::default();
        let mut leader = Box::pin(flights.run(
            "k",
            || async {
                pending::<()>().await;
                1
            },
            forever,
        ));
        assert!((&mut leader).now_or_never().is_none(), "the leader is in flight");
        let mut waiter = Box::pin(flights.run("k", || async { 2 }, forever));
        assert!((&mut waiter).now_or_never().is_none(), "the waiter waits for the leader");
        drop(leader);
        assert_eq!(futures_executor::block_on(waiter), (2, Role::Ran));
    }

    #[test]
    fn a_waiter_whose_patience_ends_runs_the_call_itself() {
        use futures_util::FutureExt;
        let flights = SingleFlight::<u32>::default();
        let mut leader = Box::pin(flights.run("k", pending::<u32>, forever));
        assert!((&mut leader).now_or_never().is_none());
        let waiter = flights.run(
            "k",
            || async { 2 },
            || Wait { patience: Box::pin(std::future::ready(())), resume: Box::pin(std::future::ready(())) },
        );
        assert_eq!(futures_executor::block_on(waiter), (2, Role::Ran));
    }
}
