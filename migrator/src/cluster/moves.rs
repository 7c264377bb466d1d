//! Moving and restoring journaled entries node by node: on a Redis Cluster, and onto another
//! Redis (`--target-url`), where every target is on another node than its source.
//!
//! An entry whose keys (source, targets, index keys) are all served by one master is moved by
//! the same compare-and-move script as on one Redis, called on that master with the batch's
//! other such entries (one call per master; `allow-cross-slot-keys` lets it touch several
//! slots there). An entry whose keys live on different masters cannot be moved atomically, so
//! it is moved by a protocol of steps that are each safe to repeat (cross_node.lua):
//!
//! 0. its original is journaled (before this module runs) with, for each index member, whether
//!    the index already held it (read at classification; for entries journaled without it, read
//!    here and journaled durably before any `SADD`), so a rollback removes exactly the members
//!    the move added even when a crash lost `SADD`'s answer;
//! 1. **put** — each target is written on its master only if absent (or already equal: a
//!    resumed run), else the entry is a conflict and what this step wrote is taken back;
//! 2. **take** — the source is deleted on its master only if it still equals the journaled
//!    original; if a live writer changed it, the targets step 1 wrote are taken back (only
//!    where they still hold what was written) and the entry is `changed` (re-read and retried
//!    by `apply` as on one Redis);
//! 3. **index** — the index members are added.
//!
//! Before step 1 each source is read: one already gone (a crash after step 2) is `already`
//! moved if every target holds its conversion, else `missing`, and nothing is written around
//! it; one that differs is `changed` at once. A crash anywhere leaves the entry pending in the
//! journal and the next run repeats the steps: targets already written answer `equal`, and
//! `SADD` is idempotent. Restores run in reverse: check the targets (unless `--force`), put
//! back or delete each target where it still holds what the move wrote, and only then write
//! the original on the source's master and remove the added index members.
//!
//! A step sent to a master that no longer serves its key (a failover or resharding since the
//! topology was read) answers `elsewhere` without writing; the entry is tried again after the
//! topology is read again, a few times, before the step fails with a resumable error.
//!
//! One file past ~600 lines on purpose: the steps above are one protocol whose order is its
//! safety argument (each step repeatable, rollback the same steps backwards); read apart, the
//! argument would be in no one place.

use std::collections::BTreeMap;

use edgesync_core::store::{Command, Reply, StoreError};

use super::placement::{Node, Placement};
use crate::entry::{Entry, EntryState};
use crate::journal::{Journal, JournalError};
use crate::script::{
    cross_node_command, is_noscript, move_many_on_node, move_outcomes, restore_many_on_node, restore_outcomes,
    step_answers, MoveOutcome, NodeScripts, RestoreOutcome, ScriptAnswerError, Step,
};

/// How many times entries whose keys moved between nodes are tried again, a growing pause
/// between rounds (a failover takes the cluster a second or two).
const ROUNDS: usize = 8;

/// Errors with which a node refuses a whole script call because it does not serve as a master
/// now: a replica refuses a script with writes (`READONLY`), a cluster between topologies says
/// `CLUSTERDOWN`/`MASTERDOWN`, a keyed call is redirected (`MOVED`).
const NOT_SERVING: [&str; 4] = ["MOVED", "READONLY", "CLUSTERDOWN", "MASTERDOWN"];

/// Before round `round` (from 0): a pause, then the topology read again.
fn settle(placement: &Placement, round: usize) -> Result<(), StoreError> {
    if round == 0 {
        return Ok(());
    }
    std::thread::sleep(std::time::Duration::from_millis(100 * round as u64));
    placement.refresh()
}

