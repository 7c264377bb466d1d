//! Market data the API serves read-through and the warmer preloads: what each kind is called
//! on the exchange, which key and TTL class it is cached under, and how long a fetched value
//! may live — including the OHLCV rule that the cache never outlives the newest (still open)
//! candle, so an open candle is never served stale for hours (a flat 24 h TTL would).
//!
//! Limits are cached on a ladder ([`LIMIT_STEPS`]): a request for `limit=901` is fetched and
//! cached as `1000` and cut to 901 when answered, so odd limits share a key and an exchange
//! call instead of each costing one.
//!
//! This module fetches and describes; reading through the tiers is the API's job.

use std::time::Duration;

use serde_json::Value;

use crate::exchange::{ExchangeError, Fetched, MexcClient};
use crate::keys::{Exchange, KeySpace, Segment};
use crate::ttl::{DataClass, TtlTable};

/// MEXC's kline intervals.
pub const KLINE_INTERVALS: [&str; 9] = ["1m", "5m", "15m", "30m", "60m", "4h", "1d", "1W", "1M"];

/// Parameters the warmer uses when none are given.
pub const DEFAULT_OHLCV_INTERVAL: &str = "60m";
pub const DEFAULT_OHLCV_LIMIT: u32 = 100;
pub const DEFAULT_DEALS_LIMIT: u32 = 50;
pub const DEFAULT_ORDERBOOK_LIMIT: u32 = 20;

/// What anonymous read-through may cost: which symbols it fetches and how many exchange
/// calls one isolate may make for misses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadThroughConfig {
    /// `SYMBOLS` plus `READ_THROUGH_SYMBOLS`: the only symbols the market routes fetch.
    pub symbols: Vec<Segment>,
    /// `READ_THROUGH_MISSES_PER_MINUTE` (default 120): exchange calls per isolate per minute
    /// for cache misses (a token bucket holding one minute's worth); beyond it a miss is a 503.
    pub misses_per_minute: u32,
}

/// The limits market data is fetched and cached at.
pub const LIMIT_STEPS: [u32; 9] = [5, 10, 20, 50, 100, 200, 500, 1000, 5000];

/// The smallest step that holds `requested` entries (the largest step beyond it).
pub fn limit_step(requested: u32) -> u32 {
    LIMIT_STEPS.into_iter().find(|step| *step >= requested).unwrap_or(LIMIT_STEPS[LIMIT_STEPS.len() - 1])
}

/// One cacheable market-data query. `limit` is a [`LIMIT_STEPS`] value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarketQuery {
    Ticker { symbol: Segment },
    Ohlcv { symbol: Segment, interval: Segment, limit: u32 },
    Deals { symbol: Segment, limit: u32 },
    Orderbook { symbol: Segment, limit: u32 },
}

impl MarketQuery {
    /// The default query of `class` for `symbol`; `None` for classes that are not market data.
    pub fn default_for(class: DataClass, symbol: &Segment) -> Option<Self> {
        let symbol = symbol.clone();
        Some(match class {
            DataClass::Ticker => MarketQuery::Ticker { symbol },
            DataClass::Ohlcv => MarketQuery::Ohlcv {
                symbol,
                interval: Segment::new("interval", DEFAULT_OHLCV_INTERVAL).expect("a valid constant"),
                limit: DEFAULT_OHLCV_LIMIT,
            },
            DataClass::Deals => MarketQuery::Deals { symbol, limit: DEFAULT_DEALS_LIMIT },
            DataClass::Orderbook => MarketQuery::Orderbook { symbol, limit: DEFAULT_ORDERBOOK_LIMIT },
            _ => return None,
        })
    }

    pub fn class(&self) -> DataClass {
        match self {
            MarketQuery::Ticker { .. } => DataClass::Ticker,
            MarketQuery::Ohlcv { .. } => DataClass::Ohlcv,
            MarketQuery::Deals { .. } => DataClass::Deals,
            MarketQuery::Orderbook { .. } => DataClass::Orderbook,
        }
    }

    pub fn key(&self, keys: &KeySpace) -> String {
        match self {
            MarketQuery::Ticker { symbol } => keys.ticker(Exchange::Mexc, symbol),
            MarketQuery::Ohlcv { symbol, interval, limit } => keys.ohlcv(Exchange::Mexc, symbol, interval, *limit),
            MarketQuery::Deals { symbol, limit } => keys.deals(Exchange::Mexc, symbol, *limit),
            MarketQuery::Orderbook { symbol, limit } => keys.orderbook(Exchange::Mexc, symbol, *limit),
        }
    }

