//! The `record` conversion: a JSON record built field by field from a legacy value, so a bot's
//! own shape (`{"price","volume","timestamp":"2025-12-28T13:33:49.123456"}`) becomes the
//! shape edgesync's readers decode (`{"symbol","price","volume_24h","ts"}`). Each output field
//! names where it comes from — a field of the value, a placeholder of the key, a literal, a
//! sorted-set member or score, or the ISO-8601 rendering of another output field — and may
//! convert it: times (ISO-8601, seconds or milliseconds) to integer milliseconds, decimals
//! (including `1e-05`) to exact decimal text; a missing value may take a default. A record
//! naming an edgesync shape is checked
//! against core's own decoder before it is written, so what the migrator writes is what the
//! worker reads.

use edgesync_core::codec::{iso8601_ms, parse_decimal, parse_iso8601_ms};
use edgesync_core::keys::pattern::Captures;
use std::collections::BTreeMap;

use edgesync_core::records::position::SpotHolding;
use edgesync_core::records::price::PriceRecord;
use edgesync_core::records::{CostDocument, RawDocument};
use rust_decimal::Decimal;
use serde_json::{Map, Number, Value};

/// The edgesync record a conversion must produce, checked with core's decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `price:…:latest`, `…:cached` and `…:history` members.
    Price,
    /// `raw:…:latest` and `…:history` members.
    Raw,
    /// `cost:…`.
    Cost,
    /// `position:…`: a hash with the fields the balance task writes (and the cost task's
    /// `avg_cost`), written as a hash, not as JSON.
    Position,
    /// Any JSON object.
    Free,
}

impl Shape {
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "price" => Shape::Price,
            "raw" => Shape::Raw,
            "cost" => Shape::Cost,
            "position" => Shape::Position,
            "free" => Shape::Free,
            _ => return None,
        })
    }

    fn check(self, record: &Value) -> Result<(), String> {
        let outcome = match self {
            Shape::Price => serde_json::from_value::<PriceRecord>(record.clone()).map(drop),
            Shape::Raw => serde_json::from_value::<RawDocument>(record.clone()).map(drop),
            Shape::Cost => serde_json::from_value::<CostDocument>(record.clone()).map(drop),
            Shape::Position => return check_position(record),
            Shape::Free => Ok(()),
        };
        outcome.map_err(|e| format!("the record is not edgesync's {self:?} record: {e}").to_lowercase())
    }

    /// The target is a hash of the record's fields rather than its JSON.
    pub fn is_hash(self) -> bool {
        self == Shape::Position
    }
}

/// The record's fields as hash fields: text as it is, numbers as their text; `null` (an
/// optional field the source lacked) leaves the field out.
pub fn hash_fields(record: &Value) -> BTreeMap<String, String> {
    let Some(object) = record.as_object() else { return BTreeMap::new() };
    object.iter().filter_map(|(name, value)| text_of(value).map(|text| (name.clone(), text))).collect()
}

/// A position hash as core reads the balance task's (`SpotHolding`), and `avg_cost`, when
/// present, as the cost task's exact decimal.
fn check_position(record: &Value) -> Result<(), String> {
    let fields = hash_fields(record);
    SpotHolding::from_fields(&fields).map_err(|e| format!("the record is not edgesync's position: {e}"))?;
    match fields.get("avg_cost").map(String::as_str) {
        None | Some("") => Ok(()),
        Some(text) => text
            .parse::<Decimal>()
            .map(drop)
            .map_err(|_| format!("the record is not edgesync's position: avg_cost `{text}` is not a decimal")),
    }
}

/// Where an output field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSource {
    /// A field of the value (JSON member, hash field, or a sorted-set member's JSON member).
    Field(String),
    /// A placeholder of the key (or a default).
    Placeholder(String),
    /// A literal JSON value.
    Value(Value),
    /// The sorted-set member itself.
    Member,
    /// The sorted-set score.
    Score,
    /// ISO-8601 (UTC, ms) of an earlier output field holding milliseconds.
    Iso8601Of(String),
}

/// How a field's value is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeFormat {
    Iso8601,
    Seconds,
    Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: String,
    pub source: FieldSource,
    pub time: Option<TimeFormat>,
    /// The value is an exact decimal, written as decimal text.
    pub decimal: bool,
    /// A missing value becomes `null` instead of making the source unparseable.
    pub optional: bool,
    /// A missing value becomes this one (converted like a present one).
    pub default: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpec {
    pub shape: Shape,
    pub fields: Vec<FieldSpec>,
}

/// What one record is built from.
pub struct Input<'a> {
    pub fields: Option<&'a Map<String, Value>>,
    pub member: Option<&'a str>,
    pub score: Option<&'a str>,
    pub values: &'a Captures,
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn to_millis(value: &Value, format: TimeFormat) -> Result<i64, String> {
    let text = text_of(value).ok_or_else(|| format!("{value} is not a time"))?;
    let whole = |scale: i64| -> Result<i64, String> {
        let decimal = parse_decimal(text.trim())?;
        let ms = (decimal * Decimal::from(scale)).trunc();
        ms.to_string().parse::<i64>().map_err(|_| format!("`{text}` is out of range"))
    };
    match format {
        TimeFormat::Iso8601 => parse_iso8601_ms(&text),
        TimeFormat::Seconds => whole(1000),
        TimeFormat::Millis => whole(1),
    }
}

