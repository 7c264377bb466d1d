//! [`RawRecord`]: `P:raw:{exchange}:{endpoint}:latest` and the members of `…:history` — an
//! exchange response as it came, with when, from where and why (`metadata`).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRecord {
    pub endpoint: String,
    pub fetched_at: i64,
    pub fetched_at_iso: String,
    /// Which task asked, for which symbol and window.
    pub metadata: Value,
    pub response: Value,
}

/// [`RawRecord`] as the sync tasks write it: the response borrowed as MEXC's bytes
/// ([`crate::exchange::Fetched::raw_json`]). Same fields in the same order; the response
/// keeps MEXC's own key order (the owned record, read back, writes its keys sorted).
#[derive(Debug, Serialize)]
pub struct RawRecordRef<'a> {
    pub endpoint: &'a str,
    pub fetched_at: i64,
    pub fetched_at_iso: &'a str,
    pub metadata: &'a Value,
    pub response: &'a RawValue,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_and_writes_this_json() {
        let record = RawRecord {
            endpoint: "ticker_24hr".into(),
            fetched_at: 1,
            fetched_at_iso: "1970-01-01T00:00:00.001Z".into(),
            metadata: json!({"task": "price", "symbol": "QRLUSDT"}),
            response: json!({"lastPrice": "0.5"}),
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(
            text,
            r#"{"endpoint":"ticker_24hr","fetched_at":1,"fetched_at_iso":"1970-01-01T00:00:00.001Z","metadata":{"symbol":"QRLUSDT","task":"price"},"response":{"lastPrice":"0.5"}}"#
        );
        assert_eq!(serde_json::from_str::<RawRecord>(&text).unwrap(), record);
        let response = RawValue::from_string(record.response.to_string()).unwrap();
        let borrowed = RawRecordRef {
            endpoint: &record.endpoint,
            fetched_at: record.fetched_at,
            fetched_at_iso: &record.fetched_at_iso,
            metadata: &record.metadata,
            response: &response,
        };
        assert_eq!(serde_json::to_string(&borrowed).unwrap(), text, "the write side writes the same bytes");
    }
}
