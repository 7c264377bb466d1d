//! Moving and restoring journaled entries node by node: on a Redis Cluster, and onto another
//! Redis (`--target-url`), where every target is on another node than its source.
//!
//! An entry whose keys (source, targets, index keys) are all served by one master is moved by
//! the same compare-and-move script as on one Redis, called on that master with the batch's
//! other such entries (one call per master; `allow-cross-slot-keys` lets it touch several
//! slots there). An entry whose keys live on different masters cannot be moved atomically, so
//! it is moved by a protocol of steps that are each safe to repeat (cross_node.lua):
//!
//! 0. its original is journaled (before this module runs), and so is — for every entry, on one
//!    node or not — whether each index already held its member (`SISMEMBER`, durable before any
//!    `SADD`), so a rollback removes exactly the members the move added even when a crash lost
//!    `SADD`'s answer;
//! 1. **put** — each target is written on its master only if absent (or already equal: a
//!    resumed run), else the entry is a conflict and what this step wrote is taken back;
//! 2. **take** — the source is deleted on its master only if it still equals the journaled
//!    original; if a live writer changed it, the targets step 1 wrote are taken back (only
//!    where they still hold what was written) and the entry is `changed` (re-read and retried
//!    by `apply` as on one Redis);
//! 3. **index** — the index members are added.
//!
//! A crash anywhere leaves the entry pending in the journal; the next run repeats the steps:
//! targets already written answer `equal`, a source already deleted answers `missing` with
//! every target `equal` — the entry is `already` moved — and `SADD` is idempotent. Restores
//! run the same way in reverse: check the targets (unless `--force`), write the original on
//! the source's master, put back or delete each target where it still holds what the move
//! wrote, remove the added index members.
//!
//! A step sent to a master that no longer serves its key (a failover or resharding since the
//! topology was read) answers `elsewhere` without writing; the entry is tried again after the
//! topology is read again, a few times, before the step fails with a resumable error.

use std::collections::BTreeMap;

use edgesync_core::store::{Command, Reply, StoreError};

use super::placement::{Node, Placement};
use crate::entry::Entry;
use crate::journal::{Journal, JournalError};
use crate::script::{
    cross_node_command, is_noscript, move_many_on_node, move_outcomes, restore_many_on_node, restore_outcomes,
    step_answers, MoveOutcome, NodeScripts, RestoreOutcome, Step,
};

/// How many times entries whose keys moved between nodes are tried again.
const ROUNDS: usize = 8;

