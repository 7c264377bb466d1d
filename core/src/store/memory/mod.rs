//! The in-memory store: a small Redis interpreter with Redis semantics for the commands
//! edgesync uses (strings with TTLs, hashes, sets, sorted sets, `SCAN MATCH`, `UNLINK`,
//! `PTTL`, `INFO`). It is the whole store in `make dev` when no Redis is configured, and it is
//! checked against real Redis by the conformance suite ([`crate::store::conformance`]), so
//! the two cannot drift.
//!
//! It is bounded by entry count with LRU eviction (`MEMORY_TIER_MAX_ENTRIES`), expires keys
//! by the injected [`Clock`], persists nothing and is not shared between isolates. `EVAL` is
//! not supported (it answers an error); nothing that runs on the memory store needs scripts.
//!
//! Its entries can be exported and loaded as [`StoredEntry`]s, which is how the durable tier
//! ([`crate::store::durable`]) runs the same interpreter over rows it keeps elsewhere.
//!
//! - [`commands`]: the command interpreter.
//! - [`zset`]: sorted sets in Redis order.

mod commands;
pub mod zset;

use std::collections::{BTreeMap, BTreeSet};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lru::LruCache;

use super::{Command, Replies, Store, StoreError};
use crate::clock::Clock;

/// Default bound on entries.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

/// A value of one of Redis's types.
#[derive(Debug, Clone)]
enum Value {
    Str(Vec<u8>),
    Hash(BTreeMap<String, String>),
    Set(BTreeSet<String>),
    ZSet(zset::SortedSet),
}

#[derive(Debug, Clone)]
struct Entry {
    value: Value,
    /// Absolute expiry in ms since the epoch; `None` is permanent.
    expires_at_ms: Option<i64>,
}

/// One key's value and expiry in a portable form: what the durable tier stores per key.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredEntry {
    pub value: StoredValue,
    /// Absolute expiry in ms since the epoch; `None` is permanent.
    pub expires_at_ms: Option<i64>,
}

/// A value of one of Redis's types, portable.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredValue {
    /// Bytes (text as text, anything else as base64: [`crate::codec::WireBytes`]).
    String(#[serde(with = "crate::codec::wire_bytes")] Vec<u8>),
    Hash(BTreeMap<String, String>),
    Set(BTreeSet<String>),
    /// Members with their scores, in Redis order.
    Zset(Vec<(String, f64)>),
}

impl StoredValue {
    /// Redis's `TYPE` name.
    pub fn kind(&self) -> &'static str {
        match self {
            StoredValue::String(_) => "string",
            StoredValue::Hash(_) => "hash",
            StoredValue::Set(_) => "set",
            StoredValue::Zset(_) => "zset",
        }
    }
}

impl From<&Entry> for StoredEntry {
    fn from(entry: &Entry) -> Self {
        let value = match &entry.value {
            Value::Str(bytes) => StoredValue::String(bytes.clone()),
            Value::Hash(fields) => StoredValue::Hash(fields.clone()),
            Value::Set(members) => StoredValue::Set(members.clone()),
            Value::ZSet(set) => StoredValue::Zset(set.iter().map(|(m, s)| (m.to_owned(), s)).collect()),
        };
        StoredEntry { value, expires_at_ms: entry.expires_at_ms }
    }
}

impl From<StoredEntry> for Entry {
    fn from(stored: StoredEntry) -> Self {
        let value = match stored.value {
            StoredValue::String(bytes) => Value::Str(bytes),
            StoredValue::Hash(fields) => Value::Hash(fields),
            StoredValue::Set(members) => Value::Set(members),
            StoredValue::Zset(members) => {
                let mut set = zset::SortedSet::default();
                for (member, score) in members {
                    set.insert(member, score);
                }
                Value::ZSet(set)
            }
        };
        Entry { value, expires_at_ms: stored.expires_at_ms }
    }
}

