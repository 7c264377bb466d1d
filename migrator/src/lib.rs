//! The migrator: moves trading bots' legacy keys (TradingBoost-Strategy, qrl-api, …) to the schema their
//! new readers — or edgesync's worker — read, journaled so a run can resume after a crash, be
//! verified, and be rolled back exactly. The binary (`main.rs`) is the CLI over these modules:
//!
//! - [`connect`]: Redis over RESP (`redis://`, `rediss://`) or the Upstash REST protocol
//!   (`https://`), both as `edgesync_core::store::Store`, so every step is written once.
//! - [`value`]: typed Redis values (string, hash, set, sorted set, list): reading and writing.
//! - [`rules`]: migration rules — built in, or from a TOML file — and their conversions.
//! - [`journal`]: the crash-safe record of every original (a trait; sled implements it).
//! - [`plan`], [`apply`], [`verify`], [`rollback`]: the steps; [`pipeline`]: the threads
//!   that let `apply` scan, journal and move at once.
//! - [`scan`]: finding the keys the rules own and classifying them, shared by `plan` and
//!   `apply`; [`plan_error`]: why a scan stopped.
//! - [`collisions`]: sources that would write one target (N:1), refused before the move.
//! - [`families`]: keys of a set's legacy families that no rule moves ("not owned").
//! - [`pace`]: the `--rate` limit (a token bucket).
//! - [`spill`]: per-key records larger than memory (an external sort), so `plan` and `apply`
//!   report each key once at any key count.
//! - [`script`]: the Lua scripts that move and restore a key atomically.
//! - [`generate`], [`dump`]: a seeded legacy dataset with its ground truth, and typed dumps
//!   to compare whole databases (tests and benchmarks).
//! - [`http`]: core's HTTP transport over a blocking native client, for the REST backend.
//! - [`render`]: reports as text for people (JSON with `--json`).

pub mod apply;
pub mod cluster;
pub mod collisions;
pub mod connect;
pub mod dump;
pub mod entry;
pub mod families;
pub mod generate;
pub mod http;
pub mod journal;
pub mod journal_owner;
pub mod pace;
pub mod pipeline;
pub mod plan;
pub mod plan_error;
pub mod render;
pub mod rollback;
pub mod rules;
pub mod scan;
pub mod script;
pub mod sides;
pub mod spill;
#[cfg(test)]
mod test_redis;
pub mod value;
pub mod verify;

/// Exit codes, as `--help` documents them.
pub mod exit {
    /// Everything succeeded.
    pub const OK: u8 = 0;
    /// The step ran but found problems: conflicts, unparseable keys, verify mismatches,
    /// rollback refusals.
    pub const PROBLEMS: u8 = 1;
    /// Bad usage: arguments, rules file.
    pub const USAGE: u8 = 2;
    /// Could not run: connection, journal, or another run holds the lock.
    pub const FAILED: u8 = 3;
}
