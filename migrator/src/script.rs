//! The Lua scripts that move and restore journaled keys atomically, so a live bot writing the
//! same keys can never interleave with half a move. One script call handles a whole batch,
//! each key compared and moved (or restored) on its own, with one answer per key in order.
//! On one Redis both declare every key they touch in `KEYS`; on a Redis Cluster, or with
//! another Redis as the target, they are called per node ([`NodeScripts`]) with their keys at
//! the front of `ARGV` (common.lua), beside the cross-node protocol's steps ([`Step`]).
//!
//! **Move** — checks the source still holds exactly the journaled value (else
//! [`MoveOutcome::Changed`]), refuses a target that exists with a different value unless
//! `overwrite` ([`MoveOutcome::Conflict`]), writes the targets (with the original absolute
//! expiry, unless the rule makes them permanent), adds index members (reporting which were
//! new, so rollback removes only those; an index the move creates expires with its targets),
//! deletes the source unless `keep_source`, and answers [`MoveOutcome::Moved`]. A source
//! already gone whose targets hold the expected values is [`MoveOutcome::Already`] (a crash
//! after the move, before the journal noted it); gone with other targets, `Missing`. A single
//! target that holds the source's value unchanged (a `keep` rule) is moved by `RENAMENX`,
//! which carries the value and its expiry without copying either and checks that the target
//! is free in the same call (a target that exists is checked as any other, then `RENAME`d onto).
//!
//! **Restore** — refuses ([`RestoreOutcome::TargetChanged`]) when a target no longer holds
//! what the move wrote, unless `force`; otherwise puts back what each target held before the
//! move (or deletes it if it did not exist), removes the index members the move added, and
//! writes the original back exactly (type, value, absolute expiry) — by `RENAME` from a
//! single target checked to hold it unchanged. An entry still pending (a run killed before it
//! noted the move) may never have been moved, so its source, if it exists, holds either the
//! original or what a live writer put there since: it is left as it is.
//!
//! **Arguments.** Pushing `ARGV` into Lua costs Redis about a tenth of a microsecond per
//! string, a tenth of its whole time on a batch (measured in docs/benchmarks.md), so only
//! the keys and the values' items are strings: everything else about an entry is one binary
//! *shape* string that the script reads with `string.byte` (core Lua, unlike Redis's
//! `struct` library, so any server with Lua scripting runs it). `KEYS` holds every key in the
//! order the script uses it (an entry's source, its targets, its index keys); `ARGV` holds,
//! per entry, its shape, its expiry (only if it has one), then the items of each value in the
//! order the shape lists them. A value's items are: a string's text; a hash's field, value…;
//! a set's or list's members in order; a sorted set's member, score…. In the shape, numbers
//! are big-endian, a type is one byte (`type_code`; 0 for "the source's value, unchanged",
//! whose items are not sent again) and a count four:
//!
//! - move: `keep_source overwrite has_expiry persist type n targets (type n)… indexes`, where
//!   `persist` says the rule drops an expiry the source has (a renamed target must lose it);
//!   then per index key its member in `ARGV`.
//! - restore: `force pending has_expiry type n targets (type n has_previous [type n has_expiry])…
//!   indexes added…`, one `added` byte per index member (remove it: the move added it).
//!
//! The answer is one string per entry, a word and its details: `moved` followed by `1` or `0`
//! per index member (whether it was new), `already`, `changed`, `missing`, `conflict T`;
//! `restored`, `target_changed T`, where `T` is the target's place among the entry's targets
//! (from 1). Flat strings, because turning a table per entry into Redis's reply cost Redis
//! more than some of the moves.
//! (Redis's `cjson.decode` of a JSON document per key cost ~7 µs, more than the move.)
//!
//! One file past ~600 lines on purpose: the scripts' calling convention (argument layout,
//! outcome strings) is one contract between this Rust and the Lua beside it, and split apart
//! its two ends would drift.

use std::borrow::Borrow;

use edgesync_core::store::{Command, Reply, ReplyShapeError, Store, StoreError};

use crate::entry::{Entry, EntryState};
use crate::value::{Stored, TypedValue};

// The Lua lives in files of its own, to be read as Lua; each script is loaded as `COMMON`
// followed by its own part.
const COMMON: &str = include_str!("script/common.lua");
const MOVE_MANY: &str = include_str!("script/move_many.lua");
const RESTORE_MANY: &str = include_str!("script/restore_many.lua");
const CROSS_NODE: &str = include_str!("script/cross_node.lua");
/// What lets a script called on one node of a Redis Cluster touch keys of several of its slots
/// (Redis 7.0 and later); without it every key of a call must share one slot.
const CROSS_SLOT: &str = "#!lua flags=allow-cross-slot-keys";

/// The scripts' SHA1s once loaded (`SCRIPT LOAD`), so a batch sends `EVALSHA` and its
/// arguments rather than the whole script body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scripts {
    pub move_sha: String,
    pub restore_sha: String,
}

impl Scripts {
    /// Loads both scripts; call again after a `NOSCRIPT` error (Redis restarted or flushed
    /// its script cache).
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let [move_sha, restore_sha] = load_scripts(store, "", [MOVE_MANY, RESTORE_MANY]).await?;
        Ok(Self { move_sha, restore_sha })
    }
}

