//! Storage: the [`Store`] trait and its implementations.
//!
//! A store executes Redis commands. Making the *command* the unit (rather than a bespoke
//! get/put API) keeps every implementation honest: the in-memory store is a small Redis
//! interpreter checked against real Redis by one conformance suite, and a sync task's writes
//! are a list of commands that travel as one pipelined request.
//!
//! - [`command`]: [`Command`], the argument vector sent to Redis.
//! - [`reply`]: [`Reply`], a typed RESP value, and its conversions.
//! - [`upstash`]: the Upstash REST protocol client (the Redis tier, over [`crate::http`]).
//! - [`memory`]: the in-memory store (`make dev` without Redis), a small Redis interpreter.
//! - [`tiered`]: the memory tier in front of Redis, with stale-if-error reads.
//! - [`durable`]: the durable copy (a Durable Object) behind both: outage writes, last-resort reads.
//! - [`invalidate`]: SCAN + UNLINK deletion confined to the key space.
//! - [`stats`]: key counts, memory, eviction policy and its risk, tier counters.

pub mod command;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod durable;
pub mod invalidate;
pub mod memory;
pub mod reply;
pub mod stats;
pub mod tiered;
pub mod upstash;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;

pub use command::Command;
pub use reply::{Reply, ReplyShapeError};

/// A Redis error for one command, e.g. `WRONGTYPE Operation against a key holding the wrong
/// kind of value`. Other commands of the same pipeline are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

/// Why a store operation failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or did not answer (network, timeout, 5xx).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the request (bad token, malformed request, size limit).
    #[error("store rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// Redis answered a command with an error.
    #[error("`{command}` failed: {error}")]
    Command { command: String, error: CommandError },
    /// Redis answered with a shape this code does not expect for the command.
    #[error("unexpected reply to `{command}`: {detail}")]
    UnexpectedReply { command: String, detail: String },
}

/// One result per command of a pipeline or transaction, in order.
pub type Replies = Vec<Result<Reply, CommandError>>;

/// Executes Redis commands.
///
/// `?Send`: the worker's implementation holds JS values; see [`crate::http::HttpClient`].
#[async_trait(?Send)]
pub trait Store {
    /// Sends `commands` in one round trip and runs them in order, not atomically: a failing
    /// command does not stop the ones after it. `Err` only when the request as a whole failed,
    /// in which case any subset of the commands may have run.
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError>;

    /// Like [`Store::pipeline`], but atomically (MULTI/EXEC): all commands run, with no other
    /// client's commands in between. Runtime errors of single commands do not roll back.
    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError>;

    /// Runs one command; a Redis error becomes [`StoreError::Command`].
    async fn execute(&self, command: &Command) -> Result<Reply, StoreError> {
        let mut replies = self.pipeline(std::slice::from_ref(command)).await?;
        match replies.pop() {
            Some(Ok(reply)) => Ok(reply),
            Some(Err(error)) => Err(StoreError::Command { command: command.name().to_owned(), error }),
            None => Err(StoreError::UnexpectedReply { command: command.name().to_owned(), detail: "no reply".into() }),
        }
    }

    /// `GET key`: `None` when the key does not exist (or has expired).
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let command = Command::new("GET").arg(key);
        let reply = self.execute(&command).await?;
        reply.into_optional_bytes().map_err(unexpected("GET"))
    }

    /// `SET key value [EX ttl]`: without a TTL the key is permanent (and a previous TTL is
    /// cleared, as Redis does).
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.execute(&Command::set(key, value, ttl)).await.map(drop)
    }
}

/// What `PTTL` says about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Missing,
    Permanent,
    /// Milliseconds left.
    In(i64),
}

/// One `SCAN` step: the next cursor (0 when done) and the keys of this step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    pub cursor: u64,
    pub keys: Vec<String>,
}

/// A reply `command` cannot use, as the store error that names the command.
fn unexpected<D: std::fmt::Display>(command: &str) -> impl FnOnce(D) -> StoreError + '_ {
    move |detail| StoreError::UnexpectedReply { command: command.to_owned(), detail: detail.to_string() }
}

