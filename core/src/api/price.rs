//! `GET /v1/price/{symbol}`: the synced price, read through the tiers: `cached` (30 s TTL)
//! first, then `latest` (permanent), so a price once synced is always answered — both asked
//! in one Redis request when the isolate cache knows neither, and remembered (present or
//! absent) for the fresh window; with Redis
//! down, what L1 holds is served flagged `memory-stale`, else 503. A `cached` value that does
//! not decode is cache and is discarded; a `latest` value that does not decode is left as it
//! is and answered as `unreadable_value` (see `store::tiered`). `X-Edgesync-Tier` and `Age`
//! say where the answer came from.

use serde_json::json;

use super::{params, ApiError, ApiResponse};
use crate::codec::iso8601_ms;
use crate::keys::Exchange;
use crate::records::price::PriceRecord;
use crate::store::tiered::Read;
use crate::ttl::DataClass;
use crate::App;

pub async fn price(app: &App<'_>, symbol: &str) -> Result<ApiResponse, ApiError> {
    let symbol = params::symbol(symbol)?;
    let keys = &app.config.keys;
    let (cached, latest) = (keys.price_cached(Exchange::Mexc, &symbol), keys.price_latest(Exchange::Mexc, &symbol));
    // Both in one Redis request when the isolate cache knows neither; none when it knows.
    let candidates = [(cached.as_str(), DataClass::Price), (latest.as_str(), DataClass::PriceLatest)];
    match app.store.read_json_first::<PriceRecord>(&candidates).await? {
        Some((index, read)) => Ok(answer(&read, if index == 0 { "cached" } else { "latest" })),
        None => Err(ApiError::not_found(format!("no price for {symbol} has been synced yet"))),
    }
}

fn answer(read: &Read<PriceRecord>, source: &str) -> ApiResponse {
    let record = &read.value;
    ApiResponse::json(
        200,
        &json!({
            "symbol": record.symbol,
            "exchange": Exchange::Mexc.as_str(),
            "price": record.price.to_string(),
            "volume_24h": record.volume_24h.map(|v| v.to_string()),
            "ts": record.ts,
            "ts_iso": iso8601_ms(record.ts),
            "source": source,
        }),
    )
    .with_header("x-edgesync-tier", read.tier.as_str())
    .with_header("age", (read.age_ms / 1000).to_string())
    .with_header("cache-control", format!("public, max-age={}", read.ttl_ms.map_or(30, |ms| ms.max(0) / 1000)))
}

/// `GET /v1/price/{symbol}/history?from&to&limit`: synced prices in `[from, to]` (ms), the
/// newest `limit` (default 100, at most 1000), oldest first.
pub async fn history(app: &App<'_>, symbol: &str, request: &super::ApiRequest) -> Result<ApiResponse, ApiError> {
    let symbol = params::symbol(symbol)?;
    let key = app.config.keys.price_history(Exchange::Mexc, &symbol);
    let page =
        super::private::history::<PriceRecord>(app, &key, DataClass::PriceHistory, request, ("from", "to")).await?;
    let max_age = app.config.ttl.ttl(DataClass::Price).map_or(30, |t| t.as_secs());
    let body = json!({
        "symbol": symbol.as_str(),
        "count": page.entries.len(),
        "skipped": page.skipped,
        "entries": page.entries,
    });
    Ok(ApiResponse::json(200, &body)
        .with_header("cache-control", format!("public, max-age={max_age}"))
        .with_header("x-edgesync-tier", app.store.pipeline_tier().as_str()))
}
