//! [`EdgeStore`]: the Durable Object holding a namespace's durable copy in its SQLite
//! storage — four tables: `rows` (one per key: the value as core's `StoredEntry` JSON and
//! when it was written), `members` (a sorted set's members, one row each, so a history append
//! is an insert and its trim a delete, whatever the history's length; the set's own row then
//! holds an empty set), `pending` (keys Redis has not acknowledged, since when, and a stamp
//! each deferred write renews) and `counters`. Each request is one core
//! [`DurableRequest`](edgesync_core::store::durable::wire::DurableRequest), served by
//! [`DurableCopy`]; a Durable Object runs one request at a time, so a batch is atomic.

use edgesync_core::store::durable::copy::{DurableCopy, Row, Rows, RowsError, Stored, DEFAULT_MAX_KEYS};
use edgesync_core::store::durable::member_write::MemberWrite;
use edgesync_core::store::durable::wire::{DurableRequest, DurableResponse};
use edgesync_core::store::memory::{StoredEntry, StoredValue};
use serde::Deserialize;
use worker::{
    durable_object, wasm_bindgen, DurableObject, Env, Request, Response, Result, SqlStorage, SqlStorageValue, State,
};

const SCHEMA: [&str; 6] = [
    "CREATE TABLE IF NOT EXISTS rows(key TEXT PRIMARY KEY, entry TEXT NOT NULL, written_at INTEGER NOT NULL)",
    // `digest` identifies a member in the unique index without a second copy of it (members
    // are raw responses of tens of KB); ties of score are ordered by the member, as Redis does.
    "CREATE TABLE IF NOT EXISTS members(key TEXT NOT NULL, digest BLOB NOT NULL, score REAL NOT NULL, member TEXT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS members_by_digest ON members(key, digest)",
    "CREATE INDEX IF NOT EXISTS members_by_score ON members(key, score)",
    "CREATE TABLE IF NOT EXISTS pending(key TEXT PRIMARY KEY, since INTEGER NOT NULL, stamp INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS counters(name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
];

#[durable_object]
pub struct EdgeStore {
    sql: SqlStorage,
    max_keys: u64,
}

impl DurableObject for EdgeStore {
    fn new(state: State, env: Env) -> Self {
        let sql = state.storage().sql();
        for statement in SCHEMA {
            if let Err(error) = sql.exec(statement, None) {
                worker::console_error!(
                    "{}",
                    serde_json::json!({ "event": "durable_schema_failed", "error": error.to_string() })
                );
            }
        }
        let max_keys = env
            .var("DURABLE_MAX_KEYS")
            .ok()
            .and_then(|value| value.to_string().trim().parse::<u64>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_MAX_KEYS);
        Self { sql, max_keys }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let body = req.bytes().await?;
        let response = match serde_json::from_slice::<DurableRequest>(&body) {
            Ok(request) => {
                let rows = SqlRows { sql: &self.sql };
                DurableCopy::new(&rows, self.max_keys)
                    .with_log(&crate::runtime::ConsoleLog)
                    .handle(request, worker::Date::now().as_millis() as i64)
            }
            Err(error) => DurableResponse::Error { message: format!("not a durable request: {error}") },
        };
        Response::from_json(&response)
    }
}

struct SqlRows<'a> {
    sql: &'a SqlStorage,
}

fn failed(error: worker::Error) -> RowsError {
    RowsError(error.to_string())
}

fn text(value: &str) -> SqlStorageValue {
    SqlStorageValue::String(value.to_owned())
}

#[derive(Deserialize)]
struct EntryRow {
    entry: String,
    written_at: i64,
}

#[derive(Deserialize)]
struct MemberRow {
    member: String,
    score: f64,
}

#[derive(Deserialize)]
struct ScoreRow {
    score: f64,
}

#[derive(Deserialize)]
struct KeyRow {
    key: String,
}

#[derive(Deserialize)]
struct PendingRow {
    key: String,
    since: i64,
    stamp: u64,
}

#[derive(Deserialize)]
struct Count {
    n: u64,
    oldest: Option<i64>,
}

#[derive(Deserialize)]
struct Value {
    value: u64,
}

