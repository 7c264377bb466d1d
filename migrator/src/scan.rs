//! The scan `plan` and `apply` share: [`Scanner`] finds every key the rules own (SCAN with
//! each rule's glob, never KEYS), page by page, and surveys the rule set's legacy families on
//! the way when it sees every key; [`classify`] reads a page's keys, converts them and says
//! what a move would do with each ([`Class`]) against what the targets hold now.

use std::path::Path;

use edgesync_core::keys::pattern::Captures;
use edgesync_core::store::{Command, Reply, Store, StoreError, StoreExt};
use serde::{Deserialize, Serialize};

use crate::families::{survey, FamilySurvey, NotOwned};
use crate::plan_error::PlanError;
use crate::rules::convert::{convert, Converted};
use crate::rules::{is_own_key, Expiry, Rule, RuleOptions, RuleSet};
use crate::sides::Sides;
use crate::value::{read_expecting, read_within, Read, Stored, TypedValue};

/// A key some rule owns.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub rule: usize,
    pub key: String,
    pub captures: Captures,
}

/// Streams the keys the rules own, one SCAN page at a time. A key belongs to the first rule
/// (in order) whose pattern captures it; keys a glob returns but no pattern captures, keys the
/// set excludes and the migrator's own keys are skipped. SCAN may return a key twice; callers
/// that count must de-duplicate.
///
/// When some rule's glob has to match the whole keyspace anyway (it starts with a
/// placeholder: `{exchange}:positions:{user}` scans `*:positions:*`), one pass over `*`
/// serves every rule — the cost of that one scan instead of one per rule. When every rule
/// starts with a literal (`bot:…`, `mexc:raw:…`), each scans only its own keys.
pub struct Scanner<'r> {
    set: &'r RuleSet,
    rules: &'r [Rule],
    /// The globs scanned in turn, and the rule each one is for (`None`: all of them).
    globs: Vec<(String, Option<usize>)>,
    glob: usize,
    cursor: u64,
    started: bool,
    pub page_size: usize,
    /// Keys no rule owns, for the family survey, when this scan sees every key.
    survey: Option<FamilySurvey<'r>>,
}

impl<'r> Scanner<'r> {
    pub fn new(set: &'r RuleSet, page_size: usize) -> Self {
        let per_rule: Vec<(String, Option<usize>)> =
            set.rules.iter().enumerate().map(|(i, r)| (r.from.scan_glob(), Some(i))).collect();
        let globs = if per_rule.iter().any(|(glob, _)| glob.starts_with('*')) {
            vec![("*".to_owned(), None)]
        } else {
            per_rule
        };
        Self { set, rules: &set.rules, globs, glob: 0, cursor: 0, started: false, page_size, survey: None }
    }

    /// Also surveys the families while scanning, when this scan sees every key anyway;
    /// [`Scanner::finish_survey`] then answers without another pass.
    pub fn surveying(mut self, target_prefix: &str, scratch: &Path) -> Result<Self, PlanError> {
        if self.globs.len() == 1 && self.globs[0].0 == "*" {
            self.survey = Some(FamilySurvey::new_in(self.set, target_prefix, scratch)?);
        }
        Ok(self)
    }

    /// The families' keys no rule owns: from this scan if it surveyed, else by their own
    /// scans.
    pub async fn finish_survey(
        self,
        store: &dyn Store,
        target_prefix: &str,
        scratch: &Path,
    ) -> Result<NotOwned, PlanError> {
        match self.survey {
            Some(collected) => collected.finish(),
            None => survey(store, self.set, target_prefix, self.page_size, scratch).await,
        }
    }

