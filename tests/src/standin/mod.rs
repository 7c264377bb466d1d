//! The MEXC stand-in: the one fake in the end-to-end suite (there is no internet here). It
//! serves MEXC Spot v3's documented response shapes from `fixtures/mexc/`, with values tests
//! can replace; validates signed calls exactly as MEXC documents them (API key header,
//! HMAC-SHA256 of the total parameter string, `timestamp` against `recvWindow`); answers
//! MEXC-shaped errors; and injects faults on request.
//!
//! Control surface (tests only), under `/__control/`:
//! - `PUT  /__control/response?path=/api/v3/…[&symbol=…]` with a JSON body: serve this instead.
//! - `POST /__control/fault` with `{"kind", "path"?, "times"?, "retry_after"?, "status"?, "delay_ms"?}`,
//!   kinds `rate_limit` (429), `ban` (418), `server_error`, `timeout`, `malformed`, `signature`.
//! - `PUT  /__control/clock` with `{"offset_ms"}`: skew the server clock.
//! - `GET  /__control/requests`: request counts per path; `POST /__control/reset`: forget all.
//!
//! - [`endpoints`]: which paths exist, which need a signature, where their data comes from.
//! - [`signature`]: MEXC's signed-request rules, written independently of edgesync's client.
//! - [`faults`]: the fault queue.

pub mod endpoints;
pub mod faults;
pub mod signature;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use endpoints::{Endpoint, ENDPOINTS};
use faults::{Fault, FaultKind};

pub struct StandinConfig {
    pub fixtures: PathBuf,
    pub api_key: String,
    pub api_secret: String,
}

#[derive(Default)]
struct Mutable {
    /// Replacement bodies by (path, symbol); `None` symbol applies to every symbol.
    responses: HashMap<(String, Option<String>), Value>,
    faults: Vec<Fault>,
    counts: HashMap<String, u64>,
    clock_offset_ms: i64,
}

struct Standin {
    config: StandinConfig,
    fixtures: HashMap<&'static str, Value>,
    /// `std::sync::Mutex`: never held across an await.
    state: Mutex<Mutable>,
}

/// Builds the router; the caller binds it (127.0.0.1 only).
pub fn router(config: StandinConfig) -> Result<Router, String> {
    let mut fixtures = HashMap::new();
    for endpoint in ENDPOINTS {
        for file in [endpoint.fixture, endpoint.fixture_all].into_iter().flatten() {
            let path = config.fixtures.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let value = serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
            fixtures.insert(file, value);
        }
    }
    let standin = Arc::new(Standin { config, fixtures, state: Mutex::new(Mutable::default()) });
    let mut router = Router::new()
        .route("/__control/response", put(set_response))
        .route("/__control/fault", post(add_fault))
        .route("/__control/clock", put(set_clock))
        .route("/__control/requests", get(requests))
        .route("/__control/reset", post(reset));
    for endpoint in ENDPOINTS {
        router = router.route(endpoint.path, get(serve).post(serve).delete(serve));
    }
    Ok(router.with_state(standin))
}

type Shared = State<Arc<Standin>>;

/// A MEXC error body with its HTTP status.
fn mexc_error(status: StatusCode, code: i64, msg: &str) -> Response {
    (status, Json(json!({ "code": code, "msg": msg }))).into_response()
}

impl Standin {
    fn now_ms(&self) -> i64 {
        let offset = self.state.lock().unwrap().clock_offset_ms;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        now.as_millis() as i64 + offset
    }

    /// The body for `endpoint`: a test's replacement if set, else the documented example with
    /// the requested symbol filled in.
    fn body(&self, endpoint: &Endpoint, symbol: Option<&str>) -> Value {
        let state = self.state.lock().unwrap();
        let replaced = symbol
            .and_then(|s| state.responses.get(&(endpoint.path.to_owned(), Some(s.to_owned()))))
            .or_else(|| state.responses.get(&(endpoint.path.to_owned(), None)));
        if let Some(value) = replaced {
            return value.clone();
        }
        drop(state);
        if endpoint.path == "/api/v3/time" {
            return json!({ "serverTime": self.now_ms() });
        }
        let (file, fill_symbol) = match (symbol, endpoint.fixture_all) {
            (None, Some(all)) => (all, false),
            _ => (endpoint.fixture.unwrap_or_default(), true),
        };
        let mut value = self.fixtures.get(file).cloned().unwrap_or(json!({}));
        if let (true, Some(symbol), Some(object)) = (fill_symbol, symbol, value.as_object_mut()) {
            if object.contains_key("symbol") {
                object.insert("symbol".into(), json!(symbol));
            }
        }
        value
    }
}

async fn serve(
    State(standin): Shared,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let Some(endpoint) = ENDPOINTS.iter().find(|e| e.path == path) else {
        return mexc_error(StatusCode::NOT_FOUND, -1, "not found");
    };
    *standin.state.lock().unwrap().counts.entry(path.clone()).or_default() += 1;

    let fault = faults::take(&mut standin.state.lock().unwrap().faults, &path);
    if let Some(fault) = &fault {
        match fault.kind {
            FaultKind::Timeout => tokio::time::sleep(Duration::from_millis(fault.delay_ms.unwrap_or(30_000))).await,
            _ => return fault.response(),
        }
    }

    let query = query.unwrap_or_default();
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    if endpoint.signed {
        let body_text = String::from_utf8_lossy(&body);
        let check = signature::Request {
            api_key: headers.get("x-mexc-apikey").and_then(|v| v.to_str().ok()),
            query: &query,
            body: &body_text,
            server_time_ms: standin.now_ms(),
        };
        if let Err(rejection) = signature::verify(&check, &standin.config.api_key, &standin.config.api_secret) {
            return mexc_error(StatusCode::BAD_REQUEST, rejection.code, rejection.msg);
        }
    }
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let symbol = param("symbol");
    if let Err((code, msg)) = endpoint.validate(&params) {
        return mexc_error(StatusCode::BAD_REQUEST, code, &msg);
    }
    let value = endpoints::shape(endpoint, standin.body(endpoint, symbol), &params);
    (StatusCode::OK, Json(value)).into_response()
}

#[derive(Deserialize)]
struct ResponseTarget {
    path: String,
    symbol: Option<String>,
}

async fn set_response(
    State(standin): Shared,
    Query(target): Query<ResponseTarget>,
    Json(body): Json<Value>,
) -> Response {
    if !ENDPOINTS.iter().any(|e| e.path == target.path) {
        return (StatusCode::BAD_REQUEST, format!("unknown endpoint {}", target.path)).into_response();
    }
    standin.state.lock().unwrap().responses.insert((target.path, target.symbol), body);
    StatusCode::NO_CONTENT.into_response()
}

async fn add_fault(State(standin): Shared, Json(fault): Json<Fault>) -> StatusCode {
    standin.state.lock().unwrap().faults.push(fault);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Clock {
    offset_ms: i64,
}

async fn set_clock(State(standin): Shared, Json(clock): Json<Clock>) -> StatusCode {
    standin.state.lock().unwrap().clock_offset_ms = clock.offset_ms;
    StatusCode::NO_CONTENT
}

async fn requests(State(standin): Shared) -> Json<Value> {
    let state = standin.state.lock().unwrap();
    let total: u64 = state.counts.values().sum();
    Json(json!({ "counts": state.counts, "total": total }))
}

async fn reset(State(standin): Shared) -> StatusCode {
    *standin.state.lock().unwrap() = Mutable::default();
    StatusCode::NO_CONTENT
}
