//! [`Stack`]: the real parts of an edgesync deployment on 127.0.0.1 with free ports —
//! `redis-server` (no persistence), the Upstash-REST gateway in front of it, the MEXC
//! stand-in, and the worker in workerd through `wrangler dev` with its vars pointing at them.
//! Readiness is polled with deadlines; dropping the stack stops every process it started.
//!
//! A missing tool is an error that says what to install, never a silent skip.
//!
//! Its parts, one file each, re-exported here (one spelling): `redis_backend.rs`
//! ([`RedisBackend`]: `redis-server` or a Redis Cluster, and the gateway), `direct_redis.rs`
//! ([`DirectRedis`]: tests' own client of either), `standin.rs` ([`ExchangeStandin`]: the
//! MEXC stand-in), `wrangler.rs` (the worker under `wrangler dev`, extra workers).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{free_port, wait_until, Service};

mod direct_redis;
mod redis_backend;
mod standin;
mod workerd;
mod wrangler;

pub use direct_redis::DirectRedis;
pub use redis_backend::{Backing, RedisBackend};
pub use standin::ExchangeStandin;
pub use workerd::{spawn_workerd, spawn_workerd_build, WorkerRunner};
pub use wrangler::{
    spawn_wrangler_dev, start_wrangler_dev, start_wrangler_dev_at, start_wrangler_dev_persisted, ExtraWorker,
};

/// Repository root (this crate lives in `tests/`).
/// The `migrator` binary, built by `make e2e` (`cargo build -p edgesync-migrator`) next to
/// the test binaries.
pub fn migrator_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe.parent().and_then(|deps| deps.parent()).expect("target dir").join("migrator");
    assert!(path.exists(), "{} is missing: run `cargo build -p edgesync-migrator` (make e2e does)", path.display());
    path
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Paths of the binaries the stacks run: the gateway (its own crate, built by `make e2e`
/// next to the test binaries) and this crate's stand-in (Cargo provides its path to tests).
pub struct Binaries {
    pub gateway: &'static str,
    pub standin: &'static str,
}

/// The `edgesync-gateway` binary, built by `make e2e` (`cargo build -p edgesync-gateway`)
/// next to the test binaries: the e2e suites run the binary users run.
pub fn gateway_binary() -> &'static str {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().expect("target dir");
    // Integration tests live in target/<profile>/deps, other binaries in target/<profile>.
    let dir = if dir.ends_with("deps") { dir.parent().expect("target dir") } else { dir };
    let path = dir.join("edgesync-gateway");
    assert!(path.exists(), "{} is missing: run `cargo build -p edgesync-gateway` (make e2e does)", path.display());
    Box::leak(path.to_string_lossy().into_owned().into_boxed_str())
}

/// Expands to the [`Binaries`] of this package (only valid in its integration tests).
#[macro_export]
macro_rules! binaries {
    () => {
        $crate::harness::Binaries {
            gateway: $crate::harness::gateway_binary(),
            standin: env!("CARGO_BIN_EXE_mexc-standin"),
        }
    };
}

/// Credentials the stack hands out; test values, never real ones.
pub const REDIS_TOKEN: &str = "e2e-redis-token";
pub const MEXC_API_KEY: &str = "e2e-mexc-key";
pub const MEXC_API_SECRET: &str = "e2e-mexc-secret";

pub struct StackOptions {
    pub binaries: Binaries,
    /// Extra worker vars (`--var NAME:VALUE`), e.g. `SYMBOLS`.
    pub vars: Vec<(String, String)>,
}

/// An HTTP answer: status, headers (lower-case names) and body.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The running parts. Fields drop in order: the worker first, Redis last.
pub struct Stack {
    worker: Service,
    /// The worker's vars and where wrangler keeps its local state (the Durable Object's
    /// SQLite), so a restart is the same worker with the same data.
    worker_vars: Vec<(String, String)>,
    worker_state: PathBuf,
    pub exchange: ExchangeStandin,
    pub backend: RedisBackend,
    pub worker_url: String,
    /// The worker's V8 inspector (`wrangler dev --inspector-port`), on 127.0.0.1.
    pub inspector_port: u16,
    http: ureq::Agent,
}

