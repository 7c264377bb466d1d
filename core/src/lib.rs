//! edgesync's core: everything the Cloudflare worker and the migrator share, with no I/O
//! runtime of its own. I/O happens behind small traits whose implementations live at the edges
//! (`worker::Fetch` in the worker, a native client in tests and the migrator).
//!
//! A map of the crate:
//!
//! - [`domain`]: the shared vocabulary: key segments, exchanges, data classes (a leaf).
//! - [`keys`]: the key schema, the contract for every key edgesync writes, and segment
//!   validation.
//! - [`store`]: the [`store::Store`] trait (Redis commands, pipelines, transactions), the
//!   Upstash REST protocol client and the in-memory store.
//! - [`cluster`]: Redis Cluster's key → slot → master addressing (no I/O).
//! - [`http`]: the transport trait the Upstash and MEXC clients speak through.
//! - [`exchange`]: the MEXC Spot v3 client: request signing, typed responses, typed errors.
//! - [`market`]: market-data queries (ticker, OHLCV, deals, order book): keys, TTLs, fetching.
//! - [`warm`]: cache warming.
//! - [`sync`]: the cron tasks that copy exchange data into the store, one request per task.
//! - [`api`]: the HTTP API as plain request → response functions, and its route table.
//! - [`config`]: the composition root: every subsystem's settings, assembled once from the
//!   environment at the edge. Nothing imports it.
//! - [`env`]: reading settings from environment variables (the shared error and readers).
//! - [`ttl`]: the TTL table: data classes, their lifetimes and env overrides.
//! - [`codec`]: exact decimals and timestamps on the wire.
//! - [`glob`]: Redis glob matching, linear-time, and escaping.
//! - [`records`]: the shapes readers demand of stored JSON.
//! - [`log`]: the sink for operator-facing events (the edge supplies it).
//! - [`clock`]: time as a trait, because `SystemTime::now()` panics on wasm32.
//! - [`secret`]: a string that never prints itself.
//! - [`single_flight`]: concurrent identical calls in one isolate share one call.

pub mod api;
pub mod clock;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod domain;
pub mod env;
pub mod exchange;
pub mod glob;
pub mod http;
pub mod keys;
pub mod log;
pub mod market;
pub mod records;
pub mod secret;
pub mod single_flight;
pub mod store;
pub mod sync;
#[cfg(test)]
mod test_app;
pub mod ttl;
pub mod warm;

/// The services every handler and task works with, borrowed from the edge that built them.
///
/// The worker builds one per invocation; native tests build one over real or in-memory parts.
/// `store` is the one write path (L1 + Redis) and the tier-aware reader.
#[derive(Clone, Copy)]
pub struct App<'a> {
    pub config: &'a config::Config,
    pub store: &'a store::tiered::Tiered<'a>,
    pub http: &'a dyn http::HttpClient,
    pub clock: &'a dyn clock::Clock,
    /// Waiting for retries (`Retry-After`, backoff).
    pub sleep: &'a dyn clock::Sleep,
    /// Single-flight of read-through exchange calls (isolate-lifetime).
    pub flights: &'a api::flight::Flights,
    /// MEXC's clock offset, measured once per isolate (isolate-lifetime).
    pub mexc_clock: &'a exchange::clock_offset::ClockOffset,
    /// How a request waits for another's call it joined (the edge's: see [`single_flight`]).
    pub waiter: &'a dyn single_flight::Waiter,
    /// The built page `/` serves (the edge's build output).
    pub page: &'a api::page::PageAssets,
    /// The health report as last built (isolate-lifetime; a cron run forgets it).
    pub health_report: &'a api::health::kept::KeptReport,
}
