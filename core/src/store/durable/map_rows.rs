//! [`MapRows`]: the copy's [`Rows`] in a map — the durable copy in native tests, with the
//! semantics the Durable Object's SQLite tables have.

use std::collections::BTreeMap;

use super::member_write::MemberWrite;
use super::rows::{MemberOutcome, Row, Rows, RowsError, Stored};
use crate::store::memory::{StoredEntry, StoredValue};

#[derive(Default)]
pub struct MapRows {
    state: std::sync::Mutex<MapState>,
}

#[derive(Default)]
struct MapState {
    rows: BTreeMap<String, Row>,
    pending: BTreeMap<String, (i64, u64)>,
    counters: BTreeMap<String, u64>,
}

impl MapRows {
    fn state(&self) -> std::sync::MutexGuard<'_, MapState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Redis's order: by score, ties by member bytes.
fn redis_order(a: &(String, f64), b: &(String, f64)) -> std::cmp::Ordering {
    a.1.total_cmp(&b.1).then_with(|| a.0.as_bytes().cmp(b.0.as_bytes()))
}

impl Rows for MapRows {
    fn load(&self, key: &str) -> Result<Option<Row>, RowsError> {
        Ok(self.state().rows.get(key).cloned())
    }
    fn stored_many(&self, keys: &[&str]) -> Result<Vec<Stored>, RowsError> {
        let state = self.state();
        Ok(keys
            .iter()
            .map(|key| match state.rows.get(*key) {
                None => Stored::Absent,
                Some(Row { entry: StoredEntry { value: StoredValue::Zset(_), expires_at_ms: None }, .. }) => {
                    Stored::MemberWise
                }
                Some(_) => Stored::Other,
            })
            .collect())
    }
    fn save_many(&self, rows: &[(&str, Option<Row>)]) -> Result<(), RowsError> {
        let mut state = self.state();
        for (key, row) in rows {
            match row {
                Some(row) => state.rows.insert((*key).to_owned(), row.clone()),
                None => state.rows.remove(*key),
            };
        }
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
    fn write_members(&self, key: &str, write: &MemberWrite) -> Result<MemberOutcome, RowsError> {
        let mut state = self.state();
        let (mut members, written_at_ms) = match state.rows.remove(key) {
            Some(Row { entry: StoredEntry { value: StoredValue::Zset(members), .. }, written_at_ms }) => {
                (members, written_at_ms)
            }
            _ => (Vec::new(), 0),
        };
        let before = members.clone();
        let reply = match write {
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
                members.sort_by(redis_order);
                added
            }
            MemberWrite::KeepNewest(keep) => {
                let removed = members.len().saturating_sub(*keep);
                members.drain(..removed);
                removed as i64
            }
        };
        let changed = members != before;
        let emptied = members.is_empty() && !before.is_empty();
        if !members.is_empty() {
            let entry = StoredEntry { value: StoredValue::Zset(members), expires_at_ms: None };
            state.rows.insert(key.to_owned(), Row { entry, written_at_ms });
        }
        Ok(MemberOutcome { reply, changed, emptied })
    }
    fn touch_sorted_sets(&self, keys: &[&str], now: i64) -> Result<(), RowsError> {
        let mut state = self.state();
        for key in keys {
            if let Some(row) = state.rows.get_mut(*key) {
                row.written_at_ms = now;
            }
        }
        Ok(())
    }
}
