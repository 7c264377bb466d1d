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
//! of a database in memory and its working memory grows with the bytes written to it, so the
//! journal is split into segments — a new sled database once the newest has taken
//! [`SEGMENT_BYTES`] — named by their first sequence number, and at most two are open: the
//! newest, which takes new entries, and one other, for reading. Bounding segments by bytes
//! rather than entries keeps a segment of large values (JSON arrays, long histories) as small
//! as one of small values.
use std::cell::RefCell;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::value::{Stored, TypedValue};

/// Bytes of entries (every write counted, updates included) after which new entries start a
/// new segment. Measured: sled's working memory for a segment grows with the bytes written to
/// it; at 8 MiB it is a few MB, and a million keys make ~150 segments, quick to open in turn.
pub const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

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
    /// The targets are written permanent, whatever the original's expiry.
    #[serde(default)]
    pub drop_expiry: bool,
    pub state: EntryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What a walk over the journal needs to decide whether to look closer at an entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EntryHead {
    pub seq: u64,
    pub source: String,
    pub state: EntryState,
    pub keep_source: bool,
}

/// Something the journal stores per entry and can be read back as (an [`Entry`], or its
/// [`EntryHead`]).
trait Journaled: serde::de::DeserializeOwned {}
impl Journaled for Entry {}
impl Journaled for EntryHead {}

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
    /// [`Journal::page`], each entry read only as far as its [`EntryHead`]: for walks that
    /// look at most entries only to pass them by (decoding originals and targets is most of
    /// the cost of reading one).
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

/// One segment database; `number` is the first sequence number it holds.
struct Segment {
    number: u64,
    db: sled::Db,
    entries: sled::Tree,
}

impl Segment {
    fn open(root: &Path, number: u64) -> Result<Self, JournalError> {
        let path = root.join(SEGMENTS_DIR).join(format!("{number:020}"));
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

fn seq_of(key: &[u8]) -> Result<u64, JournalError> {
    Ok(u64::from_be_bytes(key.try_into().map_err(|_| JournalError("bad sequence key".into()))?))
}

pub struct SledJournal {
    root: PathBuf,
    segment_bytes: u64,
    /// Segments present, by first sequence number, ascending.
    segments: RefCell<Vec<u64>>,
    /// Bytes written to the newest segment by this process (`None`: it was written before, so
    /// the next new entry starts a fresh segment rather than measure the old one).
    newest_bytes: std::cell::Cell<Option<u64>>,
    /// The first sequence number not yet written, once known.
    next_new: std::cell::Cell<Option<u64>>,
    /// The newest segment (new entries go there) and one other, each opened on demand.
    newest: RefCell<Option<Segment>>,
    other: RefCell<Option<Segment>>,
}

impl SledJournal {
    /// Opens (or creates) the journal directory. One process at a time: sled locks it.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::open_with(path, SEGMENT_BYTES)
    }

    /// Opens the journal, starting new segments after `segment_bytes` (tests use small ones).
    pub fn open_with(path: &Path, segment_bytes: u64) -> Result<Self, JournalError> {
        if path.join("db").exists() && !path.join(SEGMENTS_DIR).exists() {
            return Err(JournalError(format!(
                "{} is a journal of an older migrator (one sled database); finish or roll it back with that version",
                path.display()
            )));
        }
        std::fs::create_dir_all(path.join(SEGMENTS_DIR))
            .map_err(|e| JournalError(format!("cannot create {}: {e}", path.join(SEGMENTS_DIR).display())))?;
        // Absolute from here on: scratch files and segments are compared by path.
        let path = &path.canonicalize().map_err(|e| JournalError(format!("cannot resolve {}: {e}", path.display())))?;
        let segments_dir = path.join(SEGMENTS_DIR);
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
            segment_bytes,
            segments: RefCell::new(segments),
            newest_bytes: std::cell::Cell::new(None),
            next_new: std::cell::Cell::new(None),
            newest: RefCell::new(None),
            other: RefCell::new(None),
        })
    }

    /// The segment holding `seq`: the last one starting at or before it.
    fn segment_of(&self, seq: u64) -> Option<u64> {
        self.segments.borrow().iter().rev().find(|first| **first <= seq).copied()
    }

    /// Runs `f` on segment `number`, opening (and creating) it in the matching slot.
    fn with_segment<R>(
        &self,
        number: u64,
        f: impl FnOnce(&Segment) -> Result<R, JournalError>,
    ) -> Result<R, JournalError> {
        for slot in [&self.newest, &self.other] {
            if let Some(segment) = slot.borrow().as_ref().filter(|s| s.number == number) {
                return f(segment);
            }
        }
        let newest = self.segments.borrow().last().copied();
        let mut slot = if newest == Some(number) { self.newest.borrow_mut() } else { self.other.borrow_mut() };
        if let Some(previous) = slot.take() {
            previous.db.flush()?;
        }
        *slot = Some(Segment::open(&self.root, number)?);
        f(slot.as_ref().expect("opened above"))
    }
}