fn to_decimal_text(value: &Value) -> Result<Value, String> {
    let text = text_of(value).ok_or_else(|| format!("{value} is not a decimal number"))?;
    let text = text.trim();
    let scientific = text.contains(['e', 'E']);
    if !scientific && text.parse::<Decimal>().is_ok() {
        return Ok(Value::String(text.to_owned()));
    }
    // `1e-05` (Python's str of a small float) becomes plain decimal text.
    parse_decimal(text).map(|d| Value::String(d.normalize().to_string()))
}

impl RecordSpec {
    /// Builds the record, or says which field could not be filled.
    pub fn build(&self, input: &Input<'_>) -> Result<Value, String> {
        let mut record = Map::new();
        for spec in &self.fields {
            let raw = match &spec.source {
                FieldSource::Field(name) => input.fields.and_then(|f| f.get(name)).filter(|v| !v.is_null()).cloned(),
                FieldSource::Placeholder(name) => input.values.get(name).cloned().map(Value::String),
                FieldSource::Value(value) => Some(value.clone()),
                FieldSource::Member => input.member.map(|m| Value::String(m.to_owned())),
                FieldSource::Score => input.score.map(|s| Value::String(s.to_owned())),
                FieldSource::Iso8601Of(name) => match record.get(name).and_then(Value::as_i64) {
                    Some(ms) => Some(Value::String(iso8601_ms(ms))),
                    None => return Err(format!("`{}` renders `{name}`, which is not milliseconds", spec.name)),
                },
            };
            let value = match raw.or_else(|| spec.default.clone()) {
                None if spec.optional => Value::Null,
                None => return Err(format!("no value for field `{}` ({})", spec.name, describe(&spec.source))),
                Some(value) => {
                    let converted = match (spec.time, spec.decimal) {
                        (Some(format), _) => to_millis(&value, format).map(|ms| Value::Number(Number::from(ms))),
                        (None, true) => to_decimal_text(&value),
                        (None, false) => Ok(value),
                    };
                    converted.map_err(|e| format!("field `{}`: {e}", spec.name))?
                }
            };
            record.insert(spec.name.clone(), value);
        }
        let record = Value::Object(record);
        self.shape.check(&record)?;
        Ok(record)
    }
}

fn describe(source: &FieldSource) -> String {
    match source {
        FieldSource::Field(name) => format!("from field `{name}`"),
        FieldSource::Placeholder(name) => format!("from {{{name}}}"),
        FieldSource::Value(_) => "a literal".into(),
        FieldSource::Member => "the member".into(),
        FieldSource::Score => "the score".into(),
        FieldSource::Iso8601Of(name) => format!("ISO-8601 of `{name}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, source: FieldSource) -> FieldSpec {
        FieldSpec { name: name.into(), source, time: None, decimal: false, optional: false, default: None }
    }

    #[test]
    fn a_qrl_api_price_becomes_an_edgesync_price_record() {
        let spec = RecordSpec {
            shape: Shape::Price,
            fields: vec![
                field("symbol", FieldSource::Placeholder("symbol".into())),
                FieldSpec { decimal: true, ..field("price", FieldSource::Field("price".into())) },
                FieldSpec { decimal: true, optional: true, ..field("volume_24h", FieldSource::Field("volume".into())) },
                FieldSpec { time: Some(TimeFormat::Iso8601), ..field("ts", FieldSource::Field("timestamp".into())) },
            ],
        };
        let legacy = json!({"price": "1e-05", "volume": "12.5", "timestamp": "2022-01-05T02:26:22.808123"});
        let values = Captures::from([("symbol".to_owned(), "QRLUSDT".to_owned())]);
        let input = Input { fields: legacy.as_object(), member: None, score: None, values: &values };
        let record = spec.build(&input).unwrap();
        assert_eq!(
            record,
            json!({"symbol": "QRLUSDT", "price": "0.00001", "volume_24h": "12.5", "ts": 1_641_349_582_808_i64})
        );
        let broken = json!({"price": "cheap", "timestamp": "2022-01-05T02:26:22"});
        let input = Input { fields: broken.as_object(), ..input };
        assert!(spec.build(&input).unwrap_err().contains("price"));
    }

    #[test]
    fn history_members_and_scores_fill_records() {
        let spec = RecordSpec {
            shape: Shape::Price,
            fields: vec![
                field("symbol", FieldSource::Placeholder("symbol".into())),
                FieldSpec { decimal: true, ..field("price", FieldSource::Member) },
                field("volume_24h", FieldSource::Value(Value::Null)),
                FieldSpec { time: Some(TimeFormat::Millis), ..field("ts", FieldSource::Score) },
                field("ts_iso", FieldSource::Iso8601Of("ts".into())),
            ],
        };
        let values = Captures::from([("symbol".to_owned(), "QRLUSDT".to_owned())]);
        let input = Input { fields: None, member: Some("0.5"), score: Some("1641349582808"), values: &values };
        let record = spec.build(&input).unwrap();
        assert_eq!(record["ts"], 1_641_349_582_808_i64);
        assert_eq!(record["ts_iso"], "2022-01-05T02:26:22.808Z");
    }
}
