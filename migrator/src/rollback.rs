//! `rollback`: restore every original exactly — type, value, absolute expiry — and remove what
//! the migration created (targets, and the index members it added), newest entry first. An
//! entry whose targets changed after the migration is refused and reported, unless `--force`.

use std::collections::VecDeque;

use edgesync_core::store::{Store, StoreError};
use serde::Serialize;

use crate::cluster::moves::{ClusterMoveError, NodeMoves};
use crate::cluster::placement::Placement;
use crate::connect::Connector;
use crate::entry::{Entry, EntryState};
use crate::journal::{entries, Journal, JournalError};
use crate::pipeline::{execute, InFlight, Mover, MOVES_IN_FLIGHT};
use crate::script::{
    reloading_if_lost, restore_many_command, restore_outcomes, RestoreOutcome, ScriptAnswerError, Scripts,
};

#[derive(Debug, Clone, Default, Serialize)]
pub struct RollbackReport {
    pub restored: u64,
    pub refused: u64,
    /// Up to 50 refused keys, with the target that changed.
    pub refused_keys: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the restore script answered unexpectedly: {0}")]
    Script(String),
    #[error("the restore script answered unexpectedly: {0}")]
    Answer(#[from] ScriptAnswerError),
    #[error(transparent)]
    Cluster(#[from] ClusterMoveError),
}

/// Which entries a rollback restores.
fn eligible(entry: &Entry, force: bool) -> bool {
    matches!(entry.state, EntryState::Done | EntryState::Pending)
        || (force && entry.state == EntryState::RollbackRefused)
}

/// The rollback on a Redis Cluster or from another Redis: each page restored node by node
/// ([`NodeMoves`]).
async fn rollback_by_node(
    mut nodes: NodeMoves,
    journal: &dyn Journal,
    batch: usize,
    force: bool,
) -> Result<RollbackReport, RollbackError> {
    let mut report = RollbackReport::default();
    for page in entries(journal, true, batch) {
        let page: Vec<Entry> = page?.into_iter().filter(|e| eligible(e, force)).collect();
        if page.is_empty() {
            continue;
        }
        let outcomes = nodes.restore_entries(&page, force).await?;
        note(journal, page, outcomes, &mut report)?;
    }
    journal.flush()?;
    Ok(report)
}

/// Notes a page's restore outcomes (in the journal, unflushed: a restore that ran but was not
/// noted runs again harmlessly — its targets are gone, so it writes the same original).
async fn finish(
    store: &dyn Store,
    journal: &dyn Journal,
    in_flight: InFlight,
    force: bool,
    scripts: &mut Scripts,
    report: &mut RollbackReport,
) -> Result<(), RollbackError> {
    let InFlight { entries, sent } = in_flight;
    let reply = sent.answer().and_then(|reply| reply);
    let reply =
        reloading_if_lost(store, reply, scripts, |scripts| restore_many_command(&entries, force, scripts)).await;
    let outcomes = restore_outcomes(reply?, &entries)?;
    note(journal, entries, outcomes, report)
}

/// Notes each entry's restore outcome in the journal and the report.
fn note(
    journal: &dyn Journal,
    entries: Vec<Entry>,
    outcomes: Vec<RestoreOutcome>,
    report: &mut RollbackReport,
) -> Result<(), RollbackError> {
    let mut updated = Vec::new();
    for (mut entry, outcome) in entries.into_iter().zip(outcomes) {
        match outcome {
            RestoreOutcome::Restored => {
                entry.state = EntryState::RolledBack;
                report.restored += 1;
            }
            RestoreOutcome::TargetChanged { target } => {
                entry.state = EntryState::RollbackRefused;
                entry.note = Some(format!("target {target} changed after the migration"));
                report.refused += 1;
                if report.refused_keys.len() < 50 {
                    report.refused_keys.push(format!("{} (target {target} changed)", entry.source));
                }
            }
            RestoreOutcome::Elsewhere => {
                return Err(RollbackError::Script(format!("{}: `elsewhere` from a single Redis", entry.source)))
            }
        }
        updated.push(entry);
    }
    journal.update(&updated, false)?;
    Ok(())
}

/// Restores every eligible entry, newest first, a page per script call. With a connector,
/// Redis restores a page on the mover's connection while this thread reads the next one
/// from the journal ([`crate::pipeline`]).
pub async fn rollback(
    store: &dyn Store,
    journal: &dyn Journal,
    batch: usize,
    force: bool,
    connector: Option<&Connector>,
    target: Option<&Connector>,
) -> Result<RollbackReport, RollbackError> {
    let mut report = RollbackReport::default();
    if let Some(connector) = connector {
        let unavailable = |e: crate::connect::ConnectError| StoreError::Unavailable(e.to_string());
        if let Some(placement) = Placement::open(connector, target).map_err(unavailable)? {
            return rollback_by_node(NodeMoves::new(placement).await?, journal, batch, force).await;
        }
    }
    let mut scripts = Scripts::load(store).await?;
    let mover = match connector {
        Some(connector) => Mover::threaded("rollback-mover", connector.clone(), execute)?,
        None => Mover::inline(store, execute),
    };
    let mut in_flight = VecDeque::new();
    // Newest first: a key migrated twice is restored to its oldest original last.
    for page in entries(journal, true, batch) {
        let eligible: Vec<Entry> = page?.into_iter().filter(|e| eligible(e, force)).collect();
        if eligible.is_empty() {
            continue;
        }
        let sent = mover.send(restore_many_command(&eligible, force, &scripts)).await;
        in_flight.push_back(InFlight { entries: eligible, sent });
        while in_flight.len() >= MOVES_IN_FLIGHT {
            let oldest = in_flight.pop_front().expect("in flight");
            finish(store, journal, oldest, force, &mut scripts, &mut report).await?;
        }
    }
    while let Some(oldest) = in_flight.pop_front() {
        finish(store, journal, oldest, force, &mut scripts, &mut report).await?;
    }
    journal.flush()?;
    Ok(report)
}
