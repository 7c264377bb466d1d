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
//! - [`memory`]: the in-memory store (the isolate-local tier, and `make dev` without Redis).

pub mod command;
pub mod memory;
pub mod reply;
pub mod upstash;

use std::time::Duration;

use async_trait::async_trait;

pub use command::Command;
pub use reply::Reply;

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
        reply.into_optional_bytes().map_err(|detail| StoreError::UnexpectedReply { command: "GET".into(), detail })
    }

    /// `SET key value [EX ttl]`: without a TTL the key is permanent (and a previous TTL is
    /// cleared, as Redis does).
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), StoreError> {
        self.execute(&Command::set(key, value, ttl)).await.map(drop)
    }
}

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
