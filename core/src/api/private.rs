//! The private routes (bearer `READ_TOKEN`): what the cron synced, for the bot that owns it.
//! `GET /v1/account`, `/v1/positions`, `/v1/cost/{symbol}`, `/v1/raw/{endpoint}/latest`,
//! `/v1/raw/{endpoint}/history?start&end&limit`, `/v1/sync/status`, `/v1/stats`. Answers are
//! `Cache-Control: private, no-store`; reads of single records go through the tiers (so they
//! survive a Redis outage, flagged), lists and stats read Redis directly.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{params, ApiError, ApiRequest, ApiResponse};
use crate::codec::iso8601_ms;
use crate::keys::{Exchange, Segment};
use crate::records::{AccountDocument, CostDocument, RawDocument, Record};
use crate::store::tiered::Read;
use crate::store::{stats, Command, Store, StoreExt};
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

/// A document read through the tiers, served as stored.
async fn document<T: Record + Into<Value>>(
    app: &App<'_>,
    key: &str,
    class: DataClass,
) -> Result<Option<ApiResponse>, ApiError> {
    let read = app.store.read_json::<T>(key, class).await?;
    Ok(read.map(|read| tiered(read.map(Into::into))))
}

pub async fn account(app: &App<'_>) -> Result<ApiResponse, ApiError> {
    let key = app.config.keys.account(Exchange::Mexc, &app.config.account_id);
    document::<AccountDocument>(app, &key, DataClass::Account)
        .await?
        .ok_or_else(|| ApiError::not_found("no account has been synced yet"))
}

/// An index member that names no position edgesync can read, reported instead of served.
#[derive(Debug, Serialize)]
struct Skipped {
    member: String,
    reason: String,
}

pub async fn positions(app: &App<'_>) -> Result<ApiResponse, ApiError> {
    let keys = &app.config.keys;
    let account = &app.config.account_id;
    // Through the tiers: when Redis fails, the durable copy answers.
    let store: &dyn Store = app.store;
    let members = store.smembers(&keys.position_index(account, Exchange::Mexc)).await?;
    let mut skipped = Vec::new();
    // Valid members and their commands are built together, so replies line up with them.
    let mut listed: Vec<(Segment, Segment)> = Vec::new();
    for member in &members {
        let parsed =
            member.split_once(':').ok_or_else(|| "not `{symbol}:{side}`".to_owned()).and_then(|(symbol, side)| {
                let symbol = Segment::new("symbol", symbol).map_err(|e| e.to_string())?;
                let side = Segment::new("side", side).map_err(|e| e.to_string())?;
                Ok((symbol, side))
            });
        match parsed {
            Ok(entry) => listed.push(entry),
            Err(reason) => skipped.push(Skipped { member: params::echo(member), reason }),
        }
    }
    let commands: Vec<Command> = listed
        .iter()
        .map(|(symbol, side)| Command::new("HGETALL").arg(keys.position(account, Exchange::Mexc, symbol, side)))
        .collect();
    let replies = store.pipeline(&commands).await?;
    let mut positions = Vec::new();
    for ((symbol, side), reply) in listed.iter().zip(replies) {
        let pairs = match reply.map_err(|e| e.0).and_then(|r| r.into_pairs().map_err(|e| e.to_string())) {
            Ok(pairs) => pairs,
            Err(reason) => {
                app.store.memory_tier().count_unreadable(DataClass::Position, 1);
                skipped.push(Skipped { member: format!("{symbol}:{side}"), reason: format!("not a hash: {reason}") });
                continue;
            }
        };
        let mut fields = Map::new();
        fields.insert("symbol".into(), json!(symbol.as_str()));
        fields.insert("side".into(), json!(side.as_str()));
        for (field, value) in pairs {
            fields.insert(field, json!(value));
        }
        positions.push(Value::Object(fields));
    }
    let mut body = json!({ "account_id": account.as_str(), "positions": positions });
    if !skipped.is_empty() {
        body["skipped"] = json!(skipped);
    }
    Ok(private(&body).with_header("x-edgesync-tier", app.store.pipeline_tier().as_str()))
}

pub async fn cost(app: &App<'_>, symbol: &str) -> Result<ApiResponse, ApiError> {
    let symbol = params::symbol(symbol)?;
    let key = app.config.keys.cost(Exchange::Mexc, &app.config.account_id, &symbol);
    document::<CostDocument>(app, &key, DataClass::Cost)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no cost for {symbol} has been computed yet")))
}

