//! The Upstash Redis REST protocol (docs/upstash-rest.md): `POST /` (a JSON array command),
//! `POST /pipeline`, `POST /multi-exec` (atomic), the path form `/{cmd}/{arg}/…` (GET, HEAD,
//! POST, PUT; a POST body is the last argument, query pairs follow it), `Authorization:
//! Bearer` or `_token`, `Upstash-Encoding: base64`, `Upstash-Response-Format: resp2`,
//! `{"result"}` / `{"error"}` bodies, 400 on command errors, 401 on a bad token, 403 on a
//! command the token may not run, 405 on other methods, 413 on a body over the limit, and an
//! `upstash-sync-token` on every response. `/subscribe/…` and `/monitor` (server-sent events
//! on Upstash) are refused with a 400 that says so.
//!
//! Each request's commands run in a task of their own: a driver panic fails that request
//! (503) and nothing else; each token's connection (as that token's ACL user, [`crate::acl`])
//! reconnects by itself after Redis returns. Requests that run scripts are watched by the
//! [`crate::script_guard`]. Every reply is bounded by `--max-response-bytes` while it is read
//! ([`crate::reply_limit`]) and every response body, JSON or RESP2, after it is encoded.
//! Path segments are percent-decoded exactly once. Tokens are compared in constant time and
//! never logged (nothing here logs requests). `GET /__gateway/stats` and
//! `POST /__gateway/reset` count requests and commands, for a full or admin token;
//! `GET /__gateway/health` says whether Redis answers (or is busy with a script). In front of
//! a Redis Cluster the commands go through [`crate::cluster`] instead of one connection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use redis::{RedisError, Value};
use serde_json::{json, Value as Json_};

use crate::acl::{AclError, AclMode, AclUsers};
use crate::cluster::{Cluster, ClusterError, TokenUser};
use crate::command::command;
use crate::encode::{to_json, to_resp2, Encoding};
use crate::policy::{Lane, Policy};
use crate::redis_link::{is_broken_pipe, Link, Target, TargetError};
use crate::reply_limit::{is_exceeded, window_marker};
use crate::script_guard::{runs_script, Overrun, ScriptGuard};
use crate::shebang::ScriptFlags;
use crate::subscribe::{Kind, SubscribeError, SubscribeLimits, Subscriptions};
pub use crate::tokens::{Access, TokenError, Tokens};

/// Bounds on one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_commands: usize,
    pub max_response_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // Upstash documents no command count, only request size; the body limit bounds it too.
        Self { max_body_bytes: 10 * 1024 * 1024, max_commands: 100_000, max_response_bytes: 10 * 1024 * 1024 }
    }
}

/// What the gateway needs to run.
pub struct GatewayConfig {
    pub redis_url: String,
    /// PEM certificate authorities a `rediss://` Redis (every node of a cluster) may be
    /// signed by, besides the web PKI's.
    pub redis_tls_ca: Option<std::path::PathBuf>,
    pub tokens: Tokens,
    pub policy: Policy,
    pub limits: Limits,
    /// How the per-token ACL users come to exist.
    pub acl_mode: AclMode,
    pub acl_users: AclUsers,
    /// How long a script may run before the gateway ends it.
    pub max_script: Duration,
    /// How many pub/sub streams, and for how long.
    pub subscribe: SubscribeLimits,
}

/// The connection of each token: as its ACL user, or as the `--redis-url` user.
struct Links {
    full: Arc<Link>,
    read_only: Arc<Link>,
    admin: Arc<Link>,
}

