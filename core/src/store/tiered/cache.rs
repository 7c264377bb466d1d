//! The isolate cache (L1, the "memory tier" of `MEMORY_TIER_TTL`): what this isolate last
//! wrote or read of each key, when, and until when it lives; the hit, miss and unreadable
//! counters per data class; and the Redis reads in flight that a read may join. It outlives
//! requests (a static in the worker). It keeps and counts; when to ask it, and what to do
//! with its answer, is the tier policy's ([`super::Tiered`]).
//!
//! Writes are mirrored from their [`Command`]s ([`IsolateCache::mirror`]): a plain `SET`
//! stores the value with its TTL, a delete stores an absence, any other write forgets the key.
//! An entry answers as fresh only within min(its TTL, `MEMORY_TIER_TTL`), and as stale while
//! Redis fails up to `STALE_GRACE_SECONDS` old; an absence is never served stale.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use lru::LruCache;
use serde::Serialize;

use super::read::{Read, Tier};
use crate::single_flight::SingleFlight;
use crate::store::command::Effect;
use crate::store::{Command, Replies, StoreError};
use crate::ttl::DataClass;

/// Keys whose unreadable value this isolate has already reported (bounded, oldest forgotten).
const REPORTED_KEYS: usize = 1024;

/// How the isolate-local memory tier behaves in front of Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierConfig {
    /// `MEMORY_TIER_TTL` (seconds, default 2): how long an L1 entry answers as fresh; capped
    /// by the entry's own TTL. Short, because other isolates write Redis too. 0 makes every
    /// read go to Redis (L1 then only serves stale-if-error).
    pub memory_fresh_for: Duration,
    /// `MEMORY_TIER_MAX_ENTRIES` (default 10000): the L1 bound (LRU eviction).
    pub memory_max_entries: usize,
    /// `STALE_GRACE_SECONDS` (default 3600): how old an L1 entry may be and still be served,
    /// flagged stale, while Redis fails.
    pub stale_grace: Duration,
}

impl Default for TierConfig {
    fn default() -> Self {
        Self {
            memory_fresh_for: Duration::from_secs(2),
            memory_max_entries: crate::store::memory::DEFAULT_MAX_ENTRIES,
            stale_grace: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    /// `None`: Redis said the key does not exist (a negative entry).
    value: Option<Vec<u8>>,
    stored_at_ms: i64,
    /// The value's own expiry (its TTL in Redis); `None` for permanent values.
    expires_at_ms: Option<i64>,
}

/// Hit and miss counts of one data class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ClassCounters {
    pub l1_hits: u64,
    pub l1_misses: u64,
    pub l2_hits: u64,
    pub l2_misses: u64,
    pub stale_served: u64,
    /// Redis reads answered by another request's read of the same keys then in flight.
    pub coalesced: u64,
}

/// What the memory tier has seen since the isolate started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TierStats {
    pub entries: usize,
    /// Reads (or history members) of permanent data that did not decode, per class; the data
    /// was left untouched.
    pub unreadable: BTreeMap<&'static str, u64>,
    /// Cache values that did not decode and were discarded, per class.
    pub discarded: BTreeMap<&'static str, u64>,
    pub classes: BTreeMap<&'static str, ClassCounters>,
}

struct State {
    entries: LruCache<String, Entry>,
    stats: TierStats,
    reported: LruCache<String, ()>,
    /// Bumped by every write through the tiers: a read only joins a Redis read begun since.
    writes: u64,
}

/// The isolate-local L1 and its counters (not the [`crate::store::memory::MemoryStore`],
/// which stands in for Redis itself when none is configured). `std::sync::Mutex`: held only
/// for map operations, never across an await.
pub struct IsolateCache {
    config: TierConfig,
    state: Mutex<State>,
    /// Redis reads in flight, by the keys they read and the writes seen when they began.
    pub(super) reads: SingleFlight<Result<Replies, StoreError>>,
}

