//! The memory store's command interpreter: one function per command family, each answering
//! exactly what Redis 7.0 answers (replies and error texts) for the forms edgesync uses.
//! Containers that become empty are deleted, as in Redis.
//!
//! One file past ~600 lines on purpose: it is one table — each command's name, arity and
//! Redis's exact answer — read against Redis's documentation line by line; split by family,
//! the dispatch and the shared argument checks would be in several places.

use std::collections::{BTreeMap, BTreeSet};

use super::zset::{format_score, SortedSet};
use super::{Entry, Keyspace, Value};
use crate::glob::Glob;
use crate::store::{Command, CommandError, Reply};

type Outcome = Result<Reply, CommandError>;

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";

fn error(text: &str) -> Outcome {
    Err(CommandError(text.to_owned()))
}

fn wrong_args(name: &str) -> Outcome {
    error(&format!("ERR wrong number of arguments for '{}' command", name.to_ascii_lowercase()))
}

fn int(text: &str) -> Result<i64, CommandError> {
    text.parse().map_err(|_| CommandError(NOT_INTEGER.into()))
}

fn ok() -> Outcome {
    Ok(Reply::bulk("OK"))
}

fn bulk(text: &str) -> Reply {
    Reply::bulk(text.as_bytes().to_vec())
}

fn count(n: usize) -> Outcome {
    Ok(Reply::Int(n as i64))
}

pub(super) fn apply(ks: &mut Keyspace, now: i64, command: &Command) -> Outcome {
    let name = command.name();
    // Keys, fields, members and options are text here (edgesync's are UTF-8); a string
    // value keeps its exact bytes (`SET`'s value is taken from the command as it is).
    let args: Vec<String> = command.args().iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let args = args.as_slice();
    match name {
        "PING" => Ok(bulk("PONG")),
        "SET" => match (args, command.args().get(1)) {
            ([key, _, options @ ..], Some(value)) => set(ks, now, key, value, options),
            _ => wrong_args(name),
        },
        "GET" | "MGET" | "INCR" | "INCRBY" => strings(ks, now, name, args),
        "DEL" | "UNLINK" | "EXISTS" | "TYPE" | "TTL" | "PTTL" | "PEXPIRETIME" | "EXPIRE" | "PEXPIRE" | "PEXPIREAT"
        | "PERSIST" => keys(ks, now, name, args),
        "HSET" | "HGET" | "HMGET" | "HGETALL" | "HDEL" | "HLEN" | "HINCRBY" => hashes(ks, now, name, args),
        "SADD" | "SREM" | "SMEMBERS" | "SISMEMBER" | "SCARD" => sets(ks, now, name, args),
        "ZADD" | "ZREM" | "ZCARD" | "ZSCORE" | "ZRANGE" | "ZRANGEBYSCORE" | "ZREVRANGEBYSCORE" | "ZREMRANGEBYRANK" => {
            sorted_sets(ks, now, name, args)
        }
        "SCAN" => scan(ks, now, args),
        "DBSIZE" => {
            ks.purge_expired(now);
            count(ks.entries.len())
        }
        "INFO" => Ok(Reply::Bulk(info(ks, now, args.first().map(String::as_str)).into_bytes())),
        "EVAL" | "EVALSHA" => error("ERR scripting is not supported by the memory store"),
        _ => error(&format!("ERR unknown command '{}'", name.to_ascii_lowercase())),
    }
}

// ---- strings ----

fn strings(ks: &mut Keyspace, now: i64, name: &str, args: &[String]) -> Outcome {
    match (name, args) {
        ("GET", [key]) => match ks.live(now, key) {
            None => Ok(Reply::Nil),
            Some(Entry { value: Value::Str(bytes), .. }) => Ok(Reply::Bulk(bytes.clone())),
            Some(_) => error(WRONGTYPE),
        },
        ("MGET", keys) if !keys.is_empty() => Ok(Reply::Array(
            keys.iter()
                .map(|key| match ks.live(now, key) {
                    Some(Entry { value: Value::Str(bytes), .. }) => Reply::Bulk(bytes.clone()),
                    _ => Reply::Nil,
                })
                .collect(),
        )),
        ("INCR", [key]) => incr_by(ks, now, key, 1),
        ("INCRBY", [key, by]) => incr_by(ks, now, key, int(by)?),
        _ => wrong_args(name),
    }
}