struct Gateway {
    links: Links,
    /// Set when `--redis-url` is a node of a Redis Cluster: commands go where their keys are.
    cluster: Option<Arc<Cluster>>,
    guard: ScriptGuard,
    script_flags: ScriptFlags,
    subscriptions: Subscriptions,
    tokens: Tokens,
    policy: Policy,
    limits: Limits,
    requests: AtomicU64,
    commands: AtomicU64,
    sync_token: AtomicU64,
}

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    RedisUrl(#[from] TargetError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Acl(#[from] AclError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// Builds the router once the tokens and their ACL users check out; the caller binds it.
pub async fn router(config: GatewayConfig) -> Result<Router, StartError> {
    config.tokens.check()?;
    let base = Target::from_url(&config.redis_url, config.redis_tls_ca.as_deref())?;
    // A Redis that does not answer yet is taken for one Redis (a cluster node answers
    // MOVED to what it does not serve, which says to restart the gateway: `server_error_text`).
    let cluster_nodes = match base.is_cluster_node().await {
        Some(true) => Some(crate::cluster::other_nodes(&base).await?),
        _ => None,
    };
    let others = cluster_nodes.as_deref().unwrap_or_default();
    let users =
        crate::acl::prepare(config.acl_mode, &base, others, &config.acl_users, &config.tokens, &config.policy).await?;
    // A script may hold a reply up to the script bound; the driver must not give up first.
    let response_timeout = Some(Duration::from_secs(10).max(config.max_script + Duration::from_secs(3)));
    let limit = config.limits.max_response_bytes;
    let cluster = match cluster_nodes {
        Some(_) => {
            let token_user = |user: &crate::acl::TokenTarget| TokenUser {
                target: user.target.clone(),
                provisioner: user.provisioner.clone(),
            };
            let users = [token_user(&users.full), token_user(&users.read_only)];
            Some(Arc::new(Cluster::discover(base.clone(), users, limit, response_timeout).await?))
        }
        None => None,
    };
    let links = Links {
        full: Arc::new(Link::new(users.full.target, limit, response_timeout).provisioned_by(users.full.provisioner)),
        read_only: Arc::new(
            Link::new(users.read_only.target, limit, response_timeout).provisioned_by(users.read_only.provisioner),
        ),
        admin: Arc::new(Link::new(base.clone(), limit, response_timeout)),
    };
    // The kill commands travel on a connection no request uses: a request's own connection
    // queues behind the script it runs.
    let guard = ScriptGuard::new(config.max_script, Link::new(base, 64 * 1024, None))
        .on_masters_of(cluster.as_ref().map(|c| Arc::clone(c) as Arc<dyn crate::script_guard::Masters>));
    if let Err(state) = guard.probe().await {
        eprintln!("edgesync-gateway: Redis is not answering yet ({state}); requests get 503 until it does");
    } else if let Some(note) = guard.threshold_note().await {
        eprintln!("edgesync-gateway: {note}");
    }
    let state = Arc::new(Gateway {
        links,
        cluster,
        guard,
        script_flags: ScriptFlags::default(),
        subscriptions: Subscriptions::new(config.subscribe),
        tokens: config.tokens,
        policy: config.policy,
        limits: config.limits,
        requests: AtomicU64::new(0),
        commands: AtomicU64::new(0),
        sync_token: AtomicU64::new(0),
    });
    Ok(Router::new()
        .route("/__gateway/stats", get(stats))
        .route("/__gateway/health", get(health))
        .route("/__gateway/reset", post(reset))
        .route("/subscribe/{*channels}", any(subscribe_channels))
        .route("/psubscribe/{*patterns}", any(subscribe_patterns))
        .route("/monitor", any(event_stream))
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

impl From<Overrun> for Failure {
    fn from(overrun: Overrun) -> Self {
        let status = match overrun {
            Overrun::Ended(_) => StatusCode::BAD_REQUEST,
            Overrun::Unkillable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Failure(status, overrun.to_string())
    }
}

impl Gateway {
    /// Checks the token (header or `_token`) and the method, and counts the request.
    fn admit(&self, method: &Method, headers: &HeaderMap, query: Option<&str>) -> Result<(Encoding, Access), Failure> {
        if !matches!(*method, Method::GET | Method::POST | Method::PUT | Method::HEAD) {
            return Err(Failure(StatusCode::METHOD_NOT_ALLOWED, "ERR method not allowed".into()));
        }
        let access = self.access(headers, query)?;
        self.requests.fetch_add(1, Ordering::SeqCst);
        let encoding = Encoding::from_headers(headers).map_err(|message| Failure(StatusCode::BAD_REQUEST, message))?;
        Ok((encoding, access))
    }

    fn access(&self, headers: &HeaderMap, query: Option<&str>) -> Result<Access, Failure> {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.get(..7).filter(|scheme| scheme.eq_ignore_ascii_case("bearer ")).map(|_| &v[7..]));
        let query_token = query_pairs(query).into_iter().find(|(k, _)| k == "_token").map(|(_, v)| v);
        let presented = bearer.map(str::to_owned).or(query_token).unwrap_or_default();
        self.tokens
            .access(&presented)
            .ok_or_else(|| Failure(StatusCode::UNAUTHORIZED, "WRONGPASS invalid or missing auth token".into()))
    }

    fn link(&self, access: Access) -> &Arc<Link> {
        match access {
            Access::Full => &self.links.full,
            Access::ReadOnly => &self.links.read_only,
            Access::Admin => &self.links.admin,
        }
    }

    /// `body` as the response, refused when it is larger than the response limit.
    fn limited(&self, status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
        if body.len() > self.limits.max_response_bytes {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!(
                    "ERR the response ({} bytes) exceeds the limit of {} bytes (--max-response-bytes)",
                    body.len(),
                    self.limits.max_response_bytes
                ),
            ));
        }
        Ok(self.respond(status, ([("content-type", content_type)], body).into_response()))
    }

    fn respond(&self, status: StatusCode, body: Response) -> Response {
        let mut response = (status, body).into_response();
        let token = self.sync_token.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(value) = token.to_string().parse() {
            response.headers_mut().insert("upstash-sync-token", value);
        }
        response
    }

    /// A JSON body, refused when it is larger than the response limit.
    fn json_body(&self, status: StatusCode, body: &Json_) -> Reply {
        let bytes = serde_json::to_vec(body).map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        self.limited(status, "application/json", bytes)
    }

    /// One command's result, as the client asked for it (RESP2, or JSON plain or base64).
    fn result(&self, value: &Value, encoding: Encoding) -> Reply {
        if encoding.resp2 {
            return self.limited(StatusCode::OK, "application/octet-stream", to_resp2(value));
        }
        self.json_body(StatusCode::OK, &json!({ "result": to_json(value, encoding.base64) }))
    }

    /// Runs `commands` (a transaction when `atomic`, else a pipeline) on the token's
    /// connection — or, for a blocking command, a connection of its own, dropped afterwards,
    /// at the latest at its bound — or, on a cluster, on the masters their keys are on;
    /// watched by the script guard when they run a script. One result per command.
    async fn execute(
        &self,
        commands: &[Vec<Vec<u8>>],
        atomic: bool,
        lane: Lane,
        access: Access,
        runs_scripts: bool,
    ) -> Result<Vec<redis::RedisResult<Value>>, Failure> {
        let run = async {
            match &self.cluster {
                Some(cluster) => {
                    cluster.run(commands, atomic, lane, access).await.map_err(|error| self.whole_failure(&error))
                }
                None => {
                    let mut pipe = redis::pipe();
                    if atomic {
                        pipe.atomic();
                    }
                    pipe.ignore_errors();
                    // The replies of a pipeline share one response budget while they are
                    // read; a transaction's come back as one reply (EXEC's), bounded as
                    // every reply is.
                    let windowed = !atomic && commands.len() > 1;
                    if windowed {
                        pipe.cmd("ECHO").arg(window_marker(commands.len()));
                    }
                    for args in commands {
                        pipe.add_command(command(args));
                    }
                    let mut ran = self.execute_on(pipe, lane, access).await?;
                    if windowed && !ran.is_empty() {
                        // The marker's echo; were it refused, the window would not open and
                        // each reply would still be bounded alone.
                        let _echo = ran.remove(0);
                    }
                    Ok(ran)
                }
            }
        };
        if runs_scripts {
            self.guard.watch(run).await.map_err(|overrun| {
                if matches!(overrun, Overrun::Unkillable(_)) {
                    // Redis reads nothing more from the connection running the script: later
                    // requests get a new one, which Redis answers (BUSY) at once.
                    match &self.cluster {
                        Some(cluster) => cluster.abandon(access),
                        None => self.link(access).abandon(),
                    }
                }
                Failure::from(overrun)
            })?
        } else {
            run.await
        }
    }

    /// The failure of a whole request: Redis's error (400), a blocking command ended at its
    /// bound (400), or Redis unavailable (503).
    fn whole_failure(&self, error: &RedisError) -> Failure {
        match server_error_text(error) {
            Some(text) => Failure(StatusCode::BAD_REQUEST, text),
            None if error.to_string().contains("--max-block") => Failure(
                StatusCode::BAD_REQUEST,
                format!(
                    "ERR the blocking command waited the gateway's limit of {:?} and was ended",
                    self.policy.max_block()
                ),
            ),
            None => unavailable(error),
        }
    }

    /// Runs `pipe` in a task of its own, so a driver panic fails only this request.
    async fn execute_on(
        &self,
        pipe: redis::Pipeline,
        lane: Lane,
        access: Access,
    ) -> Result<Vec<redis::RedisResult<Value>>, Failure> {
        let link = self.link(access);
        let (task, leased) = match lane {
            Lane::Shared => {
                let leased = link.lease().await.map_err(|error| unavailable(&error))?;
                let (link, first) = (Arc::clone(link), leased.clone());
                let task = tokio::spawn(async move {
                    let mut connection = first.connection.clone();
                    match pipe.query_async::<Vec<redis::RedisResult<Value>>>(&mut connection).await {
                        // Redis closed the connection (it restarted) before the pipeline was
                        // written: nothing reached it, so it goes again on a new connection
                        // rather than failing the first request after every restart.
                        Err(error) if is_broken_pipe(&error) => {
                            link.returned(&first, Some(&error));
                            let mut fresh = link.lease().await?.connection;
                            pipe.query_async::<Vec<redis::RedisResult<Value>>>(&mut fresh).await
                        }
                        outcome => outcome,
                    }
                });
                (task, Some(leased))
            }
            Lane::Dedicated(bound) => {
                let link = Arc::clone(link);
                let run = async move {
                    let mut connection = link.dedicated().await?;
                    pipe.query_async::<Vec<redis::RedisResult<Value>>>(&mut connection).await
                };
                let task = tokio::spawn(async move {
                    match tokio::time::timeout(bound, run).await {
                        Ok(outcome) => outcome,
                        Err(_) => Err(RedisError::from((redis::ErrorKind::Io, "blocked longer than --max-block"))),
                    }
                });
                (task, None)
            }
        };
        let outcome = task.await;
        if let (Some(leased), Ok(result)) = (&leased, &outcome) {
            link.returned(leased, result.as_ref().err());
        }
        match outcome {
            Ok(Ok(results)) => Ok(results),
            Ok(Err(error)) => Err(self.whole_failure(&error)),
            Err(join) => Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "ERR the Redis driver failed on this request ({}); retry",
                    if join.is_panic() { "panic" } else { "cancelled" }
                ),
            )),
        }
    }

    async fn run_one(&self, mut args: Vec<Vec<u8>>, encoding: Encoding, access: Access) -> Reply {
        self.commands.fetch_add(1, Ordering::SeqCst);
        let lane = self.policy.admit(&args, access, false).map_err(refused)?;
        let answer = self.script_flags.rewrite(&mut args);
        let scripts = runs_script(&args);
        let mut results = self.execute(&[args], false, lane, access, scripts).await?;
        match results.pop() {
            Some(Ok(value)) => self.result(&answered(value, answer), encoding),
            Some(Err(error)) => match server_error_text(&error) {
                Some(text) => self.json_body(StatusCode::BAD_REQUEST, &json!({ "error": text })),
                None => Err(unavailable(&error)),
            },
            None => Err(Failure(StatusCode::SERVICE_UNAVAILABLE, "ERR no reply from Redis".into())),
        }
    }

    async fn run_batch(
        &self,
        mut commands: Vec<Vec<Vec<u8>>>,
        atomic: bool,
        encoding: Encoding,
        access: Access,
    ) -> Reply {
        if commands.is_empty() {
            return Err(Failure(StatusCode::BAD_REQUEST, "ERR empty pipeline".into()));
        }
        if commands.len() > self.limits.max_commands {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!("ERR {} commands in one request; the limit is {}", commands.len(), self.limits.max_commands),
            ));
        }
        self.commands.fetch_add(commands.len() as u64, Ordering::SeqCst);
        let verdicts: Vec<_> = commands.iter().map(|args| self.policy.admit(args, access, atomic)).collect();
        if atomic {
            // A transaction runs whole or not at all: one refused command refuses it.
            if let Some(Err(refusal)) = verdicts.iter().find(|v| v.is_err()) {
                return Err(refused(refusal.clone()));
            }
        }
        let lane = verdicts
            .iter()
            .filter_map(|v| v.as_ref().ok())
            .copied()
            .find(|l| *l != Lane::Shared)
            .unwrap_or(Lane::Shared);
        let answers: Vec<Option<String>> = commands
            .iter_mut()
            .zip(&verdicts)
            .map(|(args, verdict)| verdict.is_ok().then(|| self.script_flags.rewrite(args)).flatten())
            .collect();
        let admitted: Vec<Vec<Vec<u8>>> =
            commands.into_iter().zip(&verdicts).filter(|(_, verdict)| verdict.is_ok()).map(|(args, _)| args).collect();
        let scripts = admitted.iter().any(|args| runs_script(args));
        let ran = if admitted.is_empty() {
            Vec::new()
        } else {
            self.execute(&admitted, atomic, lane, access, scripts).await?
        };
        if let Some(text) =
            ran.iter().filter_map(|r| r.as_ref().err()).filter_map(server_error_text).find(|t| is_exceeded(t))
        {
            return Err(Failure(StatusCode::BAD_REQUEST, text));
        }
        let mut ran = ran.into_iter();
        let items: Vec<Json_> = verdicts
            .iter()
            .zip(answers)
            .map(|(verdict, answer)| match verdict {
                Err(refusal) => json!({ "error": refusal.to_string() }),
                Ok(_) => match ran.next() {
                    Some(Ok(value)) => json!({ "result": to_json(&answered(value, answer), encoding.base64) }),
                    Some(Err(error)) => {
                        json!({ "error": server_error_text(&error).unwrap_or_else(|| error.to_string()) })
                    }
                    None => json!({ "error": "ERR no reply from Redis" }),
                },
            })
            .collect();
        self.json_body(StatusCode::OK, &Json_::Array(items))
    }
}

