//! `apply`: move every key the rules own, in batches. Per batch: read and convert the
//! originals, journal them (type, value, absolute expiry, targets) and flush, then move each
//! with the [move script](crate::script) — atomic, and only if the source still holds the
//! journaled value — and note the outcome in the journal. A source a live writer changed is
//! re-read and retried (3 times); a conflict is never overwritten without `--overwrite`.
//! Batches overlap: the next page is read and classified, and the next batch journaled, while
//! Redis moves the previous one ([`crate::pipeline`]).
//!
//! Re-running after a crash resumes: entries still pending are finished first (a move that
//! happened before the crash is recognised as `already`), then the scan runs again: moved
//! sources are gone, and kept ones classify as already migrated. Keys the scan cannot move
//! (conflicts, unparseable, wrong type) are noted in a [spill](crate::spill) set in the journal
//! directory — on disk, so memory stays flat, and once per key although SCAN may return a key
//! twice — and reported at the end, after a last walk over the journal has migrated again the
//! sources a live writer recreated after their move. A lock key with a TTL keeps two runs from
//! overlapping.
//!
//! One file past ~600 lines on purpose: `Run` is the one state machine of an apply (batch,
//! journal, move, retry, spill, remigrate), and its steps share that state; the parts that do
//! not (pipelining, spills, the scripts, node moves) already live in their own modules.

use std::time::Instant;

use edgesync_core::store::{Command, Reply, Store, StoreError};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::cluster::moves::{ClusterMoveError, NodeMoves};
use crate::cluster::placement::Placement;
use crate::connect::Connector;
use crate::entry::{Entry, EntryState, IndexMember};
use crate::families::{survey, NotOwned};
use crate::journal::{entries, Journal, JournalError};
use crate::pace::Pace;
use crate::pipeline::{execute, InFlight, Mover, ReadPlan, Reader, MOVES_IN_FLIGHT};
use crate::plan_error::PlanError;
use crate::rules::{Rule, RuleOptions, RuleSet, OWN_KEYS_PREFIX};
use crate::scan::{classify, Candidate, Class, Classified, Scanner};
use crate::script::{move_many_command, move_outcomes, reloading_if_lost, MoveOutcome, ScriptAnswerError, Scripts};
use crate::sides::Sides;
use crate::spill::KeyedSpill;

/// How many times a source that keeps changing is re-read before it is reported.
const CHANGED_RETRIES: usize = 3;
const LOCK_TTL_MS: u64 = 120_000;
/// How often a running apply renews its lock. Not after every batch: the renewal is a round
/// trip of the main thread, queued behind the scripts Redis is running, which the next batch
/// would wait for.
const LOCK_RENEWAL: std::time::Duration = std::time::Duration::from_secs(1);

/// The lock of a source database: one apply at a time per database, whatever its target
/// prefix or rule set, because runs with different targets would still move the same sources.
pub fn lock_key() -> String {
    format!("{OWN_KEYS_PREFIX}lock")
}

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub batch: usize,
    /// Keys per second, at most (`None`, or not above 0: unlimited).
    pub rate: Option<f64>,
    pub keep_source: bool,
    pub overwrite: bool,
    pub progress: bool,
    /// The lock key ([`lock_key`]).
    pub lock_key: String,
    /// Opens the reader's and the mover's own connections, so scanning, journaling and
    /// moving overlap ([`crate::pipeline`]); `None`: everything on the store given to
    /// [`apply`], one step after the other.
    pub connector: Option<Connector>,
    /// Another Redis for the targets (`--target-url`): sources are read and deleted where they
    /// are, targets written there. Needs a `connector` too.
    pub target: Option<Connector>,
}

impl ApplyOptions {
    fn rate_limit(&self) -> Option<f64> {
        self.rate.filter(|rate| *rate > 0.0)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// The rule set applied.
    pub set: String,
    pub migrated: u64,
    pub already_migrated: u64,
    pub resumed: u64,
    pub conflicts: u64,
    pub unparseable: u64,
    pub wrong_type: u64,
    /// Sources above the size limits, left in place.
    pub too_large: u64,
    pub changed_retried: u64,
    /// Sources a live writer recreated after their move, migrated again (their targets still
    /// held the previous move's values).
    pub remigrated: u64,
    pub changed_given_up: u64,
    /// Up to 20 keys needing attention, with why.
    pub problems: Vec<String>,
    /// Keys of the set's legacy families that no rule moves (not problems; left as they are).
    pub not_owned: NotOwned,
}

impl ApplyReport {
    pub fn has_problems(&self) -> bool {
        self.conflicts + self.unparseable + self.wrong_type + self.too_large + self.changed_given_up > 0
    }

