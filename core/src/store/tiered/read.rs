//! What a read through the tiers answers: the value with the [`Tier`] that served it and its
//! age ([`Read`]), or why there is no answer ([`ReadError`]: the store failed, or the value is
//! there but [`Unreadable`]). The vocabulary only; the rules that pick the tier are the
//! policy's ([`super::Tiered`]).

use serde::Serialize;

use crate::store::StoreError;
use crate::ttl::DataClass;

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