fn set(ks: &mut Keyspace, now: i64, key: &str, value: &[u8], options: &[String]) -> Outcome {
    let (mut expires_at_ms, mut only_new, mut only_existing, mut keep_ttl) = (None, false, false, false);
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match option.to_ascii_uppercase().as_str() {
            "NX" => only_new = true,
            "XX" => only_existing = true,
            "KEEPTTL" => keep_ttl = true,
            unit @ ("EX" | "PX" | "EXAT" | "PXAT") => {
                let amount = int(options.next().ok_or_else(|| CommandError(SYNTAX.into()))?)?;
                if amount <= 0 {
                    return error("ERR invalid expire time in 'set' command");
                }
                expires_at_ms = Some(match unit {
                    "EX" => now + amount * 1000,
                    "PX" => now + amount,
                    "EXAT" => amount * 1000,
                    _ => amount,
                });
            }
            _ => return error(SYNTAX),
        }
    }
    if (only_new && only_existing) || (keep_ttl && expires_at_ms.is_some()) {
        return error(SYNTAX);
    }
    let existing = ks.live(now, key).map(|e| e.expires_at_ms);
    if (only_new && existing.is_some()) || (only_existing && existing.is_none()) {
        return Ok(Reply::Nil);
    }
    let expires_at_ms = if keep_ttl { existing.flatten() } else { expires_at_ms };
    ks.insert(key.to_owned(), Entry { value: Value::Str(value.to_vec()), expires_at_ms });
    ok()
}

fn incr_by(ks: &mut Keyspace, now: i64, key: &str, by: i64) -> Outcome {
    let (current, expires_at_ms) = match ks.live(now, key) {
        None => (0, None),
        Some(Entry { value: Value::Str(bytes), expires_at_ms }) => {
            (int(std::str::from_utf8(bytes).map_err(|_| CommandError(NOT_INTEGER.into()))?)?, *expires_at_ms)
        }
        Some(_) => return error(WRONGTYPE),
    };
    let next =
        current.checked_add(by).ok_or_else(|| CommandError("ERR increment or decrement would overflow".into()))?;
    ks.insert(key.to_owned(), Entry { value: Value::Str(next.to_string().into_bytes()), expires_at_ms });
    Ok(Reply::Int(next))
}

// ---- keys ----

fn keys(ks: &mut Keyspace, now: i64, name: &str, args: &[String]) -> Outcome {
    match (name, args) {
        ("DEL" | "UNLINK", keys) if !keys.is_empty() => count(
            keys.iter().filter(|key| ks.live(now, key).is_some() && ks.entries.pop(key.as_str()).is_some()).count(),
        ),
        ("EXISTS", keys) if !keys.is_empty() => count(keys.iter().filter(|key| ks.live(now, key).is_some()).count()),
        ("TYPE", [key]) => Ok(bulk(match ks.live(now, key).map(|e| &e.value) {
            None => "none",
            Some(Value::Str(_)) => "string",
            Some(Value::Hash(_)) => "hash",
            Some(Value::Set(_)) => "set",
            Some(Value::ZSet(_)) => "zset",
        })),
        ("TTL" | "PTTL", [key]) => Ok(Reply::Int(match ks.live(now, key) {
            None => -2,
            Some(Entry { expires_at_ms: None, .. }) => -1,
            Some(Entry { expires_at_ms: Some(at), .. }) if name == "PTTL" => *at - now,
            // Redis rounds TTL to the nearest second.
            Some(Entry { expires_at_ms: Some(at), .. }) => (*at - now + 500) / 1000,
        })),
        ("PEXPIRETIME", [key]) => Ok(Reply::Int(match ks.live(now, key) {
            None => -2,
            Some(Entry { expires_at_ms: None, .. }) => -1,
            Some(Entry { expires_at_ms: Some(at), .. }) => *at,
        })),
        ("EXPIRE" | "PEXPIRE" | "PEXPIREAT", [key, amount]) => {
            let amount = int(amount)?;
            let at = match name {
                "EXPIRE" => now + amount * 1000,
                "PEXPIRE" => now + amount,
                _ => amount,
            };
            match ks.live(now, key) {
                None => count(0),
                Some(_) if at <= now => {
                    ks.entries.pop(key.as_str());
                    count(1)
                }
                Some(entry) => {
                    entry.expires_at_ms = Some(at);
                    count(1)
                }
            }
        }
        ("PERSIST", [key]) => match ks.live(now, key) {
            Some(entry) if entry.expires_at_ms.is_some() => {
                entry.expires_at_ms = None;
                count(1)
            }
            _ => count(0),
        },
        _ => wrong_args(name),
    }
}