/// Redis's reply, or what the client is answered instead ([`ScriptFlags::rewrite`]).
fn answered(value: Value, answer: Option<String>) -> Value {
    match answer {
        Some(hash) => Value::BulkString(hash.into_bytes()),
        None => value,
    }
}

fn refused(refusal: crate::policy::Refusal) -> Failure {
    Failure(StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST), refusal.to_string())
}

/// Redis's own error line (`ERR …`, `WRONGTYPE …`), or `None` for I/O and client errors. A
/// redirection here means a cluster the gateway did not find at start (it follows them on a
/// cluster it found): it says so rather than pass on a raw MOVED.
fn server_error_text(error: &RedisError) -> Option<String> {
    let code = error.code()?;
    let line = match error.detail() {
        Some(detail) => format!("{code} {detail}"),
        None => code.to_owned(),
    };
    Some(match code {
        "MOVED" | "ASK" => format!(
            "ERR {line}: --redis-url is a node of a Redis Cluster the gateway did not find when it started (Redis did not answer then); restart the gateway so it routes by slot"
        ),
        _ => line,
    })
}

fn unavailable(error: &RedisError) -> Failure {
    Failure(StatusCode::SERVICE_UNAVAILABLE, format!("ERR redis unavailable: {error}"))
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

/// One path segment's bytes: decoded once, so `%2F` is a `/` inside the argument and
/// `%2525` is `%25`.
fn percent_decode(segment: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(segment).collect()
}

/// The path form's arguments: the raw path split at `/`, each segment decoded once.
fn path_arguments(raw_path: &str) -> Vec<Vec<u8>> {
    raw_path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect()
}

/// The body, or a 413 once it passes the limit (read no further).
async fn read_body(gw: &Gateway, body: Body) -> Result<Bytes, Failure> {
    axum::body::to_bytes(body, gw.limits.max_body_bytes).await.map_err(|_| {
        Failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("ERR request bodies are limited to {} bytes", gw.limits.max_body_bytes),
        )
    })
}

