//! Sources that would write the same target (N:1): a rule such as `to = "account:mexc:main"`
//! under a `from` with `{user}`, or two rules whose targets meet (`position:{user}:{symbol}`
//! with side `long` in its value, and `user:{user}:position:{symbol}:long`). Moving both
//! would leave only the last value — silently under `--overwrite` — so every such source is a
//! conflict naming the other, found before anything is written.
//!
//! Each (target, source) pair goes to a [spill](crate::spill) set keyed `target \u{1} source`;
//! read back in key order, pairs of one target are adjacent, so memory stays flat. Index sets
//! are not targets here: many sources add members to one index by design.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use edgesync_core::store::Store;

use crate::plan_error::PlanError;
use crate::rules::{RuleOptions, RuleSet};
use crate::scan::{classify, Class, Classified, Scanner};
use crate::sides::Sides;
use crate::spill::KeyedSpill;

const SEPARATOR: char = '\u{1}';

/// Collects (target, source) pairs while classifying.
pub struct CollisionFinder {
    pairs: KeyedSpill<()>,
}

impl CollisionFinder {
    pub fn new_in(scratch: &Path) -> io::Result<Self> {
        Ok(Self { pairs: KeyedSpill::new_in(scratch)? })
    }

    /// Notes what a classified source would write.
    pub fn note(&mut self, item: &Classified) -> io::Result<()> {
        if !matches!(item.class, Class::Migrate | Class::AlreadyMigrated | Class::Conflict) {
            return Ok(());
        }
        for (target, _) in &item.targets {
            if *target != item.candidate.key {
                self.pairs.insert(format!("{target}{SEPARATOR}{}", item.candidate.key), ())?;
            }
        }
        Ok(())
    }

    /// Every source that shares a target with another, and why.
    pub fn finish(self) -> io::Result<HashMap<String, String>> {
        let mut colliding = HashMap::new();
        let mut group: Option<(String, Vec<String>)> = None;
        let flush = |group: Option<(String, Vec<String>)>, colliding: &mut HashMap<String, String>| {
            if let Some((target, sources)) = group.filter(|(_, sources)| sources.len() > 1) {
                for source in &sources {
                    let others: Vec<&str> =
                        sources.iter().filter(|s| *s != source).map(String::as_str).take(3).collect();
                    let reason = format!("N:1: {target} is also the target of {}", others.join(", "));
                    colliding.insert(source.clone(), reason);
                }
            }
        };
        for pair in self.pairs.finish()? {
            let (key, ()) = pair?;
            let Some((target, source)) = key.split_once(SEPARATOR) else { continue };
            match &mut group {
                Some((current, sources)) if current == target => sources.push(source.to_owned()),
                _ => {
                    flush(group.take(), &mut colliding);
                    group = Some((target.to_owned(), vec![source.to_owned()]));
                }
            }
        }
        flush(group, &mut colliding);
        Ok(colliding)
    }
}

/// Scans and classifies everything the set owns (writing nothing) and returns the colliding
/// sources. `apply --overwrite` runs it first: without it, Redis's own conflict check already
/// refuses the second source of a target.
pub async fn find(
    store: &dyn Store,
    set: &RuleSet,
    options: &RuleOptions,
    batch: usize,
    scratch: &Path,
) -> Result<HashMap<String, String>, PlanError> {
    let scratch_error = |error| PlanError::Scratch(scratch.display().to_string(), error);
    let mut finder = CollisionFinder::new_in(scratch).map_err(scratch_error)?;
    let mut scanner = Scanner::new(set, batch);
    while let Some(page) = scanner.next_page(store).await? {
        for item in classify(Sides::same(store), &set.rules, options, page).await? {
            finder.note(&item).map_err(scratch_error)?;
        }
    }
    finder.finish().map_err(scratch_error)
}
