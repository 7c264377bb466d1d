//! The tiers' rules pinned from outside: a real memory store stands in for Redis, with a
//! switch that takes it down, error replies, request counting and a gate that holds reads in
//! flight so they overlap.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_executor::block_on;

use async_trait::async_trait;

use super::*;
use crate::clock::FixedClock;
use crate::log::EventLog;
use crate::store::memory::MemoryStore;
use crate::store::StoreExt;
use crate::store::{Command, Replies, Store, StoreError};
use crate::ttl::DataClass;

/// A real memory store standing in for Redis, with a switch that makes it unreachable.
struct Switchable {
    store: MemoryStore,
    down: AtomicBool,
}

#[async_trait(?Send)]
impl Store for Switchable {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("switched off".into()));
        }
        self.store.pipeline(commands).await
    }
    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.pipeline(commands).await
    }
}

fn setup() -> (Arc<FixedClock>, IsolateCache, Switchable) {
    let clock = Arc::new(FixedClock::at(1_000_000));
    let config = TierConfig {
        memory_fresh_for: Duration::from_secs(2),
        memory_max_entries: 100,
        stale_grace: Duration::from_secs(60),
    };
    let l2 = Switchable { store: MemoryStore::new(clock.clone(), 100), down: AtomicBool::new(false) };
    (clock, IsolateCache::new(config), l2)
}

#[test]
fn fresh_then_redis_then_stale_then_error() {
    let (clock, memory, redis) = setup();
    let tiered = Tiered::new(&memory, Backing::redis(&redis), &*clock);
    block_on(tiered.set("k", b"v1", Some(Duration::from_secs(30)))).unwrap();

    let read = block_on(tiered.read("k", DataClass::Price)).unwrap().unwrap();
    assert_eq!((read.tier, read.value.as_slice()), (Tier::L1, b"v1".as_slice()));

    clock.advance_ms(2_000); // past MEMORY_TIER_TTL: Redis answers
    let read = block_on(tiered.read("k", DataClass::Price)).unwrap().unwrap();
    assert_eq!(read.tier, Tier::Redis);

    redis.down.store(true, Ordering::SeqCst);
    clock.advance_ms(5_000);
    let read = block_on(tiered.read("k", DataClass::Price)).unwrap().unwrap();
    assert_eq!((read.tier, read.age_ms), (Tier::MemoryStale, 5_000));

    clock.advance_ms(60_000); // past the grace
    assert!(block_on(tiered.read("k", DataClass::Price)).is_err());
    assert!(block_on(tiered.read("never", DataClass::Price)).is_err());

    let counters = memory.stats().classes["price"];
    assert_eq!((counters.l1_hits, counters.l2_hits, counters.stale_served), (1, 1, 1));
}

/// Answers every command with the same error reply, as a loading or misrouted node does.
struct Refusing(&'static str);

#[async_trait(?Send)]
impl Store for Refusing {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        Ok(commands.iter().map(|_| Err(crate::store::CommandError(self.0.to_owned()))).collect())
    }
    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.pipeline(commands).await
    }
}

#[test]
fn an_error_reply_to_a_read_fails_over_like_an_outage() {
    for reply in ["LOADING Redis is loading the dataset in memory", "MOVED 3999 127.0.0.1:6381", "READONLY no"] {
        let (clock, memory, redis) = setup();
        block_on(Tiered::new(&memory, Backing::redis(&redis), &*clock).set("k", b"kept", None)).unwrap();
        clock.advance_ms(3_000);
        let refusing = Refusing(reply);
        let tiered = Tiered::new(&memory, Backing::redis(&refusing), &*clock);
        let read = block_on(tiered.read("k", DataClass::PriceLatest)).unwrap().unwrap();
        assert_eq!((read.tier, read.value.as_slice()), (Tier::MemoryStale, b"kept".as_slice()), "{reply}");
        match block_on(tiered.read("unknown", DataClass::PriceLatest)) {
            Err(ReadError::Store(StoreError::Unavailable(message))) => {
                assert!(message.contains(reply), "{message}")
            }
            other => panic!("{reply}: {other:?}"),
        }
        assert!(memory.stats().unreadable.is_empty(), "{reply} is not the data's fault");
    }
}

