//! Applying a rule to one key: captures + defaults + the value's own fields give the target
//! keys, and the conversion gives their values. Anything that cannot be converted is
//! [`Converted::Unparseable`] with the reason — never a guess.

use std::collections::BTreeMap;

use edgesync_core::codec::parse_decimal;
use edgesync_core::keys::pattern::{Captures, KeyPattern};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use super::record::Input;
use super::{Conversion, Rule, RuleOptions, ValueSource};
use crate::value::TypedValue;

/// What converting one source produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Converted {
    Targets {
        /// Target keys (prefix included) and their values.
        targets: Vec<(String, TypedValue)>,
        /// Index sets (key, member) the targets are listed in.
        index: Vec<(String, String)>,
    },
    Unparseable(String),
    WrongType(String),
}

/// A JSON field as hash text: strings as they are, everything else as JSON.
fn field_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn object_fields(object: &Map<String, Value>) -> BTreeMap<String, String> {
    object.iter().map(|(k, v)| (k.clone(), field_text(v))).collect()
}

fn hash_object(fields: &BTreeMap<String, String>) -> Map<String, Value> {
    fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect()
}

/// A placeholder's candidate value from a field: text of a string or a number.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The patterns a placeholder must fit (its constraint, if any pattern constrains it).
fn allowed<'p>(patterns: &[&'p KeyPattern], name: &str) -> Option<&'p [String]> {
    patterns.iter().find_map(|p| p.allowed(name))
}

/// Fills the placeholders `patterns` need that the key and defaults lack: from the rule's
/// value sources in order (the first value the patterns accept), else a field of the same
/// name, else `--default-side` for `side`.
fn complete(
    mut values: Captures,
    fields: Option<&Map<String, Value>>,
    rule: &Rule,
    patterns: &[&KeyPattern],
    options: &RuleOptions,
) -> Result<Captures, String> {
    // In the patterns' order; a name already filled (by the key, a default or an earlier
    // pattern) is skipped, so no set of names is built per key.
    for name in patterns.iter().flat_map(|p| p.placeholders()) {
        if values.contains_key(name) {
            continue;
        }
        let fits = |value: &str| allowed(patterns, name).is_none_or(|a| a.iter().any(|x| x == value));
        let field = |field: &str| fields.and_then(|f| f.get(field)).and_then(scalar_text);
        let from_sources = match rule.placeholders.get(name) {
            Some(sources) => sources.iter().find_map(|source| {
                let candidate = match source {
                    ValueSource::Field { name, only } => {
                        field(name).filter(|v| only.as_ref().is_none_or(|o| o.iter().any(|x| x == v)))
                    }
                    ValueSource::SignOf(name) => field(name).and_then(|text| {
                        let number = parse_decimal(&text).ok()?;
                        match number.cmp(&Decimal::ZERO) {
                            std::cmp::Ordering::Greater => Some("long".to_owned()),
                            std::cmp::Ordering::Less => Some("short".to_owned()),
                            std::cmp::Ordering::Equal => None,
                        }
                    }),
                };
                candidate.filter(|v| fits(v))
            }),
            None => field(name).filter(|v| fits(v)),
        };
        let value = match (from_sources, name) {
            (Some(value), _) => value,
            (None, "side") => options
                .default_side
                .clone()
                .filter(|v| fits(v))
                .ok_or("no side in the key or the value (use --default-side)")?,
            (None, _) => return Err(format!("no value for {{{name}}}")),
        };
        values.insert(name.to_owned(), value);
    }
    Ok(values)
}

struct Context<'a> {
    rule: &'a Rule,
    options: &'a RuleOptions,
    base: Captures,
}

impl Context<'_> {
    fn patterns(&self) -> Vec<&KeyPattern> {
        let mut patterns = vec![&self.rule.to];
        if let Some(index) = &self.rule.index {
            patterns.extend([&index.key, &index.member]);
        }
        patterns
    }

    /// The target key and index entry for a value with these fields.
    fn place(&self, fields: Option<&Map<String, Value>>) -> Result<(String, Option<(String, String)>), String> {
        let values = complete(self.base.clone(), fields, self.rule, &self.patterns(), self.options)?;
        let prefix = &self.options.target_prefix;
        let key = self.rule.to.render_after(prefix, &values).map_err(|e| e.to_string())?;
        let index = match &self.rule.index {
            None => None,
            Some(index) => {
                let set = index.key.render_after(prefix, &values).map_err(|e| e.to_string())?;
                let member = index.member.render(&values).map_err(|e| e.to_string())?;
                Some((set, member))
            }
        };
        Ok((key, index))
    }

    /// The JSON in a string, with the rule's envelope unwrapped.
    fn json(&self, text: &str) -> Result<(Value, bool), String> {
        let value: Value = serde_json::from_str(text).map_err(|_| "the value is not JSON".to_owned())?;
        match (&self.rule.envelope, value) {
            (Some(field), Value::Object(mut object)) if object.contains_key(field) => {
                Ok((object.remove(field).unwrap_or(Value::Null), true))
            }
            (_, value) => Ok((value, false)),
        }
    }

    fn json_object(&self, text: &str) -> Result<(Map<String, Value>, bool), String> {
        match self.json(text)? {
            (Value::Object(object), unwrapped) => Ok((object, unwrapped)),
            _ => Err("the value is not a JSON object".to_owned()),
        }
    }
}

