//! [`DurableCopy`]: the Durable Object's logic, over [`Rows`] (its SQLite tables; a map in
//! tests). A batch of commands runs with Redis semantics on the memory store's interpreter:
//! the rows of every key the batch names are loaded into a scratch store, the batch runs,
//! and each key that changed is written back (or deleted) with the time. Keyless commands are
//! answered from the rows themselves (`SCAN`, `DBSIZE`, `PING`) or refused.
//!
//! Bounded: at most `max_keys` rows. A write that would add a key beyond that is not kept;
//! its command still answers (the write reached Redis, or is refused below), and the refusal
//! is counted in [`DurableStats::refused_keys`], which `/health` shows — never silent.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::FutureExt;

use super::member_write::MemberWrite;
use super::wire::{DurableRequest, DurableResponse, DurableStats, PendingKey};
use crate::clock::FixedClock;
use crate::glob::Glob;
use crate::log::{EventLog, Silent};
use crate::store::memory::{MemoryStore, StoredEntry};
use crate::store::{Command, CommandError, Replies, Reply, Store};

/// A row of the copy: one key's value and when the copy last wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub entry: StoredEntry,
    pub written_at_ms: i64,
}

/// Storage failed; the message names what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("durable storage: {0}")]
pub struct RowsError(pub String);

/// How a key is stored, as far as a [`MemberWrite`] is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Absent,
    /// A permanent sorted set kept member by member: [`Rows::write_members`] applies to it.
    MemberWise,
    /// Anything else (loaded whole into the interpreter).
    Other,
}

/// The copy's storage. Synchronous, as SQLite in a Durable Object is.
pub trait Rows {
    fn load(&self, key: &str) -> Result<Option<Row>, RowsError>;
    /// Writes (`Some`) or deletes (`None`) the row of `key`.
    fn save(&self, key: &str, row: Option<&Row>) -> Result<(), RowsError>;
    fn count(&self) -> Result<u64, RowsError>;
    /// Keys in key order, from position `offset`.
    fn keys(&self, offset: u64, limit: usize) -> Result<Vec<String>, RowsError>;
    /// Marks `key` pending since `now` (kept if already pending) and renews its stamp.
    fn mark_pending(&self, key: &str, now: i64) -> Result<(), RowsError>;
    /// `(key, pending since, stamp)`, the longest pending first.
    fn pending(&self, limit: usize) -> Result<Vec<(String, i64, u64)>, RowsError>;
    fn pending_count(&self) -> Result<(u64, Option<i64>), RowsError>;
    /// Clears the mark of `key` if its stamp is still `stamp`; true when cleared.
    fn clear_pending(&self, key: &str, stamp: u64) -> Result<bool, RowsError>;
    /// Adds `n` to the counter `name` and returns its value.
    fn bump(&self, name: &str, n: u64) -> Result<u64, RowsError>;
    /// How `key` is stored, without loading a sorted set's members.
    fn stored(&self, key: &str) -> Result<Stored, RowsError>;
    /// Applies `write` to the sorted set at `key` (absent or [`Stored::MemberWise`]) and
    /// answers as Redis does; the row's write time becomes `now` when anything changed.
    fn write_members(&self, key: &str, write: &MemberWrite, now: i64) -> Result<i64, RowsError>;
}

/// Default bound on the copy's keys per namespace.
pub const DEFAULT_MAX_KEYS: u64 = 10_000;

pub struct DurableCopy<'a> {
    rows: &'a dyn Rows,
    max_keys: u64,
    log: &'a dyn EventLog,
}

impl<'a> DurableCopy<'a> {
    pub fn new(rows: &'a dyn Rows, max_keys: u64) -> Self {
        Self { rows, max_keys, log: &Silent }
    }

    /// Reports refused keys to `log`.
    pub fn with_log(mut self, log: &'a dyn EventLog) -> Self {
        self.log = log;
        self
    }

