//! `plan`: find every key the rules own (SCAN with each rule's glob — never KEYS) and classify
//! it — migrate, already migrated (targets hold the conversion), conflict (a target exists and
//! differs, or another source would write the same target: N:1), unparseable, wrong type, too
//! large (measured, never loaded) — with counts and samples per rule, and the keys of the
//! set's legacy families that no rule moves ("not owned"). Writes nothing to Redis. SCAN may return a key twice, so each
//! classification goes to a [spill](crate::spill) set in the temporary directory (`TMPDIR`)
//! and keys are counted once when it is read back: memory stays flat however many keys there
//! are.
//!
//! The scanning and classifying it shares with `apply` live in [`crate::scan`].

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::collisions::CollisionFinder;
use crate::families::NotOwned;
use crate::plan_error::PlanError;
use crate::rules::{RuleOptions, RuleSet};
use crate::scan::{classify, Class, Scanner};
use crate::sides::Sides;
use crate::spill::KeyedSpill;

#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleCounts {
    pub migrate: u64,
    pub already_migrated: u64,
    pub conflict: u64,
    pub unparseable: u64,
    pub wrong_type: u64,
    pub too_large: u64,
    /// Up to three example keys per class, with the reason where there is one.
    pub samples: BTreeMap<Class, Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanReport {
    /// The rule set planned.
    pub set: String,
    pub rules: BTreeMap<String, RuleCounts>,
    pub total: RuleCounts,
    /// Keys of the set's legacy families that no rule moves (not problems; left as they are).
    pub not_owned: NotOwned,
}

impl PlanReport {
    pub fn count(&mut self, rule: &str, key: &str, class: Class, reason: Option<&str>) {
        let counts = self.rules.entry(rule.to_owned()).or_default();
        for counts in [counts, &mut self.total] {
            match class {
                Class::Migrate => counts.migrate += 1,
                Class::AlreadyMigrated => counts.already_migrated += 1,
                Class::Conflict => counts.conflict += 1,
                Class::Unparseable => counts.unparseable += 1,
                Class::WrongType => counts.wrong_type += 1,
                Class::TooLarge => counts.too_large += 1,
            }
            let samples = counts.samples.entry(class).or_default();
            if samples.len() < 3 {
                samples.push(match reason {
                    Some(reason) => format!("{key} ({reason})"),
                    None => key.to_owned(),
                });
            }
        }
    }

    /// True when `apply` would leave keys behind (conflicts, unparseable, wrong type, too large).
    pub fn has_problems(&self) -> bool {
        self.total.conflict + self.total.unparseable + self.total.wrong_type + self.total.too_large > 0
    }
}

/// One key's classification, kept until the scan ends.
#[derive(Serialize, Deserialize)]
struct Seen {
    rule: usize,
    class: Class,
    reason: Option<String>,
}

/// Runs the plan. `batch` keys are read per round trip; `scratch` takes the spill files.
pub async fn plan(
    sides: Sides<'_>,
    set: &RuleSet,
    options: &RuleOptions,
    batch: usize,
    scratch: &Path,
) -> Result<PlanReport, PlanError> {
    let scratch_error = |error| PlanError::Scratch(scratch.display().to_string(), error);
    let rules = &set.rules;
    let mut seen = KeyedSpill::new_in(scratch).map_err(scratch_error)?;
    let mut collisions = CollisionFinder::new_in(scratch).map_err(scratch_error)?;
    let mut scanner = Scanner::new(set, batch).surveying(&options.target_prefix, scratch)?;
    while let Some(page) = scanner.next_page(sides.source).await? {
        for item in classify(sides, rules, options, page).await? {
            collisions.note(&item).map_err(scratch_error)?;
            let record = Seen { rule: item.candidate.rule, class: item.class, reason: item.reason };
            seen.insert(item.candidate.key, record).map_err(scratch_error)?;
        }
    }
    let colliding = collisions.finish().map_err(scratch_error)?;
    let mut report = PlanReport { set: set.name.clone(), ..PlanReport::default() };
    for item in seen.finish().map_err(scratch_error)? {
        let (key, seen) = item.map_err(scratch_error)?;
        match colliding.get(&key) {
            Some(reason) => report.count(&rules[seen.rule].name, &key, Class::Conflict, Some(reason)),
            None => report.count(&rules[seen.rule].name, &key, seen.class, seen.reason.as_deref()),
        }
    }
    report.not_owned = scanner.finish_survey(sides.source, &options.target_prefix, scratch).await?;
    Ok(report)
}
