//! Migration rules: which legacy keys move where, and how their values convert.
//!
//! A [`RuleSet`] is a TOML file ([`file`](mod@file)): its rules in match order, where its targets go
//! (in place, or under `{namespace}:v1:`), the legacy *families* it answers for (globs whose
//! keys, when no rule owns them, are reported as "not owned" rather than left silently) and
//! the keys it knowingly leaves alone (`exclude`). Three sets ship with the migrator as files
//! ([`builtin`]): `generic`, `tradingboost` and `qrl-api`.
//!
//! A [`Rule`] has a `from` pattern (`user:{user}:position:{symbol}:{side:long|short}`), a `to`
//! pattern relative to the target prefix, `defaults` for placeholders the source lacks,
//! [`ValueSource`]s for placeholders filled from the value (`symbol` ← `instId`, `side` from
//! `posSide` or the sign of `pos`), the Redis types it accepts, an optional envelope field to
//! unwrap (`data` of `{"code":"0","data":[…]}`), an optional index set every target is listed
//! in, what happens to the source's TTL, and a [`Conversion`] ([`convert`], [`record`]).

pub mod builtin;
pub mod convert;
pub mod file;
pub mod record;

use std::collections::BTreeMap;

use edgesync_core::keys::pattern::KeyPattern;

/// Redis's five value types, the only ones a rule can accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisType {
    String,
    Hash,
    Set,
    Zset,
    List,
}

impl RedisType {
    pub const ALL: [RedisType; 5] =
        [RedisType::String, RedisType::Hash, RedisType::Set, RedisType::Zset, RedisType::List];

    /// The name `TYPE` answers.
    pub fn name(self) -> &'static str {
        match self {
            RedisType::String => "string",
            RedisType::Hash => "hash",
            RedisType::Set => "set",
            RedisType::Zset => "zset",
            RedisType::List => "list",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// Where a placeholder's value comes from when neither the key nor `defaults` has it; a
/// rule lists several, tried in order, and the first that gives a value the target pattern
/// accepts wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    /// A field of the value (a JSON object's member, a hash field), if non-empty and — when
    /// `only` is given — one of those values.
    Field { name: String, only: Option<Vec<String>> },
    /// `long` when the numeric field is above zero, `short` below; nothing at zero.
    SignOf(String),
}

/// What happens to the source's TTL on the targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Targets expire when the source would have (the same absolute time).
    Keep,
    /// Targets are permanent (the target class is permanent data, e.g. a price history).
    Drop,
}

/// How a source value becomes target values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversion {
    /// Same type, same value.
    Keep,
    /// A JSON object in a string becomes a hash of its fields (a hash is copied as is).
    JsonToHash,
    /// A hash becomes a JSON object of its fields in a string (a string holding a JSON
    /// object is copied byte for byte).
    HashToJson,
    /// A JSON array of objects becomes one hash per element at `to`, placeholders filled from
    /// the source key, the defaults and each element's fields.
    ExplodeJsonArray,
    /// A record of edgesync's (or any) shape built field by field ([`record`]).
    Record(record::RecordSpec),
}

impl Conversion {
    pub fn name(&self) -> &'static str {
        match self {
            Conversion::Keep => "keep",
            Conversion::JsonToHash => "json-to-hash",
            Conversion::HashToJson => "hash-to-json",
            Conversion::ExplodeJsonArray => "explode-json-array",
            Conversion::Record(_) => "record",
        }
    }
}

/// An index set every target of a rule is listed in (`positions:index:{user}:{exchange}`
/// with member `{symbol}:{side}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub key: KeyPattern,
    pub member: KeyPattern,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub from: KeyPattern,
    pub to: KeyPattern,
    pub defaults: BTreeMap<String, String>,
    /// Placeholders filled from the value, each from the first source that gives a value.
    pub placeholders: BTreeMap<String, Vec<ValueSource>>,
    /// Redis types accepted; anything else is reported as wrong type.
    pub types: Vec<RedisType>,
    /// A JSON object's field to unwrap before converting (OKX's `{"code","data","msg"}`);
    /// values without it are converted as they are.
    pub envelope: Option<String>,
    pub index: Option<Index>,
    pub expiry: Expiry,
    pub conversion: Conversion,
}

impl Rule {
    pub fn accepts(&self, type_name: &str) -> bool {
        self.types.iter().any(|t| t.name() == type_name)
    }
}

/// Where a set's targets go unless `--target-prefix` says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The keys are standardized where they are (no prefix).
    InPlace,
    /// Under edgesync's `{namespace}:v1:`.
    Namespace,
}

/// A named set of rules with what it answers for.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub name: String,
    pub description: String,
    pub target: Target,
    pub rules: Vec<Rule>,
    /// `SCAN MATCH` globs of the legacy families this set migrates.
    pub families: Vec<String>,
    /// Keys the set knowingly leaves alone (never candidates, never "not owned").
    pub exclude: Vec<KeyPattern>,
}

impl RuleSet {
    /// True when `key` (relative to no prefix) is one the set leaves alone.
    pub fn excludes(&self, key: &str) -> bool {
        self.exclude.iter().any(|p| p.matches(key))
    }

    /// True when `key`, with `prefix` removed, has the shape of a target or index this set
    /// writes — not a legacy key.
    pub fn is_target_shape(&self, key: &str, prefix: &str) -> bool {
        let Some(rest) = key.strip_prefix(prefix) else { return false };
        self.rules.iter().any(|rule| rule.to.matches(rest) || rule.index.as_ref().is_some_and(|i| i.key.matches(rest)))
    }
}

/// Options that change how sources are read and converted.
#[derive(Debug, Clone, Default)]
pub struct RuleOptions {
    /// Prepended to every target key (the set's target, or `--target-prefix`).
    pub target_prefix: String,
    /// Side used when neither the key nor the value says (`--default-side`).
    pub default_side: Option<String>,
    /// Sources above these sizes are reported as too large, never loaded.
    pub limits: crate::value::SizeLimits,
}

/// Keys the migrator itself owns (its lock): never a candidate, whatever a rule says.
pub const OWN_KEYS_PREFIX: &str = "edgesync:migrator:";

/// True for the migrator's own keys.
pub fn is_own_key(key: &str) -> bool {
    key.starts_with(OWN_KEYS_PREFIX)
}

/// `text` in backticks for a message, cut to 64 characters.
pub fn quote(text: &str) -> String {
    format!("`{}`", edgesync_core::codec::shorten(text, 64))
}