/// The keyspace plus the counters `INFO` reports.
struct Keyspace {
    entries: LruCache<String, Entry>,
    evicted: u64,
}

pub struct MemoryStore {
    clock: Arc<dyn Clock + Send + Sync>,
    /// `std::sync::Mutex`: held for one batch at a time and never across an await, so a batch
    /// (pipeline or transaction) is atomic with respect to other callers.
    keyspace: Mutex<Keyspace>,
}

impl MemoryStore {
    /// A store holding at most `max_entries` keys (at least 1); the least recently used key is
    /// evicted to make room, and counted in `INFO`'s `evicted_keys`.
    pub fn new(clock: Arc<dyn Clock + Send + Sync>, max_entries: usize) -> Self {
        let capacity = NonZeroUsize::new(max_entries.max(1)).expect("max(1) is non-zero");
        Self { clock, keyspace: Mutex::new(Keyspace { entries: LruCache::new(capacity), evicted: 0 }) }
    }

    fn run_all(&self, commands: &[Command]) -> Replies {
        let now = self.clock.now_ms();
        let mut keyspace = self.keyspace.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        commands.iter().map(|command| commands::apply(&mut keyspace, now, command)).collect()
    }

    /// Number of live keys (expired ones are dropped first).
    pub fn len(&self) -> usize {
        let now = self.clock.now_ms();
        let mut keyspace = self.keyspace.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keyspace.purge_expired(now);
        keyspace.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Puts `key` in as `entry` (replacing what it held), e.g. loaded from durable rows.
    pub fn load(&self, key: &str, entry: StoredEntry) {
        let mut keyspace = self.keyspace.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keyspace.insert(key.to_owned(), entry.into());
    }

    /// What `key` holds now (`None`: absent or expired), in portable form.
    pub fn export(&self, key: &str) -> Option<StoredEntry> {
        let now = self.clock.now_ms();
        let mut keyspace = self.keyspace.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        keyspace.live(now, key).map(|entry| StoredEntry::from(&*entry))
    }
}

impl Keyspace {
    /// The live entry at `key`, promoting it in the LRU order; expired entries are removed.
    fn live(&mut self, now: i64, key: &str) -> Option<&mut Entry> {
        if self.entries.peek(key).is_some_and(|e| e.expires_at_ms.is_some_and(|at| at <= now)) {
            self.entries.pop(key);
        }
        self.entries.get_mut(key)
    }

    fn insert(&mut self, key: String, entry: Entry) {
        if let Some((evicted_key, _)) = self.entries.push(key.clone(), entry) {
            if evicted_key != key {
                self.evicted += 1;
            }
        }
    }

    fn purge_expired(&mut self, now: i64) {
        let expired: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.expires_at_ms.is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.entries.pop(&key);
        }
    }
}

#[async_trait(?Send)]
impl Store for MemoryStore {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        Ok(self.run_all(commands))
    }

    /// Atomic for free: one lock covers the whole batch.
    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        Ok(self.run_all(commands))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::store::Reply;
    use futures_executor::block_on;

    #[test]
    fn evicts_the_least_recently_used_key_and_counts_it() {
        let store = MemoryStore::new(Arc::new(FixedClock::at(0)), 2);
        block_on(store.set("a", b"1", None)).unwrap();
        block_on(store.set("b", b"2", None)).unwrap();
        block_on(store.get("a")).unwrap(); // a is now more recent than b
        block_on(store.set("c", b"3", None)).unwrap();
        assert_eq!(block_on(store.get("b")).unwrap(), None);
        assert_eq!(block_on(store.get("a")).unwrap(), Some(b"1".to_vec()));
        let info = block_on(store.execute(&Command::new("INFO"))).unwrap().into_string().unwrap();
        assert!(info.contains("evicted_keys:1"), "{info}");
        assert_eq!(store.len(), 2);
        assert_eq!(block_on(store.execute(&Command::new("DBSIZE"))).unwrap(), Reply::Int(2));
    }
}
