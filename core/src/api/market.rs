//! Read-through market data: `GET /v1/ticker/{symbol}`, `/v1/ohlcv/{symbol}?interval&limit`,
//! `/v1/deals/{symbol}?limit`, `/v1/orderbook/{symbol}?limit`. A cached value (memory tier or
//! Redis) is answered as is; a miss goes to the exchange — once per key per isolate, however
//! many requests miss together — and is stored with its class TTL (for OHLCV never past the
//! newest candle's close). With Redis down the exchange still answers. Responses carry
//! `X-Edgesync-Tier` (`l1`, `redis`, `memory-stale`, `memory`, `exchange`), `Age` and
//! `Cache-Control: public, max-age=<seconds left>`.

use std::time::Duration;

use super::{params, ApiError, ApiRequest, ApiResponse};
use crate::exchange::{ExchangeError, MexcClient};
use crate::market::{
    MarketQuery, DEFAULT_DEALS_LIMIT, DEFAULT_OHLCV_INTERVAL, DEFAULT_OHLCV_LIMIT, DEFAULT_ORDERBOOK_LIMIT,
};
use crate::store::Store;
use crate::App;

/// The market route's query, from its path and parameters.
pub fn query(kind: &str, symbol: &str, request: &ApiRequest) -> Result<MarketQuery, ApiError> {
    let symbol = params::symbol(symbol)?;
    Ok(match kind {
        "ticker" => MarketQuery::Ticker { symbol },
        "ohlcv" => MarketQuery::Ohlcv {
            symbol,
            interval: params::interval(request, DEFAULT_OHLCV_INTERVAL)?,
            limit: params::limit(request, DEFAULT_OHLCV_LIMIT, 1000)?,
        },
        "deals" => MarketQuery::Deals { symbol, limit: params::limit(request, DEFAULT_DEALS_LIMIT, 1000)? },
        _ => MarketQuery::Orderbook { symbol, limit: params::limit(request, DEFAULT_ORDERBOOK_LIMIT, 5000)? },
    })
}

fn respond(body: Vec<u8>, tier: &str, age_ms: i64, max_age: Duration) -> ApiResponse {
    ApiResponse { status: 200, headers: vec![("content-type".into(), "application/json".into())], body }
        .with_header("x-edgesync-tier", tier)
        .with_header("age", (age_ms / 1000).to_string())
        .with_header("cache-control", format!("public, max-age={}", max_age.as_secs()))
}

/// An exchange failure as the API reports it.
pub fn exchange_error(error: ExchangeError) -> ApiError {
    match error {
        ExchangeError::Api { status: 400..=499, code, msg } => {
            ApiError::new(400, "exchange_rejected", format!("MEXC rejected the request (code {code}): {msg}"))
        }
        ExchangeError::RateLimited { retry_after_secs, .. } => {
            let mut error = ApiError::new(503, "exchange_rate_limited", "MEXC is rate limiting; try again later");
            error.headers.push(("retry-after".into(), retry_after_secs.unwrap_or(1).to_string()));
            error
        }
        other => ApiError::new(502, "exchange_unavailable", format!("the exchange could not answer: {other}")),
    }
}

pub async fn read_through(app: &App<'_>, query: MarketQuery) -> Result<ApiResponse, ApiError> {
    let key = query.key(&app.config.keys);
    let class = query.class();
    let class_ttl = app.config.ttl.ttl(class).unwrap_or(Duration::from_secs(60));
    if let Ok(Some(read)) = app.store.read(&key, class).await {
        let max_age = read.ttl_ms.map_or(class_ttl, |ms| Duration::from_millis(ms.max(0) as u64));
        return Ok(respond(read.value, read.tier.as_str(), read.age_ms, max_age));
    }
    // A miss, or Redis failing with nothing in memory: the exchange can still answer.
    let exchange = MexcClient::new(app.http, app.clock, &app.config.exchange);
    let (outcome, leader) = app.flights.run(&key, || query.fetch(&exchange)).await;
    let fetched = outcome.map_err(exchange_error)?;
    let ttl = query.ttl(&app.config.ttl, &fetched.value, app.clock.now_ms());
    let body = fetched.value.to_string().into_bytes();
    if leader {
        // One write per flight. A failed write still fills the memory tier; the read succeeds.
        let _ = app.store.set(&key, &body, Some(ttl)).await;
    }
    Ok(respond(body, "exchange", 0, ttl))
}
