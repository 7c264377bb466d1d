//! Typed MEXC responses. Prices and quantities are exact decimals; fields MEXC may send as
//! `""` or `null` are `Option`s; unknown fields are ignored here (the raw JSON is kept
//! alongside, see [`super::Fetched`]), so a new field from MEXC never breaks a sync.

use rust_decimal::Decimal;
use serde::Deserialize;

use crate::codec::lenient_decimal;

/// `GET /api/v3/ticker/24hr?symbol=…`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ticker24h {
    pub symbol: String,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub last_price: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub price_change: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub price_change_percent: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub high_price: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub low_price: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub volume: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub quote_volume: Option<Decimal>,
    #[serde(default)]
    pub open_time: Option<i64>,
    #[serde(default)]
    pub close_time: Option<i64>,
}

/// MEXC's error body.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub code: i64,
    #[serde(default)]
    pub msg: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_ticker_parses_with_blanks_and_nulls() {
        let raw = include_str!("../../../fixtures/mexc/ticker_24hr.json");
        let ticker: Ticker24h = serde_json::from_str(raw).unwrap();
        assert_eq!(ticker.last_price.unwrap().to_string(), "46263.71");
        assert_eq!(ticker.volume.unwrap().to_string(), "1732.461487");
        assert_eq!(ticker.quote_volume, None);
        assert_eq!(ticker.close_time, Some(1_641_349_582_808));
    }
}
