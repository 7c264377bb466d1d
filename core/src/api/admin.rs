//! The admin routes (HMAC-signed, single use; see [`super::auth`]):
//! - `POST /v1/admin/sync/{task}`: run a sync task now; answers its report (502 if it failed).
//! - `POST /v1/admin/invalidate` with exactly one of `{"symbol": "QRLUSDT"}`,
//!   `{"pattern": "ticker:*"}` (a Redis glob under the namespace) or `{"all": true}`, and
//!   optionally `"include_permanent": true`: SCAN + UNLINK inside the namespace only, of
//!   cache keys only unless permanent data is asked for by name; answers
//!   `{deleted, deleted_by_class, kept_permanent, scans}`.
//! - `POST /v1/admin/warm` with optional `{"classes": ["ticker", "ohlcv", "deals", "orderbook"]}`:
//!   answers `{success, failed, skipped}`.

use serde::Deserialize;
use serde_json::{json, Value};

use super::{params, ApiError, ApiRequest, ApiResponse};
use crate::store::invalidate::{self, InvalidateError, Scope};
use crate::sync::snapshot::Snapshot;
use crate::sync::{exchange_client, run_task, Task};
use crate::ttl::DataClass;
use crate::warm::{warm, DEFAULT_CLASSES};
use crate::App;

fn body<T: for<'de> Deserialize<'de> + Default>(request: &ApiRequest) -> Result<T, ApiError> {
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&request.body).map_err(|e| ApiError::bad_request("body", e))
}

pub async fn sync_now(app: &App<'_>, task: &str) -> Result<ApiResponse, ApiError> {
    let task = Task::from_name(task).ok_or_else(|| {
        ApiError::bad_request("task", format!("`{}` is not one of balance, price, cost", params::echo(task)))
    })?;
    let exchange = exchange_client(app);
    let report = run_task(app, &Snapshot::new(&exchange), task).await;
    let status = if report.ok { 200 } else { 502 };
    Ok(ApiResponse::json(status, &report).with_header("cache-control", "no-store"))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalidate {
    symbol: Option<String>,
    pattern: Option<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    include_permanent: bool,
}

pub async fn invalidate(app: &App<'_>, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let Invalidate { symbol, pattern, all, include_permanent } = body(request)?;
    let keys = &app.config.keys;
    let scope = if include_permanent { Scope::IncludePermanent } else { Scope::CacheOnly };
    let outcome = match (symbol, pattern, all) {
        (Some(symbol), None, false) => {
            invalidate::clear_symbol(app.store, keys, &params::symbol(&symbol)?, scope).await
        }
        (None, Some(pattern), false) => invalidate::delete_pattern(app.store, keys, &pattern, scope).await,
        (None, None, true) => invalidate::clear_all(app.store, keys, scope).await,
        _ => return Err(ApiError::bad_request("body", "give exactly one of `symbol`, `pattern` or `\"all\": true`")),
    };
    match outcome {
        Ok(done) => Ok(ApiResponse::json(200, &done).with_header("cache-control", "no-store")),
        Err(InvalidateError::Pattern(reason)) => Err(ApiError::bad_request("pattern", reason)),
        Err(InvalidateError::Store(error)) => Err(error.into()),
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Warm {
    classes: Option<Vec<String>>,
}

pub async fn warm_cache(app: &App<'_>, request: &ApiRequest) -> Result<ApiResponse, ApiError> {
    let Warm { classes } = body(request)?;
    let classes = match classes {
        None => DEFAULT_CLASSES.to_vec(),
        Some(names) => names
            .iter()
            .map(|name| {
                DEFAULT_CLASSES.iter().copied().find(|c| c.name() == name).ok_or_else(|| {
                    ApiError::bad_request(
                        "classes",
                        format!("`{}` is not one of ticker, ohlcv, deals, orderbook", params::echo(name)),
                    )
                })
            })
            .collect::<Result<Vec<DataClass>, _>>()?,
    };
    let report = warm(app, &classes).await?;
    let value: Value = serde_json::to_value(&report).unwrap_or_else(|_| json!({}));
    Ok(ApiResponse::json(200, &value).with_header("cache-control", "no-store"))
}