    /// Serves one request; storage failures become [`DurableResponse::Error`].
    pub fn handle(&self, request: DurableRequest, now: i64) -> DurableResponse {
        let outcome = match request {
            DurableRequest::Run { commands, deferred } => {
                let decoded: Result<Vec<Command>, String> =
                    commands.iter().map(|parts| super::wire::decode_command(parts)).collect();
                match decoded {
                    Ok(commands) => self.run(&commands, deferred, now).and_then(|(replies, oldest)| {
                        Ok(DurableResponse::Replies {
                            replies: super::wire::encode_replies(&replies),
                            oldest_written_at_ms: oldest,
                            pending: self.rows.pending_count()?.0,
                        })
                    }),
                    Err(message) => return DurableResponse::Error { message },
                }
            }
            DurableRequest::Pending { limit } => self.pending(limit).map(|keys| DurableResponse::Pending { keys }),
            DurableRequest::Replayed { keys } => {
                let mut cleared = 0;
                let result = keys.iter().try_for_each(|(key, stamp)| {
                    cleared += u64::from(self.rows.clear_pending(key, *stamp)?);
                    Ok::<_, RowsError>(())
                });
                result.map(|()| DurableResponse::Replayed { cleared })
            }
            DurableRequest::Stats => self.stats().map(DurableResponse::Stats),
        };
        outcome.unwrap_or_else(|error| DurableResponse::Error { message: error.to_string() })
    }

    pub fn stats(&self) -> Result<DurableStats, RowsError> {
        let (pending, oldest_pending_ms) = self.rows.pending_count()?;
        Ok(DurableStats {
            keys: self.rows.count()?,
            pending,
            oldest_pending_ms,
            refused_keys: self.rows.bump("refused_keys", 0)?,
            max_keys: self.max_keys,
        })
    }

    fn pending(&self, limit: usize) -> Result<Vec<PendingKey>, RowsError> {
        let mut keys = Vec::new();
        for (key, pending_since_ms, stamp) in self.rows.pending(limit)? {
            let entry = self.rows.load(&key)?.map(|row| row.entry);
            keys.push(PendingKey { key, entry, pending_since_ms, stamp });
        }
        Ok(keys)
    }

    /// Runs `commands` in order; returns the replies and the oldest write time of the rows
    /// the batch read.
    pub fn run(&self, commands: &[Command], deferred: bool, now: i64) -> Result<(Replies, Option<i64>), RowsError> {
        let member_wise = self.member_wise_keys(commands)?;
        let whole = |key: &&str| !member_wise.contains(key);
        // Room for every key the batch names: nothing in the scratch store is ever evicted.
        let named: std::collections::BTreeSet<&str> = commands.iter().flat_map(Command::keys).filter(whole).collect();
        let scratch = MemoryStore::new(Arc::new(FixedClock::at(now)), named.len());
        let mut loaded: BTreeMap<String, Option<Row>> = BTreeMap::new();
        for key in named {
            let row = self.rows.load(key)?;
            if let Some(row) = &row {
                scratch.load(key, row.entry.clone());
            }
            loaded.insert(key.to_owned(), row);
        }
        let mut replies = Vec::with_capacity(commands.len());
        let mut oldest: Option<i64> = None;
        let mut written: Vec<&str> = Vec::new();
        let mut count = None;
        for command in commands {
            let reply = match command.name() {
                "SCAN" => self.scan(command),
                "DBSIZE" => Ok(Ok(Reply::Int(self.rows.count()? as i64))),
                "PING" => Ok(Ok(Reply::bulk("PONG"))),
                _ if command.keys().is_empty() => {
                    Ok(Err(CommandError(format!("ERR `{}` is not served by the durable copy", command.name()))))
                }
                _ => {
                    if !command.is_read_only() {
                        written.extend(command.keys());
                    }
                    match MemberWrite::of(command).filter(|(key, _)| member_wise.contains(key)) {
                        Some((key, write)) => self.write_members(key, &write, now, &mut count).map(Ok),
                        None => {
                            for key in command.keys() {
                                if let Some(Some(row)) = loaded.get(key) {
                                    oldest = Some(oldest.map_or(row.written_at_ms, |at| at.min(row.written_at_ms)));
                                }
                            }
                            let mut answer = scratch
                                .pipeline(std::slice::from_ref(command))
                                .now_or_never()
                                .expect("the memory store never waits")
                                .map_err(|error| RowsError(error.to_string()))?;
                            Ok(answer.pop().unwrap_or_else(|| Err(CommandError("ERR no reply".into()))))
                        }
                    }
                }
            }?;
            replies.push(reply);
        }
        for (key, before) in &loaded {
            let after = scratch.export(key);
            if after.as_ref() == before.as_ref().map(|row| &row.entry) {
                continue;
            }
            match after {
                Some(entry) => {
                    if before.is_none() && !self.room_for_a_key(key, &mut count)? {
                        continue;
                    }
                    self.rows.save(key, Some(&Row { entry, written_at_ms: now }))?;
                }
                None => self.rows.save(key, None)?,
            }
        }
        if deferred {
            written.sort_unstable();
            written.dedup();
            for key in written {
                self.rows.mark_pending(key, now)?;
            }
        }
        Ok((replies, oldest))
    }

