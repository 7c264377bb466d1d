//! The private routes (bearer `READ_TOKEN`): what the cron synced, for the bot that owns it.
//! `GET /v1/account`, `/v1/positions`, `/v1/cost/{symbol}`, `/v1/raw/{endpoint}/latest`,
//! `/v1/raw/{endpoint}/history?start&end&limit`, `/v1/sync/status`, `/v1/stats`. Answers are
//! `Cache-Control: private, no-store`; reads of single records go through the tiers (so they
//! survive a Redis outage, flagged), lists and stats read Redis directly.

use serde_json::{json, Map, Value};

use super::{params, ApiError, ApiRequest, ApiResponse};
use crate::codec::iso8601_ms;
use crate::keys::{Exchange, Segment};
use crate::store::tiered::Read;
use crate::store::{stats, Command, StoreExt};
use crate::sync::Task;
use crate::ttl::DataClass;
use crate::App;

fn private(body: &Value) -> ApiResponse {
    ApiResponse::json(200, body).with_header("cache-control", "private, no-store")
}

fn tiered(read: Read<Value>) -> ApiResponse {
    private(&read.value)
        .with_header("x-edgesync-tier", read.tier.as_str())
        .with_header("age", (read.age_ms / 1000).to_string())
}

pub async fn account(app: &App<'_>) -> Result<ApiResponse, ApiError> {
    let key = app.config.keys.account(Exchange::Mexc, &app.config.account_id);
    match app.store.read_json::<Value>(&key, DataClass::Account).await? {
        Some(read) => Ok(tiered(read)),
        None => Err(ApiError::not_found("no account has been synced yet")),
    }
}

pub async fn positions(app: &App<'_>) -> Result<ApiResponse, ApiError> {
    let keys = &app.config.keys;
    let store = app.store.backing_store();
    let members = store.smembers(&keys.position_index(&app.config.account_id, Exchange::Mexc)).await?;
    let mut entries: Vec<(String, String)> = Vec::new();
    for member in &members {
        if let Some((symbol, side)) = member.split_once(':') {
            entries.push((symbol.to_owned(), side.to_owned()));
        }
    }
    let commands: Vec<Command> = entries
        .iter()
        .filter_map(|(symbol, side)| {
            let (symbol, side) = (Segment::new("symbol", symbol).ok()?, Segment::new("side", side).ok()?);
            Some(Command::new("HGETALL").arg(keys.position(&app.config.account_id, Exchange::Mexc, &symbol, &side)))
        })
        .collect();
    let replies = store.pipeline(&commands).await?;
    let positions: Vec<Value> = entries
        .iter()
        .zip(replies)
        .map(|((symbol, side), reply)| {
            let mut fields = Map::new();
            fields.insert("symbol".into(), json!(symbol));
            fields.insert("side".into(), json!(side));
            for (field, value) in reply.ok().and_then(|r| r.into_pairs().ok()).unwrap_or_default() {
                fields.insert(field, json!(value));
            }
            Value::Object(fields)
        })
        .collect();
    Ok(private(&json!({ "account_id": app.config.account_id.as_str(), "positions": positions })))
}

pub async fn cost(app: &App<'_>, symbol: &str) -> Result<ApiResponse, ApiError> {
    let symbol = params::symbol(symbol)?;
    let key = app.config.keys.cost(Exchange::Mexc, &app.config.account_id, &symbol);
    match app.store.read_json::<Value>(&key, DataClass::Cost).await? {
        Some(read) => Ok(tiered(read)),
        None => Err(ApiError::not_found(format!("no cost for {symbol} has been computed yet"))),
    }
}

fn endpoint(text: &str) -> Result<Segment, ApiError> {
    let well_formed = !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if !well_formed {
        return Err(ApiError::bad_request(
            "endpoint",
            format!("`{text}` is not an endpoint name (e.g. account_info, ticker_24hr.QRLUSDT)"),
        ));
    }
    Segment::new("endpoint", text).map_err(|e| ApiError::bad_request("endpoint", e))
}

pub async fn raw_latest(app: &App<'_>, name: &str) -> Result<ApiResponse, ApiError> {
    let key = app.config.keys.raw_latest(Exchange::Mexc, &endpoint(name)?);
    match app.store.read_json::<Value>(&key, DataClass::Raw).await? {
        Some(read) => Ok(tiered(read)),
        None => Err(ApiError::not_found(format!("no raw response stored for {name}"))),
    }
}

/// History entries (newest `limit` within the range), returned oldest first.
pub async fn history(
    app: &App<'_>,
    key: &str,
    request: &ApiRequest,
    from: &'static str,
    to: &'static str,
) -> Result<Vec<Value>, ApiError> {
    let (start, end) = params::time_range(request, from, to)?;
    let limit = params::limit(request, 100, 1000)?;
    let mut entries = app.store.backing_store().zrange_by_score(key, start, end, limit as usize, true).await?;
    entries.reverse();
    Ok(entries
        .into_iter()
        .map(|(member, score)| {
            let mut value = serde_json::from_str::<Value>(&member).unwrap_or(Value::String(member));
            if let Some(object) = value.as_object_mut() {
                object.entry("ts_iso").or_insert_with(|| json!(iso8601_ms(score)));
            }
            value
        })
        .collect())
}

pub async fn raw_history(app: &App<'_>, name: &str, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let key = app.config.keys.raw_history(Exchange::Mexc, &endpoint(name)?);
    let entries = history(app, &key, request, "start", "end").await?;
    Ok(private(&json!({ "endpoint": name, "count": entries.len(), "entries": entries })))
}

pub async fn sync_status(app: &App<'_>) -> Result<ApiResponse, ApiError> {
    Ok(private(&super::health::task_statuses(app).await?))
}

pub async fn store_stats(app: &App<'_>) -> Result<ApiResponse, ApiError> {
    let stats = stats::collect(app.store.backing_store(), &app.config.keys, Some(app.store.memory_tier())).await?;
    Ok(private(&serde_json::to_value(stats).expect("stats serialize")))
}

/// Task names, for the OpenAPI document and error messages.
pub fn task_names() -> Vec<&'static str> {
    Task::ALL.iter().map(|t| t.name()).collect()
}