/// A sequence number and its encoded entry.
type Encoded = (u64, Vec<u8>);

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, JournalError> {
    serde_json::from_slice(bytes).map_err(|e| JournalError(format!("corrupt entry: {e}")))
}

impl Journal for SledJournal {
    fn record(&self, entries: &[Entry], durable: bool) -> Result<(), JournalError> {
        let mut next_new = match self.next_new.get() {
            Some(next) => next,
            None => self.next_seq()?,
        };
        // (segment, [(seq, encoded entry)]), in the order given.
        let mut groups: Vec<(u64, Vec<Encoded>)> = Vec::new();
        for entry in entries {
            let bytes = serde_json::to_vec(entry).map_err(|e| JournalError(e.to_string()))?;
            let is_new = entry.seq >= next_new;
            let full = self.newest_bytes.get().is_none_or(|written| written >= self.segment_bytes);
            let number = match self.segment_of(entry.seq) {
                Some(number) if !(is_new && full) => number,
                _ => {
                    // A new segment starting at this entry — unless the newest already starts
                    // here: a crash right after creating it left it empty (it cannot hold
                    // this entry, or it would not be new), and a second one of the same
                    // number would list every entry twice.
                    if self.segments.borrow().last() != Some(&entry.seq) {
                        self.segments.borrow_mut().push(entry.seq);
                    }
                    self.newest_bytes.set(Some(0));
                    entry.seq
                }
            };
            if Some(number) == self.segments.borrow().last().copied() {
                self.newest_bytes.set(self.newest_bytes.get().map(|written| written + bytes.len() as u64));
            }
            next_new = next_new.max(entry.seq + 1);
            match groups.last_mut() {
                Some((group, items)) if *group == number => items.push((entry.seq, bytes)),
                _ => groups.push((number, vec![(entry.seq, bytes)])),
            }
        }
        self.next_new.set(Some(next_new));
        for (number, items) in groups {
            self.with_segment(number, |segment| {
                let mut batch = sled::Batch::default();
                for (seq, bytes) in items {
                    batch.insert(&seq.to_be_bytes(), bytes);
                }
                segment.entries.apply_batch(batch)?;
                if durable {
                    segment.db.flush()?;
                }
                Ok(())
            })?;
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
        self.walk(after, limit, reverse)
    }

    fn heads(&self, after: Option<u64>, limit: usize, reverse: bool) -> Result<Vec<EntryHead>, JournalError> {
        self.walk(after, limit, reverse)
    }

    fn get(&self, seq: u64) -> Result<Option<Entry>, JournalError> {
        let Some(number) = self.segment_of(seq) else { return Ok(None) };
        self.with_segment(number, |segment| {
            segment.entries.get(seq.to_be_bytes())?.map(|bytes| decode(&bytes)).transpose()
        })
    }

    fn dir(&self) -> &Path {
        &self.root
    }
}

impl SledJournal {
    fn walk<T: Journaled>(&self, after: Option<u64>, limit: usize, reverse: bool) -> Result<Vec<T>, JournalError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let numbers = self.segments.borrow().clone();
        let mut page = Vec::new();
        let visit = |number: u64, page: &mut Vec<T>| {
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
        if reverse {
            // Segments holding sequence numbers below `after`.
            for number in numbers.into_iter().rev().filter(|n| after.is_none_or(|a| *n < a)) {
                visit(number, &mut page)?;
                if page.len() >= limit {
                    break;
                }
            }
        } else {
            // The segment holding `after` and those after it.
            let first = after.and_then(|a| self.segment_of(a));
            for number in numbers.into_iter().filter(|n| first.is_none_or(|f| *n >= f)) {
                visit(number, &mut page)?;
                if page.len() >= limit {
                    break;
                }
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            rule: "user-position".into(),
            source: format!("user:u{seq}:position:QRLUSDT:long"),
            original: Stored { value: TypedValue::String(format!("{{\"qty\":\"{seq}\"}}")), expire_at_ms: None },
            targets: Vec::new(),
            previous_targets: Vec::new(),
            index: Vec::new(),
            keep_source: false,
            overwrite: false,
            drop_expiry: false,
            state: EntryState::Pending,
            note: None,
        }
    }

    fn seqs(pages: impl Iterator<Item = Result<Vec<Entry>, JournalError>>) -> Vec<u64> {
        pages.flat_map(|page| page.unwrap()).map(|e| e.seq).collect()
    }

    #[test]
    fn entries_span_segments_in_both_directions_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            // Entries of ~200 bytes: a new segment after every 4 or so new ones.
            let journal = SledJournal::open_with(dir.path(), 800).unwrap();
            assert_eq!(journal.next_seq().unwrap(), 0);
            // One batch straddling two segment boundaries, then an update of an older segment.
            journal.record(&(0..25).map(entry).collect::<Vec<_>>(), true).unwrap();
            let mut done = entry(3);
            done.state = EntryState::Done;
            journal.record(&[done], false).unwrap();
            journal.record(&(25..32).map(entry).collect::<Vec<_>>(), true).unwrap();
        }
        let journal = SledJournal::open_with(dir.path(), 800).unwrap();
        let segments = std::fs::read_dir(dir.path().join(SEGMENTS_DIR)).unwrap().count();
        assert!(segments >= 3, "a batch starts at most one segment; {segments} segments");
        assert_eq!(journal.next_seq().unwrap(), 32);
        assert_eq!(seqs(entries(&journal, false, 7)), (0..32).collect::<Vec<_>>());
        assert_eq!(seqs(entries(&journal, true, 7)), (0..32).rev().collect::<Vec<_>>());
        for after in 0..32 {
            let forward: Vec<u64> = journal.page(Some(after), 3, false).unwrap().iter().map(|e| e.seq).collect();
            assert_eq!(forward, (after + 1..32).take(3).collect::<Vec<_>>(), "after {after}");
            let backward: Vec<u64> = journal.page(Some(after), 3, true).unwrap().iter().map(|e| e.seq).collect();
            assert_eq!(backward, (0..after).rev().take(3).collect::<Vec<_>>(), "before {after}");
        }
        // New entries after reopening start a new segment, the old ones stay readable.
        journal.record(&(32..34).map(entry).collect::<Vec<_>>(), true).unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join(SEGMENTS_DIR)).unwrap().count(), segments + 1);
        assert_eq!(seqs(entries(&journal, false, 5)), (0..34).collect::<Vec<_>>());
        let states: Vec<EntryState> = journal.page(Some(2), 2, false).unwrap().iter().map(|e| e.state).collect();
        assert_eq!(states, [EntryState::Done, EntryState::Pending]);
    }

    #[test]
    fn a_journal_of_the_single_database_layout_is_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"").unwrap();
        let error = SledJournal::open(dir.path()).err().unwrap();
        assert!(error.to_string().contains("older migrator"), "{error}");
    }

    /// Segment size for the torn-write tests: small, so batches straddle segments.
    const TORN_SEGMENT_BYTES: u64 = 4096;
    const TORN_BATCH: u64 = 50;

    /// Where the writer notes how many batches it has journaled (written after each returns).
    fn progress_file(dir: &Path) -> PathBuf {
        dir.with_extension("batches")
    }

    /// The child of `a_torn_last_batch_leaves_a_readable_prefix`: journals batches durably
    /// until it is killed. Does nothing when run by the test harness on its own.
    #[test]
    #[ignore = "run as a child process by a_torn_last_batch_leaves_a_readable_prefix"]
    fn torn_writer() {
        let Some(dir) = std::env::var_os("EDGESYNC_TORN_JOURNAL") else { return };
        let journal = SledJournal::open_with(Path::new(&dir), TORN_SEGMENT_BYTES).unwrap();
        for batch in 0.. {
            let first = batch * TORN_BATCH;
            journal.record(&(first..first + TORN_BATCH).map(entry).collect::<Vec<_>>(), true).unwrap();
            std::fs::write(progress_file(Path::new(&dir)), (batch + 1).to_string()).unwrap();
        }
    }

    /// SIGKILL while batches are being journaled (at several points): the journal reopens,
    /// every batch whose write returned is there, what it holds is a gap-free prefix of what
    /// was written — every entry whole — and the next entry continues it. Moves are sent only
    /// after a batch is journaled, so entries a torn batch lost were never moved (the next scan
    /// finds their sources), and the ones it kept are pending (resume finishes each alone).
    #[test]
    fn a_torn_last_batch_leaves_a_readable_prefix() {
        for kill_after in [1u64, 4, 15, 40] {
            let parent = tempfile::tempdir().unwrap();
            let dir = parent.path().join("journal");
            let dir = dir.as_path();
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "journal::tests::torn_writer", "--ignored", "--quiet"])
                .env("EDGESYNC_TORN_JOURNAL", dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let journaled = || std::fs::read_to_string(progress_file(dir)).ok().and_then(|n| n.parse::<u64>().ok());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while journaled().unwrap_or(0) < kill_after {
                assert!(child.try_wait().unwrap().is_none(), "the writer stopped by itself");
                assert!(std::time::Instant::now() < deadline, "under {kill_after} batches journaled in 60 s");
                std::thread::yield_now();
            }
            child.kill().unwrap(); // SIGKILL, most likely in the middle of the next batch
            child.wait().unwrap();
            let flushed = journaled().unwrap() * TORN_BATCH;

            let journal = SledJournal::open_with(dir, TORN_SEGMENT_BYTES).unwrap();
            let kept: Vec<Entry> = entries(&journal, false, 1000).flat_map(|page| page.unwrap()).collect();
            let n = kept.len() as u64;
            assert!(n >= flushed, "every batch journaled before the kill is kept: {n} of {flushed}");
            for (i, kept) in kept.iter().enumerate() {
                assert_eq!(*kept, entry(i as u64), "entry {i} of {n} is whole and in order");
            }
            assert_eq!(journal.next_seq().unwrap(), n, "the next entry continues the prefix");
            journal.record(&[entry(n)], true).unwrap();
            let after: Vec<u64> = journal.page(n.checked_sub(1), 5, false).unwrap().iter().map(|e| e.seq).collect();
            assert_eq!(after, vec![n], "listed once; segments {:?}", journal.segments.borrow());
        }
    }

    /// The case the torn-write test found: a crash right after a new segment was created,
    /// before its first entry was durable, leaves it empty; entries after reopening go into
    /// it, and each is listed once.
    #[test]
    fn an_empty_newest_segment_is_reused_not_doubled() {
        let dir = tempfile::tempdir().unwrap();
        {
            let journal = SledJournal::open_with(dir.path(), 800).unwrap();
            journal.record(&(0..3).map(entry).collect::<Vec<_>>(), true).unwrap();
        }
        drop(Segment::open(&dir.path().canonicalize().unwrap(), 3).unwrap()); // created, never written
        let journal = SledJournal::open_with(dir.path(), 800).unwrap();
        assert_eq!(journal.next_seq().unwrap(), 3);
        journal.record(&[entry(3), entry(4)], true).unwrap();
        assert_eq!(seqs(entries(&journal, false, 10)), vec![0, 1, 2, 3, 4]);
        assert_eq!(*journal.segments.borrow(), vec![0, 3]);
    }

    #[test]
    fn heads_and_get_read_what_page_reads() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SledJournal::open_with(dir.path(), 800).unwrap();
        let mut written: Vec<Entry> = (0..12).map(entry).collect();
        written[3].state = EntryState::Done;
        written[3].keep_source = true;
        journal.record(&written, true).unwrap();
        let heads = journal.heads(Some(10), 20, true).unwrap();
        let page = journal.page(Some(10), 20, true).unwrap();
        let expected: Vec<EntryHead> = page
            .iter()
            .map(|e| EntryHead { seq: e.seq, source: e.source.clone(), state: e.state, keep_source: e.keep_source })
            .collect();
        assert_eq!(heads, expected, "across segments, backwards");
        assert_eq!((heads[6].seq, heads[6].state, heads[6].keep_source), (3, EntryState::Done, true));
        assert_eq!(journal.get(3).unwrap(), Some(written[3].clone()));
        assert_eq!(journal.get(40).unwrap(), None);
    }
}
