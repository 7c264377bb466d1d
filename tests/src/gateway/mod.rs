//! The Upstash-REST gateway: the documented Upstash Redis REST protocol in front of a real
//! `redis-server`, so edgesync's REST client is tested against the protocol rather than
//! against a convenience of our own. It passes any command through, so it also serves as a
//! REST front for self-hosted Redis.
//!
//! Protocol (docs/upstash-rest.md): `POST /` (JSON array command), `POST
//! /pipeline`, `POST /multi-exec` (atomic), the path form `/{cmd}/{arg}/…` (GET, HEAD, POST,
//! PUT; a POST body is the last argument, query pairs follow it), `Authorization: Bearer` or
//! `_token`, `Upstash-Encoding: base64`, `Upstash-Response-Format: resp2`, `{"result"}` /
//! `{"error"}` bodies, 400 on command errors, 401 on a bad token, 405 on other methods, and an
//! `upstash-sync-token` on every response.
//!
//! Beyond the protocol it counts requests (`GET /__gateway/stats`, reset with `POST
//! /__gateway/reset`) so tests can assert how many round trips a task made.
//!
//! - [`encode`]: Redis values → JSON (plain or base64) and → RESP2.

pub mod encode;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, Value};
use serde_json::{json, Value as Json_};

use encode::{to_json, to_resp2, Encoding};

/// What the gateway needs to run.
pub struct GatewayConfig {
    pub redis_url: String,
    pub token: String,
}

struct Gateway {
    redis: ConnectionManager,
    token: String,
    requests: AtomicU64,
    commands: AtomicU64,
    sync_token: AtomicU64,
}

/// Builds the router; the caller binds it (127.0.0.1 only).
pub async fn router(config: GatewayConfig) -> Result<Router, RedisError> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    // Lazy and with short timeouts: the gateway must start before Redis and keep answering
    // (with 503s) while a test has Redis stopped, then reconnect when it returns.
    let manager_config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200))
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    let redis = ConnectionManager::new_lazy_with_config(client, manager_config)?;
    let state = Arc::new(Gateway {
        redis,
        token: config.token,
        requests: AtomicU64::new(0),
        commands: AtomicU64::new(0),
        sync_token: AtomicU64::new(0),
    });
    Ok(Router::new()
        .route("/__gateway/stats", get(stats))
        .route("/__gateway/reset", post(reset))
        .route("/", any(single_in_body))
        .route("/pipeline", any(pipeline))
        .route("/multi-exec", any(multi_exec))
        .route("/{*path}", any(path_form))
        .with_state(state))
}

/// A protocol-level failure, rendered as `{"error": "…"}` with its status.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type Reply = Result<Response, Failure>;

impl Gateway {
    /// Checks the token (header or `_token`) and the method, and counts the request.
    fn admit(&self, method: &Method, headers: &HeaderMap, query: Option<&str>) -> Result<Encoding, Failure> {
        if !matches!(*method, Method::GET | Method::POST | Method::PUT | Method::HEAD) {
            return Err(Failure(StatusCode::METHOD_NOT_ALLOWED, "ERR method not allowed".into()));
        }
        let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let query_token = query_pairs(query).into_iter().find(|(k, _)| k == "_token").map(|(_, v)| v);
        let presented = bearer.map(str::to_owned).or(query_token);
        if presented.as_deref() != Some(self.token.as_str()) {
            return Err(Failure(StatusCode::UNAUTHORIZED, "WRONGPASS invalid or missing auth token".into()));
        }
        self.requests.fetch_add(1, Ordering::SeqCst);
        Encoding::from_headers(headers).map_err(|message| Failure(StatusCode::BAD_REQUEST, message))
    }

    fn respond(&self, status: StatusCode, body: Response) -> Response {
        let mut response = (status, body).into_response();
        let token = self.sync_token.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(value) = token.to_string().parse() {
            response.headers_mut().insert("upstash-sync-token", value);
        }
        response
    }

    async fn run_one(&self, args: Vec<Vec<u8>>, encoding: Encoding) -> Reply {
        self.commands.fetch_add(1, Ordering::SeqCst);
        let mut cmd = redis::cmd(&String::from_utf8_lossy(&args[0]));
        for arg in &args[1..] {
            cmd.arg(arg.as_slice());
        }
        let mut connection = self.redis.clone();
        match cmd.query_async::<Value>(&mut connection).await {
            Ok(value) => Ok(self.respond(StatusCode::OK, encoding.render(&value))),
            Err(error) => match server_error_text(&error) {
                Some(text) => Ok(self.respond(StatusCode::BAD_REQUEST, Json(json!({ "error": text })).into_response())),
                None => Err(unavailable(&error)),
            },
        }
    }

    async fn run_batch(&self, commands: Vec<Vec<Vec<u8>>>, atomic: bool, encoding: Encoding) -> Reply {
        self.commands.fetch_add(commands.len() as u64, Ordering::SeqCst);
        if commands.is_empty() {
            return Err(Failure(StatusCode::BAD_REQUEST, "ERR empty pipeline".into()));
        }
        let mut pipe = redis::pipe();
        if atomic {
            pipe.atomic();
        }
        pipe.ignore_errors();
        for args in &commands {
            let mut cmd = redis::cmd(&String::from_utf8_lossy(&args[0]));
            for arg in &args[1..] {
                cmd.arg(arg.as_slice());
            }
            pipe.add_command(cmd);
        }
        let mut connection = self.redis.clone();
        let results: Vec<redis::RedisResult<Value>> = match pipe.query_async(&mut connection).await {
            Ok(results) => results,
            Err(error) => {
                return match server_error_text(&error) {
                    // A discarded transaction (EXECABORT) is one error object, as Upstash does.
                    Some(text) => {
                        Ok(self.respond(StatusCode::BAD_REQUEST, Json(json!({ "error": text })).into_response()))
                    }
                    None => Err(unavailable(&error)),
                };
            }
        };
        let items: Vec<Json_> = results
            .iter()
            .map(|result| match result {
                Ok(value) => json!({ "result": to_json(value, encoding.base64) }),
                Err(error) => json!({ "error": server_error_text(error).unwrap_or_else(|| error.to_string()) }),
            })
            .collect();
        Ok(self.respond(StatusCode::OK, Json(Json_::Array(items)).into_response()))
    }
}