/// The scripts a Redis Cluster runs, loaded on every master: the move and the restore for
/// entries whose keys all live on one node, and the steps of the cross-node protocol
/// ([`crate::cluster::moves`]). Each is called per node, its keys in `ARGV` (see common.lua).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScripts {
    pub move_sha: String,
    pub restore_sha: String,
    pub cross_sha: String,
}

impl NodeScripts {
    /// Loads the three scripts (a `SCRIPT LOAD` goes to every master); call again after a
    /// `NOSCRIPT` error.
    pub async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let header = format!("{CROSS_SLOT}\n");
        let [move_sha, restore_sha, cross_sha] =
            load_scripts(store, &header, [MOVE_MANY, RESTORE_MANY, CROSS_NODE]).await?;
        Ok(Self { move_sha, restore_sha, cross_sha })
    }
}

/// `SCRIPT LOAD`s each script — `header`, `COMMON`, then its own part — in one pipeline; their
/// SHA1s in order.
async fn load_scripts<const N: usize>(
    store: &dyn Store,
    header: &str,
    scripts: [&str; N],
) -> Result<[String; N], StoreError> {
    let commands = scripts.map(|script| Command::new("SCRIPT").arg("LOAD").arg(format!("{header}{COMMON}\n{script}")));
    let shas = store
        .pipeline(&commands)
        .await?
        .into_iter()
        .map(|reply| match reply {
            Ok(reply) => reply.into_string().map_err(|error| StoreError::UnexpectedReply {
                command: "SCRIPT LOAD".into(),
                detail: error.to_string(),
            }),
            Err(error) => Err(StoreError::Command { command: "SCRIPT LOAD".into(), error }),
        })
        .collect::<Result<Vec<String>, StoreError>>()?;
    shas.try_into().map_err(|shas: Vec<String>| StoreError::UnexpectedReply {
        command: "SCRIPT LOAD".into(),
        detail: format!("{} replies for {N} scripts", shas.len()),
    })
}

/// True for the error Redis gives when a script is not in its cache.
pub fn is_noscript(error: &str) -> bool {
    error.starts_with("NOSCRIPT")
}

/// A script call's `reply` — or, when Redis had lost its script cache (a restart, `SCRIPT
/// FLUSH`), the reply of the call built again by `call` after loading the scripts anew. Safe
/// to resend: a move that ran before answers `already`, a restore writes the same original.
pub async fn reloading_if_lost(
    store: &dyn Store,
    reply: Result<Reply, StoreError>,
    scripts: &mut Scripts,
    call: impl Fn(&Scripts) -> Command,
) -> Result<Reply, StoreError> {
    match &reply {
        Err(StoreError::Command { error, .. }) if is_noscript(&error.0) => {
            *scripts = Scripts::load(store).await?;
            store.execute(&call(scripts)).await
        }
        _ => reply,
    }
}

/// What the move script did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    /// Moved; per index member, whether it was new.
    Moved { added: Vec<bool> },
    /// The source is gone and the targets hold its conversion: moved before.
    Already,
    /// The source no longer holds the journaled value; nothing was written.
    Changed,
    /// This target holds a different value; nothing was written.
    Conflict { target: String },
    /// The source is gone and the targets do not hold its conversion.
    Missing,
    /// On a cluster: a key of the entry is served by another node than the one called (the
    /// slot moved); nothing was written.
    Elsewhere,
}

/// What the restore script did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreOutcome {
    Restored,
    /// This target changed after the migration; nothing was written.
    TargetChanged {
        target: String,
    },
    /// On a cluster: a key of the entry is served by another node than the one called;
    /// nothing was written.
    Elsewhere,
}

/// A value's type in a shape: its place in the scripts' `KINDS` (0 is "the source's value").
fn type_code(value: &TypedValue) -> u8 {
    match value {
        TypedValue::String(_) => 1,
        TypedValue::Hash(_) => 2,
        TypedValue::Set(_) => 3,
        TypedValue::Zset(_) => 4,
        TypedValue::List(_) => 5,
    }
}

/// One entry's shape: its flags, types and counts as bytes, in the order the module doc lists.
#[derive(Default)]
struct Shape(Vec<u8>);

impl Shape {
    fn flag(&mut self, on: bool) {
        self.0.push(u8::from(on));
    }

    fn count(&mut self, n: usize) {
        // Redis refuses a command of more than i32::MAX arguments before any script runs, so
        // a count too large for four bytes is never read.
        self.0.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
    }

    /// The source's value, whose items follow in `ARGV`: its type and count.
    fn source(&mut self, value: &TypedValue) {
        self.0.push(type_code(value));
        self.count(value.item_count());
    }

    /// A value whose items follow in `ARGV` (type and count), or the source's value.
    fn value(&mut self, value: &TypedValue, source: &TypedValue) -> bool {
        let unchanged = value == source;
        self.0.push(if unchanged { 0 } else { type_code(value) });
        self.count(if unchanged { 0 } else { value.item_count() });
        !unchanged
    }
}

/// The keys and strings of one call.
#[derive(Default)]
struct Arguments {
    keys: Vec<String>,
    argv: Vec<Vec<u8>>,
}

impl Arguments {
    fn key(&mut self, key: &str) {
        self.keys.push(key.to_owned());
    }

    fn text(&mut self, text: &str) {
        self.argv.push(text.as_bytes().to_vec());
    }

    /// An expiry is sent only if there is one (its shape says which).
    fn time(&mut self, at_ms: Option<i64>) {
        if let Some(ms) = at_ms {
            self.argv.push(ms.to_string().into_bytes());
        }
    }

