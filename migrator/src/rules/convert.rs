//! Applying a rule to one key: captures + defaults + the value's own fields give the target
//! keys, and the conversion gives their values. Anything that cannot be converted is
//! [`Converted::Unparseable`] with the reason — never a guess.

use std::collections::{BTreeMap, BTreeSet};

use edgesync_core::keys::pattern::Captures;
use serde_json::Value;

use super::{Conversion, Rule, RuleOptions};
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

fn object_fields(object: &serde_json::Map<String, Value>) -> BTreeMap<String, String> {
    object.iter().map(|(k, v)| (k.clone(), field_text(v))).collect()
}

/// Fills missing placeholders from the value's fields, then the default side.
fn complete(
    mut values: Captures,
    fields: &BTreeMap<String, String>,
    rule: &Rule,
    options: &RuleOptions,
) -> Result<Captures, String> {
    for name in rule.to.placeholders() {
        if values.contains_key(name) {
            continue;
        }
        if let Some(field) = fields.get(name).filter(|v| !v.is_empty()) {
            values.insert(name.to_owned(), field.clone());
        } else if name == "side" {
            let side = options.default_side.clone().ok_or("no side in the key or the value (use --default-side)")?;
            values.insert("side".into(), side);
        } else {
            return Err(format!("no value for {{{name}}}"));
        }
    }
    Ok(values)
}

pub fn convert(rule: &Rule, captures: &Captures, value: &TypedValue, options: &RuleOptions) -> Converted {
    if !rule.types.iter().any(|t| t == value.type_name()) {
        return Converted::WrongType(format!(
            "{} (rule {} expects {})",
            value.type_name(),
            rule.name,
            rule.types.join(" or ")
        ));
    }
    let mut values = rule.defaults.clone();
    values.extend(captures.iter().map(|(k, v)| (k.clone(), v.clone())));
    let target_key = |values: &Captures| {
        rule.to.render(values).map(|k| format!("{}{k}", options.target_prefix)).map_err(|e| e.to_string())
    };
    let result = match (&rule.conversion, value) {
        (Conversion::Keep, value) => {
            target_key(&values).map(|key| Converted::Targets { targets: vec![(key, value.clone())], index: Vec::new() })
        }
        (Conversion::JsonToHash, TypedValue::Hash(fields)) => complete(values, fields, rule, options)
            .and_then(|values| target_key(&values))
            .map(|key| Converted::Targets { targets: vec![(key, value.clone())], index: Vec::new() }),
        (Conversion::JsonToHash, TypedValue::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => {
                let fields = object_fields(&object);
                complete(values, &fields, rule, options)
                    .and_then(|values| target_key(&values))
                    .map(|key| Converted::Targets { targets: vec![(key, TypedValue::Hash(fields))], index: Vec::new() })
            }
            _ => Err("the value is not a JSON object".to_owned()),
        },
        (Conversion::ExplodeJsonArray { index, member }, TypedValue::String(text)) => {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(items)) => {
                    let mut targets = Vec::new();
                    let mut members = BTreeSet::new();
                    let mut index_key = None;
                    let mut outcome = Ok(());
                    for item in &items {
                        let Some(object) = item.as_object() else {
                            outcome = Err("an array element is not a JSON object".to_owned());
                            break;
                        };
                        let fields = object_fields(object);
                        let converted = complete(values.clone(), &fields, rule, options).and_then(|filled| {
                            let key = target_key(&filled)?;
                            let index = index.render(&filled).map_err(|e| e.to_string())?;
                            let member = member.render(&filled).map_err(|e| e.to_string())?;
                            Ok((key, format!("{}{index}", options.target_prefix), member, fields))
                        });
                        match converted {
                            Ok((key, index, member, fields)) => {
                                if targets.iter().any(|(k, _)| *k == key) {
                                    outcome = Err(format!("two elements map to {key}"));
                                    break;
                                }
                                targets.push((key, TypedValue::Hash(fields)));
                                members.insert(member);
                                index_key = Some(index);
                            }
                            Err(reason) => {
                                outcome = Err(reason);
                                break;
                            }
                        }
                    }
                    outcome.map(|()| Converted::Targets {
                        targets,
                        index: index_key
                            .map(|k| members.into_iter().map(|m| (k.clone(), m)).collect())
                            .unwrap_or_default(),
                    })
                }
                _ => Err("the value is not a JSON array".to_owned()),
            }
        }
        (conversion, value) => Err(format!("{} cannot convert a {}", conversion.name(), value.type_name())),
    };
    result.unwrap_or_else(Converted::Unparseable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::builtin::rules;

    fn by_name(name: &str) -> Rule {
        rules().into_iter().find(|r| r.name == name).unwrap()
    }

    fn options() -> RuleOptions {
        RuleOptions { target_prefix: "qrl:v1:".into(), ..RuleOptions::default() }
    }

    #[test]
    fn positions_take_side_from_key_value_or_flag() {
        let rule = by_name("position");
        let captures = rule.from.capture("position:7:BTC-USDT-SWAP").unwrap();
        let with_side = TypedValue::String(r#"{"side":"long","qty":1.5,"entry":"100"}"#.into());
        let Converted::Targets { targets, .. } = convert(&rule, &captures, &with_side, &options()) else { panic!() };
        assert_eq!(targets[0].0, "qrl:v1:position:7:okx:BTC-USDT-SWAP:long");
        let TypedValue::Hash(fields) = &targets[0].1 else { panic!() };
        assert_eq!((fields["qty"].as_str(), fields["entry"].as_str()), ("1.5", "100"));

        let without = TypedValue::String(r#"{"qty":1}"#.into());
        assert!(matches!(convert(&rule, &captures, &without, &options()), Converted::Unparseable(_)));
        let flagged = RuleOptions { default_side: Some("net".into()), ..options() };
        let Converted::Targets { targets, .. } = convert(&rule, &captures, &without, &flagged) else { panic!() };
        assert!(targets[0].0.ends_with(":net"));
        assert!(matches!(
            convert(&rule, &captures, &TypedValue::Set(Default::default()), &options()),
            Converted::WrongType(_)
        ));
        assert!(matches!(
            convert(&rule, &captures, &TypedValue::String("not json".into()), &options()),
            Converted::Unparseable(_)
        ));
    }

    #[test]
    fn position_arrays_explode_into_hashes_and_an_index() {
        let rule = by_name("positions-array");
        let captures = rule.from.capture("binance:positions:9").unwrap();
        let value = TypedValue::String(
            r#"[{"symbol":"BTCUSDT","side":"long","qty":"1"},{"symbol":"ETHUSDT","side":"short","qty":"2"}]"#.into(),
        );
        let Converted::Targets { targets, index } = convert(&rule, &captures, &value, &options()) else { panic!() };
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].0, "qrl:v1:position:9:binance:BTCUSDT:long");
        assert_eq!(
            index,
            vec![
                ("qrl:v1:position-index:9:binance".to_owned(), "BTCUSDT:long".to_owned()),
                ("qrl:v1:position-index:9:binance".to_owned(), "ETHUSDT:short".to_owned())
            ]
        );
    }
}
