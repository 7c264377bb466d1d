//! `GET /v1/price/{symbol}`: the synced price. Reads `cached` and `latest` in one round trip
//! and prefers the fresher `cached`; `latest` is permanent, so a price once synced is always
//! answered. A value that does not decode is treated as absent, never as a 500.

use serde_json::json;

use super::{ApiError, ApiResponse};
use crate::codec::iso8601_ms;
use crate::exchange::validate_symbol;
use crate::keys::Exchange;
use crate::store::{Command, Reply};
use crate::sync::price::PriceRecord;
use crate::App;

pub async fn price(app: &App<'_>, symbol: &str) -> Result<ApiResponse, ApiError> {
    let symbol = validate_symbol(symbol).map_err(|reason| ApiError::bad_request("symbol", reason))?;
    let keys = &app.config.keys;
    let reads = [
        ("cached", Command::new("GET").arg(keys.price_cached(Exchange::Mexc, &symbol))),
        ("latest", Command::new("GET").arg(keys.price_latest(Exchange::Mexc, &symbol))),
    ];
    let commands: Vec<Command> = reads.iter().map(|(_, c)| c.clone()).collect();
    let replies = app.store.pipeline(&commands).await?;
    let found = reads.iter().zip(replies).find_map(|((source, _), reply)| match reply {
        Ok(Reply::Bulk(bytes)) => serde_json::from_slice::<PriceRecord>(&bytes).ok().map(|r| (*source, r)),
        _ => None,
    });
    let Some((source, record)) = found else {
        return Err(ApiError::not_found(format!("no price for {symbol} has been synced yet")));
    };
    Ok(ApiResponse::json(
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
    ))
}
