//! Typed Redis values — what the journal records, the conversions produce, and `verify` and
//! `dump` compare. Reading a batch of keys takes two pipelined round trips (`TYPE` + `PEXPIRETIME`,
//! then each value); a key that vanishes in between reads as absent. Keys whose type is known
//! beforehand (targets) are read at once, and only the ones found are asked their expiry
//! ([`read_expecting`]). [`read_within`] adds one more (`STRLEN` / `HLEN` / `SCARD` / `ZCARD`
//! / `LLEN`) so a key above the [`SizeLimits`] is reported without being loaded: every value
//! the migrator moves is held in memory and journaled whole, so an unbounded one would break
//! both memory and the journal's pace. For a key whose likely type is known (its rule's first),
//! that size probe replaces `TYPE` instead, and a string is read as far as the limit in the
//! same trip.

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

    /// How many strings the value is as Redis's read command answers it: a string one, a
    /// hash or sorted set two per field or member, a set or list one per member.
    pub fn item_count(&self) -> usize {
        match self {
            TypedValue::String(_) => 1,
            TypedValue::Hash(fields) => 2 * fields.len(),
            TypedValue::Set(members) => members.len(),
            TypedValue::Zset(items) => 2 * items.len(),
            TypedValue::List(items) => items.len(),
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

/// Sizes above which a key is reported rather than read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    /// Bytes of a string value (`--max-value-bytes`).
    pub max_string_bytes: u64,
    /// Fields, members or items of a hash, set, sorted set or list (`--max-elements`).
    pub max_elements: u64,
}

impl Default for SizeLimits {
    /// 16 MiB strings, 100,000 elements: far above any position or order key, low enough that
    /// a batch of the largest stays in memory.
    fn default() -> Self {
        Self { max_string_bytes: 16 * 1024 * 1024, max_elements: 100_000 }
    }
}

/// What reading a key within limits found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Absent, or a type the migrator does not move (streams, modules).
    Absent,
    /// Above the limits: not loaded. `size` is bytes for a string, elements otherwise.
    TooLarge {
        kind: String,
        size: u64,
    },
    Value(Stored),
}

/// The absolute expiry a `PEXPIRETIME` answer gives (`None`: permanent, or absent).
fn expires_at(expire_time: i64) -> Option<i64> {
    (expire_time > 0).then_some(expire_time)
}

fn unexpected(detail: impl std::fmt::Display) -> StoreError {
    StoreError::UnexpectedReply { command: "read".into(), detail: detail.to_string() }
}

/// Reads `keys` with their expiry; `None` for keys that do not exist or have a type the
/// migrator does not move (streams, modules). Expiries are absolute, as Redis keeps them
/// (`PEXPIRETIME`, Redis 7.0+): no clock of ours comes in — `PTTL` plus our clock was late by
/// however long the answer took, and off by any skew between this machine and Redis, which
/// then applies the `PEXPIREAT` a rollback writes.
pub async fn read_many(store: &dyn Store, keys: &[String]) -> Result<Vec<Option<Stored>>, StoreError> {
    let reads = read_within(store, keys, &[], None).await?;
    Ok(reads
        .into_iter()
        .map(|read| match read {
            Read::Value(stored) => Some(stored),
            _ => None,
        })
        .collect())
}