/// Redis's own error line (`ERR …`, `WRONGTYPE …`), or `None` for I/O and client errors.
fn server_error_text(error: &RedisError) -> Option<String> {
    let code = error.code()?;
    Some(match error.detail() {
        Some(detail) => format!("{code} {detail}"),
        None => code.to_owned(),
    })
}

fn unavailable(error: &RedisError) -> Failure {
    Failure(StatusCode::SERVICE_UNAVAILABLE, format!("ERR redis unavailable: {error}"))
}

impl Encoding {
    fn render(self, value: &Value) -> Response {
        if self.resp2 {
            return ([("content-type", "application/octet-stream")], to_resp2(value)).into_response();
        }
        Json(json!({ "result": to_json(value, self.base64) })).into_response()
    }
}

/// Arguments as JSON sends them: strings as-is, numbers and booleans as their text.
fn json_args(value: &Json_) -> Result<Vec<Vec<u8>>, Failure> {
    let bad =
        || Failure(StatusCode::BAD_REQUEST, "ERR command must be a non-empty JSON array of strings or numbers".into());
    let items = value.as_array().filter(|items| !items.is_empty()).ok_or_else(bad)?;
    items
        .iter()
        .map(|item| match item {
            Json_::String(s) => Ok(s.clone().into_bytes()),
            Json_::Number(n) => Ok(n.to_string().into_bytes()),
            Json_::Bool(b) => Ok(b.to_string().into_bytes()),
            _ => Err(bad()),
        })
        .collect()
}

fn parse_json(body: &Bytes) -> Result<Json_, Failure> {
    serde_json::from_slice(body).map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("ERR invalid JSON body: {e}")))
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn percent_decode(segment: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(segment).collect()
}

type Shared = State<Arc<Gateway>>;

async fn single_in_body(
    State(gw): Shared,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Reply {
    let encoding = gw.admit(&method, &headers, q.as_deref())?;
    if method == Method::GET || method == Method::HEAD {
        let pong = redis::Value::SimpleString("PONG".into());
        return Ok(gw.respond(StatusCode::OK, encoding.render(&pong)));
    }
    let args = json_args(&parse_json(&body)?)?;
    gw.run_one(args, encoding).await
}

async fn batch(
    gw: Arc<Gateway>,
    method: Method,
    headers: HeaderMap,
    q: Option<String>,
    body: Bytes,
    atomic: bool,
) -> Reply {
    let mut encoding = gw.admit(&method, &headers, q.as_deref())?;
    if encoding.resp2 {
        if atomic {
            encoding.resp2 = false; // not applicable to /multi-exec: JSON only
        } else {
            return Err(Failure(StatusCode::BAD_REQUEST, "ERR resp2 format is not supported for pipelines".into()));
        }
    }
    let body = parse_json(&body)?;
    let commands = body
        .as_array()
        .ok_or_else(|| Failure(StatusCode::BAD_REQUEST, "ERR pipeline body must be an array of commands".into()))?
        .iter()
        .map(json_args)
        .collect::<Result<Vec<_>, _>>()?;
    gw.run_batch(commands, atomic, encoding).await
}

async fn pipeline(State(gw): Shared, method: Method, headers: HeaderMap, RawQuery(q): RawQuery, body: Bytes) -> Reply {
    batch(gw, method, headers, q, body, false).await
}

async fn multi_exec(
    State(gw): Shared,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Reply {
    batch(gw, method, headers, q, body, true).await
}

/// `/{cmd}/{arg}/…`: segments are percent-decoded; a POST/PUT body is appended as the last
/// argument, then the query's `key=value` pairs (except `_token`) as `key value`.
async fn path_form(
    State(gw): Shared,
    Path(path): Path<String>,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Reply {
    let encoding = gw.admit(&method, &headers, q.as_deref())?;
    let mut args: Vec<Vec<u8>> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    if args.is_empty() {
        return Err(Failure(StatusCode::BAD_REQUEST, "ERR no command".into()));
    }
    if (method == Method::POST || method == Method::PUT) && !body.is_empty() {
        args.push(body.to_vec());
    }
    for (key, value) in query_pairs(q.as_deref()) {
        if key != "_token" {
            args.push(key.into_bytes());
            if !value.is_empty() {
                args.push(value.into_bytes());
            }
        }
    }
    gw.run_one(args, encoding).await
}

async fn stats(State(gw): Shared) -> Json<Json_> {
    Json(json!({
        "requests": gw.requests.load(Ordering::SeqCst),
        "commands": gw.commands.load(Ordering::SeqCst),
    }))
}

async fn reset(State(gw): Shared) -> Json<Json_> {
    gw.requests.store(0, Ordering::SeqCst);
    gw.commands.store(0, Ordering::SeqCst);
    Json(json!({ "result": "OK" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode_and_keep_order() {
        assert_eq!(
            query_pairs(Some("EX=100&_token=a%2Fb&x")),
            vec![("EX".into(), "100".into()), ("_token".into(), "a/b".into()), ("x".into(), "".into())]
        );
        assert_eq!(percent_decode("a%20b+%zz"), b"a b+%zz");
    }
}