    /// The keys of `commands` that every command naming them writes member by member
    /// ([`MemberWrite`]), and whose row is absent or a sorted set kept that way.
    fn member_wise_keys<'c>(&self, commands: &'c [Command]) -> Result<std::collections::BTreeSet<&'c str>, RowsError> {
        let mut candidates = std::collections::BTreeSet::new();
        let mut whole = std::collections::BTreeSet::new();
        for command in commands {
            match MemberWrite::of(command) {
                Some((key, _)) => {
                    candidates.insert(key);
                }
                None => whole.extend(command.keys()),
            }
        }
        let mut keys = std::collections::BTreeSet::new();
        for key in candidates.difference(&whole) {
            if matches!(self.rows.stored(key)?, Stored::Absent | Stored::MemberWise) {
                keys.insert(*key);
            }
        }
        Ok(keys)
    }

    /// One [`MemberWrite`] on the rows; an add that would create a key past the bound is
    /// refused as any new key is (answered, counted, logged).
    fn write_members(
        &self,
        key: &str,
        write: &MemberWrite,
        now: i64,
        count: &mut Option<u64>,
    ) -> Result<Reply, RowsError> {
        let creates = matches!(write, MemberWrite::Add(_)) && self.rows.stored(key)? == Stored::Absent;
        if creates && !self.room_for_a_key(key, count)? {
            return Ok(Reply::Int(0));
        }
        Ok(Reply::Int(self.rows.write_members(key, write, now)?))
    }

    /// Whether one more key fits the bound (counted in `count`); a refusal is counted in
    /// [`DurableStats::refused_keys`] and logged.
    fn room_for_a_key(&self, key: &str, count: &mut Option<u64>) -> Result<bool, RowsError> {
        let keys = match *count {
            Some(n) => n,
            None => self.rows.count()?,
        };
        if keys >= self.max_keys {
            let refused = self.rows.bump("refused_keys", 1)?;
            self.log.warn(&serde_json::json!({
                "event": "durable_copy_full",
                "key": key,
                "max_keys": self.max_keys,
                "refused_keys": refused,
            }));
            *count = Some(keys);
            return Ok(false);
        }
        *count = Some(keys + 1);
        Ok(true)
    }

    /// `SCAN cursor [MATCH pattern] [COUNT n]` over the rows: the cursor is a position in key
    /// order (rows added or removed between calls may shift it, as Redis allows for SCAN).
    fn scan(&self, command: &Command) -> Result<Result<Reply, CommandError>, RowsError> {
        let cursor: u64 = command.text(0).and_then(|c| c.parse().ok()).unwrap_or(0);
        let mut pattern = None;
        let mut count = 10usize;
        let mut i = 1;
        while let Some(option) = command.text(i) {
            match option.to_ascii_uppercase().as_str() {
                "MATCH" => pattern = command.text(i + 1).map(Glob::new),
                "COUNT" => count = command.text(i + 1).and_then(|n| n.parse().ok()).unwrap_or(10).max(1),
                _ => {}
            }
            i += 2;
        }
        let page = self.rows.keys(cursor, count)?;
        let next = if page.len() < count { 0 } else { cursor + page.len() as u64 };
        let keys = page
            .into_iter()
            .filter(|key| pattern.as_ref().is_none_or(|glob| glob.matches(key.as_bytes())))
            .map(Reply::bulk)
            .collect();
        Ok(Ok(Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(keys)])))
    }
}

