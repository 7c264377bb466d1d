//! The journal: every original the migrator touches, recorded — and flushed to disk — before
//! the key is moved, with the conversion's targets and the entry's state. It is what makes a
//! run resumable after a crash (pending entries are finished first), verifiable (targets are
//! compared with the journaled conversion) and reversible (originals are restored exactly).
//!
//! [`Journal`] is a small trait so the store behind it can change; [`SledJournal`] implements
//! it with sled 0.34.7 (the stable line; unmaintained, hence the trait). Entries are keyed by
//! a sequence number, so iteration is in apply order and rollback walks it backwards.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::value::{Stored, TypedValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Journaled; the move may or may not have happened.
    Pending,
    Done,
    /// A target held a different value; nothing was written.
    Conflict,
    /// The source kept changing under the move; given up after retries.
    Changed,
    RolledBack,
    /// Rollback refused: a target changed after the migration (use `--force`).
    RollbackRefused,
}

/// An index-set member a move adds; `added` is whether it was new (rollback removes only those).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexMember {
    pub key: String,
    pub member: String,
    pub added: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub rule: String,
    pub source: String,
    pub original: Stored,
    pub targets: Vec<(String, TypedValue)>,
    /// What each target held before the move, restored by rollback (`None`: deleted).
    #[serde(default)]
    pub previous_targets: Vec<Option<Stored>>,
    pub index: Vec<IndexMember>,
    pub keep_source: bool,
    /// Replace targets holding other values (`--overwrite`, or a re-migration of a source
    /// recreated after its move, whose targets still hold the previous move's values).
    #[serde(default)]
    pub overwrite: bool,
    pub state: EntryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("journal: {0}")]
pub struct JournalError(pub String);

impl From<sled::Error> for JournalError {
    fn from(error: sled::Error) -> Self {
        JournalError(error.to_string())
    }
}

pub trait Journal {
    /// Stores entries (new or updated); with `durable`, flushes them to disk before returning.
    /// Originals are recorded durably before a move; outcomes need not be, because a lost
    /// "done" is re-derived on resume (the move script answers `already`).
    fn record(&self, entries: &[Entry], durable: bool) -> Result<(), JournalError>;
    /// The entry of a source key, if any.
    fn entry_for(&self, source: &str) -> Result<Option<Entry>, JournalError>;
    /// The sequence number the next new entry gets.
    fn next_seq(&self) -> Result<u64, JournalError>;
    /// Up to `limit` entries after sequence `after` (exclusive; `None` = from the start), in
    /// apply order — or, with `reverse`, before `after` going backwards. Empty at the end.
    fn page(&self, after: Option<u64>, limit: usize, reverse: bool) -> Result<Vec<Entry>, JournalError>;
}

/// Every entry, page by page (in apply order, or reversed), `limit` entries per page.
pub fn entries(
    journal: &dyn Journal,
    reverse: bool,
    limit: usize,
) -> impl Iterator<Item = Result<Vec<Entry>, JournalError>> + '_ {
    let mut after = None;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match journal.page(after, limit, reverse) {
            Ok(page) if page.is_empty() => {
                done = true;
                None
            }
            Ok(page) => {
                after = page.last().map(|e| e.seq);
                Some(Ok(page))
            }
            Err(error) => {
                done = true;
                Some(Err(error))
            }
        }
    })
}

pub struct SledJournal {
    db: sled::Db,
    entries: sled::Tree,
    by_source: sled::Tree,
}

impl SledJournal {
    /// Opens (or creates) the journal directory. One process at a time: sled locks it.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let db = sled::Config::new()
            .path(path)
            // A small, bounded cache: the journal is written sequentially and read back in
            // order, so a large cache buys nothing (measured: 4 MiB is faster than 32 MiB).
            .cache_capacity(4 * 1024 * 1024)
            .open()
            .map_err(|e| JournalError(format!("cannot open {}: {e}", path.display())))?;
        let entries = db.open_tree("entries")?;
        let by_source = db.open_tree("by_source")?;
        Ok(Self { db, entries, by_source })
    }
}

fn decode(bytes: &[u8]) -> Result<Entry, JournalError> {
    serde_json::from_slice(bytes).map_err(|e| JournalError(format!("corrupt entry: {e}")))
}

impl Journal for SledJournal {
    fn record(&self, entries: &[Entry], durable: bool) -> Result<(), JournalError> {
        let mut batch = sled::Batch::default();
        let mut index = sled::Batch::default();
        for entry in entries {
            let bytes = serde_json::to_vec(entry).map_err(|e| JournalError(e.to_string()))?;
            batch.insert(&entry.seq.to_be_bytes(), bytes);
            index.insert(entry.source.as_bytes(), &entry.seq.to_be_bytes());
        }
        self.entries.apply_batch(batch)?;
        self.by_source.apply_batch(index)?;
        if durable {
            self.db.flush()?;
        }
        Ok(())
    }

    fn entry_for(&self, source: &str) -> Result<Option<Entry>, JournalError> {
        match self.by_source.get(source.as_bytes())? {
            Some(seq) => self.entries.get(seq)?.map(|bytes| decode(&bytes)).transpose(),
            None => Ok(None),
        }
    }

    fn next_seq(&self) -> Result<u64, JournalError> {
        Ok(match self.entries.last()? {
            Some((key, _)) => {
                u64::from_be_bytes(key.as_ref().try_into().map_err(|_| JournalError("bad sequence key".into()))?) + 1
            }
            None => 0,
        })
    }

    fn page(&self, after: Option<u64>, limit: usize, reverse: bool) -> Result<Vec<Entry>, JournalError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let bound = after.map(|seq| seq.to_be_bytes());
        let range: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match (bound, reverse) {
            (None, false) => Box::new(self.entries.iter()),
            (None, true) => Box::new(self.entries.iter().rev()),
            (Some(b), false) => Box::new(self.entries.range::<&[u8], _>((Excluded(&b[..]), Unbounded))),
            (Some(b), true) => Box::new(self.entries.range::<&[u8], _>((Unbounded, Excluded(&b[..]))).rev()),
        };
        range.take(limit).map(|item| item.map_err(JournalError::from).and_then(|(_, bytes)| decode(&bytes))).collect()
    }
}
