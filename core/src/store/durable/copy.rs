//! [`DurableCopy`]: the Durable Object's logic, over [`Rows`] (its SQLite tables; a map in
//! tests). A batch of commands runs with Redis semantics on the memory store's interpreter:
//! the rows of every key the batch names are loaded into a scratch store, the batch runs,
//! and each key that changed is written back (or deleted) with the time. Keyless commands are
//! answered from the rows themselves (`SCAN`, `DBSIZE`, `PING`) or refused.
//!
//! Bounded: at most `max_keys` rows. A write that would add a key beyond that is not kept;
//! its command still answers (the write reached Redis, or is refused below), and the refusal
//! is counted in [`DurableStats::refused_keys`], which `/health` shows — never silent.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::FutureExt;

use super::blind_write::is_blind_write;
use super::member_write::MemberWrite;
pub use super::rows::{Row, Rows, RowsError, Stored};
use super::wire::{DurableRequest, DurableResponse, DurableStats, PendingKey};
use crate::clock::FixedClock;
use crate::glob::Glob;
use crate::log::{EventLog, Silent};
use crate::store::memory::MemoryStore;
use crate::store::{Command, CommandError, Replies, Reply, Store};

/// Default bound on the copy's keys per namespace.
pub const DEFAULT_MAX_KEYS: u64 = 10_000;

/// How a batch's keys run ([`DurableCopy::plan`]).
struct KeyPlan<'c> {
    /// Written only by [`MemberWrite`]s, and absent or a member-wise sorted set.
    member_wise: BTreeSet<&'c str>,
    /// Written only by [`is_blind_write`]s: run on the interpreter without loading.
    blind: BTreeSet<&'c str>,
    /// Loaded into the interpreter.
    whole: BTreeSet<&'c str>,
    /// How the member-wise and blind candidates were stored before the batch.
    stored: BTreeMap<&'c str, Stored>,
}