/// Typed access to the commands edgesync uses, on any [`Store`]. Each method is one round
/// trip; batch work builds [`Command`]s and sends them with [`Store::pipeline`].
#[async_trait(?Send)]
pub trait StoreExt: Store {
    /// `UNLINK`: how many of `keys` existed.
    async fn unlink(&self, keys: &[String]) -> Result<i64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.execute(&Command::unlink(keys)).await?.into_int().map_err(unexpected("UNLINK"))
    }

    /// `PTTL`: missing, permanent, or milliseconds left.
    async fn pttl(&self, key: &str) -> Result<Expiry, StoreError> {
        let ms = self.execute(&Command::new("PTTL").arg(key)).await?.into_int().map_err(unexpected("PTTL"))?;
        Ok(match ms {
            -2 => Expiry::Missing,
            -1 => Expiry::Permanent,
            ms => Expiry::In(ms),
        })
    }

    /// `HGETALL`: an empty map when the key does not exist.
    async fn hgetall(&self, key: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let reply = self.execute(&Command::new("HGETALL").arg(key)).await?;
        Ok(reply.into_pairs().map_err(unexpected("HGETALL"))?.into_iter().collect())
    }

    /// `SMEMBERS`: an empty set when the key does not exist.
    async fn smembers(&self, key: &str) -> Result<BTreeSet<String>, StoreError> {
        let reply = self.execute(&Command::new("SMEMBERS").arg(key)).await?;
        Ok(reply.into_texts().map_err(unexpected("SMEMBERS"))?.into_iter().collect())
    }

    /// Members of a sorted set with scores in `[min, max]`, at most `limit`, oldest or newest
    /// first, with each score as Redis spelled it (readers decide what a bad one means).
    async fn zrange_entries(
        &self,
        key: &str,
        min: Option<i64>,
        max: Option<i64>,
        limit: usize,
        newest_first: bool,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let command = Command::zrange_by_score(key, min, max, limit, newest_first);
        self.execute(&command).await?.into_pairs().map_err(unexpected("ZRANGE"))
    }

    /// Members of a sorted set with integer scores in `[min, max]`, at most `limit`, oldest
    /// or newest first.
    async fn zrange_by_score(
        &self,
        key: &str,
        min: Option<i64>,
        max: Option<i64>,
        limit: usize,
        newest_first: bool,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let pairs = self.zrange_entries(key, min, max, limit, newest_first).await?;
        pairs
            .into_iter()
            .map(|(member, score)| match score.parse::<i64>() {
                Ok(score) => Ok((member, score)),
                Err(_) => Err(unexpected("ZRANGE")(format!("score {score:?} is not an integer"))),
            })
            .collect()
    }

    /// One `SCAN` step.
    async fn scan(&self, cursor: u64, pattern: &str, count: usize) -> Result<ScanPage, StoreError> {
        let reply = self.execute(&Command::scan(cursor, pattern, count)).await?;
        let mut parts = reply.into_array().map_err(unexpected("SCAN"))?.into_iter();
        let (Some(cursor), Some(keys), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(unexpected("SCAN")("expected [cursor, keys]"));
        };
        let cursor = cursor.into_string().map_err(unexpected("SCAN"))?;
        let cursor = cursor.parse().map_err(|_| unexpected("SCAN")(format!("cursor {cursor:?}")))?;
        let keys = keys.into_texts().map_err(unexpected("SCAN"))?;
        Ok(ScanPage { cursor, keys })
    }

    /// `INFO [section]` as text.
    async fn info(&self, section: Option<&str>) -> Result<String, StoreError> {
        let command = section.map_or(Command::new("INFO"), |s| Command::new("INFO").arg(s));
        self.execute(&command).await?.into_string().map_err(unexpected("INFO"))
    }

    /// `EVAL script numkeys key… arg…`.
    async fn eval(&self, script: &str, keys: &[String], args: &[String]) -> Result<Reply, StoreError> {
        let command = keys.iter().chain(args).fold(Command::new("EVAL").arg(script).arg(keys.len()), |c, a| c.arg(a));
        self.execute(&command).await
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// Turns every per-command error of a pipeline into an error naming the first failure.
/// For writers that must know the whole batch landed.
pub fn all_ok(commands: &[Command], replies: Replies) -> Result<Vec<Reply>, StoreError> {
    replies
        .into_iter()
        .zip(commands)
        .map(|(reply, command)| {
            reply.map_err(|error| StoreError::Command { command: command.name().to_owned(), error })
        })
        .collect()
}
