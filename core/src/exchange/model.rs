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

/// `GET /api/v3/account`: the fields edgesync reads. The complete response is kept raw.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    #[serde(default)]
    pub balances: Vec<Balance>,
    #[serde(default)]
    pub update_time: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Balance {
    pub asset: String,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub free: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub locked: Option<Decimal>,
}

impl Account {
    /// Free and locked of `asset`; zero for an asset the account does not list.
    pub fn holding(&self, asset: &str) -> (Decimal, Decimal) {
        self.balances
            .iter()
            .find(|b| b.asset == asset)
            .map_or((Decimal::ZERO, Decimal::ZERO), |b| (b.free.unwrap_or_default(), b.locked.unwrap_or_default()))
    }
}

/// One fill from `GET /api/v3/myTrades`. MEXC sends ids as strings (numbers are accepted).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trade {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub price: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub qty: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub quote_qty: Option<Decimal>,
    #[serde(default, deserialize_with = "lenient_decimal")]
    pub commission: Option<Decimal>,
    #[serde(default)]
    pub commission_asset: Option<String>,
    pub time: i64,
    pub is_buyer: bool,
}

/// `GET /api/v3/time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerTime {
    pub server_time: i64,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(serde_json::Number),
    }
    Ok(match Id::deserialize(deserializer)? {
        Id::Text(text) => text,
        Id::Number(number) => number.to_string(),
    })
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

    #[test]
    fn documented_account_and_trades_parse() {
        let account: Account = serde_json::from_str(include_str!("../../../fixtures/mexc/account.json")).unwrap();
        assert_eq!(account.holding("NBNTEST").0.to_string(), "1111078");
        assert_eq!(account.holding("NBNTEST").1.to_string(), "33");
        assert_eq!(account.holding("NOPE"), (Decimal::ZERO, Decimal::ZERO));
        let trades: Vec<Trade> = serde_json::from_str(include_str!("../../../fixtures/mexc/my_trades.json")).unwrap();
        assert_eq!(trades[0].id, "fad2af9e942049b6adbda1a271f990c6");
        assert_eq!(trades[0].commission.unwrap().to_string(), "10.10000000");
        assert!(trades[0].is_buyer);
    }
}
