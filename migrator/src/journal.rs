//! The journal: every original the migrator touches, recorded — and flushed to disk — before
//! the key is moved, with the conversion's targets and the entry's state. It is what makes a
//! run resumable after a crash (pending entries are finished first), verifiable (targets are
//! compared with the journaled conversion) and reversible (originals are restored exactly).
//!
//! [`Journal`] is a small trait so the store behind it can change; [`SledJournal`] implements
//! it with sled 0.34.7 (the stable line; unmaintained, hence the trait). Entries are keyed by
//! a sequence number, so iteration is in apply order and rollback walks it backwards.
//!
//! Memory stays flat however many keys are journaled: sled keeps bookkeeping for every page
//! of a database in memory (about 40 bytes per entry, measured), so the journal is split into
//! segments — one sled database per [`SEGMENT_ENTRIES`] sequence numbers — and at most two are
//! open: the newest, which takes new entries, and one other, for reading. The journal also
//! holds apply's list of conflicts found while scanning (on disk, for the same reason).
use std::cell::RefCell;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::value::{Stored, TypedValue};

/// Sequence numbers per segment database (measured: at 25 k entries a segment's bookkeeping
/// is a few MB; fewer entries per segment would mean more files and more opens when reading).
pub const SEGMENT_ENTRIES: u64 = 25_000;

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
    /// The sequence number the next new entry gets.
    fn next_seq(&self) -> Result<u64, JournalError>;
    /// Up to `limit` entries after sequence `after` (exclusive; `None` = from the start), in
    /// apply order — or, with `reverse`, before `after` going backwards. Empty at the end.
    fn page(&self, after: Option<u64>, limit: usize, reverse: bool) -> Result<Vec<Entry>, JournalError>;
    /// Notes a source `apply` found in conflict, with why, until its run ends.
    fn note_conflict(&self, source: &str, reason: &str) -> Result<(), JournalError>;
    /// Forgets a noted conflict (it was resolved).
    fn forget_conflict(&self, source: &str) -> Result<(), JournalError>;
    /// Up to `limit` noted conflicts after source `after`, in key order.
    fn conflicts(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, String)>, JournalError>;
    fn clear_conflicts(&self) -> Result<(), JournalError>;
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

/// One segment database.
struct Segment {
    number: u64,
    db: sled::Db,
    entries: sled::Tree,
}

/// The meta key holding a journal's entries per segment, fixed when it is created.
const SEGMENT_ENTRIES_KEY: &[u8] = b"segment_entries";

impl Segment {
    fn open(root: &Path, number: u64) -> Result<Self, JournalError> {
        let path = root.join(SEGMENTS_DIR).join(format!("{number:08}"));
        let db = sled::Config::new()
            .path(&path)
            // A small cache: entries are written once and read back in order.
            .cache_capacity(2 * 1024 * 1024)
            .open()
            .map_err(|e| JournalError(format!("cannot open {}: {e}", path.display())))?;
        let entries = db.open_tree("entries")?;
        Ok(Self { number, db, entries })
    }

    fn last_seq(&self) -> Result<Option<u64>, JournalError> {
        self.entries.last()?.map(|(key, _)| seq_of(&key)).transpose()
    }
}

const SEGMENTS_DIR: &str = "segments";
const META_DIR: &str = "meta";

fn seq_of(key: &[u8]) -> Result<u64, JournalError> {
    Ok(u64::from_be_bytes(key.try_into().map_err(|_| JournalError("bad sequence key".into()))?))
}

pub struct SledJournal {
    root: PathBuf,
    /// Journal-wide state: apply's noted conflicts.
    meta: sled::Db,
    conflicts: sled::Tree,
    segment_entries: u64,
    /// Segment numbers present, ascending.
    segments: RefCell<Vec<u64>>,
    /// The newest segment (new entries go there) and one other, each opened on demand.
    newest: RefCell<Option<Segment>>,
    other: RefCell<Option<Segment>>,
}

