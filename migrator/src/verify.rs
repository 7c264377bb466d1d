//! `verify`: for every entry the journal marks done, the targets must hold exactly the
//! conversion of the journaled original, with its expiry (1 s tolerance), the source must be
//! gone (unless `--keep-source`), and every index member present. Missing, type, value, TTL,
//! source and index problems are reported separately (as RIOT's `compare` does).

use std::collections::VecDeque;

use edgesync_core::store::{Command, Reply, Store, StoreError};
use serde::Serialize;

use crate::connect::Connector;
use crate::entry::{Entry, EntryState};
use crate::journal::{entries, Journal, JournalError};
use crate::pipeline::{Job, Pending, Worker, MOVES_IN_FLIGHT};
use crate::sides::Sides;
use crate::value::read_expecting;

/// Most examples listed per category.
const EXAMPLES: usize = 50;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Mismatches {
    pub count: u64,
    pub examples: Vec<String>,
}

impl Mismatches {
    fn add(&mut self, what: String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }

    fn merge(&mut self, other: Mismatches) {
        self.count += other.count;
        let room = EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.into_iter().take(room));
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub checked: u64,
    pub missing: Mismatches,
    pub type_mismatch: Mismatches,
    pub value_mismatch: Mismatches,
    pub ttl_mismatch: Mismatches,
    pub source_present: Mismatches,
    pub index_missing: Mismatches,
}

impl VerifyReport {
    /// Adds another page's findings (pages are checked apart, and merged in journal order).
    fn merge(&mut self, page: VerifyReport) {
        self.checked += page.checked;
        self.missing.merge(page.missing);
        self.type_mismatch.merge(page.type_mismatch);
        self.value_mismatch.merge(page.value_mismatch);
        self.ttl_mismatch.merge(page.ttl_mismatch);
        self.source_present.merge(page.source_present);
        self.index_missing.merge(page.index_missing);
    }

    pub fn is_clean(&self) -> bool {
        [
            &self.missing,
            &self.type_mismatch,
            &self.value_mismatch,
            &self.ttl_mismatch,
            &self.source_present,
            &self.index_missing,
        ]
        .iter()
        .all(|m| m.count == 0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

async fn check(sides: Sides<'_>, entries: &[Entry], report: &mut VerifyReport) -> Result<(), StoreError> {
    let target_keys: Vec<(&str, &'static str)> =
        entries.iter().flat_map(|e| e.targets.iter().map(|(k, v)| (k.as_str(), v.type_name()))).collect();
    let current = read_expecting(sides.target, &target_keys).await?;
    let mut current = current.into_iter();
    let mut probes = Vec::new();
    for entry in entries {
        report.checked += 1;
        for (key, expected) in &entry.targets {
            match current.next().flatten() {
                None => report.missing.add(format!("{key} (from {})", entry.source)),
                Some(stored) if stored.value.type_name() != expected.type_name() => report.type_mismatch.add(format!(
                    "{key}: {} instead of {}",
                    stored.value.type_name(),
                    expected.type_name()
                )),
                Some(stored) if &stored.value != expected => {
                    report.value_mismatch.add(format!("{key} (from {})", entry.source))
                }
                Some(stored) => {
                    let close = match (stored.expire_at_ms, entry.original.expire_at_ms) {
                        (None, None) => true,
                        (Some(a), Some(b)) => (a - b).abs() <= 1000,
                        _ => false,
                    };
                    if !close {
                        report.ttl_mismatch.add(format!(
                            "{key}: expires {:?}, original {:?}",
                            stored.expire_at_ms, entry.original.expire_at_ms
                        ));
                    }
                }
            }
        }
        let in_place = !sides.separate() && entry.targets.iter().any(|(k, _)| *k == entry.source);
        if !entry.keep_source && !in_place {
            probes.push((Command::new("EXISTS").arg(&entry.source), format!("{} still exists", entry.source), true));
        }
        for member in &entry.index {
            probes.push((
                Command::new("SISMEMBER").arg(&member.key).arg(&member.member),
                format!("{} lacks {}", member.key, member.member),
                false,
            ));
        }
    }
    // Sources are probed where they were, index sets where the targets are.
    let (at_source, at_target): (Vec<_>, Vec<_>) = probes.into_iter().partition(|(_, _, is_source)| *is_source);
    let source_commands: Vec<Command> = at_source.iter().map(|(c, _, _)| c.clone()).collect();
    let target_commands: Vec<Command> = at_target.iter().map(|(c, _, _)| c.clone()).collect();
    let replies = sides
        .source
        .pipeline(&source_commands)
        .await?
        .into_iter()
        .chain(sides.target.pipeline(&target_commands).await?);
    for ((_, what, is_source), reply) in at_source.into_iter().chain(at_target).zip(replies) {
        match (is_source, reply) {
            (true, Ok(Reply::Int(1))) => report.source_present.add(what),
            (false, Ok(Reply::Int(0))) => report.index_missing.add(what),
            _ => {}
        }
    }
    Ok(())
}

/// One page's check, as a worker job.
fn check_page(store: &dyn Store, entries: Vec<Entry>) -> Job<'_, Result<VerifyReport, StoreError>> {
    Box::pin(async move {
        let mut report = VerifyReport::default();
        check(Sides::same(store), &entries, &mut report).await.map(|()| report)
    })
}

/// Checkers side by side: a checker waits on Redis for each page's reads and then compares
/// while Redis waits, so with one the step was that chain (Redis 55 % busy, the machine
/// ~70 % used). On 1 M keys: one 5.8–7.6 s, two 4.8–7.1 s, four 4.8–5.8 s (+12 MB: two
/// pages in flight each).
const CHECKERS: usize = 4;

/// Checks every done entry. With a connector, Redis is read (and the page compared) on
/// [`CHECKERS`] workers' connections while this thread reads the next page of the journal.
pub async fn verify(
    store: &dyn Store,
    journal: &dyn Journal,
    batch: usize,
    connector: Option<&Connector>,
    target: Option<&dyn Store>,
) -> Result<VerifyReport, VerifyError> {
    if let Some(target) = target {
        // Two connections per check: one page after the other.
        let sides = Sides::with_target(store, Some(target));
        let mut report = VerifyReport::default();
        for page in entries(journal, false, batch) {
            let done: Vec<Entry> = page?.into_iter().filter(|e| e.state == EntryState::Done).collect();
            check(sides, &done, &mut report).await?;
        }
        return Ok(report);
    }
    let checkers = match connector {
        Some(connector) => (0..CHECKERS)
            .map(|i| Worker::threaded(&format!("verify-checker-{i}"), connector.clone(), check_page))
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![Worker::inline(store, check_page)],
    };
    let mut report = VerifyReport::default();
    let mut in_flight = VecDeque::new();
    for (n, page) in entries(journal, false, batch).enumerate() {
        let done: Vec<Entry> = page?.into_iter().filter(|e| e.state == EntryState::Done).collect();
        in_flight.push_back(checkers[n % checkers.len()].send(done).await);
        // Answers are merged in journal order, so examples come out as a single checker's would.
        while in_flight.len() >= checkers.len() * MOVES_IN_FLIGHT {
            let oldest: Pending<_> = in_flight.pop_front().expect("in flight");
            report.merge(oldest.answer()??);
        }
    }
    while let Some(oldest) = in_flight.pop_front() {
        report.merge(oldest.answer()??);
    }
    Ok(report)
}
