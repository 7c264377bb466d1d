//! Rule sets from TOML — the built-in ones (`migrator/rules/*.toml`) and any `--rules FILE` —
//! validated on load: every error names the rule and the field. The format (see the README
//! for the whole reference, and `migrator rules show NAME` for working examples):
//!
//! ```toml
//! [set]
//! name = "tradingboost"
//! target = "in-place"                 # or "namespace": under {namespace}:v1:
//! families = ["*:positions:*"]        # legacy globs: keys no rule owns are reported
//! exclude = ["user:{user}:position:{symbol}:{state:position_state|closing}"]
//!
//! [[rule]]
//! name = "grid-positions"
//! from = "{exchange}:positions:{user}"
//! to = "positions:{user}:{exchange}:{symbol}:{side:long|short|net}"
//! types = ["string"]                  # Redis's five; default by conversion
//! conversion = "explode-json-array"   # keep | json-to-hash | hash-to-json | explode-json-array | record
//! envelope = "data"                   # unwrap {"code":"0","data":[…]}
//! index = "positions:index:{user}:{exchange}"
//! member = "{symbol}:{side}"
//! expiry = "keep"                     # keep the source's TTL on the targets, or "drop"
//! [rule.placeholders]
//! symbol = ["instId"]
//! side = [{ field = "posSide", only = ["long", "short"] }, { sign_of = "pos" }, "posSide"]
//! ```

use std::collections::{BTreeMap, BTreeSet};

use edgesync_core::keys::pattern::KeyPattern;
use serde::Deserialize;

