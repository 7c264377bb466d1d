//! `rollback`: restore every original exactly — type, value, absolute expiry — and remove what
//! the migration created (targets, and the index members it added), newest entry first. An
//! entry whose targets changed after the migration is refused and reported, unless `--force`.

use edgesync_core::store::{Store, StoreError};
use serde::Serialize;

use crate::journal::{entries, Entry, EntryState, Journal, JournalError};
use crate::script::{is_noscript, restore_many_command, restore_outcomes, RestoreOutcome, Scripts};

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
}

async fn restore(
    store: &dyn Store,
    journal: &dyn Journal,
    entries: Vec<Entry>,
    force: bool,
    scripts: &mut Scripts,
    report: &mut RollbackReport,
) -> Result<(), RollbackError> {
    let mut reply = store.execute(&restore_many_command(&entries, force, scripts)).await;
    if let Err(StoreError::Command { error, .. }) = &reply {
        if is_noscript(&error.0) {
            // Redis lost its script cache (restart, SCRIPT FLUSH): load again and resend.
            *scripts = Scripts::load(store).await?;
            reply = store.execute(&restore_many_command(&entries, force, scripts)).await;
        }
    }
    let outcomes = restore_outcomes(reply?, entries.len()).map_err(RollbackError::Script)?;
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
        }
        updated.push(entry);
    }
    journal.update(&updated, true)?;
    Ok(())
}

pub async fn rollback(
    store: &dyn Store,
    journal: &dyn Journal,
    batch: usize,
    force: bool,
) -> Result<RollbackReport, RollbackError> {
    let mut report = RollbackReport::default();
    let mut scripts = Scripts::load(store).await?;
    // Newest first: a key migrated twice is restored to its oldest original last.
    for page in entries(journal, true, batch) {
        let eligible: Vec<Entry> = page?
            .into_iter()
            .filter(|e| {
                matches!(e.state, EntryState::Done | EntryState::Pending)
                    || (force && e.state == EntryState::RollbackRefused)
            })
            .collect();
        if !eligible.is_empty() {
            restore(store, journal, eligible, force, &mut scripts, &mut report).await?;
        }
    }
    Ok(report)
}
