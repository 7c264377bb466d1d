//! Migration rules: which legacy keys move where, and how their values convert.
//!
//! A rule has a `from` pattern (`user:{user}:position:{symbol}:{side}`), a `to` pattern
//! relative to the target prefix, `defaults` for placeholders the source lacks, the Redis
//! types it accepts, and a [`Conversion`]. Built-in rules cover seeds 001 and 003
//! ([`builtin`]); `--rules FILE` loads others from TOML ([`file`]).

pub mod builtin;
pub mod convert;
pub mod file;

use std::collections::BTreeMap;

use edgesync_core::keys::pattern::KeyPattern;

/// How a source value becomes target values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversion {
    /// Same type, same value.
    Keep,
    /// A JSON object in a string becomes a hash of its fields (a hash is copied as is).
    JsonToHash,
    /// A JSON array of objects becomes one hash per element at `to` (placeholders filled
    /// from the source key, the defaults and each element's fields), plus an index set at
    /// `index` with one `member` per element.
    ExplodeJsonArray { index: KeyPattern, member: KeyPattern },
}

impl Conversion {
    pub fn name(&self) -> &'static str {
        match self {
            Conversion::Keep => "keep",
            Conversion::JsonToHash => "json-to-hash",
            Conversion::ExplodeJsonArray { .. } => "explode-json-array",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub from: KeyPattern,
    pub to: KeyPattern,
    pub defaults: BTreeMap<String, String>,
    /// Redis types accepted (`TYPE` names); anything else is reported as wrong type.
    pub types: Vec<String>,
    pub conversion: Conversion,
}

/// Options that change how sources are read and converted.
#[derive(Debug, Clone, Default)]
pub struct RuleOptions {
    /// Prepended to every target key (default `{namespace}:v1:`; empty standardizes in place).
    pub target_prefix: String,
    /// Side used when neither the key nor the value says (`--default-side`).
    pub default_side: Option<String>,
    /// Sources above these sizes are reported as too large, never loaded.
    pub limits: crate::value::SizeLimits,
}
