//! How values look on the wire and in storage: prices and quantities are exact decimals
//! carried as JSON strings (never floats), timestamps are integer milliseconds since the epoch
//! in storage and ISO-8601 for people. MEXC sends some numbers as `""` or `null`; the lenient
//! readers here turn those into `None` rather than failing or inventing a zero. Bytes that
//! must travel in JSON go as UTF-8 text when they are text and as base64 otherwise
//! ([`WireBytes`]).

use base64::Engine as _;
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};

/// Encodes a value for storage. Serialization of edgesync's own types cannot fail (no maps
/// with non-string keys, no floats that are NaN), so failure is a bug worth a panic.
pub fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("edgesync's stored types always serialize")
}

/// Bytes in JSON: `{"utf8": "…"}` for text, `{"base64": "…"}` for anything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireBytes {
    Utf8(String),
    Base64(String),
}

impl WireBytes {
    pub fn encode(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => WireBytes::Utf8(text.to_owned()),
            Err(_) => WireBytes::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        }
    }

    pub fn decode(&self) -> Result<Vec<u8>, String> {
        match self {
            WireBytes::Utf8(text) => Ok(text.as_bytes().to_vec()),
            WireBytes::Base64(text) => {
                base64::engine::general_purpose::STANDARD.decode(text).map_err(|e| format!("bad base64: {e}"))
            }
        }
    }
}

/// `#[serde(with = "wire_bytes")]`: a `Vec<u8>` field as [`WireBytes`].
pub mod wire_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::WireBytes;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        WireBytes::encode(bytes).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        WireBytes::deserialize(deserializer)?.decode().map_err(serde::de::Error::custom)
    }
}

/// Reads a decimal that MEXC may send as `"1.5"`, `1.5`, `""` or `null`.
///
/// `""` and `null` (and a missing field, with `#[serde(default)]`) become `None`; anything else
/// that is not a decimal is an error, so garbage is never stored as a number.
pub fn lenient_decimal<'de, D>(deserializer: D) -> Result<Option<Decimal>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire<'a> {
        Text(&'a str),
        Owned(String),
        Number(serde_json::Number),
    }
    let parse = |text: &str| -> Result<Option<Decimal>, D::Error> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        parse_decimal(text).map(Some).map_err(serde::de::Error::custom)
    };
    match Option::<Wire>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Wire::Text(text)) => parse(text),
        Some(Wire::Owned(text)) => parse(&text),
        Some(Wire::Number(number)) => parse(&number.to_string()),
    }
}

/// Parses an exact decimal, accepting scientific notation (`1e-8`) as MEXC sometimes sends it.
pub fn parse_decimal(text: &str) -> Result<Decimal, String> {
    use std::str::FromStr;
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| format!("`{text}` is not a decimal number"))
}

/// `text` cut to at most `max_chars` characters, `…` marking the cut — for quoting input
/// (or anything long) in a message.
pub fn shorten(text: &str, max_chars: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]).into(),
        None => text.into(),
    }
}

/// Milliseconds since the epoch as ISO-8601 UTC with millisecond precision,
/// e.g. `2024-01-02T03:04:05.678Z`. Out-of-range values render as the epoch.
pub fn iso8601_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses ISO-8601 into milliseconds since the epoch: with a zone (`2024-01-02T03:04:05Z`,
/// `+08:00`), or without one (`2025-12-28T13:33:49.123456`, as Python's `isoformat()` writes
/// local time), which is read as UTC — the writer's zone is not in the text.
pub fn parse_iso8601_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|time| time.and_utc().timestamp_millis())
        .ok_or_else(|| format!("`{text}` is not an ISO-8601 time"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Probe {
        #[serde(default, deserialize_with = "lenient_decimal")]
        v: Option<Decimal>,
    }

    fn probe(json: &str) -> Result<Option<Decimal>, serde_json::Error> {
        serde_json::from_str::<Probe>(json).map(|p| p.v)
    }

    #[test]
    fn decimals_stay_exact_and_tolerate_mexc_blanks() {
        assert_eq!(probe(r#"{"v":"46263.71"}"#).unwrap().unwrap().to_string(), "46263.71");
        assert_eq!(probe(r#"{"v":"0.00000001"}"#).unwrap().unwrap().to_string(), "0.00000001");
        assert_eq!(probe(r#"{"v":""}"#).unwrap(), None);
        assert_eq!(probe(r#"{"v":null}"#).unwrap(), None);
        assert_eq!(probe(r#"{}"#).unwrap(), None);
        assert_eq!(probe(r#"{"v":0.003}"#).unwrap().unwrap().to_string(), "0.003");
        assert!(probe(r#"{"v":"abc"}"#).is_err());
    }

    #[test]
    fn bytes_round_trip_as_text_or_base64() {
        for bytes in [b"plain text".to_vec(), vec![0xff, 0x00, 0xfe]] {
            let wire = WireBytes::encode(&bytes);
            let json = serde_json::to_string(&wire).unwrap();
            let back: WireBytes = serde_json::from_str(&json).unwrap();
            assert_eq!(back.decode().unwrap(), bytes, "{json}");
        }
        assert_eq!(serde_json::to_string(&WireBytes::encode(b"hi")).unwrap(), r#"{"utf8":"hi"}"#);
    }

    #[test]
    fn iso8601_parses_with_and_without_a_zone() {
        assert_eq!(parse_iso8601_ms("2022-01-05T02:26:22.808Z").unwrap(), 1_641_349_582_808);
        assert_eq!(parse_iso8601_ms("2022-01-05T10:26:22.808+08:00").unwrap(), 1_641_349_582_808);
        assert_eq!(parse_iso8601_ms("2022-01-05T02:26:22.808123").unwrap(), 1_641_349_582_808);
        assert_eq!(parse_iso8601_ms("2022-01-05T02:26:22").unwrap(), 1_641_349_582_000);
        assert!(parse_iso8601_ms("yesterday").is_err());
    }

    #[test]
    fn timestamps_render_as_iso8601() {
        assert_eq!(iso8601_ms(1_641_349_582_808), "2022-01-05T02:26:22.808Z");
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00.000Z");
    }
}
