//! "Not owned": keys of a rule set's legacy families (`bot:*`, `*:positions:*`, …) that no
//! rule moves — the bot's keys edgesync has no place for, or shapes nobody anticipated — so
//! nothing is left behind silently. A family key is *not* reported when a rule owns it, the
//! set excludes it (HYPERRSI's state keys), it has the shape of one of the set's own targets
//! (a standardized key already in place), or it is the migrator's own (its lock). Each key is
//! counted once (a [spill](crate::spill) set de-duplicates SCAN's repeats), with samples.

use std::collections::BTreeMap;
use std::path::Path;

use edgesync_core::glob::Glob;
use edgesync_core::store::{Store, StoreExt};
use serde::Serialize;

use crate::plan_error::PlanError;
use crate::rules::{is_own_key, RuleSet};
use crate::spill::KeyedSpill;

/// Samples kept of the keys not owned.
const SAMPLES: usize = 10;

#[derive(Debug, Clone, Default, Serialize)]
pub struct NotOwned {
    /// Keys of the set's families that no rule moves.
    pub count: u64,
    /// The same, per family glob (a key in several families counts under the last).
    pub by_family: BTreeMap<String, u64>,
    /// The first keys, in key order.
    pub samples: Vec<String>,
}

/// Collects the keys not owned, from whatever scan sees them: the main scan when it covers
/// the whole keyspace (one pass serves rules and families alike), else [`survey`]'s own scans
/// of each family glob.
pub struct FamilySurvey<'s> {
    set: &'s RuleSet,
    target_prefix: String,
    families: Vec<(String, Glob)>,
    seen: KeyedSpill<String>,
    scratch: std::path::PathBuf,
}

impl<'s> FamilySurvey<'s> {
    pub fn new_in(set: &'s RuleSet, target_prefix: &str, scratch: &Path) -> Result<Self, PlanError> {
        let seen = KeyedSpill::new_in(scratch).map_err(|e| PlanError::Scratch(scratch.display().to_string(), e))?;
        let families = set.families.iter().map(|family| (family.clone(), Glob::new(family))).collect();
        Ok(Self { set, target_prefix: target_prefix.to_owned(), families, seen, scratch: scratch.to_owned() })
    }

    fn scratch_error(&self, error: std::io::Error) -> PlanError {
        PlanError::Scratch(self.scratch.display().to_string(), error)
    }

    /// Notes `key`, which no rule owns, when it is in a family and is not the set's own (a
    /// target shape, an exclusion, the migrator's lock). A key in several families counts
    /// under the last.
    pub fn note_unowned(&mut self, key: &str) -> Result<(), PlanError> {
        let Some((family, _)) = self.families.iter().rev().find(|(_, glob)| glob.matches(key.as_bytes())) else {
            return Ok(());
        };
        if is_own_key(key) || self.set.excludes(key) || self.set.is_target_shape(key, &self.target_prefix) {
            return Ok(());
        }
        let family = family.clone();
        self.seen.insert(key.to_owned(), family).map_err(|e| self.scratch_error(e))
    }

    /// Counts each key once, with samples.
    pub fn finish(self) -> Result<NotOwned, PlanError> {
        let scratch = self.scratch.clone();
        let scratch_error = |error| PlanError::Scratch(scratch.display().to_string(), error);
        let mut report = NotOwned::default();
        for item in self.seen.finish().map_err(scratch_error)? {
            let (key, family) = item.map_err(scratch_error)?;
            report.count += 1;
            *report.by_family.entry(family).or_default() += 1;
            if report.samples.len() < SAMPLES {
                report.samples.push(key);
            }
        }
        Ok(report)
    }
}

/// Surveys the families of `set` with a scan of each family glob (when the main scan did not
/// already see every key); `target_prefix` is where its targets live.
pub async fn survey(
    store: &dyn Store,
    set: &RuleSet,
    target_prefix: &str,
    page_size: usize,
    scratch: &Path,
) -> Result<NotOwned, PlanError> {
    let mut collector = FamilySurvey::new_in(set, target_prefix, scratch)?;
    for family in &set.families {
        let mut cursor = 0;
        loop {
            let page = store.scan(cursor, family, page_size).await?;
            for key in page.keys {
                if !set.rules.iter().any(|r| r.from.matches(&key)) {
                    collector.note_unowned(&key)?;
                }
            }
            if page.cursor == 0 {
                break;
            }
            cursor = page.cursor;
        }
    }
    collector.finish()
}