    fn items(&mut self, value: &TypedValue) {
        match value {
            TypedValue::String(text) => self.text(text),
            TypedValue::Hash(fields) => fields.iter().for_each(|(field, value)| {
                self.text(field);
                self.text(value);
            }),
            TypedValue::Set(members) => members.iter().for_each(|m| self.text(m)),
            TypedValue::Zset(items) => items.iter().for_each(|(member, score)| {
                self.text(member);
                self.text(score);
            }),
            TypedValue::List(items) => items.iter().for_each(|item| self.text(item)),
        }
    }

    /// Adds an entry whose shape is known only once its arguments are: `build` writes both.
    fn entry(&mut self, build: impl FnOnce(&mut Self, &mut Shape)) {
        let at = self.argv.len();
        self.argv.push(Vec::new());
        let mut shape = Shape::default();
        build(self, &mut shape);
        self.argv[at] = shape.0;
    }

    fn command(self, sha: &str) -> Command {
        let declared = self.keys.len();
        self.after(Command::new("EVALSHA").arg(sha).arg(declared))
    }

    /// The call for one node of a cluster: no declared key, the keys first in `ARGV` after
    /// their count (common.lua).
    fn node_command(self, sha: &str) -> Command {
        let count = self.keys.len();
        self.after(Command::new("EVALSHA").arg(sha).arg(0).arg(count))
    }

    /// `command` followed by the keys, then the other arguments.
    fn after(self, mut command: Command) -> Command {
        command.reserve(self.keys.len() + self.argv.len());
        for key in self.keys {
            command.push_arg(key);
        }
        for arg in self.argv {
            command.push_arg(arg);
        }
        command
    }
}

/// The moves of journaled entries in one script call; [`move_outcomes`] reads its answer.
pub fn move_many_command(entries: &[Entry], scripts: &Scripts) -> Command {
    move_arguments(entries).command(&scripts.move_sha)
}

/// The move of `entries` whose keys all live on one cluster node, for that node.
pub fn move_many_on_node(entries: &[&Entry], scripts: &NodeScripts) -> Command {
    move_arguments(entries.iter().copied()).node_command(&scripts.move_sha)
}

fn move_arguments<'e>(entries: impl IntoIterator<Item = &'e Entry>) -> Arguments {
    let mut args = Arguments::default();
    for entry in entries {
        args.entry(|args, shape| {
            let original = &entry.original;
            let expire_at = if entry.drop_expiry { None } else { original.expire_at_ms };
            shape.flag(entry.keep_source);
            shape.flag(entry.overwrite);
            shape.flag(expire_at.is_some());
            shape.flag(entry.drop_expiry && original.expire_at_ms.is_some());
            shape.source(&original.value);
            shape.count(entry.targets.len());
            args.time(expire_at);
            args.key(&entry.source);
            args.items(&original.value);
            for (key, value) in &entry.targets {
                args.key(key);
                if shape.value(value, &original.value) {
                    args.items(value);
                }
            }
            shape.count(entry.index.len());
            for member in &entry.index {
                args.key(&member.key);
                args.text(&member.member);
            }
        });
    }
    args
}

/// The restores of journaled entries in one script call; [`restore_outcomes`] reads its
/// answer.
pub fn restore_many_command(entries: &[Entry], force: bool, scripts: &Scripts) -> Command {
    restore_arguments(entries, force).command(&scripts.restore_sha)
}

/// The restore of `entries` whose keys all live on one cluster node, for that node.
pub fn restore_many_on_node(entries: &[&Entry], force: bool, scripts: &NodeScripts) -> Command {
    restore_arguments(entries.iter().copied(), force).node_command(&scripts.restore_sha)
}

fn restore_arguments<'e>(entries: impl IntoIterator<Item = &'e Entry>, force: bool) -> Arguments {
    let mut args = Arguments::default();
    for entry in entries {
        args.entry(|args, shape| {
            let original = &entry.original;
            shape.flag(force);
            shape.flag(entry.state == EntryState::Pending);
            shape.flag(original.expire_at_ms.is_some());
            shape.source(&original.value);
            shape.count(entry.targets.len());
            args.time(original.expire_at_ms);
            args.key(&entry.source);
            args.items(&original.value);
            for (i, (key, value)) in entry.targets.iter().enumerate() {
                args.key(key);
                if shape.value(value, &original.value) {
                    args.items(value);
                }
                let previous = entry.previous_targets.get(i).and_then(Option::as_ref);
                shape.flag(previous.is_some());
                if let Some(Stored { value, expire_at_ms }) = previous {
                    if shape.value(value, &original.value) {
                        args.items(value);
                    }
                    shape.flag(expire_at_ms.is_some());
                    args.time(*expire_at_ms);
                }
            }
            shape.count(entry.index.len());
            for member in &entry.index {
                args.key(&member.key);
                args.text(&member.member);
            }
            for member in &entry.index {
                shape.flag(member.added == Some(true));
            }
        });
    }
    args
}

