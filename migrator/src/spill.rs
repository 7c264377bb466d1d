//! A keyed record set that can outgrow memory: what `plan` and `apply` collect about keys while
//! scanning (a classification, a conflict) so they can report each key once, however many
//! keys there are. SCAN may return a key more than once, so the last record of a key wins.
//!
//! Records are buffered up to a fixed count, then sorted, de-duplicated and written to a run
//! file in a scratch directory (removed when the set is dropped); [`KeyedSpill::finish`]
//! merges the runs back in key order. Memory is one buffer plus one record per run, whatever
//! the number of keys — an external sort, the way `sort -u` does it. Every [`FAN_IN`] runs of one
//! size are merged into one run of the next size, so open files stay few (`FAN_IN` per size)
//! and each record is rewritten only once per size. Nothing here is durable: a set lives as
//! long as one step of one process.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Records held in memory before a run is written: at ~100 bytes a record, ~0.5 MB per set.
/// (20,000 made a 1 M-key `plan` peak 18 MB against 15 MB at 100 k keys, whose sets never
/// filled their buffers; with 5,000 both peak at 11 MB, for no measurable time.)
pub const BUFFER_RECORDS: usize = 5_000;
/// Runs of one size merged into one of the next size: each open run costs a read buffer.
pub const FAN_IN: usize = 16;

const SCRATCH_PREFIX: &str = "spill-";

/// A key's record with the order it arrived in, so the newest of duplicates wins.
#[derive(Serialize, Deserialize)]
struct Record<V> {
    key: String,
    order: u64,
    value: V,
}

pub struct KeyedSpill<V> {
    scratch: tempfile::TempDir,
    buffer: Vec<Record<V>>,
    buffer_records: usize,
    /// Run files with their size level (0: one buffer; n + 1: `FAN_IN` runs of level n).
    runs: Vec<(u32, PathBuf)>,
    next_order: u64,
    next_run: u64,
}

fn corrupt(error: serde_json::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("scratch file: {error}"))
}

impl<V: Serialize + DeserializeOwned> KeyedSpill<V> {
    /// A set whose runs go to a fresh scratch directory inside `parent`.
    pub fn new_in(parent: &Path) -> io::Result<Self> {
        Self::with_buffer(parent, BUFFER_RECORDS)
    }

    /// As [`KeyedSpill::new_in`], writing a run every `buffer_records` records (tests use few).
    pub fn with_buffer(parent: &Path, buffer_records: usize) -> io::Result<Self> {
        std::fs::create_dir_all(parent)?;
        let scratch = tempfile::Builder::new().prefix(SCRATCH_PREFIX).tempdir_in(parent)?;
        Ok(Self {
            scratch,
            buffer: Vec::new(),
            buffer_records: buffer_records.max(1),
            runs: Vec::new(),
            next_order: 0,
            next_run: 0,
        })
    }

    /// The scratch directory.
    pub fn path(&self) -> &Path {
        self.scratch.path()
    }

    /// Records `value` for `key`, replacing any earlier record of it.
    pub fn insert(&mut self, key: String, value: V) -> io::Result<()> {
        self.buffer.push(Record { key, order: self.next_order, value });
        self.next_order += 1;
        if self.buffer.len() >= self.buffer_records {
            self.write_run()?;
        }
        Ok(())
    }

    /// Every key with its newest record, in key order.
    pub fn finish(mut self) -> io::Result<Merged<V>> {
        self.write_run()?;
        let runs: Vec<PathBuf> = std::mem::take(&mut self.runs).into_iter().map(|(_, path)| path).collect();
        Merged::open(&runs, Some(self.scratch))
    }

    fn write_run(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut records = std::mem::take(&mut self.buffer);
        // Newest first within a key, so de-duplication keeps the first of each.
        records.sort_unstable_by(|a, b| a.key.cmp(&b.key).then(b.order.cmp(&a.order)));
        records.dedup_by(|later, first| later.key == first.key);
        let path = self.run_path();
        write_records(&path, records.into_iter().map(Ok))?;
        self.runs.push((0, path));
        // Levels only grow towards the end of the list, so equal ones are adjacent there.
        while let Some(&(level, _)) = self.runs.last() {
            let first = self.runs.len().saturating_sub(FAN_IN);
            if self.runs.len() < FAN_IN || self.runs[first..].iter().any(|(l, _)| *l != level) {
                break;
            }
            let runs: Vec<PathBuf> = self.runs.drain(first..).map(|(_, path)| path).collect();
            let merged_path = self.run_path();
            write_records(&merged_path, Merged::<V>::open(&runs, None)?.records())?;
            for run in runs {
                std::fs::remove_file(run)?;
            }
            self.runs.push((level + 1, merged_path));
        }
        Ok(())
    }

    fn run_path(&mut self) -> PathBuf {
        self.next_run += 1;
        self.scratch.path().join(format!("run-{:06}", self.next_run))
    }
}

/// Removes scratch directories in `parent` that a killed process left behind, except `keep`.
pub fn remove_stale(parent: &Path, keep: &Path) -> io::Result<()> {
    let keep = keep.canonicalize()?;
    for item in std::fs::read_dir(parent)? {
        let path = item?.path();
        let stale = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(SCRATCH_PREFIX));
        if stale && path.canonicalize()? != keep {
            std::fs::remove_dir_all(&path)?;
        }
    }
    Ok(())
}