// ---- containers: shared plumbing ----

/// The container at `key` via `pick`, creating it with `make` when absent.
fn container<'a, T>(
    ks: &'a mut Keyspace,
    now: i64,
    key: &str,
    make: fn() -> Value,
    pick: fn(&mut Value) -> Option<&mut T>,
) -> Result<&'a mut T, CommandError> {
    if ks.live(now, key).is_none() {
        ks.insert(key.to_owned(), Entry { value: make(), expires_at_ms: None });
    }
    let entry = ks.live(now, key).expect("just inserted");
    pick(&mut entry.value).ok_or_else(|| CommandError(WRONGTYPE.into()))
}

/// Read-only view of the container at `key`: `Ok(None)` when absent.
fn existing<'a, T>(
    ks: &'a mut Keyspace,
    now: i64,
    key: &str,
    pick: fn(&mut Value) -> Option<&mut T>,
) -> Result<Option<&'a mut T>, CommandError> {
    match ks.live(now, key) {
        None => Ok(None),
        Some(entry) => pick(&mut entry.value).map(Some).ok_or_else(|| CommandError(WRONGTYPE.into())),
    }
}

/// Deletes `key` if its container emptied, as Redis does.
fn drop_if_empty(ks: &mut Keyspace, key: &str) {
    let empty = match ks.entries.peek(key).map(|e| &e.value) {
        Some(Value::Hash(h)) => h.is_empty(),
        Some(Value::Set(s)) => s.is_empty(),
        Some(Value::ZSet(z)) => z.is_empty(),
        _ => false,
    };
    if empty {
        ks.entries.pop(key);
    }
}

fn as_hash(value: &mut Value) -> Option<&mut BTreeMap<String, String>> {
    match value {
        Value::Hash(h) => Some(h),
        _ => None,
    }
}

fn as_set(value: &mut Value) -> Option<&mut BTreeSet<String>> {
    match value {
        Value::Set(s) => Some(s),
        _ => None,
    }
}

fn as_zset(value: &mut Value) -> Option<&mut SortedSet> {
    match value {
        Value::ZSet(z) => Some(z),
        _ => None,
    }
}

// ---- hashes ----

fn hashes(ks: &mut Keyspace, now: i64, name: &str, args: &[String]) -> Outcome {
    match (name, args) {
        ("HSET", [key, pairs @ ..]) if !pairs.is_empty() && pairs.len() % 2 == 0 => {
            let hash = container(ks, now, key, || Value::Hash(BTreeMap::new()), as_hash)?;
            count(pairs.chunks(2).filter(|pair| hash.insert(pair[0].clone(), pair[1].clone()).is_none()).count())
        }
        ("HGET", [key, field]) => {
            Ok(existing(ks, now, key, as_hash)?.and_then(|h| h.get(field)).map_or(Reply::Nil, |v| bulk(v)))
        }
        ("HMGET", [key, fields @ ..]) if !fields.is_empty() => {
            let hash = existing(ks, now, key, as_hash)?;
            let hash = hash.as_deref();
            Ok(Reply::Array(
                fields.iter().map(|f| hash.and_then(|h| h.get(f)).map_or(Reply::Nil, |v| bulk(v))).collect(),
            ))
        }
        ("HGETALL", [key]) => Ok(Reply::Array(
            existing(ks, now, key, as_hash)?
                .map(|h| h.iter().flat_map(|(f, v)| [bulk(f), bulk(v)]).collect())
                .unwrap_or_default(),
        )),
        ("HDEL", [key, fields @ ..]) if !fields.is_empty() => {
            let removed = match existing(ks, now, key, as_hash)? {
                Some(hash) => fields.iter().filter(|f| hash.remove(*f).is_some()).count(),
                None => 0,
            };
            drop_if_empty(ks, key);
            count(removed)
        }
        ("HLEN", [key]) => count(existing(ks, now, key, as_hash)?.map_or(0, |h| h.len())),
        ("HINCRBY", [key, field, by]) => {
            let by = int(by)?;
            let hash = container(ks, now, key, || Value::Hash(BTreeMap::new()), as_hash)?;
            let current = match hash.get(field) {
                Some(text) => {
                    text.parse::<i64>().map_err(|_| CommandError("ERR hash value is not an integer".into()))?
                }
                None => 0,
            };
            let next = current
                .checked_add(by)
                .ok_or_else(|| CommandError("ERR increment or decrement would overflow".into()))?;
            hash.insert(field.clone(), next.to_string());
            Ok(Reply::Int(next))
        }
        _ => wrong_args(name),
    }
}

