//! The tiered store: the isolate's own cache (L1, [`IsolateCache`]: the "memory tier" of
//! `MEMORY_TIER_TTL`) in front of Redis (L2, the source of truth).
//!
//! - **One write path.** [`Tiered`] is a [`Store`]: every command goes to Redis, and string
//!   writes (`SET`, `UNLINK`/`DEL`) are mirrored into L1 by the same call — also when Redis
//!   is down, so the newest value is what stale reads serve. Other writes drop the key from L1.
//! - **Fresh only briefly.** Other isolates write Redis too, so an L1 entry answers as fresh
//!   only within min(its TTL, `MEMORY_TIER_TTL`); after that reads go to Redis.
//! - **Stale if error.** When Redis fails, an L1 entry up to `STALE_GRACE_SECONDS` old is
//!   served, flagged [`Tier::MemoryStale`] with its age. Without one, the error surfaces.
//! - **Permanent data is never touched by a read.** A value that does not decode as its
//!   [`Record`] (or has the wrong Redis type) is *unreadable*. For a permanent class it is left
//!   exactly as it is — in Redis and in L1's view of it — counted per class (`unreadable`),
//!   reported once per key per isolate to the [`EventLog`], and answered as
//!   [`ReadError::Unreadable`] naming the key and the expected shape. Only a cache class may
//!   be discarded (unlinked, counted as `discarded`) and read as a miss: it can be fetched
//!   again. A cache-class value without a TTL is treated as expired: it would never refresh.
//!
//! - **Concurrent reads share one request.** Requests in the same isolate that need the same
//!   keys from Redis at the same time wait for one pipeline ([`SingleFlight`]) instead of
//!   each sending their own — with the memory tier off too: it caches nothing, a read only
//!   joins a Redis read already in flight, and never one that started before this isolate's
//!   last write.
//!
//! - **The durable copy last.** With a [`DurableStore`] attached, writes of permanent keys
//!   go to it too, after Redis; writes Redis did not acknowledge are kept there as pending
//!   ([`Written::deferred`]) for replay. Reads Redis cannot answer, and that L1 has nothing
//!   young enough for, are answered from it ([`Tier::DurableStale`]); the request then
//!   reports that it was served so ([`Tiered::durable_age_ms`]).
//!
//! [`IsolateCache`] outlives requests (a static in the worker); [`Tiered`] is the per-request
//! view that pairs it with that request's Redis client.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use lru::LruCache;
use serde::Serialize;

use serde_json::json;

use super::command::Effect;
use super::durable::DurableStore;
use super::{Command, Replies, Reply, Store, StoreError};
use crate::clock::Clock;
use crate::log::{EventLog, Silent};
use crate::records::Record;
use crate::single_flight::{Role, SingleFlight, Unbounded, Waiter};
use crate::ttl::DataClass;

/// Keys whose unreadable value this isolate has already reported (bounded, oldest forgotten).
const REPORTED_KEYS: usize = 1024;

/// A stored value that is there but is not what its reader needs. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value at `{key}` is not {expected} ({reason}); it was left as it is")]
pub struct Unreadable {
    pub key: String,
    pub class: DataClass,
    pub expected: &'static str,
    pub reason: String,
}

/// Why a read through the tiers has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Redis failed and no tier holds a copy young enough to serve.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A permanent value exists but cannot be read as its record.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
}

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
            memory_max_entries: super::memory::DEFAULT_MAX_ENTRIES,
            stale_grace: Duration::from_secs(3600),
        }
    }
}

/// Which tier answered a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Tier {
    /// L1, fresh.
    #[serde(rename = "l1")]
    L1,
    /// Redis.
    #[serde(rename = "redis")]
    Redis,
    /// L1, older than fresh, served because Redis failed.
    #[serde(rename = "memory-stale")]
    MemoryStale,
    /// The memory store that replaces Redis when none is configured and no durable copy is.
    #[serde(rename = "memory")]
    Memory,
    /// The durable copy, as the whole store (no Redis configured: `make dev`).
    #[serde(rename = "durable")]
    Durable,
    /// The durable copy, because Redis failed and L1 had nothing young enough.
    #[serde(rename = "durable-stale")]
    DurableStale,
}