fn endpoint(text: &str) -> Result<Segment, ApiError> {
    let well_formed = !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    if !well_formed {
        return Err(ApiError::bad_request(
            "endpoint",
            format!("`{}` is not an endpoint name (e.g. account_info, ticker_24hr.QRLUSDT)", params::echo(text)),
        ));
    }
    Segment::new("endpoint", text).map_err(|e| ApiError::bad_request("endpoint", e))
}

pub async fn raw_latest(app: &App<'_>, name: &str) -> Result<ApiResponse, ApiError> {
    let key = app.config.keys.raw_latest(Exchange::Mexc, &endpoint(name)?);
    document::<RawDocument>(app, &key, DataClass::Raw)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no raw response stored for {name}")))
}

/// A page of history: entries oldest first, and how many members in the page did not decode.
pub struct HistoryPage {
    pub entries: Vec<Value>,
    pub skipped: u64,
}

/// History entries (newest `limit` within the range), returned oldest first. A member whose
/// score is not an integer (ms) or which does not decode as `T` is skipped and counted as
/// unreadable; it is never removed (histories cannot be fetched again).
pub async fn history<T: Record + Serialize>(
    app: &App<'_>,
    key: &str,
    class: DataClass,
    request: &ApiRequest,
    (from, to): (&'static str, &'static str),
) -> Result<HistoryPage, ApiError> {
    let (start, end) = params::time_range(request, from, to)?;
    let limit = params::limit(request, 100, 1000)?;
    let store: &dyn Store = app.store;
    let mut members = store.zrange_entries(key, start, end, limit as usize, true).await?;
    members.reverse();
    let mut page = HistoryPage { entries: Vec::with_capacity(members.len()), skipped: 0 };
    for (member, score) in members {
        let decoded = score.parse::<i64>().ok().zip(serde_json::from_str::<T>(&member).ok());
        let Some((score, record)) = decoded else {
            page.skipped += 1;
            continue;
        };
        let mut value = serde_json::to_value(record).expect("records serialize");
        if let Some(object) = value.as_object_mut() {
            object.entry("ts_iso").or_insert_with(|| json!(iso8601_ms(score)));
        }
        page.entries.push(value);
    }
    if page.skipped > 0 {
        app.store.memory_tier().count_unreadable(class, page.skipped);
    }
    Ok(page)
}

pub async fn raw_history(app: &App<'_>, name: &str, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let key = app.config.keys.raw_history(Exchange::Mexc, &endpoint(name)?);
    let page = history::<RawDocument>(app, &key, DataClass::Raw, request, ("start", "end")).await?;
    Ok(private(&json!({
        "endpoint": name,
        "count": page.entries.len(),
        "skipped": page.skipped,
        "entries": page.entries,
    }))
    .with_header("x-edgesync-tier", app.store.pipeline_tier().as_str()))
}

pub async fn sync_status(app: &App<'_>) -> Result<ApiResponse, ApiError> {
    Ok(private(&super::health::task_statuses(app).await?)
        .with_header("x-edgesync-tier", app.store.pipeline_tier().as_str()))
}

pub async fn store_stats(app: &App<'_>) -> Result<ApiResponse, ApiError> {
    let stats = stats::collect(app.store.backing_store(), &app.config.keys, Some(app.store.memory_tier())).await?;
    Ok(private(&serde_json::to_value(stats).expect("stats serialize")))
}

/// Task names, for the OpenAPI document and error messages.
pub fn task_names() -> Vec<&'static str> {
    Task::ALL.iter().map(|t| t.name()).collect()
}

#[cfg(test)]
mod tests {
    use crate::api::{handle, ApiRequest};
    use crate::test_app::{with_app, NoNetwork};

    #[test]
    fn every_data_read_says_which_tier_answered() {
        with_app(&[("READ_TOKEN", "tok")], &NoNetwork, |app| {
            for path in
                ["/v1/price/QRLUSDT/history", "/v1/positions", "/v1/sync/status", "/v1/raw/account_info/history"]
            {
                let mut request = ApiRequest::get(path);
                request.headers.push(("Authorization".into(), "Bearer tok".into()));
                let response = futures_executor::block_on(handle(app, &request));
                assert_eq!(response.status, 200, "{path}");
                assert_eq!(response.header("x-edgesync-tier"), Some("memory"), "{path}: the app runs on memory");
            }
        });
    }
}
