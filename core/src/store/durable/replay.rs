//! Replay: the keys the copy holds pending (written while Redis was unavailable) go back to
//! Redis, the longest pending first, as their **final state** — so replaying twice leaves
//! Redis as replaying once — and a value in Redis that is newer than the copy's is never
//! overwritten:
//!
//! - a JSON string record carries its time (`ts`, `fetched_at` or `computed_at`, ms): it is
//!   written only where Redis has no value, or one whose time is not newer; a value Redis holds
//!   that has no readable time is left as it is (permanent data is not overwritten blind);
//! - a hash with a time field (`updated_at`, `cost_updated_at`, `last_started`) likewise;
//! - sets and sorted sets (indexes, histories keyed by timestamp) are merged: `SADD`/`ZADD`
//!   of every member the copy holds, which adds each missing member exactly once and never
//!   removes one (the next cron trims histories to their bound, as always);
//! - a key the copy deleted is deleted in Redis; other strings are written as they are.
//!
//! Each comparison runs inside Redis (a small Lua script), so no writer can slip between the
//! read and the write. A key's mark is cleared only if no deferred write renewed it meanwhile.

use serde::Serialize;

use super::wire::PendingKey;
use super::DurableStore;
use crate::store::memory::{StoredEntry, StoredValue};
use crate::store::{Command, Store, StoreError};

/// Time fields of JSON records, in the order they are looked for.
const JSON_TIME_FIELDS: [&str; 3] = ["ts", "fetched_at", "computed_at"];
/// Time fields of hashes, in the order they are looked for.
const HASH_TIME_FIELDS: [&str; 3] = ["updated_at", "cost_updated_at", "last_started"];
/// Keys replayed per Redis request.
const REPLAY_BATCH: usize = 200;

/// `KEYS[1]` = key; `ARGV` = value, time field, the value's time. 1: written; 0: Redis holds
/// a newer value, or one without a readable time. At an equal time the copy's state is
/// written: the copy took the same write and holds everything besides (a replay follows the
/// cron's own writes, and a status hash's counters from the outage live only in the copy).
const SET_IF_NEWER: &str = "local current = redis.call('GET', KEYS[1]) \
if current then \
  local ok, doc = pcall(cjson.decode, current) \
  if not ok or type(doc) ~= 'table' then return 0 end \
  local held = tonumber(doc[ARGV[2]]) \
  if not held or held > tonumber(ARGV[3]) then return 0 end \
end \
redis.call('SET', KEYS[1], ARGV[1]) \
return 1";

/// `KEYS[1]` = key; `ARGV` = time field, the copy's time, then field, value, …
const HSET_IF_NEWER: &str = "local current = redis.call('HGET', KEYS[1], ARGV[1]) \
if current then \
  local held = tonumber(current) \
  if not held or held > tonumber(ARGV[2]) then return 0 end \
end \
redis.call('HSET', KEYS[1], unpack(ARGV, 3)) \
return 1";

/// What one replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplayReport {
    /// Keys whose final state was written to Redis.
    pub written: u64,
    /// Keys Redis already held newer values for (left as Redis had them).
    pub kept_newer: u64,
    /// Keys replayed and acknowledged to the copy.
    pub cleared: u64,
    /// Keys a command failed for (they stay pending).
    pub failed: u64,
}

fn json_time(bytes: &[u8]) -> Option<(&'static str, i64)> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    JSON_TIME_FIELDS.iter().find_map(|field| doc.get(*field).and_then(serde_json::Value::as_i64).map(|t| (*field, t)))
}