impl SledJournal {
    /// Opens (or creates) the journal directory. One process at a time: sled locks it.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::open_with(path, SEGMENT_ENTRIES)
    }

    /// Opens the journal; a new one gets `segment_entries` entries per segment, an existing one
    /// keeps what it was created with.
    pub fn open_with(path: &Path, segment_entries: u64) -> Result<Self, JournalError> {
        if path.join("db").exists() && !path.join(SEGMENTS_DIR).exists() {
            return Err(JournalError(format!(
                "{} is a journal of an older migrator (one sled database); finish or roll it back with that version",
                path.display()
            )));
        }
        let segments_dir = path.join(SEGMENTS_DIR);
        std::fs::create_dir_all(&segments_dir)
            .map_err(|e| JournalError(format!("cannot create {}: {e}", segments_dir.display())))?;
        let meta = sled::Config::new()
            .path(path.join(META_DIR))
            .cache_capacity(1024 * 1024)
            .open()
            .map_err(|e| JournalError(format!("cannot open {}: {e}", path.display())))?;
        let conflicts = meta.open_tree("conflicts")?;
        let segment_entries = match meta.get(SEGMENT_ENTRIES_KEY)? {
            Some(bytes) => seq_of(&bytes)?,
            None => {
                meta.insert(SEGMENT_ENTRIES_KEY, &segment_entries.max(1).to_be_bytes())?;
                meta.flush()?;
                segment_entries.max(1)
            }
        };
        let mut segments = Vec::new();
        let listing = std::fs::read_dir(&segments_dir)
            .map_err(|e| JournalError(format!("cannot read {}: {e}", segments_dir.display())))?;
        for item in listing {
            let item = item.map_err(|e| JournalError(e.to_string()))?;
            if let Some(number) = item.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) {
                segments.push(number);
            }
        }
        segments.sort_unstable();
        Ok(Self {
            root: path.to_owned(),
            meta,
            conflicts,
            segment_entries,
            segments: RefCell::new(segments),
            newest: RefCell::new(None),
            other: RefCell::new(None),
        })
    }

    /// Runs `f` on segment `number`, opening (and creating) it in the matching slot.
    fn with_segment<R>(
        &self,
        number: u64,
        f: impl FnOnce(&Segment) -> Result<R, JournalError>,
    ) -> Result<R, JournalError> {
        let newest_number = self.segments.borrow().last().copied();
        let slot = if newest_number.is_none_or(|newest| number >= newest) { &self.newest } else { &self.other };
        let mut slot = slot.borrow_mut();
        if slot.as_ref().is_none_or(|s| s.number != number) {
            if let Some(previous) = slot.take() {
                previous.db.flush()?;
            }
            if newest_number.is_none_or(|newest| number > newest) {
                self.segments.borrow_mut().push(number);
            }
            *slot = Some(Segment::open(&self.root, number)?);
        }
        f(slot.as_ref().expect("opened above"))
    }
}

fn decode(bytes: &[u8]) -> Result<Entry, JournalError> {
    serde_json::from_slice(bytes).map_err(|e| JournalError(format!("corrupt entry: {e}")))
}

impl Journal for SledJournal {
    fn record(&self, entries: &[Entry], durable: bool) -> Result<(), JournalError> {
        let mut start = 0;
        while start < entries.len() {
            let number = entries[start].seq / self.segment_entries;
            let group = entries[start..].iter().take_while(|e| e.seq / self.segment_entries == number).count();
            self.with_segment(number, |segment| {
                let mut batch = sled::Batch::default();
                for entry in &entries[start..start + group] {
                    let bytes = serde_json::to_vec(entry).map_err(|e| JournalError(e.to_string()))?;
                    batch.insert(&entry.seq.to_be_bytes(), bytes);
                }
                segment.entries.apply_batch(batch)?;
                if durable {
                    segment.db.flush()?;
                }
                Ok(())
            })?;
            start += group;
        }
        Ok(())
    }

    fn next_seq(&self) -> Result<u64, JournalError> {
        let numbers = self.segments.borrow().clone();
        for number in numbers.into_iter().rev() {
            if let Some(last) = self.with_segment(number, Segment::last_seq)? {
                return Ok(last + 1);
            }
        }
        Ok(0)
    }

    fn page(&self, after: Option<u64>, limit: usize, reverse: bool) -> Result<Vec<Entry>, JournalError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let numbers = self.segments.borrow().clone();
        let mut page = Vec::new();
        let visit = |number: u64, page: &mut Vec<Entry>| {
            self.with_segment(number, |segment| {
                let bound = after.map(|seq| seq.to_be_bytes());
                let tree = &segment.entries;
                let range: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match (bound, reverse) {
                    (None, false) => Box::new(tree.iter()),
                    (None, true) => Box::new(tree.iter().rev()),
                    (Some(b), false) => Box::new(tree.range::<&[u8], _>((Excluded(&b[..]), Unbounded))),
                    (Some(b), true) => Box::new(tree.range::<&[u8], _>((Unbounded, Excluded(&b[..]))).rev()),
                };
                for item in range.take(limit - page.len()) {
                    let (_, bytes) = item?;
                    page.push(decode(&bytes)?);
                }
                Ok(())
            })
        };
        let first = after.map(|seq| seq / self.segment_entries);
        if reverse {
            for number in numbers.into_iter().rev().filter(|n| first.is_none_or(|f| *n <= f)) {
                visit(number, &mut page)?;
                if page.len() >= limit {
                    break;
                }
            }
        } else {
            for number in numbers.into_iter().filter(|n| first.is_none_or(|f| *n >= f)) {
                visit(number, &mut page)?;
                if page.len() >= limit {
                    break;
                }
            }
        }
        Ok(page)
    }

    fn note_conflict(&self, source: &str, reason: &str) -> Result<(), JournalError> {
        self.conflicts.insert(source.as_bytes(), reason.as_bytes())?;
        Ok(())
    }

    fn forget_conflict(&self, source: &str) -> Result<(), JournalError> {
        self.conflicts.remove(source.as_bytes())?;
        Ok(())
    }

    fn conflicts(&self, after: Option<&str>, limit: usize) -> Result<Vec<(String, String)>, JournalError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let range = match after {
            Some(after) => self.conflicts.range::<&[u8], _>((Excluded(after.as_bytes()), Unbounded)),
            None => self.conflicts.iter(),
        };
        range
            .take(limit)
            .map(|item| {
                let (key, reason) = item?;
                Ok((String::from_utf8_lossy(&key).into_owned(), String::from_utf8_lossy(&reason).into_owned()))
            })
            .collect()
    }

    fn clear_conflicts(&self) -> Result<(), JournalError> {
        self.conflicts.clear()?;
        self.meta.flush()?;
        Ok(())
    }
}