impl IsolateCache {
    pub fn new(config: TierConfig) -> Self {
        let capacity = NonZeroUsize::new(config.memory_max_entries.max(1)).expect("max(1) is non-zero");
        let reported = LruCache::new(NonZeroUsize::new(REPORTED_KEYS).expect("a non-zero constant"));
        Self {
            config,
            state: Mutex::new(State {
                entries: LruCache::new(capacity),
                stats: TierStats::default(),
                reported,
                writes: 0,
            }),
            reads: SingleFlight::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> TierStats {
        let state = self.state();
        TierStats { entries: state.entries.len(), ..state.stats.clone() }
    }

    /// Counts `n` unreadable permanent values of `class` (history members are counted here
    /// by their reader).
    pub fn count_unreadable(&self, class: DataClass, n: u64) {
        *self.state().stats.unreadable.entry(class.name()).or_default() += n;
    }

    /// Counts one cache value of `class` that did not decode and was discarded.
    pub(super) fn count_discarded(&self, class: DataClass) {
        *self.state().stats.discarded.entry(class.name()).or_default() += 1;
    }

    /// True the first time `key` is reported in this isolate.
    pub(super) fn first_report(&self, key: &str) -> bool {
        self.state().reported.put(key.to_owned(), ()).is_none()
    }

    pub(super) fn count(&self, class: DataClass, bump: impl FnOnce(&mut ClassCounters)) {
        bump(self.state().stats.classes.entry(class.name()).or_default());
    }

    pub(super) fn put(&self, key: &str, value: Vec<u8>, now: i64, expires_at_ms: Option<i64>) {
        self.state().entries.put(key.to_owned(), Entry { value: Some(value), stored_at_ms: now, expires_at_ms });
    }

    /// Remembers that `key` does not exist, for the fresh window only.
    pub(super) fn put_absent(&self, key: &str, now: i64) {
        self.state().entries.put(key.to_owned(), Entry { value: None, stored_at_ms: now, expires_at_ms: None });
    }

    /// Names a Redis read of `candidates` begun now: the same keys (and classes, which decide
    /// the commands) after the same number of writes through this isolate's tiers.
    pub(super) fn read_flight_key(&self, candidates: &[(&str, DataClass)]) -> String {
        let mut key = self.state().writes.to_string();
        for (name, class) in candidates {
            key.push('\0');
            key.push_str(name);
            key.push('\0');
            key.push_str(class.name());
        }
        key
    }

    fn fresh_for_ms(&self) -> i64 {
        self.config.memory_fresh_for.as_millis() as i64
    }

    /// What L1 knows of `key` at `now`: `Some(Some(read))` a fresh value, `Some(None)` a
    /// fresh absence, `None` nothing fresh (ask Redis).
    pub(super) fn fresh(&self, key: &str, now: i64) -> Option<Option<Read<Vec<u8>>>> {
        let entry = self.get(key)?;
        let age_ms = now - entry.stored_at_ms;
        let fresh = age_ms < self.fresh_for_ms() && entry.expires_at_ms.is_none_or(|at| now < at);
        fresh.then(|| {
            entry.value.map(|value| Read {
                value,
                tier: Tier::L1,
                age_ms,
                ttl_ms: entry.expires_at_ms.map(|at| at - now),
            })
        })
    }

    /// A value young enough to serve while Redis fails (never an absence).
    pub(super) fn stale(&self, key: &str, now: i64) -> Option<Read<Vec<u8>>> {
        let entry = self.get(key)?;
        let age_ms = now - entry.stored_at_ms;
        let value = entry.value.filter(|_| age_ms <= self.config.stale_grace.as_millis() as i64)?;
        Some(Read { value, tier: Tier::MemoryStale, age_ms, ttl_ms: Some(0) })
    }

    pub(super) fn forget(&self, key: &str) {
        self.state().entries.pop(key);
    }

    fn get(&self, key: &str) -> Option<Entry> {
        self.state().entries.get(key).cloned()
    }

    /// Applies what `command` did to L1 (see the module doc), from its [`Effect`]: a `SET`
    /// built by `Command::set` is stored with its TTL; anything else that writes (including
    /// conditional `SET`s, whose outcome depends on Redis) drops its keys.
    pub(super) fn mirror(&self, command: &Command, now: i64) {
        if command.effect() != Effect::Read {
            self.state().writes += 1;
        }
        match command.effect() {
            Effect::Read => {}
            Effect::Set { ttl } => match (command.keys().first(), command.args().get(1)) {
                (Some(key), Some(value)) => {
                    let expires_at_ms = ttl.map(|ttl| now + ttl.as_millis() as i64);
                    self.put(key, value.clone(), now, expires_at_ms);
                }
                _ => command.keys().iter().for_each(|key| self.forget(key)),
            },
            Effect::Delete => command.keys().iter().for_each(|key| self.put_absent(key, now)),
            Effect::Change => command.keys().iter().for_each(|key| self.forget(key)),
        }
    }
}