#[test]
fn writes_reach_both_tiers_and_fail_loudly_when_redis_is_down() {
    let (clock, memory, redis) = setup();
    let tiered = Tiered::new(&memory, Backing::redis(&redis), &*clock);
    redis.down.store(true, Ordering::SeqCst);
    assert!(block_on(tiered.set("k", b"while down", None)).is_err());
    // The newest value is still served, flagged stale once it is no longer fresh.
    clock.advance_ms(3_000);
    let read = block_on(tiered.read("k", DataClass::PriceLatest)).unwrap().unwrap();
    assert_eq!((read.tier, read.value.as_slice()), (Tier::MemoryStale, b"while down".as_slice()));
    redis.down.store(false, Ordering::SeqCst);
    block_on(tiered.set("k", b"back", None)).unwrap();
    assert_eq!(block_on(redis.store.get("k")).unwrap(), Some(b"back".to_vec()));
}

#[test]
fn a_key_gone_from_redis_is_gone_from_l1() {
    let (clock, memory, redis) = setup();
    let tiered = Tiered::new(&memory, Backing::redis(&redis), &*clock);
    block_on(tiered.set("k", b"v", None)).unwrap();
    block_on(redis.store.unlink(&["k".to_owned()])).unwrap(); // another isolate deleted it
    clock.advance_ms(2_000);
    assert_eq!(block_on(tiered.read("k", DataClass::Default)).unwrap(), None);
    redis.down.store(true, Ordering::SeqCst);
    assert_eq!(block_on(tiered.read("k", DataClass::Default)).unwrap(), None, "absence is remembered, briefly");
    clock.advance_ms(2_000);
    assert!(block_on(tiered.read("k", DataClass::Default)).is_err(), "no stale copy remains");
}

/// Collects what the tiers report.
#[derive(Default)]
struct Collect(std::cell::RefCell<Vec<serde_json::Value>>);

impl EventLog for Collect {
    fn warn(&self, event: &serde_json::Value) {
        self.0.borrow_mut().push(event.clone());
    }
}

#[test]
fn unreadable_permanent_values_are_left_alone_counted_and_reported_once() {
    let (clock, memory, redis) = setup();
    block_on(redis.store.set("bad", b"{not json", None)).unwrap();
    block_on(redis.store.execute(&Command::hset("hash", &[("f", "v")]))).unwrap();
    let log = Collect::default();
    let tiered = Tiered::new(&memory, Backing::redis(&redis), &*clock).with_log(&log);
    for _ in 0..2 {
        let error = block_on(tiered.read_json::<serde_json::Value>("bad", DataClass::PriceLatest)).unwrap_err();
        assert!(matches!(&error, ReadError::Unreadable(u) if u.key == "bad"), "{error}");
    }
    let error = block_on(tiered.read_json::<serde_json::Value>("hash", DataClass::Account)).unwrap_err();
    assert!(matches!(error, ReadError::Unreadable(Unreadable { expected: "a string", .. })));
    assert_eq!(block_on(redis.store.get("bad")).unwrap(), Some(b"{not json".to_vec()), "untouched");
    assert_eq!(block_on(redis.store.hgetall("hash")).unwrap().len(), 1, "untouched");
    let stats = memory.stats();
    assert_eq!((stats.unreadable["price_latest"], stats.unreadable["account"]), (2, 1));
    let events = log.0.borrow();
    assert_eq!(events.len(), 2, "once per key: {events:?}");
    assert_eq!(events[0]["key"], "bad");
}

/// Counts the requests that reach the store behind the tiers.
struct Counting<'s> {
    store: &'s Switchable,
    requests: std::cell::Cell<u32>,
}