    fn problem(&mut self, key: &str, why: &str) {
        if self.problems.len() < 20 {
            self.problems.push(format!("{key}: {why}"));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("another apply holds the lock {0}; wait for it (it expires 2 minutes after that run stops)")]
    Locked(String),
    #[error("the move script answered unexpectedly: {0}")]
    Script(String),
    #[error("the move script answered unexpectedly: {0}")]
    Answer(#[from] ScriptAnswerError),
    #[error("scratch files in the journal directory: {0}")]
    Scratch(#[from] std::io::Error),
    #[error(transparent)]
    Survey(#[from] PlanError),
    #[error(transparent)]
    Cluster(#[from] ClusterMoveError),
}

/// A key the scan could not move, and why (`None` in the spill: it was resolved later).
#[derive(Debug, Serialize, Deserialize)]
struct Unmoved {
    class: Class,
    reason: String,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

struct Run<'a> {
    store: &'a dyn Store,
    journal: &'a dyn Journal,
    set: &'a RuleSet,
    rules: &'a [Rule],
    rule_options: &'a RuleOptions,
    options: &'a ApplyOptions,
    report: ApplyReport,
    next_seq: u64,
    lock_id: String,
    lock_renewed: Instant,
    scripts: Scripts,
    unmoved: KeyedSpill<Option<Unmoved>>,
    /// Under `--overwrite`: sources sharing a target with another (N:1), never moved.
    colliding: std::collections::HashMap<String, String>,
    /// The families' keys no rule owns, once the scan has run.
    not_owned: Option<crate::families::NotOwned>,
    /// On a Redis Cluster or with another Redis as the target: the moves, node by node.
    nodes: Option<NodeMoves>,
    /// The Redis the targets live in, when not the sources' (`--target-url`).
    target: Option<&'a dyn Store>,
}

impl<'a> Run<'a> {
    /// Where sources are read and targets looked up.
    fn sides(&self) -> Sides<'a> {
        Sides::with_target(self.store, self.target)
    }

    async fn lock(&mut self, first: bool) -> Result<(), ApplyError> {
        if !first && self.lock_renewed.elapsed() < LOCK_RENEWAL {
            return Ok(());
        }
        let key = &self.options.lock_key;
        let command = Command::new("SET").arg(key).arg(&self.lock_id).arg("PX").arg(LOCK_TTL_MS);
        let command = if first { command.arg("NX") } else { command };
        if first && self.store.execute(&command).await? == Reply::Nil {
            return Err(ApplyError::Locked(key.clone()));
        }
        if !first {
            self.store.execute(&command).await?;
        }
        self.lock_renewed = Instant::now();
        Ok(())
    }

    async fn unlock(&self) {
        let script = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
        let command = Command::new("EVAL").arg(script).arg(1).arg(&self.options.lock_key).arg(&self.lock_id);
        let _ = self.store.execute(&command).await;
    }

    /// Journaled sources as scan candidates again, to be re-read and reclassified.
    fn candidates(&self, entries: &[Entry]) -> Vec<Candidate> {
        entries
            .iter()
            .filter_map(|e| {
                let rule = self.rules.iter().position(|r| r.name == e.rule)?;
                let captures = self.rules[rule].from.capture(&e.source)?;
                Some(Candidate { rule, key: e.source.clone(), captures })
            })
            .collect()
    }

    fn entry(&mut self, item: &Classified) -> Entry {
        let seq = self.next_seq;
        self.next_seq += 1;
        Entry {
            seq,
            rule: self.rules[item.candidate.rule].name.clone(),
            source: item.candidate.key.clone(),
            original: item.original.clone().expect("classified items carry their original"),
            targets: item.targets.clone(),
            previous_targets: item.previous.clone(),
            index: item
                .index
                .iter()
                .zip(item.index_present.iter().map(|present| Some(!present)).chain(std::iter::repeat(None)))
                .map(|((key, member), added)| IndexMember { key: key.clone(), member: member.clone(), added })
                .collect(),
            keep_source: self.options.keep_source,
            overwrite: self.options.overwrite,
            drop_expiry: item.drop_expiry,
            state: EntryState::Pending,
            note: None,
        }
    }

    /// The entries to journal and move for a classified page; the keys that cannot be moved
    /// are noted for the report.
    fn entries_to_move(&mut self, items: Vec<Classified>) -> Result<Vec<Entry>, ApplyError> {
        let mut entries = Vec::new();
        for item in items {
            if let Some(reason) = self.colliding.get(&item.candidate.key) {
                let unmoved = Unmoved { class: Class::Conflict, reason: reason.clone() };
                self.unmoved.insert(item.candidate.key.clone(), Some(unmoved))?;
                continue;
            }
            match item.class {
                Class::Migrate => entries.push(self.entry(&item)),
                Class::Conflict if self.options.overwrite => entries.push(self.entry(&item)),
                Class::AlreadyMigrated if !self.options.keep_source => entries.push(self.entry(&item)),
                Class::AlreadyMigrated => self.report.already_migrated += 1,
                // A conflict may be a source a live writer recreated after its move: decided
                // at the end.
                Class::Conflict | Class::Unparseable | Class::WrongType | Class::TooLarge => {
                    let reason = item.reason.clone().unwrap_or_else(|| format!("{:?}", item.class));
                    self.unmoved.insert(item.candidate.key, Some(Unmoved { class: item.class, reason }))?;
                }
            }
        }
        Ok(entries)
    }

    /// Journals new `entries` (flushed), then moves them: see [`Run::move_entries`].
    async fn journal_and_move(&mut self, entries: Vec<Entry>) -> Result<Vec<Entry>, ApplyError> {
        self.journal.append(&entries)?;
        self.move_entries(entries).await
    }

    /// Moves journaled `entries` on this run's connection, notes the outcomes. Returns the
    /// entries whose source changed under the move, for a retry.
    async fn move_entries(&mut self, mut entries: Vec<Entry>) -> Result<Vec<Entry>, ApplyError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(nodes) = &mut self.nodes {
            let outcomes = nodes.move_entries(&mut entries, self.journal).await?;
            return self.note(entries, outcomes);
        }
        // The whole batch in one script call: one round trip and one script start for all.
        let reply = self.store.execute(&move_many_command(&entries, &self.scripts)).await;
        self.note_outcomes(entries, reply).await
    }

    /// Journals new `entries` (flushed) and hands their move to the mover. On a cluster the
    /// batch is moved here, node by node, and retried at once.
    async fn send_moves(&mut self, mover: &Mover<'_>, entries: Vec<Entry>) -> Result<Option<InFlight>, ApplyError> {
        if entries.is_empty() {
            return Ok(None);
        }
        if self.nodes.is_some() {
            let changed = self.journal_and_move(entries).await?;
            self.retry_changed(changed).await?;
            return Ok(None);
        }
        self.journal.append(&entries)?;
        let sent = mover.send(move_many_command(&entries, &self.scripts)).await;
        Ok(Some(InFlight { entries, sent }))
    }

    /// Takes a batch's answers from the mover, notes them, and retries what changed.
    async fn finish_moves(&mut self, in_flight: InFlight) -> Result<(), ApplyError> {
        let InFlight { entries, sent } = in_flight;
        let changed = self.note_outcomes(entries, sent.answer().and_then(|reply| reply)).await?;
        self.retry_changed(changed).await
    }

    /// Notes the script's answer for each entry in the journal and the report. Returns the
    /// entries whose source changed under the move.
    async fn note_outcomes(
        &mut self,
        entries: Vec<Entry>,
        reply: Result<Reply, StoreError>,
    ) -> Result<Vec<Entry>, ApplyError> {
        let reply =
            reloading_if_lost(self.store, reply, &mut self.scripts, |scripts| move_many_command(&entries, scripts))
                .await;
        let outcomes = move_outcomes(reply?, &entries)?;
        self.note(entries, outcomes)
    }

    /// Notes each entry's outcome in the journal and the report. Returns the entries whose
    /// source changed under the move.
    fn note(&mut self, mut entries: Vec<Entry>, outcomes: Vec<MoveOutcome>) -> Result<Vec<Entry>, ApplyError> {
        let mut changed = Vec::new();
        for (entry, outcome) in entries.iter_mut().zip(outcomes) {
            match outcome {
                MoveOutcome::Moved { added } => {
                    for (member, added) in entry.index.iter_mut().zip(added) {
                        member.added = Some(added);
                    }
                    entry.state = EntryState::Done;
                    self.report.migrated += 1;
                }
                MoveOutcome::Already => {
                    entry.state = EntryState::Done;
                    self.report.already_migrated += 1;
                }
                MoveOutcome::Conflict { target } => {
                    entry.state = EntryState::Conflict;
                    entry.note = Some(format!("target {target} holds a different value"));
                    self.report.conflicts += 1;
                    self.report.problem(&entry.source.clone(), "conflict: a target holds a different value");
                }
                MoveOutcome::Changed => changed.push(entry.clone()),
                MoveOutcome::Elsewhere => {
                    return Err(ApplyError::Script(format!("{}: `elsewhere` from a single Redis", entry.source)))
                }
                MoveOutcome::Missing => {
                    entry.state = EntryState::Changed;
                    entry.note = Some("the source vanished and the targets do not hold its conversion".into());
                    self.report.changed_given_up += 1;
                    self.report.problem(&entry.source.clone(), "source vanished before the move");
                }
            }
        }
        entries.retain(|e| e.state != EntryState::Pending);
        self.journal.update(&entries, false)?;
        Ok(changed)
    }

    /// Re-reads sources a live writer changed and moves them again, a few times. Each re-read
    /// is a new entry; the one it replaces is noted as changed (nothing of it was written).
    async fn retry_changed(&mut self, mut changed: Vec<Entry>) -> Result<(), ApplyError> {
        for _ in 0..CHANGED_RETRIES {
            if changed.is_empty() {
                return Ok(());
            }
            self.report.changed_retried += changed.len() as u64;
            let candidates = self.candidates(&changed);
            let classified = classify(self.sides(), self.rules, self.rule_options, candidates).await?;
            let mut again = Vec::new();
            for item in classified {
                if item.class != Class::Migrate && !(item.class == Class::Conflict && self.options.overwrite) {
                    continue; // now unparseable or conflicting: counted by the next plan
                }
                again.push(self.entry(&item));
            }
            for entry in &mut changed {
                entry.state = EntryState::Changed;
                entry.note = Some(match again.iter().find(|e| e.source == entry.source) {
                    Some(retry) => format!("changed during the move; re-read as entry {}", retry.seq),
                    None => "changed during the move; no longer movable".into(),
                });
            }
            self.journal.update(&changed, false)?;
            changed = self.journal_and_move(again).await?;
        }
        for entry in &mut changed {
            entry.state = EntryState::Changed;
            entry.note = Some("the source kept changing during the move".into());
            self.report.changed_given_up += 1;
            self.report.problem(&entry.source.clone(), "kept changing during the move");
        }
        self.journal.update(&changed, false)?;
        Ok(())
    }
}

/// The moves node by node, when the connector leads to a Redis Cluster or there is a target.
async fn node_moves(options: &ApplyOptions) -> Result<Option<NodeMoves>, ApplyError> {
    let Some(connector) = &options.connector else { return Ok(None) };
    let unavailable = |e: crate::connect::ConnectError| StoreError::Unavailable(e.to_string());
    match Placement::open(connector, options.target.as_ref()).map_err(unavailable)? {
        Some(placement) => Ok(Some(NodeMoves::new(placement).await?)),
        None => Ok(None),
    }
}

/// Runs `apply`.
pub async fn apply(
    store: &dyn Store,
    journal: &dyn Journal,
    set: &RuleSet,
    rule_options: &RuleOptions,
    options: &ApplyOptions,
) -> Result<ApplyReport, ApplyError> {
    // Under `--rate`, a batch is at most one second of keys, so the pace stays smooth and the
    // lock (refreshed after every batch) never waits out a long sleep.
    let options = &match options.rate_limit() {
        Some(rate) => ApplyOptions { batch: Pace::batch_for(rate, options.batch), ..options.clone() },
        None => options.clone(),
    };
    let unavailable = |e: crate::connect::ConnectError| StoreError::Unavailable(e.to_string());
    let target = options.target.as_ref().map(|t| t.open_connection()).transpose().map_err(unavailable)?;
    let mut run = Run {
        store,
        journal,
        set,
        rules: &set.rules,
        rule_options,
        options,
        report: ApplyReport::default(),
        next_seq: journal.next_seq()?,
        lock_id: format!("{}-{}", std::process::id(), now_ms()),
        lock_renewed: Instant::now(),
        scripts: Scripts::load(store).await?,
        unmoved: KeyedSpill::new_in(journal.dir())?,
        colliding: Default::default(),
        not_owned: None,
        nodes: node_moves(options).await?,
        target: target.as_ref().map(|t| t.store()),
    };
    run.lock(true).await?;
    let outcome = apply_locked(&mut run).await;
    run.unlock().await;
    outcome?;
    let Run { unmoved, mut report, not_owned, .. } = run;
    let not_owned = match not_owned {
        Some(not_owned) => not_owned,
        None => survey(store, set, &rule_options.target_prefix, options.batch, journal.dir()).await?,
    };
    report_unmoved(unmoved, &mut report)?;
    report.set = set.name.clone();
    report.not_owned = not_owned;
    Ok(report)
}

async fn apply_locked(run: &mut Run<'_>) -> Result<(), ApplyError> {
    crate::spill::remove_stale(run.journal.dir(), run.unmoved.path())?;
    if run.options.overwrite {
        // Redis refuses a second source's differing target only without --overwrite.
        run.colliding =
            crate::collisions::find(run.store, run.set, run.rule_options, run.options.batch, run.journal.dir()).await?;
    }
    // 1. Finish what a crashed run left pending.
    let mut pending = Vec::new();
    for page in entries(run.journal, false, 10_000) {
        pending.extend(page?.into_iter().filter(|e| e.state == EntryState::Pending));
    }
    run.report.resumed = pending.len() as u64;
    for chunk in pending.chunks(run.options.batch) {
        let changed = run.move_entries(chunk.to_vec()).await?;
        run.retry_changed(changed).await?;
    }

    // 2. Scan and move the rest.
    let progress = if run.options.progress {
        let mut total = 0u64;
        let mut counter = Scanner::new(run.set, run.options.batch);
        while let Some(page) = counter.next_page(run.store).await? {
            total += page.len() as u64;
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} keys  {per_sec}  ETA {eta}",
            )
            .expect("a valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut pace = run.options.rate_limit().map(|rate| Pace::new(rate, run.options.batch, Instant::now()));
    let plan = ReadPlan {
        set: run.set.clone(),
        rule_options: run.rule_options.clone(),
        page_size: run.options.batch,
        scratch: run.journal.dir().to_owned(),
    };
    let (mut reader, mover) = match &run.options.connector {
        // Classifying against another Redis's targets reads two connections: one step after
        // the other.
        Some(_) if run.target.is_some() => (Reader::inline(&plan, run.sides())?, Mover::inline(run.store, execute)),
        Some(connector) => {
            (Reader::threaded(plan, connector.clone())?, Mover::threaded("apply-mover", connector.clone(), execute)?)
        }
        None => (Reader::inline(&plan, run.sides())?, Mover::inline(run.store, execute)),
    };
    let mut in_flight = std::collections::VecDeque::new();
    while let Some(page) = reader.next().await? {
        progress.inc(page.owned as u64);
        let entries = run.entries_to_move(page.items)?;
        in_flight.extend(run.send_moves(&mover, entries).await?);
        while in_flight.len() >= MOVES_IN_FLIGHT {
            let oldest = in_flight.pop_front().expect("in flight");
            run.finish_moves(oldest).await?;
        }
        run.lock(false).await?;
        if let Some(wait) = pace.as_mut().and_then(|pace| pace.after(page.owned, Instant::now())) {
            std::thread::sleep(wait);
        }
    }
    while let Some(oldest) = in_flight.pop_front() {
        run.finish_moves(oldest).await?;
    }

    // The families' keys no rule owns: seen by the scan above when it covered every key.
    run.not_owned = Some(reader.finish().await?);

    // 3. Sources a live writer recreated after their move (SCAN may or may not have seen them).
    if !run.options.keep_source {
        remigrate_recreated(run).await?;
    }

    progress.finish_and_clear();
    Ok(())
}

/// Counts and samples what could not be moved, each key once (4th and last step).
fn report_unmoved(unmoved: KeyedSpill<Option<Unmoved>>, report: &mut ApplyReport) -> Result<(), ApplyError> {
    for noted in unmoved.finish()? {
        let (source, Some(unmoved)) = noted? else { continue };
        match unmoved.class {
            Class::Conflict => report.conflicts += 1,
            Class::Unparseable => report.unparseable += 1,
            Class::WrongType => report.wrong_type += 1,
            _ => report.too_large += 1,
        }
        report.problem(&source, &unmoved.reason);
    }
    Ok(())
}

/// Walks the journal newest first; a moved source (not kept) that exists again was recreated by
/// a live writer: it is migrated again, replacing its targets only if they still hold what its
/// last move wrote. Only the newest entry of a source counts; entries this walk adds are not
/// visited, so a writer that keeps recreating a key cannot keep the walk going.
async fn remigrate_recreated(run: &mut Run<'_>) -> Result<(), ApplyError> {
    let journal = run.journal;
    let end = journal.next_seq()?;
    let mut handled = std::collections::HashSet::new();
    let mut after = None;
    loop {
        // Heads only: nearly every entry is passed by, and decoding its original is the cost.
        let page = journal.heads(after, run.options.batch.max(1), true)?;
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        let moved: Vec<_> = page
            .into_iter()
            .filter(|e| e.seq < end && e.state == EntryState::Done && !e.keep_source)
            .filter(|e| !handled.contains(&e.source))
            .collect();
        if moved.is_empty() {
            continue;
        }
        // One EXISTS for the whole page first: nearly always none is back, and one command
        // costs Redis less than a thousand.
        let any = moved.iter().fold(Command::new("EXISTS"), |command, e| command.arg(&e.source));
        if run.store.execute(&any).await? == Reply::Int(0) {
            continue;
        }
        let exists: Vec<Command> = moved.iter().map(|e| Command::new("EXISTS").arg(&e.source)).collect();
        let replies = run.store.pipeline(&exists).await?;
        let mut recreated = Vec::new();
        for (head, reply) in moved.into_iter().zip(replies) {
            let reply = reply.map_err(|e| ApplyError::Script(format!("EXISTS {}: {}", head.source, e.0)))?;
            // Only the newest entry of a source counts, also within one page.
            if reply == Reply::Int(1) && handled.insert(head.source.clone()) {
                let entry = journal.get(head.seq)?.ok_or_else(|| {
                    ApplyError::Journal(JournalError::Inconsistent(format!("entry {} vanished", head.seq)))
                })?;
                recreated.push(entry);
            }
        }
        if recreated.is_empty() {
            continue;
        }
        let classified = classify(run.sides(), run.rules, run.rule_options, run.candidates(&recreated)).await?;
        let mut entries = Vec::new();
        for item in classified {
            let Some(previous_move) = recreated.iter().find(|e| e.source == item.candidate.key) else { continue };
            let ours = item
                .previous
                .iter()
                .zip(&previous_move.targets)
                .all(|(held, (_, wrote))| held.as_ref().is_none_or(|h| &h.value == wrote));
            if ours && matches!(item.class, Class::Conflict | Class::Migrate | Class::AlreadyMigrated) {
                let mut entry = run.entry(&item);
                entry.overwrite = true;
                run.report.remigrated += 1;
                run.unmoved.insert(item.candidate.key.clone(), None)?;
                entries.push(entry);
            } else if item.class == Class::Conflict {
                let why = "recreated after its move, and a target changed since";
                let unmoved = Unmoved { class: Class::Conflict, reason: why.into() };
                run.unmoved.insert(item.candidate.key.clone(), Some(unmoved))?;
            }
        }
        let changed = run.journal_and_move(entries).await?;
        run.retry_changed(changed).await?;
        run.lock(false).await?;
    }
    Ok(())
}