    pub async fn next_page(&mut self, store: &dyn Store) -> Result<Option<Vec<Candidate>>, PlanError> {
        loop {
            let Some((glob, only)) = self.globs.get(self.glob).cloned() else { return Ok(None) };
            if self.started && self.cursor == 0 {
                self.glob += 1;
                self.started = false;
                continue;
            }
            let page = store.scan(self.cursor, &glob, self.page_size).await?;
            self.started = true;
            self.cursor = page.cursor;
            let mut owned = Vec::new();
            for key in page.keys {
                if is_own_key(&key) || self.set.excludes(&key) {
                    continue;
                }
                match self.rules.iter().enumerate().find_map(|(i, r)| r.from.capture(&key).map(|c| (i, c))) {
                    Some((owner, captures)) if only.is_none_or(|rule| rule == owner) => {
                        owned.push(Candidate { rule: owner, key, captures })
                    }
                    Some(_) => {}
                    None => {
                        if let Some(survey) = &mut self.survey {
                            survey.note_unowned(&key)?;
                        }
                    }
                }
            }
            if !owned.is_empty() {
                return Ok(Some(owned));
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Migrate,
    AlreadyMigrated,
    Conflict,
    Unparseable,
    WrongType,
    /// Above the size limits: reported, never loaded.
    TooLarge,
}

/// One classified source, with what the move would write.
#[derive(Debug, Clone)]
pub struct Classified {
    pub candidate: Candidate,
    pub class: Class,
    pub original: Option<Stored>,
    pub targets: Vec<(String, TypedValue)>,
    pub index: Vec<(String, String)>,
    /// Whether each index already holds its member: journaled with the entry, so a rollback
    /// removes exactly the members the move added even when a crash lost the move's answer.
    pub index_present: Vec<bool>,
    /// What each target key held before the move (`None`: it did not exist).
    pub previous: Vec<Option<Stored>>,
    pub reason: Option<String>,
    /// The targets are permanent whatever the source's TTL (the rule's `expiry = "drop"`).
    pub drop_expiry: bool,
}

/// Reads and converts a batch of candidates and classifies them against what the targets
/// hold now. Candidates that vanished since the scan are dropped.
pub async fn classify(
    sides: Sides<'_>,
    rules: &[Rule],
    options: &RuleOptions,
    candidates: Vec<Candidate>,
) -> Result<Vec<Classified>, StoreError> {
    let keys: Vec<String> = candidates.iter().map(|c| c.key.clone()).collect();
    // The first type a rule accepts is the one its sources most likely hold (the built-in
    // sets list strings first): read as that, another type costs a round trip more.
    let expected: Vec<Option<&'static str>> =
        candidates.iter().map(|c| rules[c.rule].types.first().map(|t| t.name())).collect();
    let originals = read_within(sides.source, &keys, &expected, Some(&options.limits)).await?;
    let mut classified = Vec::new();
    for (candidate, original) in candidates.into_iter().zip(originals) {
        let original = match original {
            Read::Value(original) => original,
            Read::Absent => continue,
            Read::TooLarge { kind, size } => {
                let reason = match kind.as_str() {
                    "string" => format!("a string of {size} bytes, above --max-value-bytes"),
                    _ => format!("a {kind} of {size} elements, above --max-elements"),
                };
                classified.push(Classified {
                    candidate,
                    class: Class::TooLarge,
                    original: None,
                    targets: Vec::new(),
                    index: Vec::new(),
                    index_present: Vec::new(),
                    previous: Vec::new(),
                    reason: Some(reason),
                    drop_expiry: false,
                });
                continue;
            }
        };
        let rule = &rules[candidate.rule];
        let (class, targets, index, reason) = match convert(rule, &candidate.captures, &original.value, options) {
            Converted::Targets { targets, index } => (Class::Migrate, targets, index, None),
            Converted::Unparseable(reason) => (Class::Unparseable, Vec::new(), Vec::new(), Some(reason)),
            Converted::WrongType(reason) => (Class::WrongType, Vec::new(), Vec::new(), Some(reason)),
        };
        classified.push(Classified {
            candidate,
            class,
            original: Some(original),
            targets,
            index,
            index_present: Vec::new(),
            previous: Vec::new(),
            reason,
            drop_expiry: rule.expiry == Expiry::Drop,
        });
    }
    // One more read for every target key of the batch.
    let target_keys: Vec<(&str, &'static str)> =
        classified.iter().flat_map(|c| c.targets.iter().map(|(k, v)| (k.as_str(), v.type_name()))).collect();
    let current = read_expecting(sides.target, &target_keys).await?;
    let mut current = current.into_iter();
    for item in &mut classified {
        let mut all_equal = !item.targets.is_empty();
        let mut any_differs = false;
        for (key, expected) in &item.targets {
            let held = current.next().flatten();
            match &held {
                Some(stored) if &stored.value == expected => {}
                Some(_) if *key == item.candidate.key => all_equal = false,
                Some(_) => {
                    all_equal = false;
                    any_differs = true;
                }
                None => all_equal = false,
            }
            item.previous.push(held);
        }
        if item.class == Class::Migrate {
            if all_equal {
                item.class = Class::AlreadyMigrated;
            } else if any_differs {
                item.class = Class::Conflict;
                item.reason = Some("a target exists with a different value".into());
            }
        }
    }
    // And whether each index set holds its member already (only sets that fan-outs write).
    let members: Vec<Command> = classified
        .iter()
        .flat_map(|c| c.index.iter().map(|(key, member)| Command::new("SISMEMBER").arg(key).arg(member)))
        .collect();
    if !members.is_empty() {
        let mut present = sides.target.pipeline(&members).await?.into_iter();
        for item in &mut classified {
            for _ in 0..item.index.len() {
                let reply = present
                    .next()
                    .transpose()
                    .map_err(|error| StoreError::Command { command: "SISMEMBER".into(), error })?;
                item.index_present.push(reply == Some(Reply::Int(1)));
            }
        }
    }
    Ok(classified)
}
