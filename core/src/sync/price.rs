//! The price task: for each configured symbol, the 24 h ticker becomes
//! `P:price:{exchange}:{symbol}:latest`, a permanent [`PriceRecord`], so a reader always finds
//! the last synced price however long the cron is late.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::SyncError;
use crate::exchange::MexcClient;
use crate::keys::Exchange;
use crate::store::{all_ok, Command, Store};
use crate::App;

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

/// Fetches every symbol's ticker, then writes all prices in one pipeline.
/// Returns the number of keys written.
pub async fn run(app: &App<'_>) -> Result<usize, SyncError> {
    let exchange = MexcClient::new(app.http, app.clock, &app.config.exchange);
    let mut commands = Vec::with_capacity(app.config.symbols.len());
    for symbol in &app.config.symbols {
        let ticker = exchange.ticker_24hr(symbol).await?;
        let price = ticker.value.last_price.ok_or_else(|| {
            SyncError::Incomplete(format!("the 24h ticker of {symbol} has no lastPrice; nothing written"))
        })?;
        let record = PriceRecord {
            symbol: symbol.to_string(),
            price,
            volume_24h: ticker.value.volume,
            ts: ticker.fetched_at_ms,
        };
        let json = serde_json::to_vec(&record).expect("a PriceRecord always serializes");
        commands.push(Command::set(&app.config.keys.price_latest(Exchange::Mexc, symbol), &json, None));
    }
    let replies = app.store.pipeline(&commands).await?;
    all_ok(&commands, replies)?;
    Ok(commands.len())
}
