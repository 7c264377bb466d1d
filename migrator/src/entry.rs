//! One journal entry: a source key, its typed original, the targets its move writes and what
//! they held, its index members and flags — written once, before the move — and its
//! [`Outcome`] (state, note, which index members were new), rewritten as the move and a
//! rollback finish. [`EntryHead`] is the part a walk over the journal reads first. The
//! journal (`crate::journal`) decides where entries are stored; this module, what one is.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::value::{Stored, TypedValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Journaled; the move may or may not have happened.
    Pending,
    Done,
    /// A target held a different value; nothing was written.
    Conflict,
    /// The source changed under the move (re-read as a later entry, or given up after
    /// retries); nothing was written.
    Changed,
    RolledBack,
    /// Rollback refused: a target changed after the migration (use `--force`).
    RollbackRefused,
}

/// An index-set member a move adds; `added` is whether it was new (rollback removes only those).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexMember {
    pub key: String,
    pub member: String,
    pub added: Option<bool>,
}

/// One source key's move, as journaled before it is made. Stored as JSON (`EntryRecord`,
/// the `Serialize` below), except that a target whose value is the original's (a `keep`
/// rule) is stored as `null` rather than as a second copy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "EntryRecord<'static>")]
pub struct Entry {
    pub seq: u64,
    pub rule: String,
    pub source: String,
    pub original: Stored,
    pub targets: Vec<(String, TypedValue)>,
    /// What each target held before the move, restored by rollback (`None`: deleted).
    pub previous_targets: Vec<Option<Stored>>,
    pub index: Vec<IndexMember>,
    pub keep_source: bool,
    /// Replace targets holding other values (`--overwrite`, or a re-migration of a source
    /// recreated after its move, whose targets still hold the previous move's values).
    pub overwrite: bool,
    /// The targets are written permanent, whatever the original's expiry.
    pub drop_expiry: bool,
    pub state: EntryState,
    pub note: Option<String>,
}

/// An [`Entry`] as the journal stores it: borrowed from the entry when written, owned when
/// read. Escaping a JSON document inside a JSON string was the largest part of journaling
/// (measured in docs/benchmarks.md), and a `keep` target repeats the original whole, so such a
/// target's value is written as `null` and read back as the original's. Entries journaled with
/// the value written out read the same, and so do entries from before `previous_targets`,
/// `overwrite` and `drop_expiry` existed (their defaults).
#[derive(Serialize, Deserialize)]
struct EntryRecord<'a> {
    seq: u64,
    rule: Cow<'a, str>,
    source: Cow<'a, str>,
    original: Cow<'a, Stored>,
    targets: Vec<(Cow<'a, str>, Option<Cow<'a, TypedValue>>)>,
    #[serde(default)]
    previous_targets: Cow<'a, [Option<Stored>]>,
    index: Cow<'a, [IndexMember]>,
    keep_source: bool,
    #[serde(default)]
    overwrite: bool,
    #[serde(default)]
    drop_expiry: bool,
    state: EntryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<Cow<'a, str>>,
}

impl From<EntryRecord<'static>> for Entry {
    fn from(record: EntryRecord<'static>) -> Self {
        let original = record.original.into_owned();
        let targets = record
            .targets
            .into_iter()
            .map(|(key, value)| (key.into_owned(), value.map_or_else(|| original.value.clone(), Cow::into_owned)))
            .collect();
        Entry {
            seq: record.seq,
            rule: record.rule.into_owned(),
            source: record.source.into_owned(),
            original,
            targets,
            previous_targets: record.previous_targets.into_owned(),
            index: record.index.into_owned(),
            keep_source: record.keep_source,
            overwrite: record.overwrite,
            drop_expiry: record.drop_expiry,
            state: record.state,
            note: record.note.map(Cow::into_owned),
        }
    }
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EntryRecord {
            seq: self.seq,
            rule: Cow::Borrowed(&self.rule),
            source: Cow::Borrowed(&self.source),
            original: Cow::Borrowed(&self.original),
            targets: self
                .targets
                .iter()
                .map(|(key, value)| {
                    (Cow::Borrowed(key.as_str()), Some(value).filter(|v| **v != self.original.value).map(Cow::Borrowed))
                })
                .collect(),
            previous_targets: Cow::Borrowed(&self.previous_targets),
            index: Cow::Borrowed(&self.index),
            keep_source: self.keep_source,
            overwrite: self.overwrite,
            drop_expiry: self.drop_expiry,
            state: self.state,
            note: self.note.as_deref().map(Cow::Borrowed),
        }
        .serialize(serializer)
    }
}

/// What becomes of an entry after it is journaled: the part of it [`Journal::update`](crate::journal::Journal::update) writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub state: EntryState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Per index member, whether the move added it (`None`: not moved yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub added: Vec<Option<bool>>,
}

impl Outcome {
    pub(crate) fn of(entry: &Entry) -> Self {
        let added = if entry.index.iter().any(|m| m.added.is_some()) {
            entry.index.iter().map(|m| m.added).collect()
        } else {
            Vec::new()
        };
        Self { state: entry.state, note: entry.note.clone(), added }
    }

    pub(crate) fn apply_to(self, entry: &mut Entry) {
        entry.state = self.state;
        entry.note = self.note;
        for (member, added) in entry.index.iter_mut().zip(self.added) {
            member.added = added;
        }
    }
}

/// What a walk over the journal needs to decide whether to look closer at an entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EntryHead {
    pub seq: u64,
    pub source: String,
    pub state: EntryState,
    pub keep_source: bool,
}

#[cfg(test)]
impl Entry {
    /// A pending entry moving `source` (holding `original`) under `rule`, with no targets or
    /// index yet: tests fill in what they need.
    pub(crate) fn pending(seq: u64, rule: &str, source: &str, original: Stored) -> Self {
        Entry {
            seq,
            rule: rule.into(),
            source: source.into(),
            original,
            targets: Vec::new(),
            previous_targets: Vec::new(),
            index: Vec::new(),
            keep_source: false,
            overwrite: false,
            drop_expiry: false,
            state: EntryState::Pending,
            note: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_holding_the_original_is_stored_once_and_read_back_whole() {
        let original = Stored { value: TypedValue::String(r#"{"qty":"7"}"#.into()), expire_at_ms: None };
        let mut kept = Entry { previous_targets: vec![None, None], ..Entry::pending(7, "keep", "old:7", original) };
        kept.targets = vec![
            ("new:kept".into(), kept.original.value.clone()),
            ("new:other".into(), TypedValue::String("converted".into())),
        ];
        let json = serde_json::to_string(&kept).unwrap();
        assert!(json.contains(r#"["new:kept",null]"#), "{json}");
        assert_eq!(json.matches("qty").count(), 1, "the original's text is written once: {json}");
        assert_eq!(serde_json::from_str::<Entry>(&json).unwrap(), kept);

        // As journaled before: every target's value written out.
        let written_out =
            json.replace(r#"["new:kept",null]"#, r#"["new:kept",{"type":"string","value":"{\"qty\":\"7\"}"}]"#);
        assert_ne!(written_out, json);
        assert_eq!(serde_json::from_str::<Entry>(&written_out).unwrap(), kept);
    }
}
