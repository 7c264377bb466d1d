//! The tier policy: [`Tiered`], one request's view of the tiers, pairing the isolate cache
//! ([`IsolateCache`], L1) with what backs it ([`Backing`]): Redis (L2, the source of truth)
//! with the durable copy behind it if one is attached, or — with no Redis configured — the
//! isolate's memory store or the durable copy as the whole store.
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
//! - **Concurrent reads share one request.** Requests in the same isolate that need the same
//!   keys from Redis at the same time wait for one pipeline
//!   ([`SingleFlight`](crate::single_flight::SingleFlight)) instead of each sending their
//!   own — with the memory tier off too: it caches nothing, a read only joins a Redis read
//!   already in flight, and never one that started before this isolate's last write.
//! - **The durable copy last.** With a [`DurableStore`] behind Redis, writes of permanent keys
//!   go to it too, after Redis; writes Redis did not acknowledge are kept there as pending
//!   ([`Written::deferred`]) for replay. Reads Redis cannot answer, and that L1 has nothing
//!   young enough for, are answered from it ([`Tier::DurableStale`]); the request then
//!   reports that it was served so ([`Tiered::durable_age_ms`]). The copy stands in for
//!   Redis in one place (`durable_instead`), whether it takes writes or answers reads.
//! - **Without Redis** the backing store is the only tier: L1 caches nothing (it would only
//!   duplicate memory), keeps the counters, and reads are labelled [`Tier::Memory`] or
//!   [`Tier::Durable`].

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use super::cache::IsolateCache;
use super::read::{Read, ReadError, Tier, Unreadable};
use crate::clock::Clock;
use crate::log::{EventLog, Silent};
use crate::records::Record;
use crate::single_flight::{Role, Unbounded, Waiter};
use crate::store::durable::client::CopyRun;
use crate::store::durable::replay::{replay, ReplayReport};
use crate::store::durable::DurableStore;
use crate::store::memory::MemoryStore;
use crate::store::{Command, Replies, Reply, Store, StoreError};
use crate::ttl::DataClass;

/// What stands behind the isolate cache: the one place that says which stores exist.
#[derive(Clone, Copy)]
pub enum Backing<'a> {
    /// Redis, the source of truth; with the durable copy behind it when one is attached
    /// (permanent writes kept there too, and what Redis cannot answer answered from it).
    Redis { redis: &'a dyn Store, durable: Option<&'a DurableStore> },
    /// No Redis configured and no durable copy: the isolate's memory store is the whole store.
    Memory(&'a MemoryStore),
    /// No Redis configured: the durable copy is the whole store (data outlives isolates and
    /// restarts).
    Durable(&'a DurableStore),
}

impl<'a> Backing<'a> {
    /// Redis with no durable copy behind it.
    pub fn redis(redis: &'a dyn Store) -> Self {
        Backing::Redis { redis, durable: None }
    }
}

/// What a durable copy does when it stands in for Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StandIn {
    /// Takes the writes Redis did not acknowledge, kept pending for replay.
    Writes,
    /// Answers reads from its rows.
    Reads,
}