/// One step of the cross-node protocol ([`crate::cluster::moves`]) on one key, as
/// cross_node.lua runs it. Every step is safe to run again.
#[derive(Debug, Clone, Copy)]
pub enum Step<'a> {
    /// Write a target if it is absent or already holds `value` (else `conflict`), unless
    /// `overwrite`. Answers `written`, `equal` or `conflict`.
    Put { key: &'a str, value: &'a TypedValue, expire_at_ms: Option<i64>, overwrite: bool },
    /// Delete the source — or write `replacement` over it, a target of the same name — only if
    /// it holds `original`; `keep` leaves it. Answers `taken`, `kept`, `changed` or `missing`.
    Take {
        key: &'a str,
        original: &'a TypedValue,
        keep: bool,
        replacement: Option<&'a TypedValue>,
        expire_at_ms: Option<i64>,
    },
    /// Put back `previous` (or delete) where the key still holds `written` (any value when
    /// `force`). Answers `removed`, `absent` or `changed`.
    Unput { key: &'a str, written: &'a TypedValue, previous: Option<&'a Stored>, force: bool },
    /// `SADD`; an index it creates expires at `expire_at_ms`. Answers `1` (new) or `0`.
    Add { key: &'a str, member: &'a str, expire_at_ms: Option<i64> },
    /// `SREM`. Answers `removed`.
    Remove { key: &'a str, member: &'a str },
    /// `SISMEMBER`. Answers `1` or `0`.
    IsMember { key: &'a str, member: &'a str },
    /// Whether the key (a target) holds `value`: `equal`, `absent` or `differs`.
    Check { key: &'a str, value: &'a TypedValue },
    /// The same question of a source, asked where the sources are.
    CheckSource { key: &'a str, value: &'a TypedValue },
    /// Write the value whatever the key holds — or, `if_absent`, only where the key does not
    /// exist. Answers `written` (or `kept`).
    Write { key: &'a str, value: &'a TypedValue, expire_at_ms: Option<i64>, if_absent: bool },
}

impl Step<'_> {
    pub fn key(&self) -> &str {
        match self {
            Step::Put { key, .. }
            | Step::Take { key, .. }
            | Step::Unput { key, .. }
            | Step::Add { key, .. }
            | Step::Remove { key, .. }
            | Step::IsMember { key, .. }
            | Step::Check { key, .. }
            | Step::CheckSource { key, .. }
            | Step::Write { key, .. } => key,
        }
    }
}

