//! Rules from a TOML file (`--rules FILE`):
//!
//! ```toml
//! [[rule]]
//! name = "user-position"
//! from = "user:{user}:position:{symbol}:{side}"
//! to = "position:{user}:{exchange}:{symbol}:{side}"
//! defaults = { exchange = "okx" }
//! types = ["string", "hash"]          # optional; default by conversion
//! conversion = "json-to-hash"        # keep | json-to-hash | explode-json-array
//! # for explode-json-array:
//! index = "position-index:{user}:{exchange}"
//! member = "{symbol}:{side}"
//! ```
//!
//! Every placeholder of `to` must come from `from`, `defaults`, or (json conversions) the
//! value's fields; errors name the rule and the problem.

use std::collections::BTreeMap;

use edgesync_core::keys::pattern::KeyPattern;
use serde::Deserialize;

use super::{Conversion, Rule};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    rule: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    name: String,
    from: String,
    to: String,
    #[serde(default)]
    defaults: BTreeMap<String, String>,
    types: Option<Vec<String>>,
    conversion: String,
    index: Option<String>,
    member: Option<String>,
}

/// Parses a rules file's text.
pub fn parse(text: &str) -> Result<Vec<Rule>, String> {
    let file: RulesFile = toml::from_str(text).map_err(|e| format!("invalid rules file: {e}"))?;
    if file.rule.is_empty() {
        return Err("the rules file defines no [[rule]]".into());
    }
    file.rule
        .into_iter()
        .map(|spec| {
            let context = |e: String| format!("rule `{}`: {e}", spec.name);
            let from = KeyPattern::parse(&spec.from).map_err(|e| context(e.to_string()))?;
            let to = KeyPattern::parse(&spec.to).map_err(|e| context(e.to_string()))?;
            let (conversion, default_types) = match spec.conversion.as_str() {
                "keep" => (Conversion::Keep, vec!["string", "hash", "set", "zset", "list"]),
                "json-to-hash" => (Conversion::JsonToHash, vec!["string", "hash"]),
                "explode-json-array" => {
                    let index =
                        spec.index.as_deref().ok_or_else(|| context("explode-json-array needs `index`".into()))?;
                    let member =
                        spec.member.as_deref().ok_or_else(|| context("explode-json-array needs `member`".into()))?;
                    let index = KeyPattern::parse(index).map_err(|e| context(e.to_string()))?;
                    let member = KeyPattern::parse(member).map_err(|e| context(e.to_string()))?;
                    (Conversion::ExplodeJsonArray { index, member }, vec!["string"])
                }
                other => {
                    return Err(context(format!(
                        "unknown conversion `{other}` (keep, json-to-hash, explode-json-array)"
                    )))
                }
            };
            if conversion == Conversion::Keep {
                let known: Vec<&str> = from.placeholders().chain(spec.defaults.keys().map(String::as_str)).collect();
                if let Some(missing) = to.placeholders().find(|p| !known.contains(p)) {
                    return Err(context(format!("{{{missing}}} in `to` comes from neither `from` nor `defaults`")));
                }
            }
            Ok(Rule {
                name: spec.name,
                from,
                to,
                defaults: spec.defaults,
                types: spec.types.unwrap_or_else(|| default_types.into_iter().map(String::from).collect()),
                conversion,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_names_mistakes() {
        let rules = parse(
            r#"
            [[rule]]
            name = "legacy-user-position"
            from = "u:{user}:pos:{symbol}"
            to = "position:{user}:{exchange}:{symbol}:{side}"
            defaults = { exchange = "okx", side = "long" }
            conversion = "json-to-hash"
            "#,
        )
        .unwrap();
        assert_eq!(rules[0].defaults["side"], "long");
        let missing = parse("[[rule]]\nname='r'\nfrom='a:{x}'\nto='b:{y}'\nconversion='keep'\n").unwrap_err();
        assert!(missing.contains("rule `r`") && missing.contains("{y}"), "{missing}");
        assert!(parse("[[rule]]\nname='r'\nfrom='a:{x}'\nto='b:{x}'\nconversion='magic'\n")
            .unwrap_err()
            .contains("magic"));
        assert!(parse("nonsense = 1").is_err());
    }
}