/// L1 in front of one request's backing store.
pub struct Tiered<'a> {
    memory: &'a IsolateCache,
    backing: Backing<'a>,
    clock: &'a dyn Clock,
    log: &'a dyn EventLog,
    /// How a read waits for another request's read of the same keys, and for how long before
    /// asking Redis itself (see [`SingleFlight`](crate::single_flight::SingleFlight)).
    waiter: &'a dyn Waiter,
    patience: Duration,
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
    /// The isolate cache `memory` in front of `backing`.
    pub fn new(memory: &'a IsolateCache, backing: Backing<'a>, clock: &'a dyn Clock) -> Self {
        Self {
            memory,
            backing,
            clock,
            log: &Silent,
            waiter: &Unbounded,
            patience: Duration::MAX,
            durable_age_ms: Default::default(),
        }
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

    /// The store behind the memory tier (Redis, or the store the worker runs on without it).
    pub fn backing_store(&self) -> &dyn Store {
        match self.backing {
            Backing::Redis { redis, .. } => redis,
            Backing::Memory(store) => store,
            Backing::Durable(durable) => durable,
        }
    }

    /// Where operator-facing events of this request go.
    pub fn events(&self) -> &dyn EventLog {
        self.log
    }

    /// The durable copy in either role: behind Redis, or the whole store.
    pub fn durable_copy(&self) -> Option<&DurableStore> {
        match self.backing {
            Backing::Redis { durable, .. } => durable,
            Backing::Memory(_) => None,
            Backing::Durable(durable) => Some(durable),
        }
    }

    /// The durable copy behind Redis, the one that stands in for Redis when it fails.
    fn copy_behind_redis(&self) -> Option<&DurableStore> {
        match self.backing {
            Backing::Redis { durable, .. } => durable,
            Backing::Memory(_) | Backing::Durable(_) => None,
        }
    }

    /// How the reads of the store behind L1 are labelled when there is no Redis.
    pub fn embedded_tier(&self) -> Option<Tier> {
        match self.backing {
            Backing::Redis { .. } => None,
            Backing::Memory(_) => Some(Tier::Memory),
            Backing::Durable(_) => Some(Tier::Durable),
        }
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

    /// The durable copy `durable` stands in for Redis, which failed with `redis_failure`: it
    /// runs `commands` — writes kept pending for replay ([`StandIn::Writes`]), or reads
    /// answered from its rows ([`StandIn::Reads`]; the caller says when the request was
    /// served so). When the copy fails too, the error names both failures.
    async fn durable_instead(
        &self,
        durable: &DurableStore,
        commands: &[&Command],
        role: StandIn,
        redis_failure: &str,
    ) -> Result<CopyRun, StoreError> {
        durable
            .run_borrowed(commands, role == StandIn::Writes)
            .await
            .map_err(|error| StoreError::Unavailable(format!("{redis_failure}; the durable copy failed too: {error}")))
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
        let outcome = self.backing_store().pipeline(commands).await;
        self.mirror_all(commands, &outcome);
        let Some(durable) = self.copy_behind_redis() else {
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
                let run = self.durable_instead(durable, &kept, StandIn::Writes, &reason).await?;
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
    /// over a newer value: [`crate::store::durable::replay`]). `None` without a copy behind
    /// Redis; the error when Redis or the copy failed — everything then stays pending for the
    /// next attempt.
    pub async fn replay_pending(&self) -> Option<Result<ReplayReport, StoreError>> {
        let Backing::Redis { redis, durable: Some(durable) } = self.backing else { return None };
        Some(replay(redis, durable, self.clock.now_ms()).await)
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
        let Backing::Redis { redis, .. } = self.backing else {
            return self.read_first_from_embedded(candidates).await;
        };
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
        let (replies, role) = self.memory.reads.run(&flight, || redis.pipeline(&commands), wait).await;
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
        let Some(durable) = self.copy_behind_redis() else { return Err(error.into()) };
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
        let commands: Vec<&Command> = commands.iter().collect();
        let redis_failure = error.to_string();
        let Ok(run) = self.durable_instead(durable, &commands, StandIn::Reads, &redis_failure).await else {
            return Err(error.into());
        };
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

    /// No Redis: the backing store is the only tier, read key by key (it answers in the isolate
    /// or in one Durable Object request each), with nothing cached in L1.
    async fn read_first_from_embedded(
        &self,
        candidates: &[(&str, DataClass)],
    ) -> Result<Option<(usize, Read<Vec<u8>>)>, ReadError> {
        for (i, (key, class)) in candidates.iter().enumerate() {
            match self.backing_store().get(key).await {
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
            self.memory.count_discarded(class);
            // Best effort: if Redis is down the value stays, and is discarded on the next read.
            let _ = self.backing_store().pipeline(&[Command::unlink(&[key])]).await;
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
        match (self.backing_store().pipeline(commands).await, self.copy_behind_redis()) {
            (Err(StoreError::Unavailable(reason)), Some(durable)) => {
                let commands: Vec<&Command> = commands.iter().collect();
                let run = self.durable_instead(durable, &commands, StandIn::Reads, &reason).await?;
                self.served_durable(run.oldest_written_at_ms);
                Ok(run.replies)
            }
            (outcome, _) => outcome,
        }
    }

    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        let outcome = self.backing_store().transaction(commands).await;
        self.mirror_all(commands, &outcome);
        outcome
    }
}

impl Tiered<'_> {
    /// Mirrors the writes that Redis applied — or, when Redis could not be reached, all of
    /// them, so L1 holds the newest data for stale reads.
    fn mirror_all(&self, commands: &[Command], outcome: &Result<Replies, StoreError>) {
        if !matches!(self.backing, Backing::Redis { .. }) {
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
