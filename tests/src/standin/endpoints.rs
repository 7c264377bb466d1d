//! The MEXC Spot v3 endpoints the stand-in serves: path, whether MEXC requires a signature,
//! the documented example each answers with, and the parameter checks MEXC applies.

use serde_json::Value;

pub struct Endpoint {
    pub path: &'static str,
    pub signed: bool,
    /// Example for a call with `symbol` (or the only example).
    pub fixture: Option<&'static str>,
    /// Example for a call without `symbol` (ticker endpoints answer an array then).
    pub fixture_all: Option<&'static str>,
    pub symbol_required: bool,
}

const fn public(path: &'static str, fixture: &'static str, symbol_required: bool) -> Endpoint {
    Endpoint { path, signed: false, fixture: Some(fixture), fixture_all: None, symbol_required }
}

const fn ticker(path: &'static str, one: &'static str, all: &'static str) -> Endpoint {
    Endpoint { path, signed: false, fixture: Some(one), fixture_all: Some(all), symbol_required: false }
}

const fn signed(path: &'static str, fixture: &'static str, symbol_required: bool) -> Endpoint {
    Endpoint { path, signed: true, fixture: Some(fixture), fixture_all: None, symbol_required }
}

pub const ENDPOINTS: &[Endpoint] = &[
    public("/api/v3/ping", "ping.json", false),
    Endpoint { path: "/api/v3/time", signed: false, fixture: None, fixture_all: None, symbol_required: false },
    public("/api/v3/exchangeInfo", "exchange_info.json", false),
    public("/api/v3/depth", "depth.json", true),
    public("/api/v3/trades", "trades.json", true),
    public("/api/v3/klines", "klines.json", true),
    public("/api/v3/avgPrice", "avg_price.json", true),
    ticker("/api/v3/ticker/24hr", "ticker_24hr.json", "ticker_24hr_all.json"),
    ticker("/api/v3/ticker/price", "ticker_price.json", "ticker_price_all.json"),
    ticker("/api/v3/ticker/bookTicker", "book_ticker.json", "book_ticker_all.json"),
    signed("/api/v3/account", "account.json", false),
    signed("/api/v3/myTrades", "my_trades.json", true),
    signed("/api/v3/tradeFee", "trade_fee.json", true),
    signed("/api/v3/openOrders", "open_orders.json", false),
];

/// MEXC's kline intervals.
pub const KLINE_INTERVALS: &[&str] = &["1m", "5m", "15m", "30m", "60m", "4h", "1d", "1W", "1M"];

impl Endpoint {
    /// MEXC's parameter checks: `Err((code, msg))` as MEXC would answer.
    pub fn validate(&self, params: &[(String, String)]) -> Result<(), (i64, String)> {
        let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        match param("symbol") {
            None if self.symbol_required => return Err((700004, "Mandatory parameter 'symbol' was not sent".into())),
            Some(symbol)
                if !(2..=32).contains(&symbol.len())
                    || !symbol.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
            {
                return Err((30014, "Invalid symbol.".into()));
            }
            _ => {}
        }
        if self.path == "/api/v3/klines" && !param("interval").is_some_and(|i| KLINE_INTERVALS.contains(&i)) {
            return Err((-1121, "Invalid interval.".into()));
        }
        if let Some(limit) = param("limit") {
            let max = match self.path {
                "/api/v3/depth" => 5000,
                "/api/v3/myTrades" => 100,
                _ => 1000,
            };
            if !limit.parse::<u32>().is_ok_and(|l| (1..=max).contains(&l)) {
                return Err((-1121, format!("limit must be between 1 and {max}")));
            }
        }
        Ok(())
    }
}

/// Applies the query to a body the way MEXC does: `myTrades` and `klines` honour
/// `startTime`/`endTime` (inclusive, ms) and `limit`, oldest first; klines without a start are
/// the newest `limit`.
pub fn shape(endpoint: &Endpoint, body: Value, params: &[(String, String)]) -> Value {
    let param = |name: &str| params.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse::<i64>().ok());
    let time_of = |row: &Value| match endpoint.path {
        "/api/v3/myTrades" => row.get("time").and_then(Value::as_i64),
        "/api/v3/klines" => row.get(0).and_then(Value::as_i64),
        _ => None,
    };
    let Value::Array(rows) = body else { return body };
    if !matches!(endpoint.path, "/api/v3/myTrades" | "/api/v3/klines") {
        return Value::Array(rows);
    }
    let (start, end) = (param("startTime"), param("endTime"));
    let limit = param("limit").unwrap_or(if endpoint.path == "/api/v3/klines" { 500 } else { 100 }) as usize;
    let mut rows: Vec<Value> = rows
        .into_iter()
        .filter(|row| {
            let t = time_of(row).unwrap_or(0);
            start.is_none_or(|s| t >= s) && end.is_none_or(|e| t <= e)
        })
        .collect();
    rows.sort_by_key(|row| time_of(row).unwrap_or(0));
    if start.is_none() && endpoint.path == "/api/v3/klines" {
        // Without a start, MEXC answers the newest `limit` candles (still oldest first).
        let newest = rows.len().saturating_sub(limit);
        rows.drain(..newest);
    } else {
        rows.truncate(limit);
    }
    Value::Array(rows)
}