/// As [`read_many`], but keys above `limits` are measured, not loaded. `expected` may name,
/// per key, the type it most likely holds: such a key is asked its size in that type's terms
/// (`HLEN`…) instead of its `TYPE` — the answer says both, an error meaning another type (then
/// `TYPE` follows) — one command and one round trip fewer. An expected string is read at once
/// as far as the limit allows (`GETRANGE 0 limit`): a string within it needs no other round
/// trip, one longer is measured and reported.
pub async fn read_within(
    store: &dyn Store,
    keys: &[String],
    expected: &[Option<&'static str>],
    limits: Option<&SizeLimits>,
) -> Result<Vec<Read>, StoreError> {
    let expected_of = |i: usize| {
        let kind = expected.get(i).copied().flatten()?;
        Some((kind, size_probe(kind, limits?)?))
    };
    let meta: Vec<Command> = keys
        .iter()
        .enumerate()
        .flat_map(|(i, key)| {
            let first = match expected_of(i) {
                // One byte past the limit says "longer" without loading more.
                Some(("string", (_, limit))) => {
                    Command::new("GETRANGE").arg(key).arg(0).arg(limit.min(i64::MAX as u64))
                }
                Some((_, (probe, _))) => Command::new(probe).arg(key),
                None => Command::new("TYPE").arg(key),
            };
            [first, Command::new("PEXPIRETIME").arg(key)]
        })
        .collect();
    let mut meta = store.pipeline(&meta).await?.into_iter();
    let mut kinds: Vec<String> = Vec::with_capacity(keys.len());
    let mut expiries: Vec<i64> = Vec::with_capacity(keys.len());
    let mut known: Vec<Option<u64>> = vec![None; keys.len()];
    let mut strings: Vec<Option<String>> = vec![None; keys.len()];
    let mut untyped = Vec::new();
    for (i, known_size) in known.iter_mut().enumerate() {
        let (first, expiry) = (meta.next().and_then(Result::ok), meta.next().and_then(Result::ok));
        let expiry = expiry.and_then(|r| r.into_int().ok()).unwrap_or(-2);
        let kind = match (expected_of(i), first) {
            (Some(_), Some(_)) if expiry == -2 => String::new(), // absent: a size of 0
            (Some(("string", (_, limit))), Some(text)) => match text.into_string() {
                // Longer than the limit: measured below, and reported.
                Ok(text) if text.len() as u64 > limit => "string".to_owned(),
                Ok(text) if !text.is_empty() => {
                    *known_size = Some(text.len() as u64);
                    strings[i] = Some(text);
                    "string".to_owned()
                }
                // Empty: an empty string, or a key written between the two commands.
                _ => {
                    untyped.push(i);
                    String::new()
                }
            },
            (Some((kind, _)), Some(size)) => {
                *known_size = Some(size.into_int().unwrap_or(0).max(0) as u64);
                kind.to_owned()
            }
            (Some(_), None) => {
                untyped.push(i); // another type than its owner accepts
                String::new()
            }
            (None, reply) => reply.and_then(|r| r.into_string().ok()).unwrap_or_default(),
        };
        kinds.push(kind);
        expiries.push(expiry);
    }
    if !untyped.is_empty() {
        let types: Vec<Command> = untyped.iter().map(|&i| Command::new("TYPE").arg(&keys[i])).collect();
        for (&i, reply) in untyped.iter().zip(store.pipeline(&types).await?) {
            kinds[i] = reply.ok().and_then(|r| r.into_string().ok()).unwrap_or_default();
        }
    }
    let sizes = match limits {
        Some(limits) => measure(store, keys, &kinds, &known, limits).await?,
        None => vec![None; keys.len()],
    };
    let mut reads = Vec::new();
    let mut plan = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let kind = std::mem::take(&mut kinds[i]);
        let expiry = expiries[i];
        if let Some(text) = strings[i].take() {
            let value = TypedValue::String(text);
            plan.push(Err(Read::Value(Stored { value, expire_at_ms: expires_at(expiry) })));
            continue;
        }
        if let Some(size) = sizes[i] {
            plan.push(Err(Read::TooLarge { kind, size }));
            continue;
        }
        let Some(command) = read_command(&kind, key) else {
            plan.push(Err(Read::Absent));
            continue;
        };
        plan.push(Ok((kind, expiry, reads.len())));
        reads.push(command);
    }
    let mut replies: Vec<Option<Result<Reply, _>>> = store.pipeline(&reads).await?.into_iter().map(Some).collect();
    plan.into_iter()
        .map(|slot| {
            let (kind, expiry, index) = match slot {
                Ok(slot) => slot,
                Err(read) => return Ok(read),
            };
            let reply = match replies[index].take() {
                Some(Ok(reply)) => reply,
                _ => return Ok(Read::Absent), // changed type between the round trips
            };
            let Some(value) = decode(&kind, reply)? else {
                return Ok(Read::Absent); // vanished between the round trips
            };
            Ok(Read::Value(Stored { value, expire_at_ms: expires_at(expiry) }))
        })
        .collect()
}

/// The command that reads a whole value of type `kind` (as `TYPE` names it); `None` for a type
/// the migrator does not move.
fn read_command(kind: &str, key: &str) -> Option<Command> {
    Some(match kind {
        "string" => Command::new("GET").arg(key),
        "hash" => Command::new("HGETALL").arg(key),
        "set" => Command::new("SMEMBERS").arg(key),
        "zset" => Command::new("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES"),
        "list" => Command::new("LRANGE").arg(key).arg(0).arg(-1),
        _ => return None,
    })
}

