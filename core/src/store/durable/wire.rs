//! The durable tier's wire: JSON requests the worker sends its Durable Object and the
//! answers, typed on both sides. Bytes travel as [`WireBytes`] (text as text, else base64).

use serde::{Deserialize, Serialize};

use crate::codec::WireBytes;
use crate::store::memory::StoredEntry;
use crate::store::{Command, CommandError, Replies, Reply};

/// A command as its parts (name first).
pub type WireCommand = Vec<WireBytes>;

pub fn encode_command(command: &Command) -> WireCommand {
    command.parts().iter().map(|part| WireBytes::encode(part)).collect()
}

pub fn decode_command(parts: &[WireBytes]) -> Result<Command, String> {
    let parts = parts.iter().map(WireBytes::decode).collect::<Result<Vec<_>, _>>()?;
    Command::from_parts(parts).ok_or_else(|| "a command needs an ASCII name".to_owned())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DurableRequest {
    /// Run `commands` on the copy, in order. `deferred`: Redis has not acknowledged these
    /// writes, so the keys they write are marked pending (for replay).
    Run { commands: Vec<WireCommand>, deferred: bool },
    /// Up to `limit` pending keys, the longest pending first, with what the copy holds.
    Pending { limit: usize },
    /// These keys were replayed at these stamps: clear each mark not renewed since.
    Replayed { keys: Vec<(String, u64)> },
    /// Sizes and counters.
    Stats,
}

/// One command's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireReply {
    Nil,
    Int(i64),
    Bulk(WireBytes),
    Array(Vec<WireReply>),
    Error(String),
}

impl WireReply {
    pub fn encode(reply: &Result<Reply, CommandError>) -> Self {
        fn value(reply: &Reply) -> WireReply {
            match reply {
                Reply::Nil => WireReply::Nil,
                Reply::Int(n) => WireReply::Int(*n),
                Reply::Bulk(bytes) => WireReply::Bulk(WireBytes::encode(bytes)),
                Reply::Array(items) => WireReply::Array(items.iter().map(value).collect()),
            }
        }
        match reply {
            Ok(reply) => value(reply),
            Err(error) => WireReply::Error(error.0.clone()),
        }
    }

    pub fn decode(self) -> Result<Result<Reply, CommandError>, String> {
        fn value(reply: WireReply) -> Result<Reply, String> {
            Ok(match reply {
                WireReply::Nil => Reply::Nil,
                WireReply::Int(n) => Reply::Int(n),
                WireReply::Bulk(bytes) => Reply::Bulk(bytes.decode()?),
                WireReply::Array(items) => Reply::Array(items.into_iter().map(value).collect::<Result<_, _>>()?),
                WireReply::Error(message) => return Err(format!("an error inside an array: {message}")),
            })
        }
        match self {
            WireReply::Error(message) => Ok(Err(CommandError(message))),
            other => value(other).map(Ok),
        }
    }
}

pub fn encode_replies(replies: &Replies) -> Vec<WireReply> {
    replies.iter().map(WireReply::encode).collect()
}

/// A key waiting to be written to Redis, with what the copy holds for it (`None`: deleted)
/// and its mark's stamp (renewed by every deferred write of the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingKey {
    pub key: String,
    pub entry: Option<StoredEntry>,
    pub pending_since_ms: i64,
    pub stamp: u64,
}

/// What the copy holds and has done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurableStats {
    pub keys: u64,
    /// Keys written while Redis was unavailable, not replayed yet.
    pub pending: u64,
    pub oldest_pending_ms: Option<i64>,
    /// Writes refused because the copy holds its maximum of keys (counted, never silent).
    pub refused_keys: u64,
    pub max_keys: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DurableResponse {
    /// One reply per command, and the oldest write time of the rows read (for `Age`).
    Replies {
        replies: Vec<WireReply>,
        oldest_written_at_ms: Option<i64>,
    },
    Pending {
        keys: Vec<PendingKey>,
    },
    Replayed {
        cleared: u64,
    },
    Stats(DurableStats),
    /// The request could not be served (storage failed, or it was malformed).
    Error {
        message: String,
    },
}
