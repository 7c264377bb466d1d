//! Read-through market data: `GET /v1/ticker/{symbol}`, `/v1/ohlcv/{symbol}?interval&limit`,
//! `/v1/deals/{symbol}?limit`, `/v1/orderbook/{symbol}?limit`. A cached value (memory tier or
//! Redis) is answered after checking it is the JSON shape MEXC sends (a value that is not is
//! cache, so it is discarded and refetched); a miss goes to the exchange — once per key per
//! isolate, however many requests miss together — and is stored with its class TTL (for
//! OHLCV never past the newest candle's close). With Redis down the exchange still answers.
//!
//! What anonymous callers can make the exchange account spend is bounded: only configured
//! symbols are fetched (`SYMBOLS` and `READ_THROUGH_SYMBOLS`; others are a 404 before any
//! call), limits are fetched on [`crate::market::LIMIT_STEPS`] and cut to the request, and
//! misses spend the isolate's [`super::budget::MissBudget`] (503 with `Retry-After` when it
//! is empty). Responses carry `X-Edgesync-Tier` (`l1`, `redis`, `memory-stale`, `memory`,
//! `exchange`), `Age` and `Cache-Control: public, max-age=<seconds left>`.

use std::time::Duration;

use serde_json::Value;

use super::{params, ApiError, ApiRequest, ApiResponse};
use crate::exchange::{ExchangeError, MexcClient};
use crate::market::{
    limit_step, MarketQuery, DEFAULT_DEALS_LIMIT, DEFAULT_OHLCV_INTERVAL, DEFAULT_OHLCV_LIMIT, DEFAULT_ORDERBOOK_LIMIT,
};
use crate::records::{OrderBookDocument, Record, RowsDocument, TickerDocument};
use crate::store::tiered::Read;
use crate::store::Store;
use crate::ttl::DataClass;
use crate::App;

/// A market route's request: what to fetch and cache, and how many entries to answer.
pub struct MarketRequest {
    pub query: MarketQuery,
    pub requested: u32,
}

/// Which market route was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarketKind {
    Ticker,
    Ohlcv,
    Deals,
    Orderbook,
}

/// The market route's request, from its path and parameters.
pub fn query(app: &App<'_>, kind: MarketKind, symbol: &str, request: &ApiRequest) -> Result<MarketRequest, ApiError> {
    let symbol = params::symbol(symbol)?;
    if !app.config.read_through.symbols.contains(&symbol) {
        return Err(ApiError::new(
            404,
            "symbol_not_served",
            format!("{symbol} is not served here: read-through fetches only SYMBOLS and READ_THROUGH_SYMBOLS"),
        ));
    }
    let (query, requested) = match kind {
        MarketKind::Ticker => (MarketQuery::Ticker { symbol }, 1),
        MarketKind::Ohlcv => {
            let interval = params::interval(request, DEFAULT_OHLCV_INTERVAL)?;
            let limit = params::limit(request, DEFAULT_OHLCV_LIMIT, 1000)?;
            (MarketQuery::Ohlcv { symbol, interval, limit: limit_step(limit) }, limit)
        }
        MarketKind::Deals => {
            let limit = params::limit(request, DEFAULT_DEALS_LIMIT, 1000)?;
            (MarketQuery::Deals { symbol, limit: limit_step(limit) }, limit)
        }
        MarketKind::Orderbook => {
            let limit = params::limit(request, DEFAULT_ORDERBOOK_LIMIT, 5000)?;
            (MarketQuery::Orderbook { symbol, limit: limit_step(limit) }, limit)
        }
    };
    Ok(MarketRequest { query, requested })
}

fn respond(value: Value, tier: &str, age_ms: i64, max_age: Duration) -> ApiResponse {
    ApiResponse::json(200, &value)
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

/// The cached value of `key`, checked as `T`.
async fn cached<T: Record + Into<Value>>(app: &App<'_>, key: &str, class: DataClass) -> Option<Read<Value>> {
    // A store failure is not the caller's problem here: the exchange can still answer.
    Some(app.store.read_json::<T>(key, class).await.ok()??.map(Into::into))
}

pub async fn read_through(app: &App<'_>, request: MarketRequest) -> Result<ApiResponse, ApiError> {
    let MarketRequest { query, requested } = request;
    let key = query.key(&app.config.keys);
    let class = query.class();
    let class_ttl = app.config.ttl.ttl(class).unwrap_or(Duration::from_secs(60));
    let hit = match query {
        MarketQuery::Ticker { .. } => cached::<TickerDocument>(app, &key, class).await,
        MarketQuery::Ohlcv { .. } | MarketQuery::Deals { .. } => cached::<RowsDocument>(app, &key, class).await,
        MarketQuery::Orderbook { .. } => cached::<OrderBookDocument>(app, &key, class).await,
    };
    if let Some(read) = hit {
        let max_age = read.ttl_ms.map_or(class_ttl, |ms| Duration::from_millis(ms.max(0) as u64));
        return Ok(respond(query.trim(read.value, requested), read.tier.as_str(), read.age_ms, max_age));
    }
    // A miss, or Redis failing with nothing in memory: the exchange can still answer.
    let exchange = MexcClient::new(app.http, app.clock, &app.config.exchange);
    let budget = app.config.read_through.misses_per_minute;
    let mut refused = None;
    let (outcome, leader) = app
        .flights
        .run(
            &key,
            || async {
                if let Err(wait_ms) = app.flights.budget.try_spend(app.clock.now_ms(), budget) {
                    app.flights.count_refusal();
                    refused = Some(wait_ms);
                    // Waiting callers see this as the exchange's rate limit, which it stands for.
                    let retry_after_secs = Some((wait_ms as u64).div_ceil(1000).max(1));
                    return Err(ExchangeError::RateLimited { status: 429, retry_after_secs });
                }
                app.flights.count_call();
                query.fetch(&exchange).await
            },
            || app.waiter.wait(app.config.exchange.timeout),
        )
        .await;
    if let Some(wait_ms) = refused {
        let mut error = ApiError::new(
            503,
            "read_through_budget_exhausted",
            format!("this edge has made its {budget} exchange calls for cache misses this minute; try again shortly"),
        );
        error.headers.push(("retry-after".into(), (wait_ms as u64).div_ceil(1000).max(1).to_string()));
        return Err(error);
    }
    let fetched = outcome.map_err(exchange_error)?;
    let ttl = query.ttl(&app.config.ttl, &fetched.value, app.clock.now_ms());
    if leader {
        // One write per flight. A failed write still fills the memory tier; the read succeeds.
        let _ = app.store.set(&key, fetched.value.to_string().as_bytes(), Some(ttl)).await;
    }
    Ok(respond(query.trim(fetched.value, requested), "exchange", 0, ttl))
}