/// The steps for one node in one call of the cross-node script; [`step_answers`] reads its
/// answer. Each step's shape starts with its operation (the numbers in cross_node.lua).
pub fn cross_node_command(steps: &[Step<'_>], scripts: &NodeScripts) -> Command {
    let mut args = Arguments::default();
    for step in steps {
        args.key(step.key());
        args.entry(|args, shape| match *step {
            Step::Put { value, expire_at_ms, overwrite, .. } => {
                shape.0.push(1);
                shape.flag(overwrite);
                shape.flag(expire_at_ms.is_some());
                shape.source(value);
                args.time(expire_at_ms);
                args.items(value);
            }
            Step::Take { original, keep, replacement, expire_at_ms, .. } => {
                shape.0.push(2);
                shape.flag(keep);
                shape.source(original);
                args.items(original);
                shape.flag(replacement.is_some());
                if let Some(replacement) = replacement {
                    shape.source(replacement);
                    args.items(replacement);
                }
                shape.flag(expire_at_ms.is_some());
                args.time(expire_at_ms);
            }
            Step::Unput { written, previous, force, .. } => {
                shape.0.push(3);
                shape.flag(force);
                shape.source(written);
                args.items(written);
                shape.flag(previous.is_some());
                if let Some(Stored { value, expire_at_ms }) = previous {
                    shape.source(value);
                    args.items(value);
                    shape.flag(expire_at_ms.is_some());
                    args.time(*expire_at_ms);
                }
            }
            Step::Add { member, expire_at_ms, .. } => {
                shape.0.push(4);
                shape.flag(expire_at_ms.is_some());
                args.text(member);
                args.time(expire_at_ms);
            }
            Step::Remove { member, .. } => {
                shape.0.push(5);
                args.text(member);
            }
            Step::Check { value, .. } | Step::CheckSource { value, .. } => {
                shape.0.push(6);
                shape.source(value);
                args.items(value);
            }
            Step::Write { value, expire_at_ms, if_absent, .. } => {
                shape.0.push(7);
                shape.source(value);
                shape.flag(expire_at_ms.is_some());
                shape.flag(if_absent);
                args.items(value);
                args.time(expire_at_ms);
            }
            Step::IsMember { member, .. } => {
                shape.0.push(8);
                args.text(member);
            }
        });
    }
    args.node_command(&scripts.cross_sha)
}

/// An answer of a script that this migrator cannot read: the script and the code that called
/// it disagree (nothing a retry mends). The step stops; what the journal holds is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptAnswerError {
    /// Not one answer per key or step, as a list.
    #[error("script answered {0:?}")]
    NotAList(Reply),
    /// A list of another length than the keys or steps the call carried.
    #[error("{answers} answers for {asked} {what}")]
    Count { answers: usize, asked: usize, what: &'static str },
    /// An answer that is not text.
    #[error(transparent)]
    NotText(#[from] ReplyShapeError),
    /// A status word this migrator does not know (`call`: `move` or `restore`).
    #[error("unknown {call} status {status:?}")]
    UnknownStatus { call: &'static str, status: String },
    /// A target place (from 1) the entry does not have.
    #[error("the script named target {place:?} of {key}")]
    NoSuchTarget { place: String, key: String },
}

/// The answers of a [`cross_node_command`] of `steps` steps, one word each.
pub fn step_answers(reply: Reply, steps: usize) -> Result<Vec<String>, ScriptAnswerError> {
    let Reply::Array(items) = reply else { return Err(ScriptAnswerError::NotAList(reply)) };
    if items.len() != steps {
        return Err(ScriptAnswerError::Count { answers: items.len(), asked: steps, what: "steps" });
    }
    Ok(items.into_iter().map(Reply::into_string).collect::<Result<_, _>>()?)
}

/// Each entry's answer, split into its word and the rest.
fn answers<E: Borrow<Entry>>(reply: Reply, entries: &[E]) -> Result<Vec<(&Entry, String, String)>, ScriptAnswerError> {
    let Reply::Array(items) = reply else { return Err(ScriptAnswerError::NotAList(reply)) };
    if items.len() != entries.len() {
        return Err(ScriptAnswerError::Count { answers: items.len(), asked: entries.len(), what: "keys" });
    }
    entries
        .iter()
        .zip(items)
        .map(|(entry, item)| {
            let entry = entry.borrow();
            let text = item.into_string()?;
            let (word, details) = text.split_once(' ').unwrap_or((&text, ""));
            Ok((entry, word.to_owned(), details.to_owned()))
        })
        .collect()
}

/// The key of the target the script named by its place (from 1) among the entry's.
fn target_at(entry: &Entry, place: &str) -> Result<String, ScriptAnswerError> {
    place
        .parse::<usize>()
        .ok()
        .and_then(|place| entry.targets.get(place.checked_sub(1)?))
        .map(|(key, _)| key.clone())
        .ok_or_else(|| ScriptAnswerError::NoSuchTarget { place: place.to_owned(), key: entry.source.clone() })
}

/// The answer of a [`move_many_command`] for `entries`, in entry order.
pub fn move_outcomes<E: Borrow<Entry>>(reply: Reply, entries: &[E]) -> Result<Vec<MoveOutcome>, ScriptAnswerError> {
    answers(reply, entries)?
        .into_iter()
        .map(|(entry, word, details)| match word.as_str() {
            "moved" => Ok(MoveOutcome::Moved { added: details.split_whitespace().map(|added| added == "1").collect() }),
            "already" => Ok(MoveOutcome::Already),
            "changed" => Ok(MoveOutcome::Changed),
            "missing" => Ok(MoveOutcome::Missing),
            "elsewhere" => Ok(MoveOutcome::Elsewhere),
            "conflict" => Ok(MoveOutcome::Conflict { target: target_at(entry, &details)? }),
            other => Err(ScriptAnswerError::UnknownStatus { call: "move", status: other.to_owned() }),
        })
        .collect()
}

/// The answer of a [`restore_many_command`] for `entries`, in entry order.
pub fn restore_outcomes<E: Borrow<Entry>>(
    reply: Reply,
    entries: &[E],
) -> Result<Vec<RestoreOutcome>, ScriptAnswerError> {
    answers(reply, entries)?
        .into_iter()
        .map(|(entry, word, details)| match word.as_str() {
            "restored" => Ok(RestoreOutcome::Restored),
            "elsewhere" => Ok(RestoreOutcome::Elsewhere),
            "target_changed" => Ok(RestoreOutcome::TargetChanged { target: target_at(entry, &details)? }),
            other => Err(ScriptAnswerError::UnknownStatus { call: "restore", status: other.to_owned() }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use edgesync_core::store::{Command, Reply, Store};
    use futures_executor::block_on;

    use super::*;
    use crate::entry::IndexMember;
    use crate::test_redis::TestRedis;
    use crate::value::read_many;

    const FAR: i64 = 4_102_444_800_000; // 2100-01-01, an expiry that never passes in a test

    fn string(text: &str) -> TypedValue {
        TypedValue::String(text.to_owned())
    }

    fn hash(pairs: &[(&str, &str)]) -> TypedValue {
        TypedValue::Hash(pairs.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect::<BTreeMap<_, _>>())
    }

    fn entry(source: &str, original: TypedValue, expire_at_ms: Option<i64>, targets: Vec<(&str, TypedValue)>) -> Entry {
        let targets = targets.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Entry { targets, ..Entry::pending(0, "test", source, Stored { value: original, expire_at_ms }) }
    }

    fn write(store: &dyn Store, key: &str, value: &TypedValue, expire_at_ms: Option<i64>) {
        let mut commands = value.write_commands(key);
        if let Some(at) = expire_at_ms {
            commands.push(Command::new("PEXPIREAT").arg(key).arg(at));
        }
        block_on(store.pipeline(&commands)).unwrap();
    }

    fn read(store: &dyn Store, key: &str) -> Option<Stored> {
        block_on(read_many(store, &[key.to_owned()])).unwrap().remove(0)
    }

    fn moves(store: &dyn Store, entries: &[Entry]) -> Vec<MoveOutcome> {
        let scripts = block_on(Scripts::load(store)).unwrap();
        let reply = block_on(store.execute(&move_many_command(entries, &scripts))).unwrap();
        move_outcomes(reply, entries).unwrap()
    }

    fn restores(store: &dyn Store, entries: &[Entry], force: bool) -> Vec<RestoreOutcome> {
        let scripts = block_on(Scripts::load(store)).unwrap();
        let reply = block_on(store.execute(&restore_many_command(entries, force, &scripts))).unwrap();
        restore_outcomes(reply, entries).unwrap()
    }

    /// An expiry read back through PTTL: within a second of the one written.
    fn close(read: Option<i64>, written: Option<i64>) -> bool {
        match (read, written) {
            (Some(a), Some(b)) => (a - b).abs() <= 1000,
            (a, b) => a == b,
        }
    }

    #[test]
    fn one_call_answers_each_key_on_its_own_moved_changed_conflict_already_missing() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        let position = r#"{"side":"long","qty":"1.5"}"#;
        let converted = hash(&[("side", "long"), ("qty", "1.5")]);

        // moved: a string source with an expiry becomes a hash target and an index member.
        write(store, "old:moved", &string(position), Some(FAR));
        let mut moved = entry("old:moved", string(position), Some(FAR), vec![("new:moved", converted.clone())]);
        moved.index = vec![IndexMember { key: "new:index".into(), member: "moved".into(), added: None }];
        // changed: a live writer changed the source after it was journaled.
        write(store, "old:changed", &string(r#"{"side":"long","qty":"2"}"#), None);
        let changed = entry("old:changed", string(position), None, vec![("new:changed", converted.clone())]);
        // conflict: the target holds something else.
        write(store, "old:conflict", &string(position), None);
        write(store, "new:conflict", &hash(&[("qty", "9")]), None);
        let conflict = entry("old:conflict", string(position), None, vec![("new:conflict", converted.clone())]);
        // already: moved before (the source is gone, the target holds the conversion).
        write(store, "new:already", &converted, None);
        let already = entry("old:already", string(position), None, vec![("new:already", converted.clone())]);
        // missing: the source is gone and the target does not hold its conversion.
        let missing = entry("old:missing", string(position), None, vec![("new:missing", converted.clone())]);

        let outcomes = moves(store, &[moved, changed, conflict, already, missing]);
        assert_eq!(
            outcomes,
            vec![
                MoveOutcome::Moved { added: vec![true] },
                MoveOutcome::Changed,
                MoveOutcome::Conflict { target: "new:conflict".into() },
                MoveOutcome::Already,
                MoveOutcome::Missing,
            ]
        );
        let target = read(store, "new:moved").expect("the target was written");
        assert_eq!(target.value, converted);
        assert!(close(target.expire_at_ms, Some(FAR)), "the original's expiry: {:?}", target.expire_at_ms);
        assert_eq!(read(store, "old:moved"), None, "the source is deleted");
        let index = read(store, "new:index").expect("the index was created");
        assert_eq!(index.value, TypedValue::Set(BTreeSet::from(["moved".to_owned()])));
        assert!(close(index.expire_at_ms, Some(FAR)), "a new index expires with its targets");
        // Nothing of the refused moves was written or deleted.
        assert_eq!(read(store, "old:changed").unwrap().value, string(r#"{"side":"long","qty":"2"}"#));
        assert_eq!(read(store, "new:changed"), None);
        assert_eq!(read(store, "old:conflict").unwrap().value, string(position));
        assert_eq!(read(store, "new:conflict").unwrap().value, hash(&[("qty", "9")]));
        assert_eq!(read(store, "new:missing"), None);
    }

    #[test]
    fn overwrite_replaces_a_conflicting_target_and_keep_source_keeps_the_source() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        write(store, "old:a", &string("1"), None);
        write(store, "new:a", &string("other"), None);
        let mut overwrite = entry("old:a", string("1"), None, vec![("new:a", string("1"))]);
        overwrite.overwrite = true;
        write(store, "old:b", &string("2"), Some(FAR));
        let mut keep = entry("old:b", string("2"), Some(FAR), vec![("new:b", string("2"))]);
        keep.keep_source = true;
        keep.drop_expiry = true;
        let outcomes = moves(store, &[overwrite, keep]);
        assert_eq!(outcomes, vec![MoveOutcome::Moved { added: vec![] }, MoveOutcome::Moved { added: vec![] }]);
        assert_eq!(read(store, "new:a").unwrap().value, string("1"));
        assert_eq!(read(store, "old:a"), None);
        assert_eq!(read(store, "old:b").unwrap().value, string("2"), "kept");
        assert_eq!(read(store, "new:b").unwrap().expire_at_ms, None, "the rule made the target permanent");
    }

    #[test]
    fn every_type_moves_and_restores_exactly() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        let values = [
            string("text with spaces and \"quotes\""),
            hash(&[("a", "1"), ("b", "")]),
            TypedValue::Set(["x", "y", "z"].iter().map(|s| s.to_string()).collect()),
            TypedValue::Zset(vec![("m2".into(), "-3".into()), ("m1".into(), "1.5".into())]), // as ZRANGE reads it
            TypedValue::List(vec!["b".into(), "a".into(), "b".into()]),
        ];
        let mut entries = Vec::new();
        for (i, value) in values.iter().enumerate() {
            let source = format!("old:{i}");
            let expire = (i % 2 == 0).then_some(FAR);
            write(store, &source, value, expire);
            let mut e = entry(&source, value.clone(), expire, vec![]);
            e.targets = vec![(format!("new:{i}"), value.clone())];
            e.previous_targets = vec![None];
            e.index = vec![IndexMember { key: "new:index".into(), member: format!("m{i}"), added: None }];
            entries.push(e);
        }
        // One target existed before (with --overwrite): rollback puts it back.
        write(store, "new:0", &string("before"), None);
        entries[0].overwrite = true;
        entries[0].previous_targets = vec![Some(Stored { value: string("before"), expire_at_ms: None })];
        // One index member existed before: rollback leaves it.
        write(store, "new:index", &TypedValue::Set(BTreeSet::from(["m4".to_owned()])), None);

        let outcomes = moves(store, &entries);
        for (i, outcome) in outcomes.iter().enumerate() {
            assert_eq!(*outcome, MoveOutcome::Moved { added: vec![i != 4] }, "entry {i}");
            assert_eq!(read(store, &format!("new:{i}")).unwrap().value, values[i], "target {i}");
            assert_eq!(read(store, &format!("old:{i}")), None, "source {i}");
        }
        for (entry, outcome) in entries.iter_mut().zip(&outcomes) {
            let MoveOutcome::Moved { added } = outcome else { unreachable!() };
            entry.index[0].added = Some(added[0]);
        }

        entries.reverse(); // rollback order: newest first
        assert!(restores(store, &entries, false).iter().all(|o| *o == RestoreOutcome::Restored));
        for (i, value) in values.iter().enumerate() {
            let original = read(store, &format!("old:{i}")).expect("restored");
            assert_eq!(original.value, *value, "original {i}");
            assert!(close(original.expire_at_ms, (i % 2 == 0).then_some(FAR)), "expiry of {i}");
        }
        assert_eq!(read(store, "new:0").unwrap().value, string("before"), "the previous target is back");
        for i in 1..values.len() {
            assert_eq!(read(store, &format!("new:{i}")), None, "target {i} removed");
        }
        assert_eq!(
            read(store, "new:index").unwrap().value,
            TypedValue::Set(BTreeSet::from(["m4".to_owned()])),
            "only the members the move added are removed"
        );
    }

    /// How many times Redis ran `command` (scripts' calls included).
    fn calls(store: &dyn Store, command: &str) -> i64 {
        let info = block_on(store.execute(&Command::new("INFO").arg("commandstats"))).unwrap().into_string().unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
            .unwrap_or(0)
    }

    #[test]
    fn an_unchanged_single_target_is_renamed_keeping_or_dropping_the_expiry_as_the_rule_says() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        let orders = hash(&[("12345.5", "true"), ("12400", "false")]);
        write(store, "old:kept", &orders, Some(FAR));
        let mut kept = entry("old:kept", orders.clone(), Some(FAR), vec![("new:kept", orders.clone())]);
        write(store, "old:dropped", &string("v"), Some(FAR));
        let mut dropped = entry("old:dropped", string("v"), Some(FAR), vec![("new:dropped", string("v"))]);
        dropped.drop_expiry = true;
        write(store, "old:deleted", &string("w"), None);
        let mut deleted = entry("old:deleted", string("w"), None, vec![("new:deleted", string("w"))]);
        for e in [&mut kept, &mut dropped, &mut deleted] {
            e.previous_targets = vec![None];
        }
        let entries = [kept, dropped, deleted];
        let deletes = calls(store, "del");

        assert_eq!(moves(store, &entries), vec![MoveOutcome::Moved { added: vec![] }; 3]);
        assert_eq!(calls(store, "renamenx"), 3, "each move onto a free target is one RENAMENX");
        assert_eq!(calls(store, "rename"), 0, "and needs nothing more");
        assert_eq!(calls(store, "del"), deletes, "no source deleted or target emptied by hand");
        let target = read(store, "new:kept").unwrap();
        assert_eq!(target.value, orders);
        assert!(close(target.expire_at_ms, Some(FAR)), "the expiry moves with the key: {:?}", target.expire_at_ms);
        assert_eq!(read(store, "new:dropped").unwrap(), Stored { value: string("v"), expire_at_ms: None });
        assert_eq!(read(store, "old:kept"), None);
        assert_eq!(read(store, "old:dropped"), None);

        // A target deleted since the move cannot be renamed back: the journal's value is written.
        block_on(store.execute(&Command::new("DEL").arg("new:deleted"))).unwrap();
        let mut newest_first = entries.to_vec();
        newest_first.reverse();
        assert_eq!(restores(store, &newest_first, false), vec![RestoreOutcome::Restored; 3]);
        assert_eq!(calls(store, "rename"), 2, "the two targets still there are renamed back");
        let original = read(store, "old:kept").unwrap();
        assert_eq!(original.value, orders);
        assert!(close(original.expire_at_ms, Some(FAR)));
        let original = read(store, "old:dropped").unwrap();
        assert_eq!(original.value, string("v"));
        assert!(close(original.expire_at_ms, Some(FAR)), "the original's expiry is back: {:?}", original.expire_at_ms);
        assert_eq!(read(store, "old:deleted").unwrap(), Stored { value: string("w"), expire_at_ms: None });
        for key in ["new:kept", "new:dropped", "new:deleted"] {
            assert_eq!(read(store, key), None, "{key} is gone");
        }
    }

    #[test]
    fn a_rename_onto_an_existing_target_moves_only_when_it_holds_the_same_value() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        for (source, target, held) in [("old:equal", "new:equal", "v"), ("old:clash", "new:clash", "other")] {
            write(store, source, &string("v"), Some(FAR));
            write(store, target, &string(held), None);
        }
        let mut equal = entry("old:equal", string("v"), Some(FAR), vec![("new:equal", string("v"))]);
        equal.previous_targets = vec![Some(Stored { value: string("v"), expire_at_ms: None })];
        let clash = entry("old:clash", string("v"), Some(FAR), vec![("new:clash", string("v"))]);

        assert_eq!(
            moves(store, &[equal, clash]),
            vec![MoveOutcome::Moved { added: vec![] }, MoveOutcome::Conflict { target: "new:clash".into() }]
        );
        assert_eq!(read(store, "old:equal"), None);
        let moved = read(store, "new:equal").unwrap();
        assert_eq!(moved.value, string("v"));
        assert!(close(moved.expire_at_ms, Some(FAR)), "the source's expiry came along: {:?}", moved.expire_at_ms);
        assert_eq!(read(store, "old:clash").unwrap().value, string("v"), "a refused source stays");
        assert_eq!(read(store, "new:clash").unwrap(), Stored { value: string("other"), expire_at_ms: None });
    }

    #[test]
    fn restore_refuses_a_target_changed_since_the_move_unless_forced() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        write(store, "old:a", &string("1"), None);
        let mut moved = entry("old:a", string("1"), None, vec![("new:a", string("1"))]);
        moved.previous_targets = vec![None];
        assert_eq!(moves(store, std::slice::from_ref(&moved)), vec![MoveOutcome::Moved { added: vec![] }]);
        write(store, "new:a", &string("edited by the new bot"), None);

        let refused = restores(store, std::slice::from_ref(&moved), false);
        assert_eq!(refused, vec![RestoreOutcome::TargetChanged { target: "new:a".into() }]);
        assert_eq!(read(store, "old:a"), None, "nothing restored");
        assert_eq!(read(store, "new:a").unwrap().value, string("edited by the new bot"));

        assert_eq!(restores(store, &[moved], true), vec![RestoreOutcome::Restored]);
        assert_eq!(read(store, "old:a").unwrap().value, string("1"));
        assert_eq!(read(store, "new:a"), None);
    }

    #[test]
    fn a_pending_entry_gets_its_original_back_only_where_the_source_is_gone() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        // Journaled, then the run was killed before its move; a writer updated the source since.
        let never_moved = entry("old:p", string("1"), None, vec![("new:p", string("1"))]);
        write(store, "old:p", &string("2, the writer's"), None);
        // Journaled and moved, the outcome lost in the crash: the source is gone.
        write(store, "old:q", &string("1"), None);
        let moved = entry("old:q", string("1"), None, vec![("new:q", string("1"))]);
        assert_eq!(moves(store, std::slice::from_ref(&moved)), vec![MoveOutcome::Moved { added: vec![] }]);
        assert_eq!(moved.state, EntryState::Pending);

        assert_eq!(restores(store, &[never_moved, moved.clone()], false), vec![RestoreOutcome::Restored; 2]);
        assert_eq!(read(store, "old:p").unwrap().value, string("2, the writer's"), "the writer's update is kept");
        assert_eq!(read(store, "new:p"), None);
        assert_eq!(read(store, "old:q").unwrap().value, string("1"), "the moved original is back");
        assert_eq!(read(store, "new:q"), None);

        // A done entry's original is written back whatever the source holds (the move took it).
        let done = Entry { state: EntryState::Done, ..moved };
        write(store, "old:q", &string("recreated"), None);
        assert_eq!(restores(store, &[done], false), vec![RestoreOutcome::Restored]);
        assert_eq!(read(store, "old:q").unwrap().value, string("1"));
    }

    #[test]
    fn a_lost_script_cache_is_loaded_again_and_the_call_resent() {
        let redis = TestRedis::start();
        let store = redis.store();
        let store = store.as_ref();
        write(store, "s", &string("v"), None);
        let entries = vec![entry("s", string("v"), None, vec![("t", string("v"))])];
        let mut scripts = block_on(Scripts::load(store)).unwrap();
        block_on(store.execute(&Command::new("SCRIPT").arg("FLUSH"))).unwrap();
        let lost = block_on(store.execute(&move_many_command(&entries, &scripts)));
        assert!(matches!(&lost, Err(StoreError::Command { error, .. }) if is_noscript(&error.0)), "{lost:?}");
        let reply = block_on(reloading_if_lost(store, lost, &mut scripts, |s| move_many_command(&entries, s))).unwrap();
        assert_eq!(move_outcomes(reply, &entries).unwrap(), vec![MoveOutcome::Moved { added: Vec::new() }]);
        assert_eq!(read(store, "t").map(|stored| stored.value), Some(string("v")));
        assert_eq!(read(store, "s"), None);
    }

    #[test]
    fn an_unknown_answer_is_an_error_not_a_guess() {
        let one = [entry("s", string("v"), None, vec![("t", string("v"))])];
        let answer = |words: &[&str]| Reply::Array(words.iter().map(|w| Reply::bulk(*w)).collect());
        assert_eq!(
            move_outcomes(answer(&["conflict 1"]), &one).unwrap(),
            vec![MoveOutcome::Conflict { target: "t".into() }]
        );
        assert!(move_outcomes(answer(&["exploded"]), &one).is_err());
        assert!(move_outcomes(answer(&["conflict 2"]), &one).is_err(), "a target the entry does not have");
        assert!(move_outcomes(answer(&["conflict 0"]), &one).is_err());
        assert!(move_outcomes(answer(&[]), &one).is_err(), "one answer per key");
        assert!(restore_outcomes(Reply::Int(1), &one).is_err());
        assert!(restore_outcomes(answer(&["target_changed x"]), &one).is_err());
    }
}
