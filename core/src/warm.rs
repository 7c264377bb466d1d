//! Cache warming, so the first readers after a deploy or an invalidation do not all miss: for the configured symbols and the given market-data classes,
//! fill what is missing, skip what is cached, and report `{success, failed, skipped}`. One
//! round trip checks what exists, the missing queries are fetched concurrently, and one
//! round trip writes them, each with its class TTL.

use futures_util::future::join_all;
use serde::Serialize;

use crate::exchange::MexcClient;
use crate::market::MarketQuery;
use crate::store::{Command, Reply, Store, StoreError};
use crate::ttl::DataClass;
use crate::App;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WarmReport {
    pub success: u32,
    pub failed: u32,
    pub skipped: u32,
    /// One line per failure: the key and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// The market-data classes warmed when none are named.
pub const DEFAULT_CLASSES: [DataClass; 4] =
    [DataClass::Ticker, DataClass::Ohlcv, DataClass::Deals, DataClass::Orderbook];

/// Warms every configured symbol for `classes` (non-market classes are ignored).
/// `Err` only when the store cannot say what is cached.
pub async fn warm(app: &App<'_>, classes: &[DataClass]) -> Result<WarmReport, StoreError> {
    let queries: Vec<MarketQuery> = app
        .config
        .symbols
        .iter()
        .flat_map(|symbol| classes.iter().filter_map(|class| MarketQuery::default_for(*class, symbol)))
        .collect();
    let keys: Vec<String> = queries.iter().map(|q| q.key(&app.config.keys)).collect();
    let exists: Vec<Command> = keys.iter().map(|k| Command::new("EXISTS").arg(k)).collect();
    let present = app.store.pipeline(&exists).await?;

    let mut report = WarmReport::default();
    let mut missing = Vec::new();
    for ((query, key), present) in queries.iter().zip(&keys).zip(present) {
        match present {
            Ok(Reply::Int(1)) => report.skipped += 1,
            _ => missing.push((query, key)),
        }
    }

    let exchange = MexcClient::new(app.http, app.clock, &app.config.exchange);
    let fetched = join_all(missing.iter().map(|(query, _)| query.fetch(&exchange))).await;
    let mut writes = Vec::new();
    let mut written_keys = Vec::new();
    for ((query, key), outcome) in missing.into_iter().zip(fetched) {
        match outcome {
            Ok(fetched) => {
                let ttl = query.ttl(&app.config.ttl, &fetched.value, app.clock.now_ms());
                writes.push(Command::set(key, fetched.value.to_string().as_bytes(), Some(ttl)));
                written_keys.push(key.clone());
            }
            Err(error) => {
                report.failed += 1;
                report.errors.push(format!("{key}: {error}"));
            }
        }
    }
    match app.store.pipeline(&writes).await {
        Ok(replies) => {
            for (key, reply) in written_keys.iter().zip(replies) {
                match reply {
                    Ok(_) => report.success += 1,
                    Err(error) => {
                        report.failed += 1;
                        report.errors.push(format!("{key}: {error}"));
                    }
                }
            }
        }
        Err(error) => {
            report.failed += written_keys.len() as u32;
            report.errors.extend(written_keys.iter().map(|key| format!("{key}: {error}")));
        }
    }
    Ok(report)
}