// ---- sets ----

fn sets(ks: &mut Keyspace, now: i64, name: &str, args: &[String]) -> Outcome {
    match (name, args) {
        ("SADD", [key, members @ ..]) if !members.is_empty() => {
            let set = container(ks, now, key, || Value::Set(BTreeSet::new()), as_set)?;
            count(members.iter().filter(|m| set.insert((*m).clone())).count())
        }
        ("SREM", [key, members @ ..]) if !members.is_empty() => {
            let removed = match existing(ks, now, key, as_set)? {
                Some(set) => members.iter().filter(|m| set.remove(*m)).count(),
                None => 0,
            };
            drop_if_empty(ks, key);
            count(removed)
        }
        ("SMEMBERS", [key]) => Ok(Reply::Array(
            existing(ks, now, key, as_set)?.map(|s| s.iter().map(|m| bulk(m)).collect()).unwrap_or_default(),
        )),
        ("SISMEMBER", [key, member]) => {
            count(usize::from(existing(ks, now, key, as_set)?.is_some_and(|s| s.contains(member))))
        }
        ("SCARD", [key]) => count(existing(ks, now, key, as_set)?.map_or(0, |s| s.len())),
        _ => wrong_args(name),
    }
}

// ---- sorted sets ----

fn parse_score(text: &str) -> Result<f64, CommandError> {
    let score = match text.to_ascii_lowercase().as_str() {
        "+inf" | "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        other => other.parse::<f64>().map_err(|_| CommandError("ERR value is not a valid float".into()))?,
    };
    if score.is_nan() {
        return error("ERR value is not a valid float").map(|_| 0.0);
    }
    Ok(score)
}

/// A score range bound: `5`, `(5` (exclusive), `-inf`, `+inf`.
#[derive(Clone, Copy)]
struct Bound {
    value: f64,
    exclusive: bool,
}

impl Bound {
    fn parse(text: &str) -> Result<Self, CommandError> {
        let (exclusive, number) = match text.strip_prefix('(') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let value = parse_score(number).map_err(|_| CommandError("ERR min or max is not a float".into()))?;
        Ok(Self { value, exclusive })
    }

    fn above_min(self, score: f64) -> bool {
        if self.exclusive {
            score > self.value
        } else {
            score >= self.value
        }
    }

    fn below_max(self, score: f64) -> bool {
        if self.exclusive {
            score < self.value
        } else {
            score <= self.value
        }
    }
}

/// Normalizes Redis rank indexes (negative counts from the end) to an inclusive range.
fn rank_range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (start + len).max(0) } else { start };
    let stop = if stop < 0 { stop + len } else { stop.min(len - 1) };
    (start <= stop && start < len && stop >= 0).then_some((start as usize, stop as usize))
}

struct RangeQuery {
    by_score: bool,
    reverse: bool,
    with_scores: bool,
    limit: Option<(i64, i64)>,
}

fn parse_range_options(options: &[String], mut query: RangeQuery) -> Result<RangeQuery, CommandError> {
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match option.to_ascii_uppercase().as_str() {
            "WITHSCORES" => query.with_scores = true,
            "BYSCORE" => query.by_score = true,
            "REV" => query.reverse = true,
            "LIMIT" => {
                let offset = int(options.next().ok_or_else(|| CommandError(SYNTAX.into()))?)?;
                let limit = int(options.next().ok_or_else(|| CommandError(SYNTAX.into()))?)?;
                query.limit = Some((offset, limit));
            }
            _ => return Err(CommandError(SYNTAX.into())),
        }
    }
    if query.limit.is_some() && !query.by_score {
        return Err(CommandError(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX".into(),
        ));
    }
    Ok(query)
}