/// The crash points of the cross-node protocol, for the tests that kill a run there: with
/// `MIGRATOR_CRASH_AT=point:n` the process aborts — as a `SIGKILL` would stop it, nothing
/// flushed, nothing cleaned up — the `n`th time it reaches `point` (`indexes-noted`, `put`,
/// `taken`, `node`: after any node's call of a step).
fn crash_point(point: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PASSED: AtomicUsize = AtomicUsize::new(0);
    static AT: std::sync::OnceLock<Option<(String, usize)>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        let at = std::env::var("MIGRATOR_CRASH_AT").ok()?;
        let (name, nth) = at.split_once(':')?;
        Some((name.to_owned(), nth.parse().ok()?))
    });
    if let Some((name, nth)) = at {
        if name == point && PASSED.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
            std::process::abort();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterMoveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("a cluster node's script answered unexpectedly: {0}")]
    Script(String),
    #[error("a cluster node's script answered unexpectedly: {0}")]
    Answer(#[from] ScriptAnswerError),
    #[error("{0} keys kept moving between cluster nodes (a failover or resharding that does not settle); run the step again once the cluster is stable")]
    Unsettled(usize),
}

/// The moves and restores of a step, with the scripts loaded on every node.
pub struct NodeMoves {
    placement: Placement,
    scripts: NodeScripts,
}

impl NodeMoves {
    /// Moves on the nodes of `placement` (connections of their own, beside the step's reads).
    pub async fn new(placement: Placement) -> Result<Self, StoreError> {
        let scripts = load_scripts(&placement).await?;
        Ok(Self { placement, scripts })
    }

    /// Whether a target named `key` is the source itself (a conversion in place); never when
    /// targets live on another Redis, where a key of the same name is another key.
    fn in_place(&self, key: &str, source: &str) -> bool {
        !self.placement.separate() && key == source
    }

    fn step_node(&self, step: &Step<'_>) -> Node {
        match step {
            Step::Take { key, .. } | Step::Write { key, .. } | Step::CheckSource { key, .. } => {
                self.placement.source_node(key)
            }
            other => self.placement.target_node(other.key()),
        }
    }

    /// Runs `command` (built from the scripts) on `node`, loading the scripts again if it lost
    /// them (a restart, or a replica promoted since they were loaded).
    async fn call(
        &mut self,
        node: &Node,
        command: impl Fn(&NodeScripts) -> Command,
    ) -> Result<Reply, ClusterMoveError> {
        for _ in 0..2 {
            let reply = self.placement.call(node, &[command(&self.scripts)]).await?.pop();
            match reply {
                Some(Ok(reply)) => return Ok(reply),
                Some(Err(error)) if is_noscript(&error.0) => self.scripts = load_scripts(&self.placement).await?,
                Some(Err(error)) if NOT_SERVING.iter().any(|word| error.0.starts_with(word)) => {
                    // A node that is no longer a master (a failover), or a cluster settling:
                    // nothing ran; the entries are tried again once the topology is read anew.
                    return Ok(Reply::Nil);
                }
                Some(Err(error)) => return Err(ClusterMoveError::Script(format!("{node}: {}", error.0))),
                None => return Err(ClusterMoveError::Script(format!("{node}: no reply"))),
            }
        }
        Err(ClusterMoveError::Script(format!("{node} keeps losing its scripts")))
    }

    /// The entries at `indexes` whose keys share a node, by node; and the others.
    fn split(&self, entries: &[Entry], indexes: Vec<usize>) -> (BTreeMap<Node, Vec<usize>>, Vec<usize>) {
        let mut local: BTreeMap<Node, Vec<usize>> = BTreeMap::new();
        let mut cross = Vec::new();
        for i in indexes {
            match self.one_node(&entries[i]) {
                Some(node) => local.entry(node).or_default().push(i),
                None => cross.push(i),
            }
        }
        (local, cross)
    }

    /// The node of every key of `entry`, if they share one.
    fn one_node(&self, entry: &Entry) -> Option<Node> {
        let node = self.placement.source_node(&entry.source);
        let keys = entry.targets.iter().map(|(key, _)| key).chain(entry.index.iter().map(|m| &m.key));
        keys.into_iter().all(|key| self.placement.target_node(key) == node).then_some(node)
    }

