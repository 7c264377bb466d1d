//! The durable tier: a copy of the permanent data that outlives Redis outages and isolates,
//! kept by a SQLite-backed Durable Object (one per namespace) and reached over a typed wire.
//!
//! - **One write path.** Every write through the tiers goes to Redis and then to the copy
//!   (only permanent keys: [`DurableStore::keeps`]). When Redis did not acknowledge a write,
//!   the copy marks the written keys *pending*: an outbox of keys rather than of commands, so
//!   it is bounded by the number of keys however long the outage lasts, and a replay writes
//!   each key's final state — idempotent by construction ([`replay`]).
//! - **Reads of last resort.** When Redis fails and the isolate has nothing young enough,
//!   the copy answers, and the response says `X-Edgesync-Tier: durable-stale` with its `Age`.
//! - **The whole store in `make dev`.** With no Redis configured, the copy is the store
//!   (data survives a restart of `make dev`).
//!
//! Commands run on the copy with Redis semantics: [`copy::DurableCopy`] loads the rows of the
//! keys a batch names into the memory store's interpreter, runs the batch, and writes back
//! what changed — the interpreter the conformance suite checks against real Redis.
//!
//! - [`wire`]: the requests and responses between the worker and the Durable Object.
//! - [`copy`]: the copy's logic over [`rows::Rows`] (SQLite in the Durable Object).
//! - [`rows`]: the copy's storage, as the copy needs it.
//! - [`member_write`]: history appends applied member by member, not to a loaded set.
//! - [`blind_write`]: writes that replace a key whatever it held, run without loading it.
//! - [`client`]: [`DurableStore`], the copy as a [`super::Store`] over a transport.
//! - [`replay`]: pending keys back to Redis, newer value wins.

pub mod blind_write;
pub mod client;
pub mod copy;
#[cfg(test)]
pub mod map_rows;
pub mod member_write;
pub mod replay;
pub mod rows;
pub mod wire;

pub use client::{CopyRun, DurableStore, DurableTransport};

/// Whether the worker keeps the durable copy, and how big it may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableConfig {
    /// `DURABLE_COPY` (`on`, the default, or `off`): used when the `EDGE_STORE` Durable
    /// Object binding exists.
    pub enabled: bool,
    /// `DURABLE_MAX_KEYS` (default 10000): keys the copy holds at most, per namespace.
    pub max_keys: u64,
}
