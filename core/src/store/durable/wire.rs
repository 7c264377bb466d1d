//! The durable tier's wire: JSON requests the worker sends its Durable Object and the
//! answers, typed on both sides. Bytes travel as [`WireBytes`] (text as text, else base64).

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};

use crate::codec::WireBytes;
use crate::store::memory::StoredEntry;
use crate::store::{Command, CommandError, Replies, Reply};

/// A command as its parts (name first).
pub type WireCommand = Vec<WireBytes>;

pub fn encode_command(command: &Command) -> WireCommand {
    command.parts().iter().map(|part| WireBytes::encode(part)).collect()
}

/// [`DurableRequest::Run`] as JSON, encoded straight from the commands (their arguments are
/// borrowed, not copied into [`WireBytes`] first): the same text `serde_json` writes for the
/// request built from [`encode_command`].
pub fn encode_run(commands: &[&Command], deferred: bool) -> String {
    /// One argument: `{"utf8": …}` or `{"base64": …}`, as [`WireBytes`] writes it.
    struct Part<'a>(&'a [u8]);
    impl Serialize for Part<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(1))?;
            match std::str::from_utf8(self.0) {
                Ok(text) => map.serialize_entry("utf8", text)?,
                Err(_) => map.serialize_entry(
                    "base64",
                    &base64::Engine::encode(&base64::engine::general_purpose::STANDARD, self.0),
                )?,
            }
            map.end()
        }
    }
    struct Parts<'a>(&'a Command);
    impl Serialize for Parts<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(self.0.parts().len()))?;
            for part in self.0.parts() {
                seq.serialize_element(&Part(part))?;
            }
            seq.end()
        }
    }
    struct Commands<'a>(&'a [&'a Command]);
    impl Serialize for Commands<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_seq(self.0.iter().map(|command| Parts(command)))
        }
    }
    #[derive(Serialize)]
    struct Run<'a> {
        op: &'static str,
        commands: Commands<'a>,
        deferred: bool,
    }
    serde_json::to_string(&Run { op: "run", commands: Commands(commands), deferred })
        .expect("commands always serialize")
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
    /// `pending`: keys the copy holds pending after the batch.
    Replies {
        replies: Vec<WireReply>,
        oldest_written_at_ms: Option<i64>,
        #[serde(default)]
        pending: u64,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_requests_encode_as_the_typed_request_does() {
        let commands = [
            Command::set("k", b"{\"a\":\"\\u00e9\"}", None),
            Command::set("b", &[0xff, 0x00], Some(std::time::Duration::from_secs(5))),
            Command::zadd("h", 7, "m"),
        ];
        for deferred in [false, true] {
            let typed = DurableRequest::Run { commands: commands.iter().map(encode_command).collect(), deferred };
            let borrowed: Vec<&Command> = commands.iter().collect();
            assert_eq!(encode_run(&borrowed, deferred), serde_json::to_string(&typed).unwrap());
        }
    }
}
