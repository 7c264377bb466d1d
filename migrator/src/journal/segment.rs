//! A segment — one sled database of the journal — and what is read back from it
//! ([`Journaled`]: entries or their heads, each with its outcome laid over it); segments a
//! walk will want next are opened on another thread ([`Opening`]).

use std::path::Path;

use super::record::{decode, first_of, key, Head, ENTRIES, HEADS, OUTCOMES};
use super::JournalError;
use crate::entry::{Entry, EntryHead, Outcome};

/// Where the segments live inside the journal directory (older layouts used `db` and
/// `segments`).
pub(super) const SEGMENTS_DIR: &str = "chunks";

/// Something the journal can read a stored entry back as (an [`Entry`], or its
/// [`EntryHead`]), with its outcome laid over it.
pub(super) trait Journaled: serde::de::DeserializeOwned {
    fn seq(&self) -> u64;
    fn take(&mut self, outcome: Outcome);

    /// The chunk starting at `first`, read as `Self`.
    fn read(segment: &Segment, first: u64) -> Result<Vec<Self>, JournalError> {
        segment.read_chunk(first)
    }
}

impl Journaled for Entry {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn take(&mut self, outcome: Outcome) {
        outcome.apply_to(self);
    }
}

impl Journaled for EntryHead {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn take(&mut self, outcome: Outcome) {
        self.state = outcome.state;
    }

    /// From the chunk's small `h` record when it has one (chunks journaled before heads were
    /// recorded have not: their entries are read instead).
    fn read(segment: &Segment, first: u64) -> Result<Vec<Self>, JournalError> {
        let (Some(heads), Some(outcomes)) =
            (segment.tree.get(key(HEADS, first))?, segment.tree.get(key(OUTCOMES, first))?)
        else {
            return segment.read_chunk(first);
        };
        let heads: Vec<Head> = decode(&heads)?;
        let outcomes: Vec<Outcome> = decode(&outcomes)?;
        if heads.len() != outcomes.len() {
            return Err(JournalError::Inconsistent(format!(
                "chunk {first}: {} heads, {} outcomes",
                heads.len(),
                outcomes.len()
            )));
        }
        Ok(heads
            .into_iter()
            .zip(outcomes)
            .zip(first..)
            .map(|((head, outcome), seq)| EntryHead {
                seq,
                source: head.source,
                state: outcome.state,
                keep_source: head.keep_source,
            })
            .collect())
    }
}

/// One sled database of the journal: the chunks from sequence number `number` on, up to the
/// next segment's.
pub(super) struct Segment {
    pub(super) number: u64,
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
}

impl Segment {
    pub(super) fn open(root: &Path, number: u64) -> Result<Self, JournalError> {
        let path = root.join(SEGMENTS_DIR).join(format!("{number:020}"));
        let db = sled::Config::new()
            .path(&path)
            // A small cache: chunks are written once and read back in order.
            .cache_capacity(2 * 1024 * 1024)
            .open()
            .map_err(|source| JournalError::Open { path: path.to_path_buf(), source })?;
        let tree = db.open_tree("journal")?;
        Ok(Self { number, db, tree })
    }

    /// The first sequence number of the chunk holding `seq`, if this segment has one.
    pub(super) fn chunk_of(&self, seq: u64) -> Result<Option<u64>, JournalError> {
        let last = self.tree.range(key(OUTCOMES, 0)..=key(OUTCOMES, seq)).next_back().transpose()?;
        last.map(|(record, _)| first_of(&record)).transpose()
    }

    /// A chunk's entries (as `T`) with their outcomes laid over them.
    pub(super) fn read_chunk<T: Journaled>(&self, first: u64) -> Result<Vec<T>, JournalError> {
        let (Some(entries), Some(outcomes)) =
            (self.tree.get(key(ENTRIES, first))?, self.tree.get(key(OUTCOMES, first))?)
        else {
            return Err(JournalError::Inconsistent(format!("chunk {first} is incomplete")));
        };
        let mut entries: Vec<T> = decode(&entries)?;
        let outcomes: Vec<Outcome> = decode(&outcomes)?;
        if entries.len() != outcomes.len() {
            return Err(JournalError::Inconsistent(format!(
                "chunk {first}: {} entries, {} outcomes",
                entries.len(),
                outcomes.len()
            )));
        }
        for (entry, outcome) in entries.iter_mut().zip(outcomes) {
            entry.take(outcome);
        }
        Ok(entries)
    }

    /// The sequence number after this segment's last entry (`None`: it holds none).
    pub(super) fn end(&self) -> Result<Option<u64>, JournalError> {
        let last = self.tree.range(key(OUTCOMES, 0)..=key(OUTCOMES, u64::MAX)).next_back().transpose()?;
        last.map(|(record, outcomes)| Ok(first_of(&record)? + decode::<Vec<Outcome>>(&outcomes)?.len() as u64))
            .transpose()
    }

    /// The chunks' first sequence numbers, from the one holding `after` on (or those before
    /// it, backwards), read as they are walked.
    pub(super) fn chunks(
        &self,
        after: Option<u64>,
        reverse: bool,
    ) -> Result<impl Iterator<Item = Result<u64, JournalError>>, JournalError> {
        let to_end = |from: u64| self.tree.range(key(OUTCOMES, from)..=key(OUTCOMES, u64::MAX)).keys();
        let records: Box<dyn Iterator<Item = sled::Result<sled::IVec>>> = match (after, reverse) {
            (None, false) => Box::new(to_end(0)),
            (None, true) => Box::new(to_end(0).rev()),
            (Some(after), false) => Box::new(to_end(self.chunk_of(after)?.unwrap_or(0))),
            (Some(after), true) => Box::new(self.tree.range(key(OUTCOMES, 0)..key(OUTCOMES, after)).keys().rev()),
        };
        Ok(records.map(|record| first_of(&record?)))
    }
}

/// A segment being opened in the background.
pub(super) struct Opening {
    pub(super) number: u64,
    pub(super) thread: std::thread::JoinHandle<Result<Segment, JournalError>>,
}

impl Opening {
    pub(super) fn start(root: &Path, number: u64) -> Self {
        let root = root.to_owned();
        Self { number, thread: std::thread::spawn(move || Segment::open(&root, number)) }
    }

    pub(super) fn finish(self) -> Result<Segment, JournalError> {
        self.thread.join().map_err(|_| JournalError::Inconsistent(format!("opening segment {} failed", self.number)))?
    }
}
