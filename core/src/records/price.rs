//! [`PriceRecord`]: `P:price:{exchange}:{symbol}:latest` and `…:cached`, and the members of
//! `…:history` — the synced price as exact decimals, with when it was fetched.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The stored price: exact decimals as strings, `ts` in ms since the epoch (when fetched).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceRecord {
    pub symbol: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub price: Decimal,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub volume_24h: Option<Decimal>,
    pub ts: i64,
}

impl super::Record for PriceRecord {
    const EXPECTED: &'static str = "a JSON price record with `symbol`, `price` (decimal string) and `ts` (ms)";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_writes_this_json() {
        let record = PriceRecord {
            symbol: "QRLUSDT".into(),
            price: "0.0150".parse().unwrap(),
            volume_24h: None,
            ts: 1_700_000_000_000,
        };
        let text = serde_json::to_string(&record).unwrap();
        assert_eq!(text, r#"{"symbol":"QRLUSDT","price":"0.0150","volume_24h":null,"ts":1700000000000}"#);
        assert_eq!(serde_json::from_str::<PriceRecord>(&text).unwrap(), record);
    }
}
