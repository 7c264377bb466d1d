//! The price task, stored twice so a reader always has a price: for each configured symbol the 24 h ticker
//! becomes `P:price:{exchange}:{symbol}:latest` (permanent, so a reader always finds the last
//! synced price however late the cron is), `…:cached` (the same record with the `price` TTL),
//! an entry in `…:history` (capped), the ticker cache (`ticker` TTL) and the raw response.
//! Readers go `cached` → `latest`.

use futures_util::future::try_join_all;
use serde_json::json;

use super::snapshot::Snapshot;
use super::{history_append, raw, SyncError};
use crate::codec::encode_json;
use crate::keys::Exchange;
use crate::store::Command;
use crate::ttl::DataClass;
use crate::App;

use crate::records::price::PriceRecord;

/// Fetches every symbol's ticker, then returns all the writes.
pub async fn run(app: &App<'_>, snapshot: &Snapshot<'_>) -> Result<Vec<Command>, SyncError> {
    let symbols = &app.config.symbols;
    let tickers = try_join_all(symbols.iter().map(|symbol| snapshot.ticker_24hr(symbol))).await?;
    let keys = &app.config.keys;
    let mut commands = Vec::new();
    for (symbol, response) in symbols.iter().zip(&tickers) {
        let ticker = &*response.fetched;
        let price = ticker.value.last_price.ok_or_else(|| {
            SyncError::Incomplete(format!("the 24h ticker of {symbol} has no lastPrice; nothing written"))
        })?;
        let record = PriceRecord {
            symbol: symbol.to_string(),
            price,
            volume_24h: ticker.value.volume,
            ts: ticker.fetched_at_ms,
        };
        let json = encode_json(&record);
        if response.owner {
            let metadata = json!({ "task": "price", "symbol": symbol.as_str() });
            commands.extend(raw::writes(app, ticker, Some(symbol), metadata)?);
        }
        commands.push(Command::set(&keys.price_latest(Exchange::Mexc, symbol), &json, None));
        commands.push(Command::set(
            &keys.price_cached(Exchange::Mexc, symbol),
            &json,
            app.config.ttl.ttl(DataClass::Price),
        ));
        commands.extend(history_append(
            &keys.price_history(Exchange::Mexc, symbol),
            record.ts,
            &String::from_utf8_lossy(&json),
            app.config.history_limit,
        ));
        commands.push(Command::set(
            &keys.ticker(Exchange::Mexc, symbol),
            ticker.raw_json().get().as_bytes(),
            app.config.ttl.ttl(DataClass::Ticker),
        ));
    }
    Ok(commands)
}
