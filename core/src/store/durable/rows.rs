//! [`Rows`]: the durable copy's storage as [`super::copy::DurableCopy`] needs it — SQLite in
//! the Durable Object (`worker/src/durable_object.rs`), [`super::map_rows::MapRows`] in
//! native tests. Calls take many keys at once where a batch needs many (one SQL statement
//! instead of one per key: each statement crosses from wasm into the runtime), and a sorted
//! set's members can be written without loading the set ([`Rows::write_members`]).

use super::member_write::MemberWrite;
use crate::store::memory::StoredEntry;

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

/// What a [`MemberWrite`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberOutcome {
    /// Redis's reply (members added, or removed).
    pub reply: i64,
    /// A member was added, rescored or removed.
    pub changed: bool,
    /// The set lost its last member: its row is gone, as Redis deletes an empty set.
    pub emptied: bool,
}

/// The copy's storage. Synchronous, as SQLite in a Durable Object is.
pub trait Rows {
    /// The row of `key`, whole (a sorted set with its members).
    fn load(&self, key: &str) -> Result<Option<Row>, RowsError>;
    /// The rows of `keys`, whole, in order.
    fn load_many(&self, keys: &[&str]) -> Result<Vec<Option<Row>>, RowsError> {
        keys.iter().map(|key| self.load(key)).collect()
    }
    /// How each of `keys` is stored, in order, without reading values.
    fn stored_many(&self, keys: &[&str]) -> Result<Vec<Stored>, RowsError>;
    /// Writes (`Some`) or deletes (`None`) the row of each key.
    fn save_many(&self, rows: &[(&str, Option<Row>)]) -> Result<(), RowsError>;
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
    /// Applies `write` to the members of the sorted set at `key` (absent or
    /// [`Stored::MemberWise`]). The set's own row is left to [`Rows::touch_sorted_sets`],
    /// once per batch — except that an emptied set's row is deleted here.
    fn write_members(&self, key: &str, write: &MemberWrite) -> Result<MemberOutcome, RowsError>;
    /// Marks the member-wise sorted sets at `keys` written at `now`, creating their rows.
    fn touch_sorted_sets(&self, keys: &[&str], now: i64) -> Result<(), RowsError>;
}
