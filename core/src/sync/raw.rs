//! Raw responses, kept so any derived value can be checked against what MEXC said: every exchange response a task used is stored verbatim as
//! `{fetched_at, fetched_at_iso, endpoint, metadata, response}` at `P:raw:…:latest`
//! (permanent) and appended to `P:raw:…:history` (scored by ms, trimmed to `HISTORY_LIMIT`
//! in the same request). Symbol-scoped endpoints are stored per symbol, `{endpoint}.{SYMBOL}`
//! (e.g. `ticker_24hr.QRLUSDT`), so one symbol never overwrites another's latest response.

use serde_json::Value;

use super::{history_append, SyncError};
use crate::codec::{encode_json, iso8601_ms};
use crate::exchange::Fetched;
use crate::keys::{Exchange, Segment};
use crate::records::raw::RawRecordRef;
use crate::store::Command;
use crate::App;

/// The raw-response segment of `endpoint`, per symbol when given.
pub fn endpoint_segment(endpoint: &str, symbol: Option<&Segment>) -> Result<Segment, SyncError> {
    let name = match symbol {
        Some(symbol) => format!("{endpoint}.{symbol}"),
        None => endpoint.to_owned(),
    };
    Segment::new("endpoint", &name).map_err(|e| SyncError::Incomplete(e.to_string()))
}

/// The writes that store `fetched` as the latest raw response and in the history.
pub fn writes<T>(
    app: &App<'_>,
    fetched: &Fetched<T>,
    symbol: Option<&Segment>,
    metadata: Value,
) -> Result<Vec<Command>, SyncError> {
    let segment = endpoint_segment(fetched.endpoint, symbol)?;
    let fetched_at_iso = iso8601_ms(fetched.fetched_at_ms);
    let record = RawRecordRef {
        endpoint: fetched.endpoint,
        fetched_at: fetched.fetched_at_ms,
        fetched_at_iso: &fetched_at_iso,
        metadata: &metadata,
        response: fetched.raw_json(),
    };
    let record = String::from_utf8(encode_json(&record)).expect("JSON is UTF-8");
    let keys = &app.config.keys;
    let mut commands = vec![Command::set(&keys.raw_latest(Exchange::Mexc, &segment), record.as_bytes(), None)];
    commands.extend(history_append(
        &keys.raw_history(Exchange::Mexc, &segment),
        fetched.fetched_at_ms,
        &record,
        app.config.history_limit,
    ));
    Ok(commands)
}