type Placed = (Vec<(String, TypedValue)>, Vec<(String, String)>);

fn one(key: String, value: TypedValue, index: Option<(String, String)>) -> Placed {
    (vec![(key, value)], index.into_iter().collect())
}

fn convert_value(cx: &Context<'_>, value: &TypedValue) -> Result<Placed, String> {
    fn record_input<'a>(cx: &'a Context<'_>, fields: Option<&'a Map<String, Value>>) -> Input<'a> {
        Input { fields, member: None, score: None, values: &cx.base }
    }
    match (&cx.rule.conversion, value) {
        (Conversion::Keep, value) => {
            let fields = match value {
                TypedValue::String(text) => cx.json_object(text).ok().map(|(o, _)| o),
                TypedValue::Hash(fields) => Some(hash_object(fields)),
                _ => None,
            };
            let (key, index) = cx.place(fields.as_ref())?;
            Ok(one(key, value.clone(), index))
        }
        (Conversion::JsonToHash, TypedValue::Hash(fields)) => {
            let (key, index) = cx.place(Some(&hash_object(fields)))?;
            Ok(one(key, value.clone(), index))
        }
        (Conversion::JsonToHash, TypedValue::String(text)) => {
            let (object, _) = cx.json_object(text)?;
            let (key, index) = cx.place(Some(&object))?;
            Ok(one(key, TypedValue::Hash(object_fields(&object)), index))
        }
        (Conversion::HashToJson, TypedValue::Hash(fields)) => {
            let object = hash_object(fields);
            let (key, index) = cx.place(Some(&object))?;
            Ok(one(key, TypedValue::String(Value::Object(object).to_string()), index))
        }
        (Conversion::HashToJson, TypedValue::String(text)) => {
            let (object, unwrapped) = cx.json_object(text)?;
            let (key, index) = cx.place(Some(&object))?;
            // Already JSON: the bytes stay as they are unless an envelope was removed.
            let json = if unwrapped { Value::Object(object).to_string() } else { text.clone() };
            Ok(one(key, TypedValue::String(json), index))
        }
        (Conversion::ExplodeJsonArray, TypedValue::String(text)) => {
            let Value::Array(items) = cx.json(text)?.0 else { return Err("the value is not a JSON array".to_owned()) };
            let mut targets: Vec<(String, TypedValue)> = Vec::new();
            let mut index = Vec::new();
            for item in &items {
                let object = item.as_object().ok_or("an array element is not a JSON object")?;
                let (key, member) = cx.place(Some(object))?;
                if targets.iter().any(|(k, _)| *k == key) {
                    return Err(format!("two elements map to {key}"));
                }
                targets.push((key, TypedValue::Hash(object_fields(object))));
                index.extend(member);
            }
            index.sort();
            index.dedup();
            Ok((targets, index))
        }
        (Conversion::Record(spec), TypedValue::String(_) | TypedValue::Hash(_)) => {
            let object = match value {
                TypedValue::String(text) => cx.json_object(text)?.0,
                TypedValue::Hash(fields) => hash_object(fields),
                other => return Err(format!("record cannot convert a {}", other.type_name())),
            };
            let (key, index) = cx.place(Some(&object))?;
            let record = spec.build(&record_input(cx, Some(&object)))?;
            let value = match spec.shape.is_hash() {
                true => TypedValue::Hash(super::record::hash_fields(&record)),
                false => TypedValue::String(record.to_string()),
            };
            Ok(one(key, value, index))
        }
        (Conversion::Record(spec), TypedValue::Zset(items)) => {
            let (key, index) = cx.place(None)?;
            let mut members = Vec::with_capacity(items.len());
            for (member, score) in items {
                let object = serde_json::from_str::<Value>(member).ok();
                let input = Input {
                    fields: object.as_ref().and_then(Value::as_object),
                    member: Some(member),
                    score: Some(score),
                    values: &cx.base,
                };
                let record = spec.build(&input).map_err(|e| format!("member {}: {e}", crate::rules::quote(member)))?;
                members.push((record.to_string(), score.clone()));
            }
            Ok(one(key, TypedValue::Zset(members), index))
        }
        (conversion, value) => Err(format!("{} cannot convert a {}", conversion.name(), value.type_name())),
    }
}

