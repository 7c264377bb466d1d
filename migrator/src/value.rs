//! Typed Redis values — what the journal records, the conversions produce, and `verify` and
//! `dump` compare. Reading a batch of keys takes two pipelined round trips (`TYPE` + `PTTL`,
//! then each value); a key that vanishes in between reads as absent.

use std::collections::{BTreeMap, BTreeSet};

use edgesync_core::store::{Command, Reply, Store, StoreError};
use serde::{Deserialize, Serialize};

/// A Redis value of one of the types the migrator moves. Sorted-set scores keep Redis's
/// text so they are written back exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum TypedValue {
    String(String),
    Hash(BTreeMap<String, String>),
    Set(BTreeSet<String>),
    Zset(Vec<(String, String)>),
    List(Vec<String>),
}

impl TypedValue {
    /// Redis's name of the type, as `TYPE` answers.
    pub fn type_name(&self) -> &'static str {
        match self {
            TypedValue::String(_) => "string",
            TypedValue::Hash(_) => "hash",
            TypedValue::Set(_) => "set",
            TypedValue::Zset(_) => "zset",
            TypedValue::List(_) => "list",
        }
    }

    /// Commands that write this value at `key` (after a `DEL`).
    pub fn write_commands(&self, key: &str) -> Vec<Command> {
        let mut commands = vec![Command::new("DEL").arg(key)];
        match self {
            TypedValue::String(text) => commands.push(Command::new("SET").arg(key).arg(text)),
            TypedValue::Hash(fields) if !fields.is_empty() => {
                commands.push(Command::hset(key, &fields.iter().collect::<Vec<_>>()))
            }
            TypedValue::Set(members) if !members.is_empty() => {
                commands.push(Command::sadd(key, &members.iter().collect::<Vec<_>>()))
            }
            TypedValue::Zset(items) if !items.is_empty() => commands
                .push(items.iter().fold(Command::new("ZADD").arg(key), |c, (member, score)| c.arg(score).arg(member))),
            TypedValue::List(items) if !items.is_empty() => {
                commands.push(items.iter().fold(Command::new("RPUSH").arg(key), |c, item| c.arg(item)))
            }
            _ => {}
        }
        commands
    }
}

/// A key's value and absolute expiry (ms since the epoch; `None` = permanent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    pub value: TypedValue,
    pub expire_at_ms: Option<i64>,
}

fn unexpected(detail: String) -> StoreError {
    StoreError::UnexpectedReply { command: "read".into(), detail }
}

/// Reads `keys` with their expiry; `None` for keys that do not exist or have a type the
/// migrator does not move (streams, modules). `now_ms` turns PTTL into an absolute time.
pub async fn read_many(store: &dyn Store, keys: &[String], now_ms: i64) -> Result<Vec<Option<Stored>>, StoreError> {
    let meta: Vec<Command> =
        keys.iter().flat_map(|k| [Command::new("TYPE").arg(k), Command::new("PTTL").arg(k)]).collect();
    let meta = store.pipeline(&meta).await?;
    let mut reads = Vec::new();
    let mut plan = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let kind = meta[2 * i].clone().ok().and_then(|r| r.into_string().ok()).unwrap_or_default();
        let pttl = meta[2 * i + 1].clone().ok().and_then(|r| r.into_int().ok()).unwrap_or(-2);
        let command = match kind.as_str() {
            "string" => Command::new("GET").arg(key),
            "hash" => Command::new("HGETALL").arg(key),
            "set" => Command::new("SMEMBERS").arg(key),
            "zset" => Command::new("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES"),
            "list" => Command::new("LRANGE").arg(key).arg(0).arg(-1),
            _ => {
                plan.push(None);
                continue;
            }
        };
        plan.push(Some((kind, pttl, reads.len())));
        reads.push(command);
    }
    let replies = store.pipeline(&reads).await?;
    plan.into_iter()
        .map(|slot| {
            let Some((kind, pttl, index)) = slot else { return Ok(None) };
            let reply = match replies[index].clone() {
                Ok(reply) => reply,
                Err(_) => return Ok(None), // changed type between the two round trips
            };
            let value = match kind.as_str() {
                "string" => match reply {
                    Reply::Nil => return Ok(None),
                    other => TypedValue::String(other.into_string().map_err(unexpected)?),
                },
                "hash" => TypedValue::Hash(reply.into_pairs().map_err(unexpected)?.into_iter().collect()),
                "set" => TypedValue::Set(reply.into_texts().map_err(unexpected)?.into_iter().collect()),
                "zset" => TypedValue::Zset(reply.into_pairs().map_err(unexpected)?),
                _ => TypedValue::List(reply.into_texts().map_err(unexpected)?),
            };
            let empty = matches!(&value, TypedValue::Hash(m) if m.is_empty())
                || matches!(&value, TypedValue::Set(s) if s.is_empty())
                || matches!(&value, TypedValue::Zset(z) if z.is_empty())
                || matches!(&value, TypedValue::List(l) if l.is_empty());
            if empty {
                return Ok(None); // vanished between the two round trips
            }
            Ok(Some(Stored { value, expire_at_ms: (pttl > 0).then(|| now_ms + pttl) }))
        })
        .collect()
}