/// What a batch's member-wise writes did, per key.
#[derive(Default)]
struct SortedSetWrites<'c> {
    changed: BTreeSet<&'c str>,
    emptied: BTreeSet<&'c str>,
    created: BTreeSet<&'c str>,
    /// New keys past the bound: not kept.
    refused: BTreeSet<&'c str>,
}

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
                        // Only a writer replays; a read (every read, when the copy is the
                        // store) spends no statement on counting.
                        let writes = commands.iter().any(|command| !command.is_read_only());
                        Ok(DurableResponse::Replies {
                            replies: super::wire::encode_replies(&replies),
                            oldest_written_at_ms: oldest,
                            pending: if writes { self.rows.pending_count()?.0 } else { 0 },
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
        let plan = self.plan(commands)?;
        // Room for every key the batch names: nothing in the scratch store is ever evicted.
        let scratch = MemoryStore::new(Arc::new(FixedClock::at(now)), plan.whole.len() + plan.blind.len());
        let whole: Vec<&str> = plan.whole.iter().copied().collect();
        let mut loaded: BTreeMap<&str, Option<Row>> = BTreeMap::new();
        for (key, row) in whole.iter().zip(self.rows.load_many(&whole)?) {
            if let Some(row) = &row {
                scratch.load(key, row.entry.clone());
            }
            loaded.insert(key, row);
        }
        let mut replies = Vec::with_capacity(commands.len());
        let mut oldest: Option<i64> = None;
        let mut written: Vec<&str> = Vec::new();
        let mut count = None;
        let mut sorted_sets = SortedSetWrites::default();
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
                    match MemberWrite::of(command).filter(|(key, _)| plan.member_wise.contains(key)) {
                        Some((key, write)) => {
                            self.write_members(key, &write, &plan, &mut sorted_sets, &mut count).map(Ok)
                        }
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
        let mut saves: Vec<(&str, Option<Row>)> = Vec::new();
        for (key, before) in &loaded {
            let after = scratch.export(key);
            if after.as_ref() == before.as_ref().map(|row| &row.entry) {
                continue;
            }
            if after.is_some() && before.is_none() && !self.room_for_a_key(key, &mut count)? {
                continue;
            }
            saves.push((key, after.map(|entry| Row { entry, written_at_ms: now })));
        }
        for key in &plan.blind {
            let after = scratch.export(key);
            if after.is_some() && plan.stored[key] == Stored::Absent && !self.room_for_a_key(key, &mut count)? {
                continue;
            }
            saves.push((key, after.map(|entry| Row { entry, written_at_ms: now })));
        }
        if !saves.is_empty() {
            self.rows.save_many(&saves)?;
        }
        let touched: Vec<&str> = sorted_sets.changed.difference(&sorted_sets.emptied).copied().collect();
        if !touched.is_empty() {
            self.rows.touch_sorted_sets(&touched, now)?;
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

    /// How each key of `commands` is run: member by member, replaced blind, or loaded whole.
    /// A key is as light as its heaviest use in the batch.
    fn plan<'c>(&self, commands: &'c [Command]) -> Result<KeyPlan<'c>, RowsError> {
        let mut member_wise = BTreeSet::new();
        let mut blind = BTreeSet::new();
        let mut whole = BTreeSet::new();
        for command in commands {
            match MemberWrite::of(command) {
                Some((key, _)) => {
                    member_wise.insert(key);
                }
                None if is_blind_write(command) => blind.extend(command.keys()),
                None => whole.extend(command.keys()),
            }
        }
        whole.extend(blind.intersection(&member_wise));
        blind.retain(|key| !whole.contains(key));
        member_wise.retain(|key| !whole.contains(key));
        let probed: Vec<&str> = member_wise.iter().chain(&blind).copied().collect();
        let stored: BTreeMap<&str, Stored> = probed.iter().copied().zip(self.rows.stored_many(&probed)?).collect();
        // A sorted set kept whole (one with a TTL, or written before members were rows), or
        // another type under an add: the interpreter answers as Redis would.
        let (member_wise, other): (BTreeSet<&str>, BTreeSet<&str>) =
            member_wise.into_iter().partition(|key| stored[key] != Stored::Other);
        whole.extend(other);
        Ok(KeyPlan { member_wise, blind, whole, stored })
    }

    /// One [`MemberWrite`] on the rows; an add that would create a key past the bound is
    /// refused as any new key is (answered, counted, logged, and not kept).
    fn write_members<'c>(
        &self,
        key: &'c str,
        write: &MemberWrite,
        plan: &KeyPlan<'c>,
        sorted_sets: &mut SortedSetWrites<'c>,
        count: &mut Option<u64>,
    ) -> Result<Reply, RowsError> {
        if let MemberWrite::Add(pairs) = write {
            let new_key = plan.stored[key] == Stored::Absent && !sorted_sets.created.contains(key);
            if sorted_sets.refused.contains(key) || (new_key && !self.room_for_a_key(key, count)?) {
                sorted_sets.refused.insert(key);
                return Ok(Reply::Int(pairs.len() as i64));
            }
            sorted_sets.created.insert(key);
        }
        if sorted_sets.refused.contains(key) {
            return Ok(Reply::Int(0));
        }
        let outcome = self.rows.write_members(key, write)?;
        if outcome.changed {
            sorted_sets.changed.insert(key);
        }
        if outcome.emptied {
            sorted_sets.emptied.insert(key);
        } else if outcome.changed {
            sorted_sets.emptied.remove(key);
        }
        Ok(Reply::Int(outcome.reply))
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
mod tests {
    use super::*;
    use crate::store::durable::map_rows::MapRows;
    use crate::store::memory::StoredValue;

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
            // Replaced blind whatever it held, then an add on what is now a string.
            vec![Command::zadd("z", 1, "a"), Command::set("t", b"1", None)],
            vec![Command::set("z", b"v", None), Command::set("t", b"2", None)],
            vec![Command::zadd("z", 2, "b")],
        ];
        for (at, batch) in batches.iter().enumerate() {
            let ours = run(&copy, batch, false, at as i64);
            let theirs = redis.pipeline(batch).now_or_never().unwrap().unwrap();
            assert_eq!(ours, theirs, "batch {at}");
        }
        for key in ["h", "s", "fresh", "empty", "z", "t"] {
            assert_eq!(rows.load(key).unwrap().map(|row| row.entry), redis.export(key), "{key}");
        }
        assert_eq!(
            rows.stored_many(&["fresh", "s", "h"]).unwrap(),
            [Stored::MemberWise, Stored::Other, Stored::Absent]
        );
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