fn range_reply(items: Vec<(&str, f64)>, with_scores: bool) -> Reply {
    Reply::Array(
        items
            .into_iter()
            .flat_map(|(member, score)| {
                let mut out = vec![bulk(member)];
                if with_scores {
                    out.push(bulk(&format_score(score)));
                }
                out
            })
            .collect(),
    )
}

fn zrange(zset: &SortedSet, first: &str, second: &str, query: &RangeQuery) -> Outcome {
    let items: Vec<(&str, f64)> = if query.by_score {
        // With REV the bounds come as max, min.
        let (min, max) = if query.reverse { (second, first) } else { (first, second) };
        let (min, max) = (Bound::parse(min)?, Bound::parse(max)?);
        let in_range = |&(_, score): &(&str, f64)| min.above_min(score) && max.below_max(score);
        let matching: Vec<(&str, f64)> = if query.reverse {
            zset.iter().rev().filter(in_range).collect()
        } else {
            zset.iter().filter(in_range).collect()
        };
        match query.limit {
            Some((offset, _)) if offset < 0 => Vec::new(),
            Some((offset, limit)) => {
                let taken = matching.into_iter().skip(offset as usize);
                if limit < 0 {
                    taken.collect()
                } else {
                    taken.take(limit as usize).collect()
                }
            }
            None => matching,
        }
    } else {
        let ordered: Vec<(&str, f64)> = if query.reverse { zset.iter().rev().collect() } else { zset.iter().collect() };
        match rank_range(ordered.len(), int(first)?, int(second)?) {
            Some((start, stop)) => ordered[start..=stop].to_vec(),
            None => Vec::new(),
        }
    };
    Ok(range_reply(items, query.with_scores))
}

fn sorted_sets(ks: &mut Keyspace, now: i64, name: &str, args: &[String]) -> Outcome {
    let plain = RangeQuery { by_score: false, reverse: false, with_scores: false, limit: None };
    match (name, args) {
        ("ZADD", [key, rest @ ..]) => {
            let (mut only_new, mut only_existing, mut changed) = (false, false, false);
            let mut rest = rest;
            while let Some(flag) = rest.first() {
                match flag.to_ascii_uppercase().as_str() {
                    "NX" => only_new = true,
                    "XX" => only_existing = true,
                    "CH" => changed = true,
                    _ => break,
                }
                rest = &rest[1..];
            }
            if rest.is_empty() || rest.len() % 2 != 0 {
                return if rest.is_empty() { wrong_args(name) } else { error(SYNTAX) };
            }
            if only_new && only_existing {
                return error("ERR XX and NX options at the same time are not compatible");
            }
            let pairs = rest
                .chunks(2)
                .map(|p| Ok((parse_score(&p[0])?, p[1].clone())))
                .collect::<Result<Vec<_>, CommandError>>()?;
            let zset = container(ks, now, key, || Value::ZSet(SortedSet::default()), as_zset)?;
            let mut counted = 0;
            for (score, member) in pairs {
                let previous = zset.score(&member);
                if (only_new && previous.is_some()) || (only_existing && previous.is_none()) {
                    continue;
                }
                zset.insert(member, score);
                if previous.is_none() || (changed && previous != Some(score)) {
                    counted += 1;
                }
            }
            drop_if_empty(ks, key);
            count(counted)
        }
        ("ZREM", [key, members @ ..]) if !members.is_empty() => {
            let removed = match existing(ks, now, key, as_zset)? {
                Some(zset) => members.iter().filter(|m| zset.remove(m)).count(),
                None => 0,
            };
            drop_if_empty(ks, key);
            count(removed)
        }
        ("ZCARD", [key]) => count(existing(ks, now, key, as_zset)?.map_or(0, |z| z.len())),
        ("ZSCORE", [key, member]) => Ok(existing(ks, now, key, as_zset)?
            .and_then(|z| z.score(member))
            .map_or(Reply::Nil, |score| bulk(&format_score(score)))),
        ("ZRANGE", [key, first, second, options @ ..]) => {
            let query = parse_range_options(options, plain)?;
            match existing(ks, now, key, as_zset)? {
                Some(zset) => zrange(zset, first, second, &query),
                None => Ok(Reply::Array(Vec::new())),
            }
        }
        ("ZRANGEBYSCORE" | "ZREVRANGEBYSCORE", [key, first, second, options @ ..]) => {
            let reverse = name == "ZREVRANGEBYSCORE";
            let query = parse_range_options(options, RangeQuery { by_score: true, reverse, ..plain })?;
            match existing(ks, now, key, as_zset)? {
                Some(zset) => zrange(zset, first, second, &query),
                None => Ok(Reply::Array(Vec::new())),
            }
        }
        ("ZREMRANGEBYRANK", [key, start, stop]) => {
            let (start, stop) = (int(start)?, int(stop)?);
            let removed = match existing(ks, now, key, as_zset)? {
                Some(zset) => match rank_range(zset.len(), start, stop) {
                    Some((first, last)) => {
                        let doomed: Vec<String> =
                            zset.iter().skip(first).take(last - first + 1).map(|(m, _)| m.to_owned()).collect();
                        doomed.iter().filter(|m| zset.remove(m)).count()
                    }
                    None => 0,
                },
                None => 0,
            };
            drop_if_empty(ks, key);
            count(removed)
        }
        _ => wrong_args(name),
    }
}