use super::record::{FieldSource, FieldSpec, RecordSpec, Shape, TimeFormat};
use super::{Conversion, Expiry, Index, RedisType, Rule, RuleSet, Target, ValueSource};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFile {
    set: Option<SetSpec>,
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSpec {
    name: Option<String>,
    #[serde(default)]
    description: String,
    target: Option<String>,
    #[serde(default)]
    families: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    from: String,
    to: String,
    #[serde(default)]
    defaults: BTreeMap<String, String>,
    #[serde(default)]
    placeholders: BTreeMap<String, Vec<SourceSpec>>,
    types: Option<Vec<String>>,
    conversion: String,
    envelope: Option<String>,
    index: Option<String>,
    member: Option<String>,
    expiry: Option<String>,
    record: Option<RecordFile>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SourceSpec {
    Field(String),
    Only { field: String, only: Vec<String> },
    SignOf { sign_of: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordFile {
    shape: String,
    fields: Vec<FieldFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldFile {
    name: String,
    field: Option<String>,
    placeholder: Option<String>,
    value: Option<toml::Value>,
    #[serde(default)]
    member: bool,
    #[serde(default)]
    score: bool,
    iso8601_of: Option<String>,
    time: Option<String>,
    #[serde(default)]
    decimal: bool,
    #[serde(default)]
    optional: bool,
    default: Option<toml::Value>,
}

fn pattern(field: &str, text: &str) -> Result<KeyPattern, String> {
    KeyPattern::parse(text).map_err(|e| format!("field `{field}`: {e}"))
}

/// A target pattern may not hold glob characters outside its placeholders: a key written
/// with `*` in its name would be matched by every later SCAN of a wider pattern.
fn no_glob(field: &str, text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '*' | '?' | '[' | ']' | '\\' if depth == 0 => {
                return Err(format!("field `{field}`: `{text}` holds the glob character `{c}`"));
            }
            _ => {}
        }
    }
    Ok(())
}

fn time_format(text: &str) -> Result<TimeFormat, String> {
    Ok(match text {
        "iso8601" => TimeFormat::Iso8601,
        "seconds" => TimeFormat::Seconds,
        "ms" => TimeFormat::Millis,
        other => return Err(format!("unknown time format `{other}` (iso8601, seconds, ms)")),
    })
}

fn json_value(value: toml::Value) -> Result<serde_json::Value, String> {
    serde_json::to_value(value).map_err(|e| e.to_string())
}

fn record(spec: RecordFile) -> Result<RecordSpec, String> {
    let shape = Shape::from_name(&spec.shape)
        .ok_or_else(|| format!("record: unknown shape `{}` (price, raw, cost, free)", spec.shape))?;
    let mut fields: Vec<FieldSpec> = Vec::new();
    for field in spec.fields {
        let name = field.name.clone();
        let context = |e: String| format!("record field `{name}`: {e}");
        let mut sources = Vec::new();
        if let Some(f) = field.field {
            sources.push(FieldSource::Field(f));
        }
        if let Some(p) = field.placeholder {
            sources.push(FieldSource::Placeholder(p));
        }
        if let Some(v) = field.value {
            sources.push(FieldSource::Value(json_value(v).map_err(context)?));
        }
        if field.member {
            sources.push(FieldSource::Member);
        }
        if field.score {
            sources.push(FieldSource::Score);
        }
        if let Some(of) = field.iso8601_of {
            if !fields.iter().any(|f| f.name == of) {
                return Err(context(format!("iso8601_of `{of}` names no earlier field")));
            }
            sources.push(FieldSource::Iso8601Of(of));
        }
        if sources.len() != 1 {
            return Err(context("give exactly one of field, placeholder, value, member, score, iso8601_of".into()));
        }
        if fields.iter().any(|f| f.name == field.name) {
            return Err(context("named twice".into()));
        }
        let time = field.time.as_deref().map(time_format).transpose().map_err(context)?;
        let default = field.default.map(json_value).transpose().map_err(context)?;
        if default.is_some() && field.optional {
            return Err(context("give optional or default, not both".into()));
        }
        fields.push(FieldSpec {
            name: field.name,
            source: sources.remove(0),
            time,
            decimal: field.decimal,
            optional: field.optional,
            default,
        });
    }
    Ok(RecordSpec { shape, fields })
}

fn rule(spec: RuleSpec) -> Result<Rule, String> {
    let from = pattern("from", &spec.from)?;
    no_glob("to", &spec.to)?;
    let to = pattern("to", &spec.to)?;
    let has_record = spec.record.is_some();
    let conversion = match spec.conversion.as_str() {
        "keep" => Conversion::Keep,
        "json-to-hash" => Conversion::JsonToHash,
        "hash-to-json" => Conversion::HashToJson,
        "explode-json-array" => Conversion::ExplodeJsonArray,
        "record" => {
            let record_spec = spec.record.ok_or("conversion `record` needs a [rule.record] table")?;
            Conversion::Record(record(record_spec)?)
        }
        other => {
            return Err(format!(
                "field `conversion`: unknown conversion `{other}` \
                 (keep, json-to-hash, hash-to-json, explode-json-array, record)"
            ))
        }
    };
    if has_record && !matches!(conversion, Conversion::Record(_)) {
        return Err("a [rule.record] table needs `conversion = \"record\"`".into());
    }
    let default_types: &[RedisType] = match &conversion {
        Conversion::Keep => &RedisType::ALL,
        Conversion::JsonToHash | Conversion::HashToJson => &[RedisType::String, RedisType::Hash],
        Conversion::ExplodeJsonArray => &[RedisType::String],
        Conversion::Record(_) => &[RedisType::String, RedisType::Hash, RedisType::Zset],
    };
    let types = match spec.types {
        None => default_types.to_vec(),
        Some(names) => names
            .iter()
            .map(|name| {
                RedisType::from_name(name)
                    .ok_or_else(|| format!("field `types`: unknown type `{name}` (string, hash, set, zset, list)"))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if types.is_empty() {
        return Err("field `types`: lists no type".into());
    }
    let index = match (spec.index, spec.member) {
        (None, None) => None,
        (Some(key), Some(member)) => {
            no_glob("index", &key)?;
            no_glob("member", &member)?;
            Some(Index { key: pattern("index", &key)?, member: pattern("member", &member)? })
        }
        _ => return Err("fields `index` and `member` go together".into()),
    };
    let expiry = match spec.expiry.as_deref() {
        None | Some("keep") => Expiry::Keep,
        Some("drop") => Expiry::Drop,
        Some(other) => return Err(format!("field `expiry`: `{other}` is not keep or drop")),
    };
    let reads_value = !matches!(conversion, Conversion::Keep) || !spec.placeholders.is_empty();
    if spec.envelope.is_some() && matches!(conversion, Conversion::Keep) {
        return Err("field `envelope`: a `keep` rule does not read the value".into());
    }
    let mut placeholders = BTreeMap::new();
    for (name, sources) in spec.placeholders {
        let sources = sources
            .into_iter()
            .map(|source| match source {
                SourceSpec::Field(name) => ValueSource::Field { name, only: None },
                SourceSpec::Only { field, only } => ValueSource::Field { name: field, only: Some(only) },
                SourceSpec::SignOf { sign_of } => ValueSource::SignOf(sign_of),
            })
            .collect();
        placeholders.insert(name, sources);
    }
    let known: BTreeSet<&str> = from
        .placeholders()
        .chain(spec.defaults.keys().map(String::as_str))
        .chain(placeholders.keys().map(String::as_str))
        .collect();
    let mut needed: Vec<&str> = to.placeholders().collect();
    if let Some(index) = &index {
        needed.extend(index.key.placeholders().chain(index.member.placeholders()));
    }
    if !reads_value {
        if let Some(missing) = needed.iter().find(|p| !known.contains(*p)) {
            return Err(format!("{{{missing}}} in `to` comes from neither `from`, `defaults` nor `placeholders`"));
        }
    }
    Ok(Rule {
        name: spec.name,
        from,
        to,
        defaults: spec.defaults,
        placeholders,
        types,
        envelope: spec.envelope,
        index,
        expiry,
        conversion,
    })
}

/// Parses a rule set's text. `fallback_name` names a set without a `[set]` table.
pub fn parse(text: &str, fallback_name: &str) -> Result<RuleSet, String> {
    let file: SetFile = toml::from_str(text).map_err(|e| format!("invalid rules file: {e}"))?;
    if file.rule.is_empty() {
        return Err("the rules file defines no [[rule]]".into());
    }
    let set = file.set.unwrap_or(SetSpec {
        name: None,
        description: String::new(),
        target: None,
        families: Vec::new(),
        exclude: Vec::new(),
    });
    let target = match set.target.as_deref() {
        None | Some("namespace") => Target::Namespace,
        Some("in-place") => Target::InPlace,
        Some(other) => return Err(format!("[set] field `target`: `{other}` is not in-place or namespace")),
    };
    let mut names = BTreeSet::new();
    let mut rules = Vec::new();
    for spec in file.rule {
        let name = spec.name.clone();
        if !names.insert(name.clone()) {
            return Err(format!("rule `{name}` is defined twice (rules are looked up by name when a run resumes)"));
        }
        rules.push(rule(spec).map_err(|e| format!("rule `{name}`: {e}"))?);
    }
    let exclude = set
        .exclude
        .iter()
        .map(|p| KeyPattern::parse(p).map_err(|e| format!("[set] field `exclude`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(family) = set.families.iter().find(|f| f.trim().is_empty()) {
        return Err(format!("[set] field `families`: `{family}` is empty"));
    }
    Ok(RuleSet {
        name: set.name.unwrap_or_else(|| fallback_name.to_owned()),
        description: set.description,
        target,
        rules,
        families: set.families,
        exclude,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        parse(text, "test").unwrap_err()
    }

    #[test]
    fn parses_rules_and_names_mistakes() {
        let set = parse(
            r#"
            [[rule]]
            name = "legacy-user-position"
            from = "u:{user}:pos:{symbol}"
            to = "position:{user}:{exchange}:{symbol}:{side}"
            defaults = { exchange = "okx", side = "long" }
            conversion = "json-to-hash"
            "#,
            "mine",
        )
        .unwrap();
        assert_eq!((set.name.as_str(), set.target), ("mine", Target::Namespace));
        assert_eq!(set.rules[0].defaults["side"], "long");
        let missing = error("[[rule]]\nname='r'\nfrom='a:{x}'\nto='b:{y}'\nconversion='keep'\n");
        assert!(missing.contains("rule `r`") && missing.contains("{y}"), "{missing}");
        assert!(error("[[rule]]\nname='r'\nfrom='a:{x}'\nto='b:{x}'\nconversion='magic'\n").contains("magic"));
        assert!(parse("nonsense = 1", "x").is_err());
    }

    #[test]
    fn refuses_duplicate_names_unknown_types_and_glob_targets() {
        let rule = "[[rule]]\nname='r'\nfrom='a:{x}'\nto='b:{x}'\nconversion='keep'\n";
        assert!(error(&format!("{rule}{rule}")).contains("defined twice"));
        let stream = "[[rule]]\nname='s'\nfrom='a:{x}'\nto='b:{x}'\nconversion='keep'\ntypes=['stream']\n";
        let message = error(stream);
        assert!(message.contains("rule `s`") && message.contains("types") && message.contains("stream"), "{message}");
        let glob = error("[[rule]]\nname='g'\nfrom='a:{x}'\nto='b:*:{x}'\nconversion='keep'\n");
        assert!(glob.contains("rule `g`") && glob.contains("`to`") && glob.contains('*'), "{glob}");
        let record = "[[rule]]\nname='p'\nfrom='a:{x}'\nto='b:{x}'\nconversion='record'\n\
                      [rule.record]\nshape='price'\nfields=[{name='ts', field='t', score=true}]\n";
        assert!(error(record).contains("exactly one"));
    }
}