/// The Redis command that writes `pending`'s final state (`None`: nothing to write, e.g. an
/// expired cache value).
pub fn replay_command(pending: &PendingKey, now: i64) -> Option<Command> {
    let key = pending.key.as_str();
    let Some(StoredEntry { value, expires_at_ms }) = &pending.entry else {
        return Some(Command::unlink(&[key]));
    };
    let ttl_ms = match expires_at_ms {
        Some(at) if *at <= now => return None,
        Some(at) => Some(at - now),
        None => None,
    };
    let command = match value {
        StoredValue::String(bytes) => match (json_time(bytes), ttl_ms) {
            (Some((field, time)), None) => {
                Command::new("EVAL").arg(SET_IF_NEWER).arg(1).arg(key).arg_bytes(bytes).arg(field).arg(time)
            }
            (_, Some(ttl_ms)) => Command::new("SET").arg(key).arg_bytes(bytes).arg("PX").arg(ttl_ms),
            (None, None) => Command::new("SET").arg(key).arg_bytes(bytes),
        },
        StoredValue::Hash(fields) => {
            let time = HASH_TIME_FIELDS
                .iter()
                .find_map(|f| fields.get(*f).and_then(|v| v.parse::<i64>().ok()).map(|t| (*f, t)));
            let pairs: Vec<(&String, &String)> = fields.iter().collect();
            match time {
                Some((field, time)) => pairs.iter().fold(
                    Command::new("EVAL").arg(HSET_IF_NEWER).arg(1).arg(key).arg(field).arg(time),
                    |command, (f, v)| command.arg(f).arg(v),
                ),
                None => Command::hset(key, &pairs),
            }
        }
        StoredValue::Set(members) => Command::sadd(key, &members.iter().collect::<Vec<_>>()),
        StoredValue::Zset(members) => members.iter().fold(Command::new("ZADD").arg(key), |command, (member, score)| {
            command.arg(crate::store::memory::zset::format_score(*score)).arg(member)
        }),
    };
    // A TTL'd non-string keeps its remaining lifetime.
    Some(command)
}

/// Replays every pending key to `redis`, batch by batch, and acknowledges each batch to the
/// copy. Stops at the first batch Redis does not take (the rest stays pending).
pub async fn replay(redis: &dyn Store, durable: &DurableStore, now: i64) -> Result<ReplayReport, StoreError> {
    let mut report = ReplayReport::default();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let pending: Vec<PendingKey> = durable
            .pending(REPLAY_BATCH)
            .await?
            .into_iter()
            .filter(|p| !seen.contains(&(p.key.clone(), p.stamp)))
            .collect();
        if pending.is_empty() {
            return Ok(report);
        }
        let mut commands = Vec::new();
        let mut owners = Vec::new();
        let mut acknowledged = Vec::new();
        for key in &pending {
            seen.insert((key.key.clone(), key.stamp));
            match replay_command(key, now) {
                Some(command) => {
                    commands.push(command);
                    owners.push(key);
                }
                None => acknowledged.push((key.key.clone(), key.stamp)),
            }
        }
        let replies = redis.pipeline(&commands).await?;
        for (key, reply) in owners.into_iter().zip(replies) {
            match reply {
                Ok(crate::store::Reply::Int(0)) => {
                    report.kept_newer += 1;
                    acknowledged.push((key.key.clone(), key.stamp));
                }
                Ok(_) => {
                    report.written += 1;
                    acknowledged.push((key.key.clone(), key.stamp));
                }
                Err(_) => report.failed += 1,
            }
        }
        report.cleared += durable.replayed(acknowledged).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(key: &str, value: StoredValue) -> PendingKey {
        PendingKey {
            key: key.into(),
            entry: Some(StoredEntry { value, expires_at_ms: None }),
            pending_since_ms: 0,
            stamp: 1,
        }
    }

    fn text(command: &Command) -> Vec<String> {
        command.parts().iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect()
    }

    #[test]
    fn each_shape_replays_as_its_final_state() {
        let record = pending("p:latest", StoredValue::String(br#"{"price":"1","ts":42}"#.to_vec()));
        let parts = text(&replay_command(&record, 0).unwrap());
        assert_eq!(
            (parts[0].as_str(), &parts[2..]),
            (
                "EVAL",
                &["1".to_string(), "p:latest".into(), r#"{"price":"1","ts":42}"#.into(), "ts".into(), "42".into()][..]
            )
        );
        let history = pending("p:history", StoredValue::Zset(vec![("a".into(), 1.0), ("b".into(), 2.0)]));
        assert_eq!(text(&replay_command(&history, 0).unwrap()), ["ZADD", "p:history", "1", "a", "2", "b"]);
        let gone = PendingKey { entry: None, ..record.clone() };
        assert_eq!(text(&replay_command(&gone, 0).unwrap()), ["UNLINK", "p:latest"]);
        let expired = PendingKey {
            entry: Some(StoredEntry { value: StoredValue::String(b"x".to_vec()), expires_at_ms: Some(5) }),
            ..record
        };
        assert!(replay_command(&expired, 5).is_none(), "an expired cache value is not replayed");
        let position = pending(
            "pos",
            StoredValue::Hash([("qty".to_string(), "1".to_string()), ("updated_at".into(), "7".into())].into()),
        );
        let parts = text(&replay_command(&position, 0).unwrap());
        assert_eq!(&parts[2..], ["1", "pos", "updated_at", "7", "qty", "1", "updated_at", "7"]);
    }
}