pub fn convert(rule: &Rule, captures: &Captures, value: &TypedValue, options: &RuleOptions) -> Converted {
    if !rule.accepts(value.type_name()) {
        let expected: Vec<&str> = rule.types.iter().map(|t| t.name()).collect();
        return Converted::WrongType(format!(
            "{} (rule {} expects {})",
            value.type_name(),
            rule.name,
            expected.join(" or ")
        ));
    }
    let mut base = rule.defaults.clone();
    base.extend(captures.iter().map(|(k, v)| (k.clone(), v.clone())));
    let cx = Context { rule, options, base };
    match convert_value(&cx, value) {
        Ok((targets, index)) => Converted::Targets { targets, index },
        Err(reason) => Converted::Unparseable(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::builtin;

    fn rule(set: &str, name: &str) -> Rule {
        builtin::load(set).unwrap().rules.into_iter().find(|r| r.name == name).unwrap()
    }

    fn options(prefix: &str) -> RuleOptions {
        RuleOptions { target_prefix: prefix.into(), ..RuleOptions::default() }
    }

    fn targets(converted: Converted) -> Placed {
        match converted {
            Converted::Targets { targets, index } => (targets, index),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn positions_take_side_from_key_value_or_flag() {
        let rule = rule("generic", "position");
        let captures = rule.from.capture("position:7:BTC-USDT-SWAP").unwrap();
        let with_side = TypedValue::String(r#"{"side":"long","qty":1.5,"entry":"100"}"#.into());
        let (placed, _) = targets(convert(&rule, &captures, &with_side, &options("qrl:v1:")));
        assert_eq!(placed[0].0, "qrl:v1:position:7:okx:BTC-USDT-SWAP:long");
        let TypedValue::Hash(fields) = &placed[0].1 else { panic!() };
        assert_eq!((fields["qty"].as_str(), fields["entry"].as_str()), ("1.5", "100"));

        let without = TypedValue::String(r#"{"qty":1}"#.into());
        assert!(matches!(convert(&rule, &captures, &without, &options("qrl:v1:")), Converted::Unparseable(_)));
        let flagged = RuleOptions { default_side: Some("net".into()), ..options("qrl:v1:") };
        let (placed, _) = targets(convert(&rule, &captures, &without, &flagged));
        assert!(placed[0].0.ends_with(":net"));
        let set = TypedValue::Set(Default::default());
        assert!(matches!(convert(&rule, &captures, &set, &options("")), Converted::WrongType(_)));
        let text = TypedValue::String("not json".into());
        assert!(matches!(convert(&rule, &captures, &text, &options("")), Converted::Unparseable(_)));
    }

    #[test]
    fn okx_position_payloads_explode_by_instid_and_side() {
        let rule = rule("tradingboost", "grid-positions");
        let captures = rule.from.capture("okx:positions:9").unwrap();
        let hedge = r#"[{"instId":"DOGE-USDT-SWAP","posSide":"long","pos":"10","notionalUsd":"1.5"},
                        {"instId":"DOGE-USDT-SWAP","posSide":"short","pos":"4","notionalUsd":"0.6"}]"#;
        let (placed, index) = targets(convert(&rule, &captures, &TypedValue::String(hedge.into()), &options("")));
        assert_eq!(placed[0].0, "positions:9:okx:DOGE-USDT-SWAP:long");
        assert_eq!(placed[1].0, "positions:9:okx:DOGE-USDT-SWAP:short");
        let TypedValue::Hash(fields) = &placed[1].1 else { panic!() };
        assert_eq!((fields["pos"].as_str(), fields["notionalUsd"].as_str()), ("4", "0.6"));
        assert_eq!(index[0], ("positions:index:9:okx".to_owned(), "DOGE-USDT-SWAP:long".to_owned()));

        let envelope = r#"{"code":"0","data":[{"instId":"XRP-USDT-SWAP","posSide":"net","pos":"-3"},
                          {"instId":"ADA-USDT-SWAP","posSide":"net","pos":"0"}],"msg":""}"#;
        let (placed, _) = targets(convert(&rule, &captures, &TypedValue::String(envelope.into()), &options("")));
        assert_eq!(placed[0].0, "positions:9:okx:XRP-USDT-SWAP:short", "net: the sign of pos");
        assert_eq!(placed[1].0, "positions:9:okx:ADA-USDT-SWAP:net", "net and flat: side net");
    }

    #[test]
    fn trading_cache_positions_stay_json_strings() {
        let rule = rule("tradingboost", "trading-cache-position");
        let captures = rule.from.capture("position:7:BTC-USDT-SWAP").unwrap();
        let legacy = r#"{"symbol":"BTC-USDT-SWAP","side":"short","size":"2","entry_price":"60000.5"}"#;
        let (placed, _) = targets(convert(&rule, &captures, &TypedValue::String(legacy.into()), &options("")));
        assert_eq!(placed, vec![("position:7:okx:BTC-USDT-SWAP:short".to_owned(), TypedValue::String(legacy.into()))]);

        let rule = super::super::builtin::load("tradingboost")
            .unwrap()
            .rules
            .into_iter()
            .find(|r| r.name == "hyperrsi-position")
            .unwrap();
        let captures = rule.from.capture("user:7:position:BTC-USDT-SWAP:long").unwrap();
        let hash = TypedValue::Hash([("size".to_owned(), "1".to_owned())].into());
        let (placed, _) = targets(convert(&rule, &captures, &hash, &options("")));
        assert_eq!(
            placed[0],
            ("position:7:okx:BTC-USDT-SWAP:long".to_owned(), TypedValue::String(r#"{"size":"1"}"#.into()))
        );
        assert!(rule.from.capture("user:7:position:BTC-USDT-SWAP:position_state").is_none());
    }
}