impl SqlRows<'_> {
    /// The row of `key` as stored (a member-wise sorted set's members not loaded).
    fn entry(&self, key: &str) -> std::result::Result<Option<Row>, RowsError> {
        let rows: Vec<EntryRow> = self
            .sql
            .exec("SELECT entry, written_at FROM rows WHERE key = ?", vec![text(key)])
            .and_then(|cursor| cursor.to_array())
            .map_err(failed)?;
        rows.into_iter()
            .next()
            .map(|row| {
                let entry: StoredEntry = serde_json::from_str(&row.entry)
                    .map_err(|e| RowsError(format!("the row of `{key}` does not decode: {e}")))?;
                Ok(Row { entry, written_at_ms: row.written_at })
            })
            .transpose()
    }

    fn members(&self, key: &str) -> std::result::Result<Vec<(String, f64)>, RowsError> {
        let members: Vec<MemberRow> = self
            .sql
            .exec("SELECT member, score FROM members WHERE key = ? ORDER BY score, member", vec![text(key)])
            .and_then(|cursor| cursor.to_array())
            .map_err(failed)?;
        Ok(members.into_iter().map(|row| (row.member, row.score)).collect())
    }

    fn put_member(&self, key: &str, score: f64, member: &str) -> std::result::Result<(), RowsError> {
        self.sql
            .exec(
                "INSERT INTO members(key, digest, score, member) VALUES (?, ?, ?, ?) \
                 ON CONFLICT(key, digest) DO UPDATE SET score = excluded.score",
                vec![text(key), digest(member), score.into(), text(member)],
            )
            .map(drop)
            .map_err(failed)
    }

    fn put_entry(&self, key: &str, entry: &StoredEntry, written_at_ms: i64) -> std::result::Result<(), RowsError> {
        let entry = serde_json::to_string(entry).map_err(|e| RowsError(e.to_string()))?;
        self.sql
            .exec(
                "INSERT INTO rows(key, entry, written_at) VALUES (?, ?, ?) \
                 ON CONFLICT(key) DO UPDATE SET entry = excluded.entry, written_at = excluded.written_at",
                vec![text(key), SqlStorageValue::String(entry), written_at_ms.into()],
            )
            .map(drop)
            .map_err(failed)
    }

    fn exec(&self, statement: &str, bindings: Vec<SqlStorageValue>) -> std::result::Result<(), RowsError> {
        self.sql.exec(statement, bindings).map(drop).map_err(failed)
    }
}

/// A permanent sorted set's own row: its members are in `members`.
fn member_wise_header() -> StoredEntry {
    StoredEntry { value: StoredValue::Zset(Vec::new()), expires_at_ms: None }
}

/// A member's identity in `members_by_digest`: 128 bits of its SHA-256.
fn digest(member: &str) -> SqlStorageValue {
    use sha2::Digest;
    SqlStorageValue::Blob(sha2::Sha256::digest(member.as_bytes())[..16].to_vec())
}