/// The value in a [`read_command`]'s reply; `None` when the key does not exist (Redis has no
/// empty collections).
fn decode(kind: &str, reply: Reply) -> Result<Option<TypedValue>, StoreError> {
    let value = match kind {
        "string" => match reply {
            Reply::Nil => return Ok(None),
            other => TypedValue::String(other.into_string().map_err(unexpected)?),
        },
        "hash" => TypedValue::Hash(reply.into_pairs().map_err(unexpected)?.into_iter().collect()),
        "set" => TypedValue::Set(reply.into_texts().map_err(unexpected)?.into_iter().collect()),
        "zset" => TypedValue::Zset(reply.into_pairs().map_err(unexpected)?),
        _ => TypedValue::List(reply.into_texts().map_err(unexpected)?),
    };
    // A string is one item even when empty; a collection without items does not exist.
    Ok((value.item_count() > 0).then_some(value))
}

/// As [`read_many`], for keys whose type is expected (a target's, from its conversion): the
/// type's read command, and `PEXPIRETIME` only for the keys it found — no `TYPE`, and for a
/// key that does not exist (most targets) one command. A key that holds another type, or
/// vanished before its `PEXPIRETIME`, is read again with [`read_many`].
pub async fn read_expecting(
    store: &dyn Store,
    keys: &[(&str, &'static str)],
) -> Result<Vec<Option<Stored>>, StoreError> {
    let commands: Vec<Command> =
        keys.iter().map(|(key, kind)| read_command(kind, key).expect("moved types have a read command")).collect();
    let mut reads: Vec<Option<Stored>> = vec![None; keys.len()];
    let mut found = Vec::new();
    let mut again = Vec::new();
    for (i, ((_, kind), reply)) in keys.iter().zip(store.pipeline(&commands).await?).enumerate() {
        match reply {
            Ok(reply) => {
                if let Some(value) = decode(kind, reply)? {
                    found.push((i, value));
                }
            }
            // WRONGTYPE: it holds something else, which is what the caller must see.
            Err(_) => again.push(i),
        }
    }
    if !found.is_empty() {
        let expiries: Vec<Command> = found.iter().map(|(i, _)| Command::new("PEXPIRETIME").arg(keys[*i].0)).collect();
        let expiries = store.pipeline(&expiries).await?;
        for ((i, value), expiry) in found.into_iter().zip(expiries) {
            match expiry.ok().and_then(|r| r.into_int().ok()).unwrap_or(-2) {
                -2 => again.push(i),
                expiry => reads[i] = Some(Stored { value, expire_at_ms: expires_at(expiry) }),
            }
        }
    }
    if !again.is_empty() {
        let keys: Vec<String> = again.iter().map(|&i| keys[i].0.to_owned()).collect();
        for (i, read) in again.into_iter().zip(read_many(store, &keys).await?) {
            reads[i] = read;
        }
    }
    Ok(reads)
}

/// The command that measures a value of type `kind` (bytes of a string, elements otherwise),
/// and the limit it is held to.
fn size_probe(kind: &str, limits: &SizeLimits) -> Option<(&'static str, u64)> {
    Some(match kind {
        "string" => ("STRLEN", limits.max_string_bytes),
        "hash" => ("HLEN", limits.max_elements),
        "set" => ("SCARD", limits.max_elements),
        "zset" => ("ZCARD", limits.max_elements),
        "list" => ("LLEN", limits.max_elements),
        _ => return None,
    })
}

/// The size of each key above `limits` (`None`: within them, or not a type that is moved);
/// keys whose size is `known` already are not asked again.
async fn measure(
    store: &dyn Store,
    keys: &[String],
    kinds: &[String],
    known: &[Option<u64>],
    limits: &SizeLimits,
) -> Result<Vec<Option<u64>>, StoreError> {
    let mut sizes = vec![None; keys.len()];
    let mut probes = Vec::new();
    let mut probed = Vec::new();
    for (i, (key, kind)) in keys.iter().zip(kinds).enumerate() {
        let Some((name, limit)) = size_probe(kind, limits) else { continue };
        match known[i] {
            Some(size) => sizes[i] = (size > limit).then_some(size),
            None => {
                probes.push(Command::new(name).arg(key));
                probed.push((i, limit));
            }
        }
    }
    if probes.is_empty() {
        return Ok(sizes);
    }
    let replies = store.pipeline(&probes).await?;
    for ((i, limit), reply) in probed.into_iter().zip(replies) {
        // An error means the type changed since TYPE: the read that follows finds out.
        let size = reply.ok().and_then(|r| r.into_int().ok()).unwrap_or(0).max(0) as u64;
        if size > limit {
            sizes[i] = Some(size);
        }
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;
    use crate::test_redis::TestRedis;

    const FAR: i64 = 4_102_444_800_000; // 2100-01-01, an expiry that never passes in a test

    #[test]
    fn expected_types_read_in_one_trip_and_other_types_as_they_are() {
        let redis = TestRedis::start();
        let store = redis.store();
        let hash = TypedValue::Hash([("qty".to_owned(), "1.5".to_owned())].into());
        let mut writes = hash.write_commands("h");
        writes.push(Command::new("PEXPIREAT").arg("h").arg(FAR));
        writes.extend(TypedValue::String("text".into()).write_commands("s"));
        block_on(store.pipeline(&writes)).unwrap();

        let keys = [("h", "hash"), ("absent", "hash"), ("s", "hash"), ("s", "string")];
        let reads = block_on(read_expecting(store.as_ref(), &keys)).unwrap();
        let expiry = reads[0].as_ref().and_then(|s| s.expire_at_ms).expect("h expires");
        assert!((expiry - FAR).abs() <= 1000, "h expires at {expiry}");
        assert_eq!(reads[0].as_ref().map(|s| &s.value), Some(&hash));
        assert_eq!(reads[1], None);
        // A string where a hash was expected is read as the string it is, not as absent.
        let string = Some(Stored { value: TypedValue::String("text".into()), expire_at_ms: None });
        assert_eq!(reads[2], string);
        assert_eq!(reads[3], string);
        assert_eq!(block_on(read_many(store.as_ref(), &["h".to_owned(), "s".to_owned()])).unwrap()[1..], reads[3..]);
    }

    #[test]
    fn an_expected_type_is_measured_instead_of_asked_and_others_still_read() {
        let redis = TestRedis::start();
        let store = redis.store();
        let mut writes = TypedValue::String("12345".into()).write_commands("long");
        writes.extend(TypedValue::String("ok".into()).write_commands("short"));
        writes.extend(TypedValue::Hash([("qty".to_owned(), "1.5".to_owned())].into()).write_commands("h"));
        writes.extend(TypedValue::String(String::new()).write_commands("empty"));
        writes.push(Command::new("PEXPIREAT").arg("short").arg(FAR));
        block_on(store.pipeline(&writes)).unwrap();
        let keys: Vec<String> = ["long", "short", "h", "absent", "h", "empty"].iter().map(|k| k.to_string()).collect();
        let expected = [Some("string"), Some("string"), Some("string"), Some("hash"), None, Some("string")];
        let limits = SizeLimits { max_string_bytes: 4, max_elements: 10 };
        let reads = block_on(read_within(store.as_ref(), &keys, &expected, Some(&limits))).unwrap();
        assert_eq!(reads[0], Read::TooLarge { kind: "string".into(), size: 5 });
        let Read::Value(short) = &reads[1] else { panic!("short: {:?}", reads[1]) };
        assert_eq!(short.value, TypedValue::String("ok".into()));
        assert!(short.expire_at_ms.is_some_and(|at| (at - FAR).abs() <= 1000), "{short:?}");
        // A hash where a string was expected reads as the hash it is (the rule reports it).
        let hash =
            Read::Value(Stored { value: TypedValue::Hash([("qty".into(), "1.5".into())].into()), expire_at_ms: None });
        assert_eq!(reads[2], hash);
        assert_eq!(reads[3], Read::Absent);
        assert_eq!(reads[4], hash);
        let empty = Read::Value(Stored { value: TypedValue::String(String::new()), expire_at_ms: None });
        assert_eq!(reads[5], empty, "an empty string is a value, not an absent key");
        let stats = block_on(store.execute(&Command::new("INFO").arg("commandstats"))).unwrap().into_string().unwrap();
        let gets = stats.lines().find(|l| l.starts_with("cmdstat_get:")).unwrap_or("none");
        assert!(gets.starts_with("cmdstat_get:calls=1,"), "only the empty string was read again: {gets}");
    }
}