impl Tier {
    /// The `X-Edgesync-Tier` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "l1",
            Tier::Redis => "redis",
            Tier::MemoryStale => "memory-stale",
            Tier::Memory => "memory",
            Tier::Durable => "durable",
            Tier::DurableStale => "durable-stale",
        }
    }
}

/// A value with where it came from and how old it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read<T> {
    pub value: T,
    pub tier: Tier,
    /// Milliseconds since this isolate last wrote or read the value from Redis (0 for Redis).
    pub age_ms: i64,
    /// Milliseconds the value has left to live, when known (`None`: permanent or unknown).
    pub ttl_ms: Option<i64>,
}

impl<T> Read<T> {
    /// The same read with its value converted (decoded, or wrapped for serving).
    pub fn map<U>(self, convert: impl FnOnce(T) -> U) -> Read<U> {
        Read { value: convert(self.value), tier: self.tier, age_ms: self.age_ms, ttl_ms: self.ttl_ms }
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
    /// Answers derived from Redis reads (the health report), by name, with when.
    derived: BTreeMap<&'static str, (i64, serde_json::Value)>,
    /// Bumped by every write through the tiers: a read only joins a Redis read begun since.
    writes: u64,
}

/// The isolate-local L1 and its counters (not the [`super::memory::MemoryStore`], which
/// stands in for Redis itself when none is configured). `std::sync::Mutex`: held only for
/// map operations, never across an await.
pub struct IsolateCache {
    config: TierConfig,
    state: Mutex<State>,
    /// Redis reads in flight, by the keys they read and the writes seen when they began.
    reads: SingleFlight<Result<Replies, StoreError>>,
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
                derived: BTreeMap::new(),
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

    /// An answer derived from Redis reads, if it was kept within the fresh window.
    pub fn derived(&self, name: &'static str, now: i64) -> Option<serde_json::Value> {
        let state = self.state();
        let (at, value) = state.derived.get(name)?;
        (now - at < self.fresh_for_ms()).then(|| value.clone())
    }

    /// Drops every kept answer: their inputs just changed (a cron ran in this isolate).
    pub fn forget_derived(&self) {
        self.state().derived.clear();
    }

    /// Keeps an answer derived from Redis reads for the fresh window.
    pub fn keep_derived(&self, name: &'static str, value: serde_json::Value, now: i64) {
        self.state().derived.insert(name, (now, value));
    }

    /// Counts `n` unreadable permanent values of `class` (history members are counted here
    /// by their reader).
    pub fn count_unreadable(&self, class: DataClass, n: u64) {
        *self.state().stats.unreadable.entry(class.name()).or_default() += n;
    }

    /// True the first time `key` is reported in this isolate.
    fn first_report(&self, key: &str) -> bool {
        self.state().reported.put(key.to_owned(), ()).is_none()
    }

    fn count(&self, class: DataClass, bump: impl FnOnce(&mut ClassCounters)) {
        bump(self.state().stats.classes.entry(class.name()).or_default());
    }

    fn put(&self, key: &str, value: Vec<u8>, now: i64, expires_at_ms: Option<i64>) {
        self.state().entries.put(key.to_owned(), Entry { value: Some(value), stored_at_ms: now, expires_at_ms });
    }

    /// Remembers that `key` does not exist, for the fresh window only.
    fn put_absent(&self, key: &str, now: i64) {
        self.state().entries.put(key.to_owned(), Entry { value: None, stored_at_ms: now, expires_at_ms: None });
    }