// ---- keyspace ----

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]`. The memory store is small and
/// bounded, so it answers every matching key in one call with cursor `0` — a reply Redis
/// itself gives for small keyspaces, and one every correct SCAN loop handles.
fn scan(ks: &mut Keyspace, now: i64, args: &[String]) -> Outcome {
    let Some((cursor, options)) = args.split_first() else { return wrong_args("SCAN") };
    if cursor.parse::<u64>().is_err() {
        return error("ERR invalid cursor");
    }
    let (mut pattern, mut type_filter) = (None, None);
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let value = options.next().ok_or_else(|| CommandError(SYNTAX.into()))?;
        match option.to_ascii_uppercase().as_str() {
            "MATCH" => pattern = Some(value.clone()),
            "COUNT" => {
                if int(value)? < 1 {
                    return error(SYNTAX);
                }
            }
            "TYPE" => type_filter = Some(value.to_ascii_lowercase()),
            _ => return error(SYNTAX),
        }
    }
    ks.purge_expired(now);
    let glob = pattern.as_deref().map(Glob::new);
    let mut keys: Vec<String> = ks
        .entries
        .iter()
        .filter(|(key, _)| glob.as_ref().is_none_or(|g| g.matches(key.as_bytes())))
        .filter(|(_, entry)| {
            type_filter.as_deref().is_none_or(|t| {
                t == match entry.value {
                    Value::Str(_) => "string",
                    Value::Hash(_) => "hash",
                    Value::Set(_) => "set",
                    Value::ZSet(_) => "zset",
                }
            })
        })
        .map(|(key, _)| key.clone())
        .collect();
    keys.sort();
    Ok(Reply::Array(vec![bulk("0"), Reply::Array(keys.iter().map(|k| bulk(k)).collect())]))
}

/// `INFO [section]`: the fields edgesync's stats read, in Redis's `field:value` format.
fn info(ks: &mut Keyspace, now: i64, section: Option<&str>) -> String {
    ks.purge_expired(now);
    let used: usize = ks
        .entries
        .iter()
        .map(|(key, entry)| {
            key.len()
                + match &entry.value {
                    Value::Str(bytes) => bytes.len(),
                    Value::Hash(h) => h.iter().map(|(f, v)| f.len() + v.len()).sum(),
                    Value::Set(s) => s.iter().map(String::len).sum(),
                    Value::ZSet(z) => z.iter().map(|(m, _)| m.len() + 8).sum(),
                }
        })
        .sum();
    let expires = ks.entries.iter().filter(|(_, e)| e.expires_at_ms.is_some()).count();
    let sections = [
        ("server", "# Server\r\nredis_version:edgesync-memory\r\n".to_owned()),
        (
            "memory",
            format!("# Memory\r\nused_memory:{used}\r\nused_memory_peak:{used}\r\nmaxmemory_policy:allkeys-lru\r\n"),
        ),
        ("stats", format!("# Stats\r\nevicted_keys:{}\r\n", ks.evicted)),
        ("keyspace", format!("# Keyspace\r\ndb0:keys={},expires={expires},avg_ttl=0\r\n", ks.entries.len())),
    ];
    let wanted = section.map(str::to_ascii_lowercase);
    sections
        .iter()
        .filter(|(name, _)| wanted.as_deref().is_none_or(|w| w == *name || w == "all" || w == "everything"))
        .map(|(_, text)| text.as_str())
        .collect::<Vec<_>>()
        .join("\r\n")
}
