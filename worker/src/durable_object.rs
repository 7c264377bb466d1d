//! [`EdgeStore`]: the Durable Object holding a namespace's durable copy in its SQLite
//! storage — four tables: `rows` (one per key: the value as core's `StoredEntry` JSON and
//! when it was written), `members` (a sorted set's members, one row each, so a history append
//! is an insert and its trim a delete, whatever the history's length; the set's own row then
//! holds an empty set), `pending` (keys Redis has not acknowledged, since when, and a stamp
//! each deferred write renews) and `counters`. Each request is one core
//! [`DurableRequest`](edgesync_core::store::durable::wire::DurableRequest), served by
//! [`DurableCopy`]; a Durable Object runs one request at a time, so a batch is atomic.

use edgesync_core::store::durable::copy::{DurableCopy, DEFAULT_MAX_KEYS};
use edgesync_core::store::durable::member_write::MemberWrite;
use edgesync_core::store::durable::rows::{MemberOutcome, Row, Rows, RowsError, Stored};
use edgesync_core::store::durable::wire::{self, DurableResponse};
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
        let response = match wire::decode_request(&body) {
            Ok(request) => {
                let rows = SqlRows { sql: &self.sql };
                DurableCopy::new(&rows, self.max_keys)
                    .with_log(&crate::runtime::ConsoleLog)
                    .handle(request, worker::Date::now().as_millis() as i64)
            }
            Err(message) => DurableResponse::Error { message },
        };
        Response::from_bytes(wire::encode_response(&response))
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
struct KeyedEntryRow {
    key: String,
    entry: String,
    written_at: i64,
}

#[derive(Deserialize)]
struct ShapeRow {
    key: String,
    member_wise: i64,
}

#[derive(Deserialize)]
struct MemberRow {
    member: String,
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

/// Keys per statement: a Durable Object's SQL binds at most 100 parameters.
const KEYS_PER_STATEMENT: usize = 90;
/// Rows per multi-row insert (three parameters each).
const ROWS_PER_STATEMENT: usize = 30;

/// `?, ?, …` for `n` parameters.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

impl SqlRows<'_> {
    fn exec(&self, statement: &str, bindings: Vec<SqlStorageValue>) -> std::result::Result<(), RowsError> {
        self.sql.exec(statement, bindings).map(drop).map_err(failed)
    }

    /// Runs `statement` and answers how many rows it wrote.
    fn written(&self, statement: &str, bindings: Vec<SqlStorageValue>) -> std::result::Result<usize, RowsError> {
        let cursor = self.sql.exec(statement, bindings).map_err(failed)?;
        let _ = cursor.to_array::<serde_json::Value>();
        Ok(cursor.rows_written())
    }

    fn query<T: for<'de> Deserialize<'de>>(
        &self,
        statement: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> std::result::Result<Vec<T>, RowsError> {
        self.sql.exec(statement, bindings).and_then(|cursor| cursor.to_array()).map_err(failed)
    }

    fn members(&self, key: &str) -> std::result::Result<Vec<(String, f64)>, RowsError> {
        let members: Vec<MemberRow> =
            self.query("SELECT member, score FROM members WHERE key = ? ORDER BY score, member", vec![text(key)])?;
        Ok(members.into_iter().map(|row| (row.member, row.score)).collect())
    }

    /// Deletes what `table` (`rows` or `members`) holds for `keys`.
    fn delete_keys(&self, table: &str, keys: &[&str]) -> std::result::Result<(), RowsError> {
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            self.exec(
                &format!("DELETE FROM {table} WHERE key IN ({})", placeholders(chunk.len())),
                chunk.iter().map(|key| text(key)).collect(),
            )?;
        }
        Ok(())
    }

    /// Inserts `entries` (key, encoded entry, write time) into `rows` in multi-row statements;
    /// a key already there gets `on_conflict` (`SET …` of the `excluded` row).
    fn insert_rows(&self, entries: &[(&str, &str, i64)], on_conflict: &str) -> std::result::Result<(), RowsError> {
        for chunk in entries.chunks(ROWS_PER_STATEMENT) {
            let values = vec!["(?, ?, ?)"; chunk.len()].join(", ");
            let bindings = chunk.iter().flat_map(|(key, entry, at)| [text(key), text(entry), (*at).into()]).collect();
            self.exec(
                &format!(
                    "INSERT INTO rows(key, entry, written_at) VALUES {values} ON CONFLICT(key) DO UPDATE SET {on_conflict}"
                ),
                bindings,
            )?;
        }
        Ok(())
    }
}

fn encode(key: &str, entry: &StoredEntry) -> std::result::Result<String, RowsError> {
    serde_json::to_string(entry).map_err(|e| RowsError(format!("the row of `{key}` does not encode: {e}")))
}

/// A permanent sorted set's own row: its members are in `members`.
fn member_wise_header() -> String {
    serde_json::to_string(&StoredEntry { value: StoredValue::Zset(Vec::new()), expires_at_ms: None })
        .expect("an entry encodes")
}

/// A member's identity in `members_by_digest`: 128 bits of its SHA-256.
fn digest(member: &str) -> SqlStorageValue {
    use sha2::Digest;
    SqlStorageValue::Blob(sha2::Sha256::digest(member.as_bytes())[..16].to_vec())
}

