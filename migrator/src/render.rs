//! Reports as text for people: the report's JSON form laid out as indented `key: value`
//! lines and `- item` lists, strings printed as they are (a key with a comma or a quote in
//! it comes out whole). `--json` prints the JSON itself, for scripts.

use serde_json::Value;

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("-".to_owned()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(items) if items.is_empty() => Some("none".to_owned()),
        Value::Object(map) if map.is_empty() => Some("none".to_owned()),
        _ => None,
    }
}

fn write(out: &mut String, value: &Value, depth: usize) {
    let indent = "  ".repeat(depth);
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                match scalar(item) {
                    Some(text) => out.push_str(&format!("{indent}{key}: {text}\n")),
                    None => {
                        out.push_str(&format!("{indent}{key}:\n"));
                        write(out, item, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match scalar(item) {
                    Some(text) => out.push_str(&format!("{indent}- {text}\n")),
                    None => {
                        out.push_str(&format!("{indent}-\n"));
                        write(out, item, depth + 1);
                    }
                }
            }
        }
        other => out.push_str(&format!("{indent}{}\n", scalar(other).unwrap_or_default())),
    }
}

/// The text form of a report.
pub fn text(report: &Value) -> String {
    let mut out = String::new();
    write(&mut out, report, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_with_punctuation_come_out_whole() {
        let report = json!({
            "migrated": 3,
            "problems": ["okx:positions:7: no value for {symbol}, at \"x\""],
            "not_owned": {"count": 0, "samples": []},
            "rules": {"grid": {"migrate": 1}},
        });
        assert_eq!(
            text(&report),
            "migrated: 3\nnot_owned:\n  count: 0\n  samples: none\nproblems:\n  - okx:positions:7: no value for {symbol}, at \"x\"\nrules:\n  grid:\n    migrate: 1\n"
        );
    }
}