pub fn require_tool(path: &str, hint: &str) -> Result<(), String> {
    let found = if path.contains('/') {
        std::path::Path::new(path).exists()
    } else {
        Command::new("sh").args(["-c", &format!("command -v {path}")]).output().is_ok_and(|o| o.status.success())
    };
    if found {
        Ok(())
    } else {
        Err(format!("{path} is missing: {hint}"))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl Stack {
    /// Starts the whole deployment: [`RedisBackend`], the stand-in and the worker.
    pub fn start(options: StackOptions) -> Result<Stack, String> {
        Self::start_on(options, Backing::Server)
    }

    /// The whole deployment on `backing`: one redis-server or a Redis Cluster.
    pub fn start_on(options: StackOptions, backing: Backing) -> Result<Stack, String> {
        let backend = RedisBackend::start_on(&options.binaries, backing)?;
        let log = |name: &str| backend.log(name);
        let http = agent();
        let gateway_url = backend.gateway_url.clone();

        let exchange = ExchangeStandin::start(&options.binaries)?;
        let standin_url = exchange.url.clone();

        let mut vars = vec![
            ("UPSTASH_REDIS_REST_URL".to_owned(), gateway_url.clone()),
            ("UPSTASH_REDIS_REST_TOKEN".to_owned(), REDIS_TOKEN.to_owned()),
            ("MEXC_BASE_URL".to_owned(), standin_url.clone()),
            ("MEXC_API_KEY".to_owned(), MEXC_API_KEY.to_owned()),
            ("MEXC_API_SECRET".to_owned(), MEXC_API_SECRET.to_owned()),
        ];
        vars.extend(options.vars);
        let worker_state = backend.dir.path().join("wrangler-state");
        let (worker, worker_url, inspector_port) =
            spawn_wrangler_dev(None, &vars, &log("worker"), Some(&worker_state), free_port())?;
        Ok(Stack { worker, worker_vars: vars, worker_state, exchange, backend, worker_url, inspector_port, http })
    }

    /// Sets (or replaces) worker vars for the next [`Stack::restart_worker`]; an empty value
    /// unsets a variable as far as the worker's config is concerned.
    pub fn set_worker_vars(&mut self, vars: &[(&str, &str)]) {
        for (name, value) in vars {
            self.worker_vars.retain(|(existing, _)| existing != name);
            self.worker_vars.push((name.to_string(), value.to_string()));
        }
    }

    /// Stops `wrangler dev` and starts it again with the same vars and local state: a fresh
    /// isolate (nothing in memory), the Durable Object's data kept. The URL changes.
    pub fn restart_worker(&mut self) -> Result<(), String> {
        self.worker.stop();
        let log = self.backend.log(&format!("worker-restarted-{}", free_port()));
        let (worker, url, inspector_port) =
            spawn_wrangler_dev(None, &self.worker_vars, &log, Some(&self.worker_state), free_port())?;
        self.worker = worker;
        self.worker_url = url;
        self.inspector_port = inspector_port;
        Ok(())
    }

    fn call(&self, method: &str, url: &str, body: Option<&Value>) -> HttpAnswer {
        call(&self.http, method, url, body)
    }

    /// Any request to the worker, with headers and an optional body.
    pub fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpAnswer {
        let url = format!("{}{path}", self.worker_url);
        let mut request = axum::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.to_vec()).expect("valid test request");
        let mut response = self.http.run(request).unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
        answer(&mut response)
    }

    /// `GET` a worker path, e.g. `/v1/price/QRLUSDT`.
    pub fn get(&self, path: &str) -> HttpAnswer {
        self.call("GET", &format!("{}{path}", self.worker_url), None)
    }

    /// Fires the worker's scheduled handler for `cron` (crons never fire by themselves in dev)
    /// and returns once the handler has run.
    pub fn fire_cron(&self, cron: &str) {
        let url = format!("{}/cdn-cgi/handler/scheduled?cron={}", self.worker_url, cron.replace(' ', "+"));
        let answer = self.call("GET", &url, None);
        if answer.status != 200 {
            let log = self.worker_log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!("firing cron {cron:?}: {} {}\nworker log (end):\n{}", answer.status, answer.body, tail.join("\n"));
        }
    }

    /// Makes the stand-in's QRLUSDT 24 h ticker say `last_price` and `volume` (MEXC's shape,
    /// with the empty strings and nulls MEXC sends for some fields).
    pub fn set_ticker(&self, last_price: &str, volume: &str) {
        let ticker = serde_json::json!({
            "symbol": "QRLUSDT", "priceChange": "0.0001", "priceChangePercent": "0.01",
            "prevClosePrice": "0.0122", "lastPrice": last_price, "bidPrice": "0.0123", "bidQty": "",
            "askPrice": "0.0124", "askQty": "", "openPrice": "0.0122", "highPrice": "0.0130",
            "lowPrice": "0.0119", "volume": volume, "quoteVolume": null,
            "openTime": 1_700_000_000_000_i64, "closeTime": 1_700_000_060_000_i64, "count": null
        });
        self.exchange.set_response("/api/v3/ticker/24hr", Some("QRLUSDT"), &ticker);
    }

    /// The worker's log so far (console output of workerd via wrangler).
    pub fn worker_log(&self) -> String {
        std::fs::read_to_string(self.worker.log_path()).unwrap_or_default()
    }

    /// Waits (polling, 10 s deadline) until the worker's log contains `needle`: wrangler
    /// relays workerd's console output asynchronously, after the response.
    pub fn wait_for_log(&self, needle: &str) -> Result<(), String> {
        wait_until(&format!("{needle:?} in the worker log"), Duration::from_secs(10), || {
            self.worker_log().contains(needle).then_some(())
        })
        .map_err(|e| format!("{e}; log:\n{}", self.worker_log()))
    }

    /// Resident memory of the worker's workerd, KiB.
    pub fn workerd_rss_kib(&self) -> u64 {
        self.worker.group_rss_kib("workerd")
    }

    /// CPU time the worker's workerd has used so far, in clock ticks (see
    /// [`Service::group_cpu_ticks`]).
    pub fn workerd_cpu_ticks(&self) -> u64 {
        self.worker.group_cpu_ticks("workerd")
    }

    /// Names of the services, for diagnostics.
    pub fn services(&self) -> [&str; 4] {
        let [gateway, redis] = self.backend.services();
        [self.worker.name(), self.exchange.service.name(), gateway, redis]
    }
}

fn call(http: &ureq::Agent, method: &str, url: &str, body: Option<&Value>) -> HttpAnswer {
    let outcome = match (method, body) {
        ("GET", _) => http.get(url).call(),
        ("POST", Some(body)) => http.post(url).send_json(body),
        ("POST", None) => http.post(url).send_empty(),
        ("PUT", Some(body)) => http.put(url).send_json(body),
        _ => panic!("unsupported test call {method} {url}"),
    };
    let mut response = outcome.unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
    answer(&mut response)
}

fn answer(response: &mut ureq::http::Response<ureq::Body>) -> HttpAnswer {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    HttpAnswer { status, headers, body }
}

fn wait_ready(http: &ureq::Agent, service: &mut Service, url: &str, timeout: Duration) -> Result<(), String> {
    let ready = wait_until(&format!("{} at {url}", service.name()), timeout, || {
        if !service.is_running() {
            return Some(false);
        }
        http.get(url).call().ok().filter(|r| r.status().is_success()).map(|_| true)
    });
    match ready {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("{} exited during start-up:\n{}", service.name(), service.log_tail(40))),
        Err(timeout) => Err(format!("{timeout}\n{}", service.log_tail(40))),
    }
}