    /// Runs steps, each on the master of its key: one script call per master. A master that is
    /// no longer one answers every step `elsewhere`.
    async fn run_steps(&mut self, steps: &[Step<'_>]) -> Result<Vec<String>, ClusterMoveError> {
        let mut by_node: BTreeMap<Node, Vec<usize>> = BTreeMap::new();
        for (i, step) in steps.iter().enumerate() {
            by_node.entry(self.step_node(step)).or_default().push(i);
        }
        let mut answers = vec![String::new(); steps.len()];
        for (node, indexes) in by_node {
            let mine: Vec<Step<'_>> = indexes.iter().map(|&i| steps[i]).collect();
            let reply = self.call(&node, |scripts| cross_node_command(&mine, scripts)).await?;
            let words = match reply {
                Reply::Nil => vec!["elsewhere".to_owned(); mine.len()],
                reply => step_answers(reply, mine.len())?,
            };
            for (i, word) in indexes.into_iter().zip(words) {
                answers[i] = word;
            }
            crash_point("node");
        }
        Ok(answers)
    }

    /// Moves `entries` (journaled, pending); one outcome per entry, in order. `journal` keeps
    /// the index members' earlier state of cross-node entries before they are added.
    pub async fn move_entries(
        &mut self,
        entries: &mut [Entry],
        journal: &dyn Journal,
    ) -> Result<Vec<MoveOutcome>, ClusterMoveError> {
        let mut outcomes: Vec<Option<MoveOutcome>> = vec![None; entries.len()];
        for round in 0..ROUNDS {
            let waiting: Vec<usize> = (0..entries.len()).filter(|&i| outcomes[i].is_none()).collect();
            if waiting.is_empty() {
                break;
            }
            settle(&self.placement, round)?;
            if !self.note_index_state(entries, &waiting, journal).await? {
                continue;
            }
            let (local, cross) = self.split(entries, waiting);
            for (node, indexes) in local {
                let mine: Vec<&Entry> = indexes.iter().map(|&i| &entries[i]).collect();
                let reply = self.call(&node, |scripts| move_many_on_node(&mine, scripts)).await?;
                let answered = match reply {
                    Reply::Nil => vec![MoveOutcome::Elsewhere; mine.len()],
                    reply => move_outcomes(reply, &mine)?,
                };
                for (i, outcome) in indexes.into_iter().zip(answered) {
                    outcomes[i] = (outcome != MoveOutcome::Elsewhere).then_some(outcome);
                }
            }
            // In waves, each source at most once per wave: two entries of one source in a step
            // would see each other's writes — the second finding the source the first took
            // `missing`, and taking back the targets the first moved.
            for wave in waves(entries, cross) {
                for (i, outcome) in self.move_across(entries, &wave).await? {
                    outcomes[i] = (outcome != MoveOutcome::Elsewhere).then_some(outcome);
                }
            }
        }
        let unsettled = outcomes.iter().filter(|o| o.is_none()).count();
        if unsettled > 0 {
            return Err(ClusterMoveError::Unsettled(unsettled));
        }
        Ok(outcomes.into_iter().map(|o| o.expect("settled")).collect())
    }

    /// Step 0, for every entry with index members whose earlier state is not journaled yet:
    /// whether each index already holds its member, journaled durably before any `SADD`, so a
    /// rollback removes exactly what the move added even when a crash lost `SADD`'s answer (or
    /// a same-node script's). `false` when a node no longer serves a key (try the round again).
    async fn note_index_state(
        &mut self,
        entries: &mut [Entry],
        indexes: &[usize],
        journal: &dyn Journal,
    ) -> Result<bool, ClusterMoveError> {
        let unknown: Vec<(usize, usize)> = indexes
            .iter()
            .flat_map(|&i| {
                entries[i].index.iter().enumerate().filter(|(_, m)| m.added.is_none()).map(move |(x, _)| (i, x))
            })
            .collect();
        if unknown.is_empty() {
            return Ok(true);
        }
        let answers = {
            let steps: Vec<Step<'_>> = unknown
                .iter()
                .map(|&(i, x)| Step::IsMember { key: &entries[i].index[x].key, member: &entries[i].index[x].member })
                .collect();
            self.run_steps(&steps).await?
        };
        if answers.iter().any(|a| a == "elsewhere") {
            return Ok(false);
        }
        for (&(i, x), answer) in unknown.iter().zip(answers) {
            entries[i].index[x].added = Some(answer == "0");
        }
        let mut noted: Vec<usize> = unknown.iter().map(|&(i, _)| i).collect();
        noted.dedup();
        let noted: Vec<Entry> = noted.into_iter().map(|i| entries[i].clone()).collect();
        journal.update(&noted, true)?;
        crash_point("indexes-noted");
        Ok(true)
    }

    /// The cross-node protocol for the entries at `indexes` (their index state journaled).
    async fn move_across(
        &mut self,
        entries: &mut [Entry],
        indexes: &[usize],
    ) -> Result<Vec<(usize, MoveOutcome)>, ClusterMoveError> {
        let mut decided: BTreeMap<usize, MoveOutcome> = BTreeMap::new();
        // Every target an entry may have written — in this run or a crashed one — to take back
        // where it still holds what was written (an earlier value put back, under --overwrite).
        let mut take_back: Vec<(usize, usize)> = Vec::new();
        let separate = self.placement.separate();
        let all_targets = |entry: &Entry, skip: Option<usize>| other_targets(entry, separate, skip);
        let mut moved = Vec::new();

        // 1. Is each source still its journaled original? Read first, so that a source a
        //    crashed run already took (or a live writer changed) is never written around.
        let steps: Vec<Step<'_>> = indexes
            .iter()
            .map(|&i| Step::CheckSource { key: &entries[i].source, value: &entries[i].original.value })
            .collect();
        let mut proceeding = Vec::new();
        let mut gone = Vec::new();
        for (&i, answer) in indexes.iter().zip(self.run_steps(&steps).await?) {
            let entry = &entries[i];
            let in_place = entry.targets.iter().any(|(key, _)| self.in_place(key, &entry.source));
            match answer.as_str() {
                "equal" => proceeding.push(i),
                // Already replaced by its in-place conversion, perhaps: the take step tells.
                "differs" if in_place => proceeding.push(i),
                "differs" => {
                    decided.insert(i, MoveOutcome::Changed);
                    take_back.extend(all_targets(entry, None).into_iter().map(|t| (i, t)));
                }
                "absent" if in_place => {
                    decided.insert(i, MoveOutcome::Missing);
                }
                "absent" => gone.push(i),
                "elsewhere" => {
                    decided.insert(i, MoveOutcome::Elsewhere);
                }
                other => return Err(ClusterMoveError::Script(format!("unknown check answer {other:?}"))),
            }
        }
        // A source already gone: moved before (a crash after the take step) if every target
        // holds its conversion, else missing — and its targets are not written around it.
        if !gone.is_empty() {
            let checks: Vec<(usize, usize)> =
                gone.iter().flat_map(|&i| (0..entries[i].targets.len()).map(move |t| (i, t))).collect();
            let steps: Vec<Step<'_>> = checks
                .iter()
                .map(|&(i, t)| Step::Check { key: &entries[i].targets[t].0, value: &entries[i].targets[t].1 })
                .collect();
            let mut held: BTreeMap<usize, bool> = gone.iter().map(|&i| (i, true)).collect();
            for (&(i, _), answer) in checks.iter().zip(self.run_steps(&steps).await?) {
                match answer.as_str() {
                    "equal" => {}
                    "elsewhere" => {
                        decided.insert(i, MoveOutcome::Elsewhere);
                    }
                    _ => {
                        held.insert(i, false);
                    }
                }
            }
            for i in gone {
                if decided.contains_key(&i) {
                    continue;
                }
                if held[&i] {
                    decided.insert(i, MoveOutcome::Already);
                    moved.push(i);
                } else {
                    decided.insert(i, MoveOutcome::Missing);
                    take_back.extend(all_targets(&entries[i], None).into_iter().map(|t| (i, t)));
                }
            }
        }

        // 2. Put every target that is not the source itself.
        let puts: Vec<(usize, usize)> =
            proceeding.iter().flat_map(|&i| all_targets(&entries[i], None).into_iter().map(move |t| (i, t))).collect();
        let put_steps: Vec<Step<'_>> = puts
            .iter()
            .map(|&(i, t)| {
                let entry = &entries[i];
                Step::Put {
                    key: &entry.targets[t].0,
                    value: &entry.targets[t].1,
                    expire_at_ms: expire_at(entry),
                    overwrite: entry.overwrite,
                }
            })
            .collect();
        let put_answers = self.run_steps(&put_steps).await?;
        crash_point("put");
        for (&(i, t), answer) in puts.iter().zip(&put_answers) {
            match answer.as_str() {
                "written" | "equal" => {}
                // A conflict is final: every other target of the entry comes back out.
                "conflict" => {
                    if !matches!(decided.get(&i), Some(MoveOutcome::Conflict { .. })) {
                        decided.insert(i, MoveOutcome::Conflict { target: entries[i].targets[t].0.clone() });
                        take_back.extend(all_targets(&entries[i], Some(t)).into_iter().map(|t| (i, t)));
                    }
                }
                "elsewhere" => {
                    decided.entry(i).or_insert(MoveOutcome::Elsewhere);
                }
                other => return Err(ClusterMoveError::Script(format!("unknown put answer {other:?}"))),
            }
        }

        // 3. Take each source that is still as journaled.
        let takers: Vec<usize> = proceeding.iter().copied().filter(|i| !decided.contains_key(i)).collect();
        let take_steps: Vec<Step<'_>> = takers
            .iter()
            .map(|&i| {
                let entry = &entries[i];
                let replacement =
                    entry.targets.iter().find(|(key, _)| self.in_place(key, &entry.source)).map(|(_, value)| value);
                Step::Take {
                    key: &entry.source,
                    original: &entry.original.value,
                    keep: entry.keep_source,
                    replacement,
                    expire_at_ms: expire_at(entry),
                }
            })
            .collect();
        let take_answers = self.run_steps(&take_steps).await?;
        crash_point("taken");
        for (&i, answer) in takers.iter().zip(&take_answers) {
            let outcome = match answer.as_str() {
                "taken" | "kept" => {
                    moved.push(i);
                    continue;
                }
                // Gone or changed since step 1 (a live writer): what step 2 wrote comes back out.
                "missing" => MoveOutcome::Missing,
                "changed" => MoveOutcome::Changed,
                "elsewhere" => MoveOutcome::Elsewhere,
                other => return Err(ClusterMoveError::Script(format!("unknown take answer {other:?}"))),
            };
            if outcome != MoveOutcome::Elsewhere {
                take_back.extend(all_targets(&entries[i], None).into_iter().map(|t| (i, t)));
            }
            decided.insert(i, outcome);
        }
        if !take_back.is_empty() {
            let steps: Vec<Step<'_>> = take_back
                .iter()
                .map(|&(i, t)| Step::Unput {
                    key: &entries[i].targets[t].0,
                    written: &entries[i].targets[t].1,
                    previous: entries[i].previous_targets.get(t).and_then(Option::as_ref),
                    force: false,
                })
                .collect();
            self.run_steps(&steps).await?;
        }

        // 4. The index members of what moved; a member whose master changed is added on the
        //    next one (a source already taken cannot be put back in the queue).
        let adds: Vec<(usize, usize)> =
            moved.iter().flat_map(|&i| (0..entries[i].index.len()).map(move |x| (i, x))).collect();
        let mut left = adds;
        for round in 0..ROUNDS {
            if left.is_empty() {
                break;
            }
            settle(&self.placement, round)?;
            let steps: Vec<Step<'_>> = left
                .iter()
                .map(|&(i, x)| Step::Add {
                    key: &entries[i].index[x].key,
                    member: &entries[i].index[x].member,
                    expire_at_ms: expire_at(&entries[i]),
                })
                .collect();
            let answers = self.run_steps(&steps).await?;
            left = left.into_iter().zip(answers).filter(|(_, a)| a == "elsewhere").map(|(at, _)| at).collect();
        }
        if !left.is_empty() {
            return Err(ClusterMoveError::Unsettled(left.len()));
        }
        for i in moved {
            decided.entry(i).or_insert_with(|| MoveOutcome::Moved {
                added: entries[i].index.iter().map(|m| m.added == Some(true)).collect(),
            });
        }
        Ok(indexes.iter().map(|&i| (i, decided.remove(&i).unwrap_or(MoveOutcome::Elsewhere))).collect())
    }

    /// Restores `entries` (moved, newest first); one outcome per entry, in order.
    pub async fn restore_entries(
        &mut self,
        entries: &[Entry],
        force: bool,
    ) -> Result<Vec<RestoreOutcome>, ClusterMoveError> {
        let mut outcomes: Vec<Option<RestoreOutcome>> = vec![None; entries.len()];
        for round in 0..ROUNDS {
            let waiting: Vec<usize> = (0..entries.len()).filter(|&i| outcomes[i].is_none()).collect();
            if waiting.is_empty() {
                break;
            }
            settle(&self.placement, round)?;
            let (local, cross) = self.split(entries, waiting);
            for (node, indexes) in local {
                let mine: Vec<&Entry> = indexes.iter().map(|&i| &entries[i]).collect();
                let reply = self.call(&node, |scripts| restore_many_on_node(&mine, force, scripts)).await?;
                let answered = match reply {
                    Reply::Nil => vec![RestoreOutcome::Elsewhere; mine.len()],
                    reply => restore_outcomes(reply, &mine)?,
                };
                for (i, outcome) in indexes.into_iter().zip(answered) {
                    outcomes[i] = (outcome != RestoreOutcome::Elsewhere).then_some(outcome);
                }
            }
            // In waves, each source at most once per wave: a key moved twice gets its older
            // original (later in the page: newest first) last.
            for wave in waves(entries, cross) {
                for (i, outcome) in self.restore_across(entries, &wave, force).await? {
                    outcomes[i] = (outcome != RestoreOutcome::Elsewhere).then_some(outcome);
                }
            }
        }
        let unsettled = outcomes.iter().filter(|o| o.is_none()).count();
        if unsettled > 0 {
            return Err(ClusterMoveError::Unsettled(unsettled));
        }
        Ok(outcomes.into_iter().map(|o| o.expect("settled")).collect())
    }

    /// The cross-node restore of the entries at `indexes` (no source twice), step by step for
    /// all of them: one call per node per step.
    async fn restore_across(
        &mut self,
        entries: &[Entry],
        indexes: &[usize],
        force: bool,
    ) -> Result<Vec<(usize, RestoreOutcome)>, ClusterMoveError> {
        let mut decided: BTreeMap<usize, RestoreOutcome> = BTreeMap::new();
        // 1. Every target still holds what the move wrote (or is gone), unless forced.
        if !force {
            let checks: Vec<(usize, usize)> =
                indexes.iter().flat_map(|&i| (0..entries[i].targets.len()).map(move |t| (i, t))).collect();
            let steps: Vec<Step<'_>> = checks
                .iter()
                .map(|&(i, t)| Step::Check { key: &entries[i].targets[t].0, value: &entries[i].targets[t].1 })
                .collect();
            for (&(i, t), answer) in checks.iter().zip(self.run_steps(&steps).await?) {
                match answer.as_str() {
                    "elsewhere" => {
                        decided.insert(i, RestoreOutcome::Elsewhere);
                    }
                    "differs" => {
                        decided.entry(i).or_insert_with(|| RestoreOutcome::TargetChanged {
                            target: entries[i].targets[t].0.clone(),
                        });
                    }
                    _ => {}
                }
            }
        }
        // 2. Each other target as it was before the move — first, so that a target a live
        //    writer changed in the meantime stops the entry before its original is written.
        let checked: Vec<usize> = indexes.iter().copied().filter(|i| !decided.contains_key(i)).collect();
        let mut owners = Vec::new();
        let mut steps: Vec<Step<'_>> = Vec::new();
        for &i in &checked {
            let entry = &entries[i];
            for t in other_targets(entry, self.placement.separate(), None) {
                let (key, written) = (&entry.targets[t].0, &entry.targets[t].1);
                let previous = entry.previous_targets.get(t).and_then(Option::as_ref);
                steps.push(Step::Unput { key, written, previous, force });
                owners.push(i);
            }
        }
        for ((&i, step), answer) in owners.iter().zip(&steps).zip(self.run_steps(&steps).await?) {
            match answer.as_str() {
                "elsewhere" => {
                    decided.entry(i).or_insert(RestoreOutcome::Elsewhere);
                }
                // Changed between the check and now: left as the writer made it, the original
                // not written (it stays in the journal; `--force` restores it).
                "changed" => {
                    decided.insert(i, RestoreOutcome::TargetChanged { target: step.key().to_owned() });
                }
                _ => {}
            }
        }
        // 3. The originals, exactly, on their sources' nodes; 4. the index members it added.
        let mut owners = Vec::new();
        let mut steps: Vec<Step<'_>> = Vec::new();
        for &i in checked.iter().filter(|i| !decided.contains_key(i)) {
            let entry = &entries[i];
            // An entry still pending may never have been moved, and its source may hold what a
            // live writer put there since: the original goes back only where the source is gone.
            steps.push(Step::Write {
                key: &entry.source,
                value: &entry.original.value,
                expire_at_ms: entry.original.expire_at_ms,
                if_absent: entry.state == EntryState::Pending
                    && !entry.targets.iter().any(|(key, _)| self.in_place(key, &entry.source)),
            });
            owners.push(i);
            for member in entry.index.iter().filter(|m| m.added == Some(true)) {
                steps.push(Step::Remove { key: &member.key, member: &member.member });
                owners.push(i);
            }
        }
        for (&i, answer) in owners.iter().zip(self.run_steps(&steps).await?) {
            if answer == "elsewhere" {
                // Safe to repeat: the targets are gone, the original written again.
                decided.entry(i).or_insert(RestoreOutcome::Elsewhere);
            }
        }
        Ok(indexes.iter().map(|&i| (i, decided.remove(&i).unwrap_or(RestoreOutcome::Restored))).collect())
    }
}

/// `indexes` in waves, in order, each source at most once per wave: the steps of two entries of
/// one source must not run side by side.
fn waves(entries: &[Entry], mut rest: Vec<usize>) -> Vec<Vec<usize>> {
    let mut waves = Vec::new();
    while !rest.is_empty() {
        let mut seen = std::collections::HashSet::new();
        let (wave, later): (Vec<usize>, Vec<usize>) =
            rest.into_iter().partition(|&i| seen.insert(entries[i].source.as_str()));
        waves.push(wave);
        rest = later;
    }
    waves
}

/// The places of an entry's targets other than the source itself (and than `skip`).
fn other_targets(entry: &Entry, separate: bool, skip: Option<usize>) -> Vec<usize> {
    (0..entry.targets.len()).filter(|&t| Some(t) != skip && (separate || entry.targets[t].0 != entry.source)).collect()
}

/// The absolute expiry an entry's targets get.
fn expire_at(entry: &Entry) -> Option<i64> {
    if entry.drop_expiry {
        None
    } else {
        entry.original.expire_at_ms
    }
}

/// Loads the scripts on every side; their SHA1s are the same everywhere (they depend on the
/// text alone).
async fn load_scripts(placement: &Placement) -> Result<NodeScripts, StoreError> {
    let mut loaded = None;
    for store in placement.stores() {
        loaded = Some(NodeScripts::load(store).await?);
    }
    loaded.ok_or_else(|| StoreError::Unavailable("no Redis to load the scripts on".into()))
}
