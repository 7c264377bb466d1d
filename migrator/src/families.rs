//! "Not owned": keys of a rule set's legacy families (`bot:*`, `*:positions:*`, …) that no
//! rule moves — the bot's keys edgesync has no place for, or shapes nobody anticipated — so
//! nothing is left behind silently. A family key is *not* reported when a rule owns it, the
//! set excludes it (HYPERRSI's state keys), it has the shape of one of the set's own targets
//! (a standardized key already in place), or it is the migrator's own (its lock). Each key is
//! counted once (a [spill](crate::spill) set de-duplicates SCAN's repeats), with samples.

use std::collections::BTreeMap;
use std::path::Path;

use edgesync_core::store::{Store, StoreExt};
use serde::Serialize;

use crate::plan::PlanError;
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

/// Surveys the families of `set`; `target_prefix` is where its targets live.
pub async fn survey(
    store: &dyn Store,
    set: &RuleSet,
    target_prefix: &str,
    page_size: usize,
    scratch: &Path,
) -> Result<NotOwned, PlanError> {
    let scratch_error = |error| PlanError::Scratch(scratch.display().to_string(), error);
    let mut seen: KeyedSpill<String> = KeyedSpill::new_in(scratch).map_err(scratch_error)?;
    for family in &set.families {
        let mut cursor = 0;
        loop {
            let page = store.scan(cursor, family, page_size).await?;
            for key in page.keys {
                let owned = set.rules.iter().any(|r| r.from.capture(&key).is_some());
                if !owned && !is_own_key(&key) && !set.excludes(&key) && !set.is_target_shape(&key, target_prefix) {
                    seen.insert(key, family.clone()).map_err(scratch_error)?;
                }
            }
            if page.cursor == 0 {
                break;
            }
            cursor = page.cursor;
        }
    }
    let mut report = NotOwned::default();
    for item in seen.finish().map_err(scratch_error)? {
        let (key, family) = item.map_err(scratch_error)?;
        report.count += 1;
        *report.by_family.entry(family).or_default() += 1;
        if report.samples.len() < SAMPLES {
            report.samples.push(key);
        }
    }
    Ok(report)
}
