//! The durable tier's wire: the requests the worker sends its Durable Object and the answers,
//! typed on both sides and encoded with `postcard` — compact binary, a command's arguments as
//! raw bytes. The copy's traffic is mostly raw exchange responses (JSON text of tens of KB):
//! as JSON strings inside a JSON request they were escaped by the worker and unescaped by the
//! object on every cron, work that binary bytes skip (docs/benchmarks.md). Both ends are the
//! same build, so the encoding needs no stability across versions.

use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};
use serde_bytes::ByteBuf;

use crate::store::memory::StoredEntry;
use crate::store::{Command, CommandError, Replies, Reply};

/// A command as its parts (name first).
pub type WireCommand = Vec<ByteBuf>;

pub fn encode_command(command: &Command) -> WireCommand {
    command.parts().iter().map(|part| ByteBuf::from(part.clone())).collect()
}

/// [`DurableRequest::Run`] encoded straight from the commands (their arguments borrowed, not
/// copied into a [`WireCommand`] first): the same bytes as the request built from
/// [`encode_command`].
pub fn encode_run(commands: &[&Command], deferred: bool) -> Vec<u8> {
    struct Parts<'a>(&'a Command);
    impl Serialize for Parts<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut seq = serializer.serialize_seq(Some(self.0.parts().len()))?;
            for part in self.0.parts() {
                seq.serialize_element(serde_bytes::Bytes::new(part))?;
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
    /// [`DurableRequest`]'s first variant, borrowed.
    #[derive(Serialize)]
    enum Borrowed<'a> {
        Run { commands: Commands<'a>, deferred: bool },
    }
    postcard::to_allocvec(&Borrowed::Run { commands: Commands(commands), deferred }).expect("commands always encode")
}

pub fn decode_command(parts: &[ByteBuf]) -> Result<Command, String> {
    Command::from_parts(parts.iter().map(|part| part.to_vec()).collect())
        .ok_or_else(|| "a command needs an ASCII name".to_owned())
}

/// A request as the object reads it; a message when it is not one.
pub fn decode_request(bytes: &[u8]) -> Result<DurableRequest, String> {
    postcard::from_bytes(bytes).map_err(|error| format!("not a durable request: {error}"))
}

pub fn encode_request(request: &DurableRequest) -> Vec<u8> {
    postcard::to_allocvec(request).expect("durable requests always encode")
}

pub fn decode_response(bytes: &[u8]) -> Result<DurableResponse, String> {
    postcard::from_bytes(bytes).map_err(|error| format!("not a durable response ({} bytes): {error}", bytes.len()))
}

pub fn encode_response(response: &DurableResponse) -> Vec<u8> {
    postcard::to_allocvec(response).expect("durable responses always encode")
}

/// Externally tagged, as `postcard` needs; [`encode_run`] depends on `Run` coming first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
pub enum WireReply {
    Nil,
    Int(i64),
    Bulk(ByteBuf),
    Array(Vec<WireReply>),
    Error(String),
}

impl WireReply {
    pub fn encode(reply: &Result<Reply, CommandError>) -> Self {
        fn value(reply: &Reply) -> WireReply {
            match reply {
                Reply::Nil => WireReply::Nil,
                Reply::Int(n) => WireReply::Int(*n),
                Reply::Bulk(bytes) => WireReply::Bulk(ByteBuf::from(bytes.clone())),
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
                WireReply::Bulk(bytes) => Reply::Bulk(bytes.into_vec()),
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
pub enum DurableResponse {
    /// One reply per command, and the oldest write time of the rows read (for `Age`).
    /// `pending`: keys the copy holds pending after the batch (0 for a batch that only reads).
    Replies {
        replies: Vec<WireReply>,
        oldest_written_at_ms: Option<i64>,
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
    fn run_requests_encode_as_the_typed_request_does_and_decode_back() {
        let commands = [
            Command::set("k", b"{\"a\":\"\\u00e9\"}", None),
            Command::set("b", &[0xff, 0x00], Some(std::time::Duration::from_secs(5))),
            Command::zadd("h", 7, "m"),
        ];
        for deferred in [false, true] {
            let typed = DurableRequest::Run { commands: commands.iter().map(encode_command).collect(), deferred };
            let borrowed: Vec<&Command> = commands.iter().collect();
            let bytes = encode_run(&borrowed, deferred);
            assert_eq!(bytes, encode_request(&typed));
            assert_eq!(decode_request(&bytes).unwrap(), typed);
        }
        assert!(decode_request(b"{\"op\":\"stats\"}").unwrap_err().starts_with("not a durable request"));
    }

    #[test]
    fn responses_round_trip_with_their_bytes() {
        let response = DurableResponse::Replies {
            replies: encode_replies(&vec![
                Ok(Reply::Bulk(vec![0xff, b'"'])),
                Ok(Reply::Array(vec![Reply::Int(-3), Reply::Nil])),
                Err(CommandError("WRONGTYPE".into())),
            ]),
            oldest_written_at_ms: Some(5),
            pending: 2,
        };
        assert_eq!(decode_response(&encode_response(&response)).unwrap(), response);
        use crate::store::memory::StoredValue;
        let pending = DurableResponse::Pending {
            keys: vec![
                PendingKey {
                    key: "s".into(),
                    entry: Some(StoredEntry { value: StoredValue::String(vec![0xff, 0]), expires_at_ms: Some(9) }),
                    pending_since_ms: 1,
                    stamp: 2,
                },
                PendingKey {
                    key: "h".into(),
                    entry: Some(StoredEntry { value: StoredValue::Zset(vec![("m".into(), 1.5)]), expires_at_ms: None }),
                    pending_since_ms: 3,
                    stamp: 4,
                },
                PendingKey { key: "gone".into(), entry: None, pending_since_ms: 5, stamp: 6 },
            ],
        };
        assert_eq!(decode_response(&encode_response(&pending)).unwrap(), pending);
    }
}