fn write_records<V: Serialize>(path: &Path, records: impl Iterator<Item = io::Result<Record<V>>>) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    for record in records {
        serde_json::to_writer(&mut out, &record?).map_err(corrupt)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// The runs merged: each key once, with its newest record, in key order.
pub struct Merged<V> {
    readers: Vec<std::io::Lines<BufReader<File>>>,
    /// The next record of each run, smallest key (then newest) on top.
    heads: BinaryHeap<Reverse<(String, Reverse<u64>, usize)>>,
    values: Vec<Option<V>>,
    /// Held so the scratch directory outlives the reading.
    _scratch: Option<tempfile::TempDir>,
}

impl<V: DeserializeOwned> Merged<V> {
    fn open(runs: &[PathBuf], scratch: Option<tempfile::TempDir>) -> io::Result<Self> {
        let mut merged = Self {
            readers: Vec::with_capacity(runs.len()),
            heads: BinaryHeap::new(),
            values: Vec::new(),
            _scratch: scratch,
        };
        for (run, path) in runs.iter().enumerate() {
            merged.readers.push(BufReader::new(File::open(path)?).lines());
            merged.values.push(None);
            merged.advance(run)?;
        }
        Ok(merged)
    }

    /// Reads run `run`'s next record into the heap.
    fn advance(&mut self, run: usize) -> io::Result<()> {
        if let Some(line) = self.readers[run].next() {
            let record: Record<V> = serde_json::from_str(&line?).map_err(corrupt)?;
            self.heads.push(Reverse((record.key, Reverse(record.order), run)));
            self.values[run] = Some(record.value);
        }
        Ok(())
    }

    fn next_record(&mut self) -> Option<io::Result<Record<V>>> {
        let Reverse((key, Reverse(order), run)) = self.heads.pop()?;
        let value = self.values[run].take().expect("a head has its value");
        if let Err(error) = self.advance(run) {
            return Some(Err(error));
        }
        // Older records of the same key, in other runs.
        while let Some(Reverse((next, _, other))) = self.heads.peek() {
            if *next != key {
                break;
            }
            let other = *other;
            self.heads.pop();
            self.values[other] = None;
            if let Err(error) = self.advance(other) {
                return Some(Err(error));
            }
        }
        Some(Ok(Record { key, order, value }))
    }

    fn records(mut self) -> impl Iterator<Item = io::Result<Record<V>>> {
        std::iter::from_fn(move || self.next_record())
    }
}

impl<V: DeserializeOwned> Iterator for Merged<V> {
    type Item = io::Result<(String, V)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().map(|record| record.map(|r| (r.key, r.value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(spill: KeyedSpill<u32>) -> Vec<(String, u32)> {
        spill.finish().unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn each_key_comes_back_once_with_its_newest_value_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        // Three records a run: duplicates land within one run and across runs.
        let mut spill = KeyedSpill::with_buffer(dir.path(), 3).unwrap();
        for (key, value) in [("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5), ("d", 6), ("b", 7)] {
            spill.insert(key.to_owned(), value).unwrap();
        }
        assert_eq!(
            collect(spill),
            [("a".to_owned(), 5), ("b".to_owned(), 7), ("c".to_owned(), 4), ("d".to_owned(), 6)]
        );
    }

    #[test]
    fn many_runs_are_merged_down_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = KeyedSpill::with_buffer(dir.path(), 7).unwrap();
        // Far more runs than FAN_IN (two levels of merges); every key written twice, the
        // second value wins.
        let keys = 2_000u32;
        for round in 0..2 {
            for k in 0..keys {
                spill.insert(format!("key:{:05}", (k * 7919) % keys), round * 10_000 + k).unwrap();
            }
        }
        assert!(spill.runs.iter().any(|(level, _)| *level == 2), "{:?}", spill.runs);
        assert!(spill.runs.len() < 3 * FAN_IN);
        let merged = collect(spill);
        assert_eq!(merged.len(), keys as usize);
        assert!(merged.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert!(merged.iter().all(|(_, value)| *value >= 10_000));
    }

    #[test]
    fn an_empty_set_finishes_empty_and_removes_its_scratch_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut spill = KeyedSpill::with_buffer(dir.path(), 2).unwrap();
        for k in 0..5u32 {
            spill.insert(k.to_string(), k).unwrap();
        }
        drop(spill);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let empty = KeyedSpill::<u32>::new_in(dir.path()).unwrap();
        assert!(collect(empty).is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn scratch_left_by_a_killed_process_is_removed_but_not_the_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let left = KeyedSpill::<u32>::new_in(dir.path()).unwrap();
        let left_path = left.path().to_owned();
        std::mem::forget(left); // as if the process had been killed
        std::fs::create_dir(dir.path().join("segments")).unwrap();
        let live = KeyedSpill::<u32>::new_in(dir.path()).unwrap();
        remove_stale(dir.path(), live.path()).unwrap();
        assert!(!left_path.exists());
        assert!(live.path().exists() && dir.path().join("segments").exists());
    }
}