#[async_trait(?Send)]
impl Store for Counting<'_> {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.requests.set(self.requests.get() + 1);
        self.store.pipeline(commands).await
    }
    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.pipeline(commands).await
    }
}

#[test]
fn absence_is_remembered_for_the_fresh_window_and_replaced_by_writes() {
    let (clock, memory, redis) = setup();
    block_on(redis.store.set("latest", b"1", None)).unwrap();
    let counting = Counting { store: &redis, requests: Default::default() };
    let tiered = Tiered::new(&memory, Backing::redis(&counting), &*clock);
    let candidates = [("cached", DataClass::Price), ("latest", DataClass::PriceLatest)];
    let (index, read) = block_on(tiered.read_first(&candidates)).unwrap().unwrap();
    assert_eq!((index, read.tier, counting.requests.get()), (1, Tier::Redis, 1), "one request for both");
    let (index, read) = block_on(tiered.read_first(&candidates)).unwrap().unwrap();
    assert_eq!((index, read.tier, counting.requests.get()), (1, Tier::L1, 1), "both known: no request");
    // A write through the tiers replaces the negative entry at once.
    block_on(tiered.set("cached", b"2", Some(Duration::from_secs(30)))).unwrap();
    let (index, read) = block_on(tiered.read_first(&candidates)).unwrap().unwrap();
    assert_eq!((index, read.value.as_slice(), counting.requests.get()), (0, b"2".as_slice(), 2));
    // An absence is remembered for the fresh window only.
    block_on(redis.store.unlink(&["cached".to_owned()])).unwrap();
    block_on(tiered.pipeline(&[Command::unlink(&["cached"])])).unwrap();
    assert_eq!(block_on(tiered.read("cached", DataClass::Price)).unwrap(), None);
    let requests = counting.requests.get();
    block_on(redis.store.set("cached", b"3", Some(Duration::from_secs(30)))).unwrap(); // another isolate
    assert_eq!(block_on(tiered.read("cached", DataClass::Price)).unwrap(), None, "still within the window");
    assert_eq!(counting.requests.get(), requests);
    clock.advance_ms(2_000);
    assert_eq!(block_on(tiered.read("cached", DataClass::Price)).unwrap().unwrap().value, b"3");
}

#[test]
fn binary_values_come_back_byte_identical() {
    let all: Vec<u8> = (0..=255).collect();
    let (clock, memory, redis) = setup();
    let tiered = Tiered::new(&memory, Backing::redis(&redis), &*clock);
    block_on(tiered.set("bin", &all, None)).unwrap();
    assert_eq!(block_on(tiered.read("bin", DataClass::Raw)).unwrap().unwrap().value, all, "from L1");
    assert_eq!(block_on(redis.store.get("bin")).unwrap(), Some(all.clone()), "from the memory store");
    let alone = Tiered::new(&memory, Backing::Memory(&redis.store), &*clock);
    assert_eq!(block_on(alone.read("bin", DataClass::Raw)).unwrap().unwrap().value, all, "memory only");
}

#[test]
fn unreadable_cache_values_are_discarded_and_untimed_ones_expired() {
    let (clock, memory, redis) = setup();
    block_on(redis.store.set("bad", b"{not json", Some(Duration::from_secs(30)))).unwrap();
    block_on(redis.store.set("forever", b"{}", None)).unwrap();
    let tiered = Tiered::new(&memory, Backing::redis(&redis), &*clock);
    assert_eq!(block_on(tiered.read_json::<serde_json::Value>("bad", DataClass::Ticker)).unwrap(), None);
    assert_eq!(block_on(redis.store.get("bad")).unwrap(), None, "a cache value may go");
    assert_eq!(memory.stats().discarded["ticker"], 1);
    assert_eq!(block_on(tiered.read("forever", DataClass::Ticker)).unwrap(), None, "no TTL: expired");
    let permanent = block_on(tiered.read("forever", DataClass::Raw)).unwrap().unwrap();
    assert_eq!(permanent.value, b"{}");
}