type Shared = State<Arc<Gateway>>;

async fn single_in_body(
    State(gw): Shared,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Reply {
    let (encoding, access) = gw.admit(&method, &headers, q.as_deref())?;
    if method == Method::GET || method == Method::HEAD {
        // Liveness of the gateway itself, answered without Redis.
        return gw.result(&Value::SimpleString("PONG".into()), encoding);
    }
    let body = read_body(&gw, body).await?;
    let args = json_args(&parse_json(&body)?)?;
    gw.run_one(args, encoding, access).await
}

async fn batch(
    gw: Arc<Gateway>,
    method: Method,
    headers: HeaderMap,
    q: Option<String>,
    body: Body,
    atomic: bool,
) -> Reply {
    let (mut encoding, access) = gw.admit(&method, &headers, q.as_deref())?;
    if encoding.resp2 {
        if atomic {
            encoding.resp2 = false; // not applicable to /multi-exec: JSON only
        } else {
            return Err(Failure(StatusCode::BAD_REQUEST, "ERR resp2 format is not supported for pipelines".into()));
        }
    }
    let body = parse_json(&read_body(&gw, body).await?)?;
    let commands = body
        .as_array()
        .ok_or_else(|| Failure(StatusCode::BAD_REQUEST, "ERR pipeline body must be an array of commands".into()))?
        .iter()
        .map(json_args)
        .collect::<Result<Vec<_>, _>>()?;
    gw.run_batch(commands, atomic, encoding, access).await
}

async fn pipeline(State(gw): Shared, method: Method, headers: HeaderMap, RawQuery(q): RawQuery, body: Body) -> Reply {
    batch(gw, method, headers, q, body, false).await
}

async fn multi_exec(State(gw): Shared, method: Method, headers: HeaderMap, RawQuery(q): RawQuery, body: Body) -> Reply {
    batch(gw, method, headers, q, body, true).await
}

/// `/{cmd}/{arg}/…`: segments are percent-decoded once (from the raw path, not the router's
/// decoded copy); a POST/PUT body is appended as the last argument, then the query's
/// `key=value` pairs (except `_token`) as `key value`.
async fn path_form(
    State(gw): Shared,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Body,
) -> Reply {
    let (encoding, access) = gw.admit(&method, &headers, q.as_deref())?;
    let mut args = path_arguments(uri.path());
    if args.is_empty() {
        return Err(Failure(StatusCode::BAD_REQUEST, "ERR no command".into()));
    }
    let body = read_body(&gw, body).await?;
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
    gw.run_one(args, encoding, access).await
}

/// Upstash streams these as server-sent events; a request/response gateway cannot share one
/// subscription connection safely, so it says so instead of half-supporting it.
async fn event_stream(State(gw): Shared, method: Method, headers: HeaderMap, RawQuery(q): RawQuery) -> Reply {
    gw.admit(&method, &headers, q.as_deref())?;
    Err(Failure(
        StatusCode::BAD_REQUEST,
        "ERR /monitor is not served by this gateway (it would show every client's commands); /subscribe and /psubscribe are".into(),
    ))
}

async fn subscribe_channels(State(gw): Shared, method: Method, headers: HeaderMap, uri: Uri) -> Reply {
    subscribe(&gw, &method, &headers, &uri, Kind::Channels).await
}

async fn subscribe_patterns(State(gw): Shared, method: Method, headers: HeaderMap, uri: Uri) -> Reply {
    subscribe(&gw, &method, &headers, &uri, Kind::Patterns).await
}

/// `/subscribe/{channel}[/{channel}…]` or `/psubscribe/{pattern}…`: an event stream.
async fn subscribe(gw: &Gateway, method: &Method, headers: &HeaderMap, uri: &Uri, kind: Kind) -> Reply {
    let (_, access) = gw.admit(method, headers, uri.query())?;
    if access == Access::ReadOnly {
        return Err(Failure(StatusCode::FORBIDDEN, "NOPERM subscribing needs a full token".into()));
    }
    let names: Vec<String> = uri
        .path()
        .split('/')
        .skip(2)
        .filter(|segment| !segment.is_empty())
        .map(|segment| String::from_utf8_lossy(&percent_decode(segment)).into_owned())
        .collect();
    let target = gw.link(access).target();
    let stream = gw.subscriptions.subscribe(target, access, kind, names, gw.limits.max_response_bytes).await.map_err(
        |error| {
            let status = match error {
                SubscribeError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
                SubscribeError::NoChannel => StatusCode::BAD_REQUEST,
                SubscribeError::Redis(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            Failure(status, error.to_string())
        },
    )?;
    let headers = [("content-type", "text/event-stream"), ("cache-control", "no-cache")];
    Ok(gw.respond(StatusCode::OK, (headers, Body::from_stream(stream)).into_response()))
}

fn operator(gw: &Gateway, headers: &HeaderMap, query: Option<&str>) -> Result<(), Failure> {
    match gw.access(headers, query)? {
        Access::Full | Access::Admin => Ok(()),
        Access::ReadOnly => {
            Err(Failure(StatusCode::FORBIDDEN, "NOPERM the gateway's counters need a full token".into()))
        }
    }
}

/// Redis's state as the gateway sees it: `ok`, `busy` (a script holds it) or `unavailable`,
/// and whether the script holding it is one the gateway could not end.
async fn redis_state(gw: &Gateway) -> (StatusCode, String, bool) {
    match gw.guard.probe().await {
        Ok(()) => (StatusCode::OK, "ok".into(), false),
        Err(state) => {
            let unkillable = state == "busy" && gw.guard.counts().unkillable_now;
            (StatusCode::SERVICE_UNAVAILABLE, state, unkillable)
        }
    }
}

async fn stats(State(gw): Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Reply {
    operator(&gw, &headers, q.as_deref())?;
    let (_, redis, unkillable_script) = redis_state(&gw).await;
    let counts = gw.guard.counts();
    Ok(Json(json!({
        "requests": gw.requests.load(Ordering::SeqCst),
        "commands": gw.commands.load(Ordering::SeqCst),
        "redis": redis,
        "unkillable_script": unkillable_script,
        "scripts": {
            "bound_ms": gw.guard.bound().as_millis() as u64,
            "ended": counts.ended,
            "unkillable": counts.unkillable,
        },
        "subscribers": gw.subscriptions.open(),
        "cluster": gw.cluster.as_ref().map(|cluster| {
            let counts = cluster.counts();
            json!({ "masters": counts.masters, "moved": counts.moved, "ask": counts.asked })
        }),
    }))
    .into_response())
}

/// For load balancers and operators: 200 while Redis answers, 503 with the reason when not.
/// No token: it says nothing but whether Redis answers.
async fn health(State(gw): Shared) -> Response {
    let (status, redis, unkillable_script) = redis_state(&gw).await;
    (status, Json(json!({ "gateway": "ok", "redis": redis, "unkillable_script": unkillable_script }))).into_response()
}

async fn reset(State(gw): Shared, headers: HeaderMap, RawQuery(q): RawQuery) -> Reply {
    operator(&gw, &headers, q.as_deref())?;
    gw.requests.store(0, Ordering::SeqCst);
    gw.commands.store(0, Ordering::SeqCst);
    Ok(Json(json!({ "result": "OK" })).into_response())
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

    #[test]
    fn path_segments_are_decoded_exactly_once() {
        let args = path_arguments("/set/inj/hello%2FEX%2F1");
        assert_eq!(args, vec![b"set".to_vec(), b"inj".to_vec(), b"hello/EX/1".to_vec()]);
        assert_eq!(path_arguments("/set/pct%2525/v")[1], b"pct%25");
    }
}