    /// Names a Redis read of `candidates` begun now: the same keys (and classes, which decide
    /// the commands) after the same number of writes through this isolate's tiers.
    fn read_flight_key(&self, candidates: &[(&str, DataClass)]) -> String {
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
    fn fresh(&self, key: &str, now: i64) -> Option<Option<Read<Vec<u8>>>> {
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
    fn stale(&self, key: &str, now: i64) -> Option<Read<Vec<u8>>> {
        let entry = self.get(key)?;
        let age_ms = now - entry.stored_at_ms;
        let value = entry.value.filter(|_| age_ms <= self.config.stale_grace.as_millis() as i64)?;
        Some(Read { value, tier: Tier::MemoryStale, age_ms, ttl_ms: Some(0) })
    }

    fn forget(&self, key: &str) {
        self.state().entries.pop(key);
    }

    fn get(&self, key: &str) -> Option<Entry> {
        self.state().entries.get(key).cloned()
    }

    /// Applies what `command` did to L1 (see the module doc), from its [`Effect`]: a `SET`
    /// built by `Command::set` is stored with its TTL; anything else that writes (including
    /// conditional `SET`s, whose outcome depends on Redis) drops its keys.
    fn mirror(&self, command: &Command, now: i64) {
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

/// L1 in front of one request's L2.
pub struct Tiered<'a> {
    memory: &'a IsolateCache,
    redis: &'a dyn Store,
    clock: &'a dyn Clock,
    log: &'a dyn EventLog,
    /// False when L2 is itself a memory store: caching it in L1 would only duplicate it.
    l2_is_redis: bool,
    /// How a read waits for another request's read of the same keys, and for how long before
    /// asking Redis itself (see [`SingleFlight`]).
    waiter: &'a dyn Waiter,
    patience: Duration,
    /// The durable copy behind Redis, if any.
    durable: Option<&'a DurableStore>,
    /// The durable copy when it is the embedded store (its reads are then [`Tier::Durable`]).
    embedded_durable: Option<&'a DurableStore>,
    /// The age of the oldest durable-copy row this request was answered from, if any.
    durable_age_ms: std::cell::Cell<Option<i64>>,
}

/// What a write through the tiers did.
#[derive(Debug)]
pub struct Written {
    pub replies: Replies,
    /// Redis did not acknowledge the writes; the durable copy holds them for replay.
    pub deferred: bool,
    /// Keys the durable copy holds pending after this write (0 without a copy).
    pub copy_pending: u64,
}

impl<'a> Tiered<'a> {
    /// The memory tier in front of Redis.
    pub fn new(memory: &'a IsolateCache, redis: &'a dyn Store, clock: &'a dyn Clock) -> Self {
        Self {
            memory,
            redis,
            clock,
            log: &Silent,
            l2_is_redis: true,
            waiter: &Unbounded,
            patience: Duration::MAX,
            durable: None,
            embedded_durable: None,
            durable_age_ms: Default::default(),
        }
    }

    /// No Redis configured: `store` (a memory store) is the only tier; reads are labelled
    /// [`Tier::Memory`], and `memory` only keeps the counters.
    pub fn memory_only(memory: &'a IsolateCache, store: &'a dyn Store, clock: &'a dyn Clock) -> Self {
        Self { l2_is_redis: false, ..Self::new(memory, store, clock) }
    }

    /// No Redis configured: the durable copy is the whole store (data outlives isolates and
    /// restarts); reads are labelled [`Tier::Durable`].
    pub fn embedded(memory: &'a IsolateCache, durable: &'a DurableStore, clock: &'a dyn Clock) -> Self {
        Self { embedded_durable: Some(durable), ..Self::memory_only(memory, durable, clock) }
    }

    /// Keeps permanent writes in `durable` too, and answers from it what Redis cannot.
    pub fn with_durable(mut self, durable: &'a DurableStore) -> Self {
        self.durable = Some(durable);
        self
    }

    /// Reports unreadable permanent values to `log` (once per key per isolate).
    pub fn with_log(mut self, log: &'a dyn EventLog) -> Self {
        self.log = log;
        self
    }

    /// How a read waits for another request's read of the same keys, and at most how long
    /// (the edge passes its own [`Waiter`] and the Redis timeout).
    pub fn with_waiter(mut self, waiter: &'a dyn Waiter, patience: Duration) -> Self {
        self.waiter = waiter;
        self.patience = patience;
        self
    }

    /// The memory tier's counters.
    pub fn memory_tier(&self) -> &IsolateCache {
        self.memory
    }

    /// The store behind the memory tier (Redis, or the memory store in `make dev`).
    pub fn backing_store(&self) -> &dyn Store {
        self.redis
    }

    /// Where operator-facing events of this request go.
    pub fn events(&self) -> &dyn EventLog {
        self.log
    }

    /// The durable copy in either role: behind Redis, or the whole store.
    pub fn durable_copy(&self) -> Option<&DurableStore> {
        self.durable.or(self.embedded_durable)
    }

    /// How the reads of the store behind L1 are labelled when there is no Redis.
    pub fn embedded_tier(&self) -> Option<Tier> {
        (!self.l2_is_redis).then_some(if self.embedded_durable.is_some() { Tier::Durable } else { Tier::Memory })
    }

    /// The tier that answers a read that does not go through L1 (a hash, a sorted set, a
    /// scan): Redis, or the store the worker runs on without it. When Redis fails and the
    /// durable copy answers instead, [`Tiered::durable_age_ms`] says so.
    pub fn pipeline_tier(&self) -> Tier {
        self.embedded_tier().unwrap_or(Tier::Redis)
    }

    /// `Some(age)` when this request read anything from the durable copy because Redis
    /// failed: the age (ms) of the oldest row it read.
    pub fn durable_age_ms(&self) -> Option<i64> {
        self.durable_age_ms.get()
    }

    fn served_durable(&self, oldest_written_at_ms: Option<i64>) {
        let age = oldest_written_at_ms.map_or(0, |at| (self.clock.now_ms() - at).max(0));
        self.durable_age_ms.set(Some(self.durable_age_ms.get().map_or(age, |seen| seen.max(age))));
    }

    /// True for a write the durable copy keeps: it writes, and only keys the copy keeps.
    fn kept_by(durable: &DurableStore, command: &Command) -> bool {
        !command.is_read_only() && !command.keys().is_empty() && command.keys().iter().all(|k| durable.keeps(k))
    }

    /// Writes through every tier: Redis first, then the durable copy for the permanent keys;
    /// when Redis is unavailable and the copy took them, the write is deferred, not failed.
    pub async fn write(&self, commands: &[Command]) -> Result<Written, StoreError> {
        self.write_noting_deferral(commands, &[]).await
    }

    /// [`Tiered::write`], and when the write is deferred, `on_deferral` (permanent writes that
    /// say so, e.g. the tasks' statuses) runs on the copy in the same request.
    pub async fn write_noting_deferral(
        &self,
        commands: &[Command],
        on_deferral: &[Command],
    ) -> Result<Written, StoreError> {
        let outcome = self.redis.pipeline(commands).await;
        self.mirror_all(commands, &outcome);
        let Some(durable) = self.durable else {
            return outcome.map(|replies| Written { replies, deferred: false, copy_pending: 0 });
        };
        let is_kept: Vec<bool> = commands.iter().map(|c| Self::kept_by(durable, c)).collect();
        let mut kept: Vec<&Command> =
            commands.iter().zip(&is_kept).filter(|(_, keep)| **keep).map(|(c, _)| c).collect();
        match outcome {
            Ok(replies) => {
                let mut copy_pending = 0;
                if !kept.is_empty() {
                    match durable.run_borrowed(&kept, false).await {
                        Ok(run) => copy_pending = run.pending,
                        // Redis has the data; the copy catches up with the key's next write.
                        Err(error) => {
                            self.log.warn(&json!({ "event": "durable_copy_lagging", "error": error.to_string() }))
                        }
                    }
                }
                Ok(Written { replies, deferred: false, copy_pending })
            }
            Err(StoreError::Unavailable(reason)) if !kept.is_empty() => {
                let own = kept.len();
                kept.extend(on_deferral.iter().filter(|c| Self::kept_by(durable, c)));
                let run = durable.run_borrowed(&kept, true).await.map_err(|error| {
                    StoreError::Unavailable(format!("{reason}; the durable copy failed too: {error}"))
                })?;
                // Every command answers: the copy's reply where it ran, OK for the rest (cache
                // writes only Redis would have held; they refill).
                let mut kept_replies = run.replies.into_iter().take(own);
                let replies = is_kept
                    .iter()
                    .map(|keep| match keep {
                        true => kept_replies.next().unwrap_or(Ok(Reply::Nil)),
                        false => Ok(Reply::bulk("OK")),
                    })
                    .collect();
                Ok(Written { replies, deferred: true, copy_pending: run.pending })
            }
            Err(error) => Err(error),
        }
    }
}

impl Tiered<'_> {
    /// Writes what the durable copy holds pending back to Redis (each key's final state, never
    /// over a newer value: [`super::durable::replay`]). `None` without a copy; the error when
    /// Redis or the copy failed — everything then stays pending for the next attempt.
    pub async fn replay_pending(&self) -> Option<Result<super::durable::replay::ReplayReport, StoreError>> {
        let durable = self.durable?;
        Some(super::durable::replay::replay(self.redis, durable, self.clock.now_ms()).await)
    }
}

impl Tiered<'_> {
    /// Reads `key` as a string through the tiers (see the module doc). `Ok(None)` when no tier
    /// has it; `Err` when Redis failed and L1 has nothing young enough to serve, or when a
    /// permanent key holds another Redis type.
    pub async fn read(&self, key: &str, class: DataClass) -> Result<Option<Read<Vec<u8>>>, ReadError> {
        Ok(self.read_first(&[(key, class)]).await?.map(|(_, read)| read))
    }

    /// The first of `candidates` that exists, with its index, in **at most one** Redis request:
    /// L1 answers while it knows (a fresh value answers, a fresh absence passes to the next
    /// candidate); from the first candidate it does not know, every remaining one is read in
    /// one pipeline (`GET`, and `PTTL` for cache classes) and remembered, present or absent. With Redis
    /// failing, the first candidate L1 still holds a value for (within the stale grace) answers.
    pub async fn read_first(
        &self,
        candidates: &[(&str, DataClass)],
    ) -> Result<Option<(usize, Read<Vec<u8>>)>, ReadError> {
        if !self.l2_is_redis {
            return self.read_first_from_memory(candidates).await;
        }
        let now = self.clock.now_ms();
        let mut start = candidates.len();
        for (i, (key, class)) in candidates.iter().enumerate() {
            match self.memory.fresh(key, now) {
                Some(Some(read)) => {
                    self.memory.count(*class, |c| c.l1_hits += 1);
                    return Ok(Some((i, read)));
                }
                Some(None) => self.memory.count(*class, |c| c.l1_hits += 1),
                None => {
                    start = i;
                    break;
                }
            }
        }
        let unknown = &candidates[start..];
        if unknown.is_empty() {
            return Ok(None);
        }
        for (_, class) in unknown {
            self.memory.count(*class, |c| c.l1_misses += 1);
        }
        // `PTTL` only where the TTL matters: a cache value's lifetime; permanent data has none.
        let mut commands = Vec::with_capacity(unknown.len() * 2);
        for (key, class) in unknown {
            commands.push(Command::new("GET").arg(key));
            if !class.is_permanent() {
                commands.push(Command::new("PTTL").arg(key));
            }
        }
        let flight = self.memory.read_flight_key(unknown);
        let wait = || self.waiter.wait(self.patience);
        let (replies, role) = self.memory.reads.run(&flight, || self.redis.pipeline(&commands), wait).await;
        if role == Role::Joined {
            for (_, class) in unknown {
                self.memory.count(*class, |c| c.coalesced += 1);
            }
        }
        // An error reply other than WRONGTYPE (LOADING after a restart, MOVED from a cluster
        // node, READONLY, OOM, BUSY, …) says Redis could not answer, not what the key holds:
        // the read fails over like an outage instead of calling the data unreadable.
        let replies = replies.and_then(|replies| match replies.iter().find_map(|reply| reply.as_ref().err()) {
            Some(error) if !error.0.starts_with("WRONGTYPE") => {
                Err(StoreError::Unavailable(format!("Redis answered a read with `{}`", error.0)))
            }
            _ => Ok(replies),
        });
        let replies = match replies {
            Ok(replies) => replies,
            Err(error) => {
                for (i, (key, class)) in unknown.iter().enumerate() {
                    if let Some(read) = self.memory.stale(key, now) {
                        self.memory.count(*class, |c| c.stale_served += 1);
                        return Ok(Some((start + i, read)));
                    }
                }
                return self.read_first_from_durable(unknown, start, error).await;
            }
        };
        let mut replies = replies.into_iter();
        let mut found = None;
        for (i, (key, class)) in unknown.iter().enumerate() {
            let value = replies.next();
            let pttl = if class.is_permanent() { None } else { replies.next() };
            let read = match value {
                Some(Ok(Reply::Bulk(value))) => {
                    let expires_at_ms = match pttl {
                        Some(Ok(Reply::Int(ms))) if ms > 0 => Some(now + ms),
                        _ => None,
                    };
                    if expires_at_ms.is_none() && !class.is_permanent() {
                        // A cache value that never expires would never be refreshed.
                        self.memory.count(*class, |c| c.l2_misses += 1);
                        self.memory.forget(key);
                        None
                    } else {
                        self.memory.count(*class, |c| c.l2_hits += 1);
                        self.memory.put(key, value.clone(), now, expires_at_ms);
                        let ttl_ms = expires_at_ms.map(|at| at - now);
                        Some(Read { value, tier: Tier::Redis, age_ms: 0, ttl_ms })
                    }
                }
                Some(Ok(_)) => {
                    self.memory.count(*class, |c| c.l2_misses += 1);
                    self.memory.put_absent(key, now);
                    None
                }
                // WRONGTYPE: the key holds something this reader cannot use.
                Some(Err(error)) => match self.unreadable::<()>(key, *class, "a string", error.0).await {
                    Ok(_) => None,
                    Err(unreadable) if found.is_none() => return Err(unreadable),
                    Err(_) => None,
                },
                None => {
                    return Err(StoreError::UnexpectedReply { command: "GET".into(), detail: "no reply".into() }.into())
                }
            };
            if found.is_none() {
                found = read.map(|read| (start + i, read));
            }
        }
        Ok(found)
    }

    /// Redis failed with `error` and L1 holds nothing young enough: the durable copy's first
    /// present candidate, else the error.
    async fn read_first_from_durable(
        &self,
        unknown: &[(&str, DataClass)],
        start: usize,
        error: StoreError,
    ) -> Result<Option<(usize, Read<Vec<u8>>)>, ReadError> {
        let Some(durable) = self.durable else { return Err(error.into()) };
        let kept: Vec<(usize, &str, DataClass)> = unknown
            .iter()
            .enumerate()
            .filter(|(_, (key, _))| durable.keeps(key))
            .map(|(i, (key, class))| (i, *key, *class))
            .collect();
        if kept.is_empty() {
            return Err(error.into());
        }
        let commands: Vec<Command> = kept.iter().map(|(_, key, _)| Command::new("GET").arg(key)).collect();
        let Ok(run) = durable.run(&commands, false).await else { return Err(error.into()) };
        for ((i, _, class), reply) in kept.into_iter().zip(run.replies) {
            if let Ok(Reply::Bulk(value)) = reply {
                self.memory.count(class, |c| c.stale_served += 1);
                self.served_durable(run.oldest_written_at_ms);
                let age_ms = self.durable_age_ms().unwrap_or(0);
                return Ok(Some((start + i, Read { value, tier: Tier::DurableStale, age_ms, ttl_ms: None })));
            }
        }
        Err(error.into())
    }

    async fn read_first_from_memory(
        &self,
        candidates: &[(&str, DataClass)],
    ) -> Result<Option<(usize, Read<Vec<u8>>)>, ReadError> {
        for (i, (key, class)) in candidates.iter().enumerate() {
            match self.redis.get(key).await {
                Ok(Some(value)) => {
                    self.memory.count(*class, |c| c.l2_hits += 1);
                    let tier = self.embedded_tier().unwrap_or(Tier::Memory);
                    return Ok(Some((i, Read { value, tier, age_ms: 0, ttl_ms: None })));
                }
                Ok(None) => self.memory.count(*class, |c| c.l2_misses += 1),
                Err(StoreError::Command { error, .. }) => {
                    self.unreadable::<()>(key, *class, "a string", error.0).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(None)
    }

    /// [`Tiered::read`] and decode the value as `T` (see the module doc for what happens when
    /// it does not decode).
    pub async fn read_json<T: Record>(&self, key: &str, class: DataClass) -> Result<Option<Read<T>>, ReadError> {
        let Some(read) = self.read(key, class).await? else { return Ok(None) };
        match serde_json::from_slice::<T>(&read.value) {
            Ok(value) => Ok(Some(read.map(|_| value))),
            Err(error) => self.unreadable(key, class, T::EXPECTED, error.to_string()).await,
        }
    }

    /// [`Tiered::read_first`] and decode the answer as `T`. A cache value that does not decode
    /// is discarded and the next candidate answers (from what the same request brought).
    pub async fn read_json_first<T: Record>(
        &self,
        candidates: &[(&str, DataClass)],
    ) -> Result<Option<(usize, Read<T>)>, ReadError> {
        let mut offset = 0;
        while offset < candidates.len() {
            let Some((i, read)) = self.read_first(&candidates[offset..]).await? else { return Ok(None) };
            let (key, class) = candidates[offset + i];
            match serde_json::from_slice::<T>(&read.value) {
                Ok(value) => return Ok(Some((offset + i, read.map(|_| value)))),
                Err(error) => {
                    self.unreadable::<()>(key, class, T::EXPECTED, error.to_string()).await?;
                    offset += i + 1;
                }
            }
        }
        Ok(None)
    }

    /// The one rule for values that are there but cannot be read: a cache value is discarded
    /// and missed; a permanent one is left alone, counted, reported once, and an error.
    async fn unreadable<T>(
        &self,
        key: &str,
        class: DataClass,
        expected: &'static str,
        reason: String,
    ) -> Result<Option<T>, ReadError> {
        self.memory.forget(key);
        if !class.is_permanent() {
            *self.memory.state().stats.discarded.entry(class.name()).or_default() += 1;
            // Best effort: if Redis is down the value stays, and is discarded on the next read.
            let _ = self.redis.pipeline(&[Command::unlink(&[key])]).await;
            return Ok(None);
        }
        self.memory.count_unreadable(class, 1);
        if self.memory.first_report(key) {
            self.log.warn(&json!({
                "event": "unreadable_value",
                "key": key,
                "class": class.name(),
                "expected": expected,
                "reason": reason,
                "action": "left untouched",
            }));
        }
        Err(Unreadable { key: key.to_owned(), class, expected, reason }.into())
    }
}

#[async_trait(?Send)]
impl Store for Tiered<'_> {
    /// Reads fall back on the durable copy when Redis is unavailable; writes go through
    /// [`Tiered::write`] (a deferred write answers as the copy did).
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        if !commands.iter().all(Command::is_read_only) {
            return self.write(commands).await.map(|written| written.replies);
        }
        match (self.redis.pipeline(commands).await, self.durable) {
            (Err(StoreError::Unavailable(reason)), Some(durable)) => {
                let run = durable.run(commands, false).await.map_err(|error| {
                    StoreError::Unavailable(format!("{reason}; the durable copy failed too: {error}"))
                })?;
                self.served_durable(run.oldest_written_at_ms);
                Ok(run.replies)
            }
            (outcome, _) => outcome,
        }
    }

    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        let outcome = self.redis.transaction(commands).await;
        self.mirror_all(commands, &outcome);
        outcome
    }
}

impl Tiered<'_> {
    /// Mirrors the writes that Redis applied — or, when Redis could not be reached, all of
    /// them, so L1 holds the newest data for stale reads.
    fn mirror_all(&self, commands: &[Command], outcome: &Result<Replies, StoreError>) {
        if !self.l2_is_redis {
            return;
        }
        let now = self.clock.now_ms();
        for (index, command) in commands.iter().enumerate() {
            let applied = match outcome {
                Ok(replies) => replies.get(index).is_some_and(Result::is_ok),
                Err(StoreError::Unavailable(_)) => true,
                Err(_) => false,
            };
            if applied {
                self.memory.mirror(command, now);
            } else {
                command.keys().iter().for_each(|key| self.memory.forget(key));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use futures_executor::block_on;

    use super::*;
    use crate::clock::FixedClock;
    use crate::store::memory::MemoryStore;
    use crate::store::StoreExt;

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
        let tiered = Tiered::new(&memory, &redis, &*clock);
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
            block_on(Tiered::new(&memory, &redis, &*clock).set("k", b"kept", None)).unwrap();
            clock.advance_ms(3_000);
            let refusing = Refusing(reply);
            let tiered = Tiered::new(&memory, &refusing, &*clock);
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
        let tiered = Tiered::new(&memory, &redis, &*clock);
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
        let tiered = Tiered::new(&memory, &redis, &*clock);
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
        let tiered = Tiered::new(&memory, &redis, &*clock).with_log(&log);
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
        let tiered = Tiered::new(&memory, &counting, &*clock);
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
        let tiered = Tiered::new(&memory, &redis, &*clock);
        block_on(tiered.set("bin", &all, None)).unwrap();
        assert_eq!(block_on(tiered.read("bin", DataClass::Raw)).unwrap().unwrap().value, all, "from L1");
        assert_eq!(block_on(redis.store.get("bin")).unwrap(), Some(all.clone()), "from the memory store");
        let alone = Tiered::memory_only(&memory, &redis.store, &*clock);
        assert_eq!(block_on(alone.read("bin", DataClass::Raw)).unwrap().unwrap().value, all, "memory only");
    }

    #[test]
    fn unreadable_cache_values_are_discarded_and_untimed_ones_expired() {
        let (clock, memory, redis) = setup();
        block_on(redis.store.set("bad", b"{not json", Some(Duration::from_secs(30)))).unwrap();
        block_on(redis.store.set("forever", b"{}", None)).unwrap();
        let tiered = Tiered::new(&memory, &redis, &*clock);
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
        let config = TierConfig {
            memory_fresh_for: Duration::ZERO,
            memory_max_entries: 100,
            stale_grace: Duration::from_secs(60),
        };
        (clock, IsolateCache::new(config), redis)
    }

    #[test]
    fn concurrent_reads_of_the_same_keys_share_one_request_with_the_memory_tier_off() {
        use futures_util::FutureExt;
        let (clock, memory, redis) = memory_tier_off();
        block_on(redis.store.set("latest", b"1", None)).unwrap();
        let gated = Gated { store: &redis, requests: Default::default(), open: Default::default() };
        let tiered = Tiered::new(&memory, &gated, &*clock);
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
        let tiered = Tiered::new(&memory, &gated, &*clock);
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
}