impl Rows for SqlRows<'_> {
    fn load(&self, key: &str) -> std::result::Result<Option<Row>, RowsError> {
        Ok(self.load_many(&[key])?.pop().flatten())
    }

    fn load_many(&self, keys: &[&str]) -> std::result::Result<Vec<Option<Row>>, RowsError> {
        let mut found: std::collections::HashMap<String, Row> = std::collections::HashMap::new();
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let rows: Vec<KeyedEntryRow> = self.query(
                &format!("SELECT key, entry, written_at FROM rows WHERE key IN ({})", placeholders(chunk.len())),
                chunk.iter().map(|key| text(key)).collect(),
            )?;
            for row in rows {
                let mut entry: StoredEntry = serde_json::from_str(&row.entry)
                    .map_err(|e| RowsError(format!("the row of `{}` does not decode: {e}", row.key)))?;
                if let StoredValue::Zset(members) = &mut entry.value {
                    // Rows written before `members` existed hold their members inline.
                    if members.is_empty() {
                        *members = self.members(&row.key)?;
                    }
                }
                found.insert(row.key, Row { entry, written_at_ms: row.written_at });
            }
        }
        Ok(keys.iter().map(|key| found.remove(*key)).collect())
    }

    fn stored_many(&self, keys: &[&str]) -> std::result::Result<Vec<Stored>, RowsError> {
        let header = member_wise_header();
        let mut found: std::collections::HashMap<String, Stored> = std::collections::HashMap::new();
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let mut bindings = vec![text(&header)];
            bindings.extend(chunk.iter().map(|key| text(key)));
            let rows: Vec<ShapeRow> = self.query(
                &format!("SELECT key, entry = ? AS member_wise FROM rows WHERE key IN ({})", placeholders(chunk.len())),
                bindings,
            )?;
            for row in rows {
                found.insert(row.key, if row.member_wise != 0 { Stored::MemberWise } else { Stored::Other });
            }
        }
        Ok(keys.iter().map(|key| found.remove(*key).unwrap_or(Stored::Absent)).collect())
    }

    fn save_many(&self, rows: &[(&str, Option<Row>)]) -> std::result::Result<(), RowsError> {
        let keys: Vec<&str> = rows.iter().map(|(key, _)| *key).collect();
        self.delete_keys("members", &keys)?;
        let mut upserts = Vec::new();
        let mut deletes = Vec::new();
        for (key, row) in rows {
            match row {
                Some(Row {
                    entry: StoredEntry { value: StoredValue::Zset(members), expires_at_ms },
                    written_at_ms,
                }) => {
                    let header = StoredEntry { value: StoredValue::Zset(Vec::new()), expires_at_ms: *expires_at_ms };
                    upserts.push((*key, encode(key, &header)?, *written_at_ms));
                    for (member, score) in members {
                        self.exec(
                            "INSERT INTO members(key, digest, score, member) VALUES (?, ?, ?, ?)",
                            vec![text(key), digest(member), (*score).into(), text(member)],
                        )?;
                    }
                }
                Some(row) => upserts.push((*key, encode(key, &row.entry)?, row.written_at_ms)),
                None => deletes.push(*key),
            }
        }
        let upserts: Vec<(&str, &str, i64)> =
            upserts.iter().map(|(key, entry, at)| (*key, entry.as_str(), *at)).collect();
        self.insert_rows(&upserts, "entry = excluded.entry, written_at = excluded.written_at")?;
        self.delete_keys("rows", &deletes)
    }

    fn write_members(&self, key: &str, write: &MemberWrite) -> std::result::Result<MemberOutcome, RowsError> {
        match write {
            MemberWrite::Add(pairs) => {
                let (mut added, mut changed) = (0, false);
                for (score, member) in pairs {
                    let inserted = self.written(
                        "INSERT OR IGNORE INTO members(key, digest, score, member) VALUES (?, ?, ?, ?)",
                        vec![text(key), digest(member), (*score).into(), text(member)],
                    )?;
                    if inserted > 0 {
                        added += 1;
                        changed = true;
                    } else {
                        changed |= self.written(
                            "UPDATE members SET score = ? WHERE key = ? AND digest = ? AND score <> ?",
                            vec![(*score).into(), text(key), digest(member), (*score).into()],
                        )? > 0;
                    }
                }
                Ok(MemberOutcome { reply: added, changed, emptied: false })
            }
            MemberWrite::KeepNewest(0) => {
                let removed = self.written("DELETE FROM members WHERE key = ?", vec![text(key)])?;
                if removed > 0 {
                    self.exec("DELETE FROM rows WHERE key = ?", vec![text(key)])?;
                }
                Ok(MemberOutcome { reply: removed as i64, changed: removed > 0, emptied: removed > 0 })
            }
            MemberWrite::KeepNewest(keep) => {
                // The lowest-ranked members beyond `keep`: the index on (key, score) finds them
                // without reading the others.
                let removed = self.written(
                    "DELETE FROM members WHERE rowid IN (SELECT rowid FROM members WHERE key = ? \
                     ORDER BY score, member LIMIT max(0, (SELECT COUNT(*) FROM members WHERE key = ?) - ?))",
                    vec![text(key), text(key), (*keep as i64).into()],
                )?;
                Ok(MemberOutcome { reply: removed as i64, changed: removed > 0, emptied: false })
            }
        }
    }

    fn touch_sorted_sets(&self, keys: &[&str], now: i64) -> std::result::Result<(), RowsError> {
        let header = member_wise_header();
        let rows: Vec<(&str, &str, i64)> = keys.iter().map(|key| (*key, header.as_str(), now)).collect();
        self.insert_rows(&rows, "written_at = excluded.written_at")
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
