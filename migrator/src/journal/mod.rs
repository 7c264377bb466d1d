//! The journal: every original the migrator touches, recorded — and flushed to disk — before
//! the key is moved, with the conversion's targets and the entry's outcome. It is what makes a
//! run resumable after a crash (pending entries are finished first), verifiable (targets are
//! compared with the journaled conversion) and reversible (originals are restored exactly).
//!
//! [`Journal`] is a small trait so the store behind it can change; [`SledJournal`] implements
//! it with sled 0.34.7 (the stable line; unmaintained, hence the trait).
//!
//! **Layout**: entries get consecutive sequence numbers, in apply order. They live in
//! *segments* — sled databases under `<journal>/chunks/`, each named by its first sequence
//! number; a batch starts a new one once the newest has taken [`SEGMENT_BYTES`], and at most
//! two are open (the newest, and one for reading). Inside a segment, one tree holds entries in
//! *chunks* of consecutive entries (about [`CHUNK_BYTES`] of JSON each), two records per chunk,
//! both keyed by a kind byte and the chunk's first sequence number (big-endian, so keys sort
//! in apply order):
//!
//! - `e` + first seq → the chunk's entries as journaled (JSON array of [`Entry`]), written once;
//! - `o` + first seq → their outcomes (JSON array of [`Outcome`], one per entry: state, note,
//!   which index members were new), rewritten as moves and rollbacks finish.
//!
//! A batch of new entries is one atomic sled batch (its chunks and their all-pending outcomes)
//! in one segment, and one flush: after a crash a chunk is whole or absent, never
//! half-written. Chunks keep sled cheap (a few inserts per batch instead of two per key);
//! small chunks and bounded segments keep its memory flat — sled keeps large values resident,
//! and per-record bookkeeping for a whole database (measured in docs/design.md).

mod record;
mod segment;
mod sled_journal;

use std::path::Path;

use crate::entry::{Entry, EntryHead};

pub use sled_journal::{exists, SledJournal};

/// Bytes of JSON after which a chunk is closed (the last entry may pass it).
pub const CHUNK_BYTES: usize = 4 * 1024;

/// Bytes of entries appended to a segment after which the next batch starts a new one.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;
/// Why the journal could not be read or written. Each keeps its source: the store's, the
/// file system's, or the record that does not decode.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal: {0}")]
    Store(#[from] sled::Error),
    #[error("journal: cannot open {}: {source}", path.display())]
    Open { path: std::path::PathBuf, source: sled::Error },
    #[error("journal: cannot {action} {}: {source}", path.display())]
    Files { action: &'static str, path: std::path::PathBuf, source: std::io::Error },
    #[error("journal: corrupt record: {0}")]
    Corrupt(serde_json::Error),
    #[error("journal: cannot encode a record: {0}")]
    Encode(serde_json::Error),
    /// The journal's own bookkeeping does not hold together (a chunk without its outcomes,
    /// an entry it never journaled, a layout of another version).
    #[error("journal: {0}")]
    Inconsistent(String),
}

pub trait Journal {
    /// Stores new entries — numbered consecutively from [`Journal::next_seq`] — and flushes
    /// them to disk before returning: a move is sent only after its original is durable.
    fn append(&self, entries: &[Entry]) -> Result<(), JournalError>;
    /// Records the outcomes (state, note, index members' `added`) of entries already
    /// journaled; their other fields are as appended. With `durable`, flushes. Outcomes of
    /// moves need not be durable: a lost "done" is re-derived on resume (the move script
    /// answers `already`).
    fn update(&self, entries: &[Entry], durable: bool) -> Result<(), JournalError>;
    /// Flushes every update so far to disk.
    fn flush(&self) -> Result<(), JournalError>;
    /// The sequence number the next new entry gets.
    fn next_seq(&self) -> Result<u64, JournalError>;
    /// Up to `limit` entries after sequence `after` (exclusive; `None` = from the start), in
    /// apply order — or, with `reverse`, before `after` going backwards. Empty at the end.
    fn page(&self, after: Option<u64>, limit: usize, reverse: bool) -> Result<Vec<Entry>, JournalError>;
    /// [`Journal::page`], each entry read only as far as its [`EntryHead`]: for walks that
    /// look at most entries only to pass them by.
    fn heads(&self, after: Option<u64>, limit: usize, reverse: bool) -> Result<Vec<EntryHead>, JournalError>;
    /// One entry by its sequence number.
    fn get(&self, seq: u64) -> Result<Option<Entry>, JournalError>;
    /// The journal's directory: a run keeps its scratch files there, next to what it journals.
    fn dir(&self) -> &Path;
}

/// Every entry, page by page (in apply order, or reversed), `limit` entries per page.
pub fn entries(
    journal: &dyn Journal,
    reverse: bool,
    limit: usize,
) -> impl Iterator<Item = Result<Vec<Entry>, JournalError>> + '_ {
    pages(move |after| journal.page(after, limit, reverse), |entry: &Entry| entry.seq)
}

/// [`entries`], each read only as far as its [`EntryHead`].
pub fn heads(
    journal: &dyn Journal,
    reverse: bool,
    limit: usize,
) -> impl Iterator<Item = Result<Vec<EntryHead>, JournalError>> + '_ {
    pages(move |after| journal.heads(after, limit, reverse), |head: &EntryHead| head.seq)
}

/// Pages read by `read` (given the last sequence number read), until one comes back empty.
fn pages<T>(
    mut read: impl FnMut(Option<u64>) -> Result<Vec<T>, JournalError>,
    seq: fn(&T) -> u64,
) -> impl Iterator<Item = Result<Vec<T>, JournalError>> {
    let mut after = None;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match read(after) {
            Ok(page) if page.is_empty() => {
                done = true;
                None
            }
            Ok(page) => {
                after = page.last().map(seq);
                Some(Ok(page))
            }
            Err(error) => {
                done = true;
                Some(Err(error))
            }
        }
    })
}