    /// Fetches the query from the exchange as MEXC's JSON.
    pub async fn fetch(&self, exchange: &MexcClient<'_>) -> Result<Fetched<Value>, ExchangeError> {
        match self {
            MarketQuery::Ticker { symbol } => exchange.ticker_24hr(symbol).await.and_then(|f| {
                let value = serde_json::from_str(f.raw.get())
                    .map_err(|e| ExchangeError::Malformed { endpoint: f.endpoint, reason: e.to_string() })?;
                Ok(Fetched::new(value, f.raw, f.fetched_at_ms, f.endpoint))
            }),
            MarketQuery::Ohlcv { symbol, interval, limit } => exchange.klines(symbol, interval.as_str(), *limit).await,
            MarketQuery::Deals { symbol, limit } => exchange.trades(symbol, *limit).await,
            MarketQuery::Orderbook { symbol, limit } => exchange.depth(symbol, *limit).await,
        }
    }

    /// `value` (this query's answer) cut to `requested` entries: the newest candles and
    /// trades (MEXC lists them oldest first), the best `requested` levels of each book side.
    pub fn trim(&self, value: Value, requested: u32) -> Value {
        let requested = requested as usize;
        let newest = |value: Value| match value {
            Value::Array(mut rows) if rows.len() > requested => Value::Array(rows.split_off(rows.len() - requested)),
            other => other,
        };
        match self {
            MarketQuery::Ticker { .. } => value,
            MarketQuery::Ohlcv { .. } | MarketQuery::Deals { .. } => newest(value),
            MarketQuery::Orderbook { .. } => {
                let mut value = value;
                for side in ["bids", "asks"] {
                    if let Some(Value::Array(levels)) = value.get_mut(side) {
                        levels.truncate(requested);
                    }
                }
                value
            }
        }
    }

    /// How long a value fetched at `now_ms` may be cached: the class TTL, and for OHLCV never
    /// past the close of the newest candle (at least 1 s, so a closed candle is refetched soon).
    pub fn ttl(&self, table: &TtlTable, value: &Value, now_ms: i64) -> Duration {
        let class_ttl = table.ttl(self.class()).unwrap_or(Duration::from_secs(60));
        if !matches!(self, MarketQuery::Ohlcv { .. }) {
            return class_ttl;
        }
        let newest_close = value.as_array().and_then(|rows| rows.iter().filter_map(|row| row.get(6)?.as_i64()).max());
        match newest_close {
            Some(close_ms) => {
                let until_close = Duration::from_millis((close_ms - now_ms).max(0) as u64);
                until_close.min(class_ttl).max(Duration::from_secs(1))
            }
            None => class_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_share_steps_and_answers_are_cut_to_the_request() {
        assert_eq!(
            [limit_step(1), limit_step(20), limit_step(21), limit_step(901), limit_step(902)],
            [5, 20, 50, 1000, 1000]
        );
        let symbol = Segment::new("symbol", "QRLUSDT").unwrap();
        let deals = MarketQuery::Deals { symbol: symbol.clone(), limit: 5 };
        assert_eq!(deals.trim(json!([1, 2, 3, 4, 5]), 2), json!([4, 5]));
        let book = MarketQuery::Orderbook { symbol, limit: 5 };
        let trimmed = book.trim(json!({"bids": [1, 2, 3], "asks": [4, 5, 6], "lastUpdateId": 9}), 1);
        assert_eq!(trimmed, json!({"bids": [1], "asks": [4], "lastUpdateId": 9}));
    }

    #[test]
    fn ohlcv_ttl_never_outlives_the_open_candle() {
        let symbol = Segment::new("symbol", "QRLUSDT").unwrap();
        let query = MarketQuery::Ohlcv { symbol, interval: Segment::new("i", "1m").unwrap(), limit: 2 };
        let table = TtlTable::default();
        let now = 1_700_000_030_000;
        let rows = json!([
            [1_699_999_940_000_i64, "1", "1", "1", "1", "1", 1_699_999_999_999_i64, "1"],
            [1_700_000_000_000_i64, "1", "1", "1", "1", "1", 1_700_000_059_999_i64, "1"]
        ]);
        assert_eq!(query.ttl(&table, &rows, now), Duration::from_millis(29_999));
        assert_eq!(query.ttl(&table, &json!([]), now), Duration::from_secs(86_400));
        let closed = json!([[0, "1", "1", "1", "1", "1", 1_000, "1"]]);
        assert_eq!(query.ttl(&table, &closed, now), Duration::from_secs(1));
    }
}
