//! Redis values → Upstash response bodies: JSON (RESP2 semantics: status and bulk strings as
//! strings, integers as numbers, nil as null, arrays nested; with `Upstash-Encoding: base64`
//! every string but the `OK` status is base64) and raw RESP2 for
//! `Upstash-Response-Format: resp2`.

use axum::http::HeaderMap;
use base64::Engine as _;
use redis::Value;
use serde_json::{json, Value as Json};

/// How the client asked for results to be encoded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Encoding {
    pub base64: bool,
    pub resp2: bool,
}

impl Encoding {
    /// Reads `Upstash-Encoding` and `Upstash-Response-Format`; invalid combinations are 400s.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, String> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_ascii_lowercase);
        let base64 = header("upstash-encoding").is_some_and(|v| v == "base64");
        let resp2 = match header("upstash-response-format").as_deref() {
            None | Some("json") => false,
            Some("resp2") => true,
            Some(other) => return Err(format!("ERR invalid response format: {other}")),
        };
        if base64 && resp2 {
            return Err("ERR base64 encoding cannot be combined with the resp2 response format".into());
        }
        Ok(Self { base64, resp2 })
    }
}

fn text(bytes: &[u8], base64: bool) -> Json {
    if base64 {
        Json::String(base64::engine::general_purpose::STANDARD.encode(bytes))
    } else {
        Json::String(String::from_utf8_lossy(bytes).into_owned())
    }
}

/// One result as JSON.
pub fn to_json(value: &Value, base64: bool) -> Json {
    match value {
        Value::Nil => Json::Null,
        Value::Int(n) => json!(n),
        Value::Okay => Json::String("OK".into()),
        Value::SimpleString(s) => text(s.as_bytes(), base64),
        Value::BulkString(bytes) => text(bytes, base64),
        Value::Array(items) | Value::Set(items) => Json::Array(items.iter().map(|v| to_json(v, base64)).collect()),
        Value::Map(pairs) => {
            Json::Array(pairs.iter().flat_map(|(k, v)| [to_json(k, base64), to_json(v, base64)]).collect())
        }
        Value::Double(d) => text(d.to_string().as_bytes(), base64),
        Value::Boolean(b) => json!(i64::from(*b)),
        Value::VerbatimString { text: t, .. } => text(t.as_bytes(), base64),
        Value::ServerError(error) => text(error.to_string().as_bytes(), base64),
        other => text(format!("{other:?}").as_bytes(), base64),
    }
}

/// One result as RESP2 bytes.
pub fn to_resp2(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_resp2(value, &mut out);
    out
}

fn write_resp2(value: &Value, out: &mut Vec<u8>) {
    let bulk = |bytes: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    };
    match value {
        Value::Nil => out.extend_from_slice(b"$-1\r\n"),
        Value::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Value::Okay => out.extend_from_slice(b"+OK\r\n"),
        Value::SimpleString(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Value::BulkString(bytes) => bulk(bytes, out),
        Value::Array(items) | Value::Set(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            items.iter().for_each(|item| write_resp2(item, out));
        }
        other => bulk(to_json(other, false).to_string().as_bytes(), out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_encodes_every_string_but_ok() {
        let value = Value::Array(vec![Value::Okay, Value::BulkString(b"bar".to_vec()), Value::Nil, Value::Int(3)]);
        assert_eq!(to_json(&value, true), json!(["OK", "YmFy", null, 3]));
        assert_eq!(to_json(&value, false), json!(["OK", "bar", null, 3]));
    }

    #[test]
    fn resp2_is_byte_exact() {
        let value = Value::Array(vec![Value::Okay, Value::BulkString(b"hi".to_vec()), Value::Nil, Value::Int(-1)]);
        assert_eq!(to_resp2(&value), b"*4\r\n+OK\r\n$2\r\nhi\r\n$-1\r\n:-1\r\n");
    }
}