/// The crash points of the cross-node protocol, for the tests that kill a run there: with
/// `MIGRATOR_CRASH_AT=point:n` the process aborts — as a `SIGKILL` would stop it, nothing
/// flushed, nothing cleaned up — the `n`th time it reaches `point` (`indexes-noted`, `put`,
/// `taken`, `node`: after any node's call of a step).
fn crash_point(point: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static PASSED: AtomicUsize = AtomicUsize::new(0);
    let Ok(at) = std::env::var("MIGRATOR_CRASH_AT") else { return };
    let Some((name, nth)) = at.split_once(':') else { return };
    if name == point && nth.parse::<usize>().ok() == Some(PASSED.fetch_add(1, Ordering::SeqCst) + 1) {
        std::process::abort();
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
            Step::Take { key, .. } | Step::Write { key, .. } => self.placement.source_node(key),
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
                Some(Err(error)) if error.0.starts_with("MOVED") || error.0.starts_with("CLUSTERDOWN") => {
                    // Only a node that is no longer a master answers a keyless call so.
                    return Ok(Reply::Nil);
                }
                Some(Err(error)) => return Err(ClusterMoveError::Script(format!("{node}: {}", error.0))),
                None => return Err(ClusterMoveError::Script(format!("{node}: no reply"))),
            }
        }
        Err(ClusterMoveError::Script(format!("{node} keeps losing its scripts")))
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
                reply => step_answers(reply, mine.len()).map_err(ClusterMoveError::Script)?,
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
            if round > 0 {
                self.placement.refresh()?;
            }
            if !self.note_index_state(entries, &waiting, journal).await? {
                continue;
            }
            let mut local: BTreeMap<Node, Vec<usize>> = BTreeMap::new();
            let mut cross = Vec::new();
            for i in waiting {
                match self.one_node(&entries[i]) {
                    Some(node) => local.entry(node).or_default().push(i),
                    None => cross.push(i),
                }
            }
            for (node, indexes) in local {
                let mine: Vec<&Entry> = indexes.iter().map(|&i| &entries[i]).collect();
                let reply = self.call(&node, |scripts| move_many_on_node(&mine, scripts)).await?;
                let answered = match reply {
                    Reply::Nil => vec![MoveOutcome::Elsewhere; mine.len()],
                    reply => move_outcomes(reply, &mine).map_err(ClusterMoveError::Script)?,
                };
                for (i, outcome) in indexes.into_iter().zip(answered) {
                    outcomes[i] = (outcome != MoveOutcome::Elsewhere).then_some(outcome);
                }
            }
            if !cross.is_empty() {
                for (i, outcome) in self.move_across(entries, &cross).await?.into_iter() {
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
        // 1. Put every target that is not the source itself.
        let mut puts: Vec<(usize, usize)> = Vec::new();
        for &i in indexes {
            for (t, (key, _)) in entries[i].targets.iter().enumerate() {
                if !self.in_place(key, &entries[i].source) {
                    puts.push((i, t));
                }
            }
        }
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
        let mut written: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        let mut all_equal: BTreeMap<usize, bool> = indexes.iter().map(|&i| (i, true)).collect();
        let mut decided: BTreeMap<usize, MoveOutcome> = BTreeMap::new();
        for (&(i, t), answer) in puts.iter().zip(&put_answers) {
            match answer.as_str() {
                "written" => {
                    written.entry(i).or_default().push(t);
                    all_equal.insert(i, false);
                }
                "equal" => {}
                "conflict" => {
                    decided.entry(i).or_insert(MoveOutcome::Conflict { target: entries[i].targets[t].0.clone() });
                }
                "elsewhere" => {
                    decided.insert(i, MoveOutcome::Elsewhere);
                }
                other => return Err(ClusterMoveError::Script(format!("unknown put answer {other:?}"))),
            }
        }
        // A conflict takes back what this entry's other puts wrote.
        let mut take_back: Vec<(usize, usize)> = decided
            .iter()
            .filter(|(_, o)| matches!(o, MoveOutcome::Conflict { .. }))
            .flat_map(|(&i, _)| written.get(&i).into_iter().flatten().map(move |&t| (i, t)))
            .collect();

        // 2. Take each source that is still as journaled.
        let takers: Vec<usize> = indexes.iter().copied().filter(|i| !decided.contains_key(i)).collect();
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
        let mut moved = Vec::new();
        for (&i, answer) in takers.iter().zip(&take_answers) {
            let outcome = match answer.as_str() {
                "taken" | "kept" => {
                    moved.push(i);
                    continue;
                }
                "missing" if all_equal[&i] => {
                    moved.push(i);
                    decided.insert(i, MoveOutcome::Already);
                    continue;
                }
                "missing" => MoveOutcome::Missing,
                "changed" => MoveOutcome::Changed,
                "elsewhere" => MoveOutcome::Elsewhere,
                other => return Err(ClusterMoveError::Script(format!("unknown take answer {other:?}"))),
            };
            if matches!(outcome, MoveOutcome::Changed | MoveOutcome::Missing) {
                // Every target the move may have written — this run or a crashed one — comes
                // back out where it still holds what was written.
                let entry = &entries[i];
                take_back.extend(
                    (0..entry.targets.len())
                        .filter(|&t| !self.in_place(&entry.targets[t].0, &entry.source))
                        .map(|t| (i, t)),
                );
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

        // 3. The index members of what moved; a member whose master changed is added on the
        //    next one (a source already taken cannot be put back in the queue).
        let adds: Vec<(usize, usize)> =
            moved.iter().flat_map(|&i| (0..entries[i].index.len()).map(move |x| (i, x))).collect();
        let mut left = adds;
        for round in 0..ROUNDS {
            if left.is_empty() {
                break;
            }
            if round > 0 {
                self.placement.refresh()?;
            }
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
            if round > 0 {
                self.placement.refresh()?;
            }
            let mut local: BTreeMap<Node, Vec<usize>> = BTreeMap::new();
            let mut cross = Vec::new();
            for i in waiting {
                match self.one_node(&entries[i]) {
                    Some(node) => local.entry(node).or_default().push(i),
                    None => cross.push(i),
                }
            }
            for (node, indexes) in local {
                let mine: Vec<&Entry> = indexes.iter().map(|&i| &entries[i]).collect();
                let reply = self.call(&node, |scripts| restore_many_on_node(&mine, force, scripts)).await?;
                let answered = match reply {
                    Reply::Nil => vec![RestoreOutcome::Elsewhere; mine.len()],
                    reply => restore_outcomes(reply, &mine).map_err(ClusterMoveError::Script)?,
                };
                for (i, outcome) in indexes.into_iter().zip(answered) {
                    outcomes[i] = (outcome != RestoreOutcome::Elsewhere).then_some(outcome);
                }
            }
            // In waves, each source at most once per wave: a key moved twice gets its older
            // original (later in the page: newest first) last.
            let mut rest = cross;
            while !rest.is_empty() {
                let mut seen = std::collections::HashSet::new();
                let (wave, later): (Vec<usize>, Vec<usize>) =
                    rest.into_iter().partition(|&i| seen.insert(entries[i].source.as_str()));
                for (i, outcome) in self.restore_across(entries, &wave, force).await? {
                    outcomes[i] = (outcome != RestoreOutcome::Elsewhere).then_some(outcome);
                }
                rest = later;
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
        // 2. The originals, exactly, on their sources' nodes.
        let writing: Vec<usize> = indexes.iter().copied().filter(|i| !decided.contains_key(i)).collect();
        let steps: Vec<Step<'_>> = writing
            .iter()
            .map(|&i| Step::Write {
                key: &entries[i].source,
                value: &entries[i].original.value,
                expire_at_ms: entries[i].original.expire_at_ms,
            })
            .collect();
        let mut restoring = Vec::new();
        for (&i, answer) in writing.iter().zip(self.run_steps(&steps).await?) {
            if answer == "elsewhere" {
                decided.insert(i, RestoreOutcome::Elsewhere);
            } else {
                restoring.push(i);
            }
        }
        // 3. Each other target as it was before the move; 4. the index members it added.
        let mut owners = Vec::new();
        let mut steps: Vec<Step<'_>> = Vec::new();
        for &i in &restoring {
            let entry = &entries[i];
            for (t, (key, written)) in entry.targets.iter().enumerate() {
                if !self.in_place(key, &entry.source) {
                    let previous = entry.previous_targets.get(t).and_then(Option::as_ref);
                    steps.push(Step::Unput { key, written, previous, force });
                    owners.push(i);
                }
            }
            for member in entry.index.iter().filter(|m| m.added == Some(true)) {
                steps.push(Step::Remove { key: &member.key, member: &member.member });
                owners.push(i);
            }
        }
        for ((&i, step), answer) in owners.iter().zip(&steps).zip(self.run_steps(&steps).await?) {
            match answer.as_str() {
                // The source is back already: a later run finishes what moved (every step repeats).
                "elsewhere" => {
                    decided.insert(i, RestoreOutcome::Elsewhere);
                }
                // Changed between the check and now (a live writer): left as the writer made it.
                "changed" => {
                    decided.entry(i).or_insert_with(|| RestoreOutcome::TargetChanged { target: step.key().to_owned() });
                }
                _ => {}
            }
        }
        Ok(indexes.iter().map(|&i| (i, decided.remove(&i).unwrap_or(RestoreOutcome::Restored))).collect())
    }
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