impl Rows for SqlRows<'_> {
    fn load(&self, key: &str) -> std::result::Result<Option<Row>, RowsError> {
        let Some(mut row) = self.entry(key)? else { return Ok(None) };
        if let StoredValue::Zset(members) = &mut row.entry.value {
            // Rows written before `members` existed hold their members inline.
            if members.is_empty() {
                *members = self.members(key)?;
            }
        }
        Ok(Some(row))
    }

    fn save(&self, key: &str, row: Option<&Row>) -> std::result::Result<(), RowsError> {
        self.exec("DELETE FROM members WHERE key = ?", vec![text(key)])?;
        match row {
            Some(Row { entry: StoredEntry { value: StoredValue::Zset(members), expires_at_ms }, written_at_ms }) => {
                let header = StoredEntry { value: StoredValue::Zset(Vec::new()), expires_at_ms: *expires_at_ms };
                self.put_entry(key, &header, *written_at_ms)?;
                members.iter().try_for_each(|(member, score)| self.put_member(key, *score, member))
            }
            Some(row) => self.put_entry(key, &row.entry, row.written_at_ms),
            None => self.exec("DELETE FROM rows WHERE key = ?", vec![text(key)]),
        }
    }

    fn stored(&self, key: &str) -> std::result::Result<Stored, RowsError> {
        Ok(match self.entry(key)? {
            None => Stored::Absent,
            Some(row) if row.entry == member_wise_header() => Stored::MemberWise,
            Some(_) => Stored::Other,
        })
    }

    fn write_members(&self, key: &str, write: &MemberWrite, now: i64) -> std::result::Result<i64, RowsError> {
        let (answer, changed) = match write {
            MemberWrite::Add(pairs) => {
                let mut added = 0;
                let mut changed = false;
                for (score, member) in pairs {
                    let held: Vec<ScoreRow> = self
                        .sql
                        .exec("SELECT score FROM members WHERE key = ? AND digest = ?", vec![text(key), digest(member)])
                        .and_then(|cursor| cursor.to_array())
                        .map_err(failed)?;
                    match held.first() {
                        Some(row) if row.score == *score => {}
                        held => {
                            added += i64::from(held.is_none());
                            changed = true;
                            self.put_member(key, *score, member)?;
                        }
                    }
                }
                (added, changed)
            }
            MemberWrite::KeepNewest(keep) => {
                let count: Count = self
                    .sql
                    .exec("SELECT COUNT(*) AS n, NULL AS oldest FROM members WHERE key = ?", vec![text(key)])
                    .and_then(|cursor| cursor.one())
                    .map_err(failed)?;
                let removed = count.n.saturating_sub(*keep as u64);
                if removed > 0 {
                    self.exec(
                        "DELETE FROM members WHERE rowid IN \
                         (SELECT rowid FROM members WHERE key = ? ORDER BY score, member LIMIT ?)",
                        vec![text(key), (removed as i64).into()],
                    )?;
                }
                if removed > 0 && removed == count.n {
                    self.exec("DELETE FROM rows WHERE key = ?", vec![text(key)])?;
                    return Ok(removed as i64);
                }
                (removed as i64, removed > 0)
            }
        };
        if changed {
            self.exec(
                "INSERT INTO rows(key, entry, written_at) VALUES (?, ?, ?) \
                 ON CONFLICT(key) DO UPDATE SET written_at = excluded.written_at",
                vec![
                    text(key),
                    SqlStorageValue::String(serde_json::to_string(&member_wise_header()).expect("an entry encodes")),
                    now.into(),
                ],
            )?;
        }
        Ok(answer)
    }

    fn count(&self) -> std::result::Result<u64, RowsError> {
        let count: Count = self
            .sql
            .exec("SELECT COUNT(*) AS n, NULL AS oldest FROM rows", None)
            .and_then(|c| c.one())
            .map_err(failed)?;
        Ok(count.n)
    }

    fn keys(&self, offset: u64, limit: usize) -> std::result::Result<Vec<String>, RowsError> {
        let rows: Vec<KeyRow> = self
            .sql
            .exec(
                "SELECT key FROM rows ORDER BY key LIMIT ? OFFSET ?",
                vec![(limit as i64).into(), (offset as i64).into()],
            )
            .and_then(|c| c.to_array())
            .map_err(failed)?;
        Ok(rows.into_iter().map(|row| row.key).collect())
    }

    fn mark_pending(&self, key: &str, now: i64) -> std::result::Result<(), RowsError> {
        self.sql
            .exec(
                "INSERT INTO pending(key, since, stamp) VALUES (?, ?, 1) \
                 ON CONFLICT(key) DO UPDATE SET stamp = stamp + 1",
                vec![text(key), now.into()],
            )
            .map(drop)
            .map_err(failed)
    }

    fn pending(&self, limit: usize) -> std::result::Result<Vec<(String, i64, u64)>, RowsError> {
        let rows: Vec<PendingRow> = self
            .sql
            .exec("SELECT key, since, stamp FROM pending ORDER BY since, key LIMIT ?", vec![(limit as i64).into()])
            .and_then(|c| c.to_array())
            .map_err(failed)?;
        Ok(rows.into_iter().map(|row| (row.key, row.since, row.stamp)).collect())
    }

    fn pending_count(&self) -> std::result::Result<(u64, Option<i64>), RowsError> {
        let count: Count = self
            .sql
            .exec("SELECT COUNT(*) AS n, MIN(since) AS oldest FROM pending", None)
            .and_then(|c| c.one())
            .map_err(failed)?;
        Ok((count.n, count.oldest))
    }

    fn clear_pending(&self, key: &str, stamp: u64) -> std::result::Result<bool, RowsError> {
        let cursor = self
            .sql
            .exec("DELETE FROM pending WHERE key = ? AND stamp = ?", vec![text(key), (stamp as i64).into()])
            .map_err(failed)?;
        let _ = cursor.to_array::<serde_json::Value>();
        Ok(cursor.rows_written() > 0)
    }

    fn bump(&self, name: &str, n: u64) -> std::result::Result<u64, RowsError> {
        let value: Value = self
            .sql
            .exec(
                "INSERT INTO counters(name, value) VALUES (?, ?) \
                 ON CONFLICT(name) DO UPDATE SET value = value + excluded.value RETURNING value",
                vec![text(name), (n as i64).into()],
            )
            .and_then(|c| c.one())
            .map_err(failed)?;
        Ok(value.value)
    }
}