/// Counts pipelines and holds each one until the gate opens, so reads overlap.
struct Gated<'a> {
    store: &'a Switchable,
    requests: std::cell::Cell<usize>,
    open: std::cell::Cell<bool>,
}

#[async_trait(?Send)]
impl Store for Gated<'_> {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.requests.set(self.requests.get() + 1);
        std::future::poll_fn(|cx| {
            if self.open.get() {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
        self.store.pipeline(commands).await
    }
    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.pipeline(commands).await
    }
}

fn memory_tier_off() -> (Arc<FixedClock>, IsolateCache, Switchable) {
    let (clock, _, redis) = setup();
    let config =
        TierConfig { memory_fresh_for: Duration::ZERO, memory_max_entries: 100, stale_grace: Duration::from_secs(60) };
    (clock, IsolateCache::new(config), redis)
}

#[test]
fn concurrent_reads_of_the_same_keys_share_one_request_with_the_memory_tier_off() {
    use futures_util::FutureExt;
    let (clock, memory, redis) = memory_tier_off();
    block_on(redis.store.set("latest", b"1", None)).unwrap();
    let gated = Gated { store: &redis, requests: Default::default(), open: Default::default() };
    let tiered = Tiered::new(&memory, Backing::redis(&gated), &*clock);
    let candidates = [("cached", DataClass::Price), ("latest", DataClass::PriceLatest)];
    let mut reads: Vec<_> = (0..3).map(|_| Box::pin(tiered.read_first(&candidates))).collect();
    for read in &mut reads {
        assert!(read.now_or_never().is_none());
    }
    assert_eq!(gated.requests.get(), 1, "the second and third read joined the first");
    gated.open.set(true);
    for read in reads {
        let (index, read) = block_on(read).unwrap().unwrap();
        assert_eq!((index, read.value.as_slice(), read.tier), (1, b"1".as_slice(), Tier::Redis));
    }
    assert_eq!(memory.stats().classes["price_latest"].coalesced, 2);
    block_on(tiered.read_first(&candidates)).unwrap().unwrap();
    assert_eq!(gated.requests.get(), 2, "nothing is cached: a later read asks Redis again");
    let other = [("latest", DataClass::PriceLatest)];
    gated.open.set(false);
    let mut first = Box::pin(tiered.read_first(&candidates));
    let mut second = Box::pin(tiered.read_first(&other));
    assert!(first.as_mut().now_or_never().is_none() && second.as_mut().now_or_never().is_none());
    assert_eq!(gated.requests.get(), 4, "other keys, another request");
    gated.open.set(true);
    block_on(first).unwrap();
    block_on(second).unwrap();
}

#[test]
fn a_read_never_joins_one_that_began_before_a_write() {
    use futures_util::FutureExt;
    let (clock, memory, redis) = memory_tier_off();
    block_on(redis.store.set("latest", b"old", None)).unwrap();
    let gated = Gated { store: &redis, requests: Default::default(), open: Default::default() };
    let tiered = Tiered::new(&memory, Backing::redis(&gated), &*clock);
    let mut before = Box::pin(tiered.read("latest", DataClass::PriceLatest));
    assert!(before.as_mut().now_or_never().is_none(), "in flight");
    // The write runs through the same gate: open it for the write only.
    gated.open.set(true);
    block_on(tiered.set("latest", b"new", None)).unwrap();
    gated.open.set(false);
    let mut after = Box::pin(tiered.read("latest", DataClass::PriceLatest));
    assert!(after.as_mut().now_or_never().is_none());
    assert_eq!(gated.requests.get(), 3, "read, write, and a read of its own");
    gated.open.set(true);
    assert_eq!(block_on(after).unwrap().unwrap().value, b"new");
    block_on(before).unwrap();
}