/// Rows in a map: the copy in native tests.
#[cfg(test)]
use crate::store::memory::StoredValue;

#[cfg(test)]
#[derive(Default)]
pub struct MapRows {
    rows: std::sync::Mutex<MapState>,
}

#[cfg(test)]
#[derive(Default)]
struct MapState {
    rows: BTreeMap<String, Row>,
    pending: BTreeMap<String, (i64, u64)>,
    counters: BTreeMap<String, u64>,
}

#[cfg(test)]
impl MapRows {
    fn state(&self) -> std::sync::MutexGuard<'_, MapState> {
        self.rows.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
impl Rows for MapRows {
    fn load(&self, key: &str) -> Result<Option<Row>, RowsError> {
        Ok(self.state().rows.get(key).cloned())
    }
    fn save(&self, key: &str, row: Option<&Row>) -> Result<(), RowsError> {
        let mut state = self.state();
        match row {
            Some(row) => state.rows.insert(key.to_owned(), row.clone()),
            None => state.rows.remove(key),
        };
        Ok(())
    }
    fn count(&self) -> Result<u64, RowsError> {
        Ok(self.state().rows.len() as u64)
    }
    fn keys(&self, offset: u64, limit: usize) -> Result<Vec<String>, RowsError> {
        Ok(self.state().rows.keys().skip(offset as usize).take(limit).cloned().collect())
    }
    fn mark_pending(&self, key: &str, now: i64) -> Result<(), RowsError> {
        let mut state = self.state();
        let mark = state.pending.entry(key.to_owned()).or_insert((now, 0));
        mark.1 += 1;
        Ok(())
    }
    fn pending(&self, limit: usize) -> Result<Vec<(String, i64, u64)>, RowsError> {
        let state = self.state();
        let mut marks: Vec<(String, i64, u64)> =
            state.pending.iter().map(|(key, (since, stamp))| (key.clone(), *since, *stamp)).collect();
        marks.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        marks.truncate(limit);
        Ok(marks)
    }
    fn pending_count(&self) -> Result<(u64, Option<i64>), RowsError> {
        let state = self.state();
        Ok((state.pending.len() as u64, state.pending.values().map(|(since, _)| *since).min()))
    }
    fn clear_pending(&self, key: &str, stamp: u64) -> Result<bool, RowsError> {
        let mut state = self.state();
        if state.pending.get(key).is_some_and(|(_, current)| *current == stamp) {
            state.pending.remove(key);
            return Ok(true);
        }
        Ok(false)
    }
    fn bump(&self, name: &str, n: u64) -> Result<u64, RowsError> {
        let mut state = self.state();
        let counter = state.counters.entry(name.to_owned()).or_default();
        *counter += n;
        Ok(*counter)
    }
    fn stored(&self, key: &str) -> Result<Stored, RowsError> {
        Ok(match self.state().rows.get(key) {
            None => Stored::Absent,
            Some(Row { entry: StoredEntry { value: StoredValue::Zset(_), expires_at_ms: None }, .. }) => {
                Stored::MemberWise
            }
            Some(_) => Stored::Other,
        })
    }
    fn write_members(&self, key: &str, write: &MemberWrite, now: i64) -> Result<i64, RowsError> {
        let mut state = self.state();
        let (mut members, written_before) = match state.rows.remove(key) {
            Some(Row { entry: StoredEntry { value: StoredValue::Zset(members), .. }, written_at_ms }) => {
                (members, written_at_ms)
            }
            _ => (Vec::new(), now),
        };
        let before = members.clone();
        let answer = match write {
            MemberWrite::Add(pairs) => {
                let mut added = 0;
                for (score, member) in pairs {
                    match members.iter_mut().find(|(m, _)| m == member) {
                        Some(existing) => existing.1 = *score,
                        None => {
                            members.push(((*member).to_owned(), *score));
                            added += 1;
                        }
                    }
                }
                members.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.as_bytes().cmp(b.0.as_bytes())));
                added
            }
            MemberWrite::KeepNewest(keep) => {
                let removed = members.len().saturating_sub(*keep);
                members.drain(..removed);
                removed as i64
            }
        };
        if !members.is_empty() {
            let written_at_ms = if members == before { written_before } else { now };
            let entry = StoredEntry { value: StoredValue::Zset(members), expires_at_ms: None };
            state.rows.insert(key.to_owned(), Row { entry, written_at_ms });
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(copy: &DurableCopy, commands: &[Command], deferred: bool, now: i64) -> Replies {
        copy.run(commands, deferred, now).unwrap().0
    }

    #[test]
    fn commands_run_with_redis_semantics_and_persist_in_rows() {
        let rows = MapRows::default();
        let copy = DurableCopy::new(&rows, 100);
        let history = "q:v1:price:mexc:QRLUSDT:history";
        let replies = run(
            &copy,
            &[
                Command::set("q:v1:price:mexc:QRLUSDT:latest", b"{\"ts\":1}", None),
                Command::zadd(history, 1, "a"),
                Command::zadd(history, 2, "b"),
                Command::zadd(history, 3, "c"),
                Command::ztrim_to_newest(history, 2),
                Command::hset("q:v1:sync:price:status", &[("last_ok", "3")]),
            ],
            false,
            1_000,
        );
        assert!(replies.iter().all(Result::is_ok), "{replies:?}");
        // A fresh copy over the same rows: what a restarted Durable Object sees.
        let again = DurableCopy::new(&rows, 100);
        let (replies, oldest) = again
            .run(
                &[Command::new("ZRANGE").arg(history).arg(0).arg(-1), Command::new("GET").arg("missing")],
                false,
                2_000,
            )
            .unwrap();
        assert_eq!(replies[0], Ok(Reply::Array(vec![Reply::bulk("b"), Reply::bulk("c")])), "trimmed as in Redis");
        assert_eq!(replies[1], Ok(Reply::Nil));
        assert_eq!(oldest, Some(1_000), "the age of what was read");
        assert_eq!(
            rows.load(history).unwrap().unwrap().entry.value,
            StoredValue::Zset(vec![("b".into(), 2.0), ("c".into(), 3.0)])
        );
        assert_eq!(rows.pending_count().unwrap().0, 0, "Redis acknowledged: nothing pending");
    }

    #[test]
    fn deferred_writes_mark_their_keys_once_and_replays_clear_only_unrenewed_marks() {
        let rows = MapRows::default();
        let copy = DurableCopy::new(&rows, 100);
        run(&copy, &[Command::set("a", b"1", None), Command::new("GET").arg("b")], true, 10);
        run(&copy, &[Command::set("a", b"2", None), Command::set("c", b"3", None)], true, 20);
        let DurableResponse::Pending { keys } = copy.handle(DurableRequest::Pending { limit: 10 }, 30) else {
            panic!("pending keys")
        };
        let listed: Vec<(&str, i64)> = keys.iter().map(|k| (k.key.as_str(), k.pending_since_ms)).collect();
        assert_eq!(listed, [("a", 10), ("c", 20)], "a read marks nothing; the longest pending first");
        assert_eq!(keys[0].entry.as_ref().unwrap().value, StoredValue::String(b"2".to_vec()), "the final state");
        // `a` is written again before the replay is acknowledged: its mark stays.
        run(&copy, &[Command::set("a", b"4", None)], true, 40);
        let stamps: Vec<(String, u64)> = keys.iter().map(|k| (k.key.clone(), k.stamp)).collect();
        assert_eq!(
            copy.handle(DurableRequest::Replayed { keys: stamps }, 50),
            DurableResponse::Replayed { cleared: 1 }
        );
        assert_eq!(rows.pending(10).unwrap().iter().map(|p| p.0.as_str()).collect::<Vec<_>>(), ["a"]);
    }

    /// History appends run member by member; the result is what Redis (the interpreter, which
    /// the conformance suite checks against Redis) holds after the same batches, replies
    /// included — also for a key of another type, and for a batch that reads the history too.
    #[test]
    fn member_wise_appends_leave_what_the_interpreter_leaves() {
        let rows = MapRows::default();
        let copy = DurableCopy::new(&rows, 100);
        let redis = MemoryStore::new(Arc::new(FixedClock::at(0)), 100);
        let batches: Vec<Vec<Command>> = vec![
            vec![Command::zadd("h", 3, "c"), Command::zadd("h", 1, "a"), Command::ztrim_to_newest("h", 5)],
            vec![Command::zadd("h", 2, "b"), Command::zadd("h", 2, "a2"), Command::ztrim_to_newest("h", 3)],
            vec![Command::new("ZADD").arg("h").arg(9).arg("a2").arg(4).arg("d"), Command::ztrim_to_newest("h", 3)],
            vec![
                Command::zadd("h", 5, "e"),
                Command::new("ZRANGE").arg("h").arg(0).arg(-1),
                Command::ztrim_to_newest("h", 2),
            ],
            vec![Command::set("s", b"text", None), Command::zadd("s", 1, "x"), Command::ztrim_to_newest("empty", 1)],
            vec![Command::ztrim_to_newest("h", 0), Command::zadd("fresh", 1, "x")],
        ];
        for (at, batch) in batches.iter().enumerate() {
            let ours = run(&copy, batch, false, at as i64);
            let theirs = redis.pipeline(batch).now_or_never().unwrap().unwrap();
            assert_eq!(ours, theirs, "batch {at}");
        }
        for key in ["h", "s", "fresh", "empty"] {
            assert_eq!(rows.load(key).unwrap().map(|row| row.entry), redis.export(key), "{key}");
        }
        assert_eq!(rows.stored("fresh").unwrap(), Stored::MemberWise);
        assert_eq!(rows.stored("s").unwrap(), Stored::Other);
    }

    /// Keeps what it is told.
    #[derive(Default)]
    struct Recorded(std::cell::RefCell<Vec<serde_json::Value>>);

    impl EventLog for Recorded {
        fn warn(&self, event: &serde_json::Value) {
            self.0.borrow_mut().push(event.clone());
        }
    }

    #[test]
    fn the_key_bound_refuses_new_keys_and_counts_and_logs_them() {
        let rows = MapRows::default();
        let log = Recorded::default();
        let copy = DurableCopy::new(&rows, 2).with_log(&log);
        run(
            &copy,
            &[Command::set("a", b"1", None), Command::set("b", b"1", None), Command::set("c", b"1", None)],
            false,
            1,
        );
        assert_eq!(rows.count().unwrap(), 2);
        run(&copy, &[Command::set("a", b"2", None)], false, 2);
        assert_eq!(
            rows.load("a").unwrap().unwrap().entry.value,
            StoredValue::String(b"2".to_vec()),
            "existing keys still change"
        );
        assert_eq!(copy.stats().unwrap().refused_keys, 1);
        let events = log.0.borrow();
        assert_eq!(
            (events.len(), events[0]["event"].as_str(), events[0]["key"].as_str()),
            (1, Some("durable_copy_full"), Some("c"))
        );
    }

    #[test]
    fn expired_rows_read_as_absent_and_scan_lists_rows() {
        let rows = MapRows::default();
        let copy = DurableCopy::new(&rows, 100);
        run(
            &copy,
            &[Command::set("t", b"1", Some(std::time::Duration::from_secs(1))), Command::set("p", b"1", None)],
            false,
            0,
        );
        assert_eq!(run(&copy, &[Command::new("GET").arg("t")], false, 5_000)[0], Ok(Reply::Nil));
        let replies = run(&copy, &[Command::scan(0, "*", 10), Command::new("DBSIZE")], false, 5_000);
        assert_eq!(replies[0], Ok(Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![Reply::bulk("p")])])));
        assert_eq!(replies[1], Ok(Reply::Int(1)), "the expired row is gone once read");
        assert!(run(&copy, &[Command::new("INFO")], false, 0)[0].is_err(), "other keyless commands are refused");
    }
}
