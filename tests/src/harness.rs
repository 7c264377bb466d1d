//! [`Stack`]: the real parts of an edgesync deployment on 127.0.0.1 with free ports —
//! `redis-server` (no persistence), the Upstash-REST gateway in front of it, the MEXC
//! stand-in, and the worker in workerd through `wrangler dev` with its vars pointing at them.
//! Readiness is polled with deadlines; dropping the stack stops every process it started.
//!
//! A missing tool is an error that says what to install, never a silent skip.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use crate::process::{free_port, wait_until, Service};

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

/// redis-server and the Upstash-REST gateway in front of it. Fields drop in order.
pub struct RedisBackend {
    gateway: Service,
    /// In a `Mutex` so a test can stop and restart Redis behind a shared backend.
    redis: Mutex<Service>,
    redis_port: u16,
    tls: RedisTls,
    pub gateway_url: String,
    pub redis_url: String,
    /// The same Redis over TLS (`rediss://`), its certificate signed by [`RedisBackend::tls_ca`].
    pub redis_tls_url: String,
    http: ureq::Agent,
    dir: tempfile::TempDir,
}

/// The MEXC stand-in process and its control surface.
pub struct ExchangeStandin {
    service: Service,
    pub url: String,
    http: ureq::Agent,
    _dir: tempfile::TempDir,
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

/// redis-server's TLS listener: its port, and a private CA and a certificate for 127.0.0.1
/// signed by it, generated for the run.
struct RedisTls {
    port: u16,
    ca: PathBuf,
    certificate: PathBuf,
    key: PathBuf,
}

impl RedisTls {
    fn generate(dir: &std::path::Path) -> Result<Self, String> {
        let failed = |e: rcgen::Error| format!("cannot generate the test CA: {e}");
        let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "edgesync e2e CA");
        let ca = ca_params.self_signed(&ca_key).map_err(failed)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let server_key = rcgen::KeyPair::generate().map_err(failed)?;
        let server_params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).map_err(failed)?;
        let server = server_params.signed_by(&server_key, &issuer).map_err(failed)?;
        let tls = Self {
            port: free_port(),
            ca: dir.join("ca.pem"),
            certificate: dir.join("redis.crt"),
            key: dir.join("redis.key"),
        };
        for (path, pem) in
            [(&tls.ca, ca.pem()), (&tls.certificate, server.pem()), (&tls.key, server_key.serialize_pem())]
        {
            std::fs::write(path, pem).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(tls)
    }
}

/// Starts redis-server on `port` (and TLS on `tls.port`) without persistence; waits for PING.
fn start_redis(port: u16, tls: &RedisTls, dir: &std::path::Path) -> Result<Service, String> {
    let mut command = Command::new("redis-server");
    command.args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"]);
    command.args(["--tls-port", &tls.port.to_string(), "--tls-auth-clients", "no"]);
    command.arg("--tls-cert-file").arg(&tls.certificate).arg("--tls-key-file").arg(&tls.key);
    command.arg("--tls-ca-cert-file").arg(&tls.ca);
    command.arg("--dir").arg(dir);
    let mut redis = Service::spawn("redis-server", command, &dir.join("redis.log"))?;
    let url = format!("redis://127.0.0.1:{port}");
    wait_until("redis-server to answer PING", Duration::from_secs(20), || {
        (redis_pings(&url) || !redis.is_running()).then_some(())
    })?;
    if !redis.is_running() {
        return Err(format!("redis-server exited:\n{}", redis.log_tail(20)));
    }
    Ok(redis)
}

fn redis_pings(url: &str) -> bool {
    redis::Client::open(url)
        .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
        .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        .is_ok()
}

impl RedisBackend {
    /// Starts redis-server (no persistence) and the gateway in front of it.
    pub fn start(binaries: &Binaries) -> Result<RedisBackend, String> {
        require_tool("redis-server", "install it with `apt-get install redis-server` (`make test` does this)")?;
        let dir = tempfile::Builder::new().prefix("edgesync-e2e-").tempdir().map_err(|e| e.to_string())?;
        let log = |name: &str| dir.path().join(format!("{name}.log"));

        let redis_port = free_port();
        let tls = RedisTls::generate(dir.path())?;
        let redis = start_redis(redis_port, &tls, dir.path())?;
        let redis_url = format!("redis://127.0.0.1:{redis_port}");
        let redis_tls_url = format!("rediss://127.0.0.1:{}", tls.port);

        let http = agent();
        let gateway_port = free_port();
        let mut command = Command::new(binaries.gateway);
        command.args(["--listen", &format!("127.0.0.1:{gateway_port}"), "--redis-url", &redis_url]);
        // The gateway makes its token's ACL user with the default user, and again after a
        // restart of this Redis (which keeps no ACL file).
        command.args(["--acl-users", "provision"]);
        command.env("GATEWAY_TOKEN", REDIS_TOKEN);
        let mut gateway = Service::spawn("edgesync-gateway", command, &log("gateway"))?;
        let gateway_url = format!("http://127.0.0.1:{gateway_port}");
        wait_ready(&http, &mut gateway, &format!("{gateway_url}/?_token={REDIS_TOKEN}"), Duration::from_secs(20))?;
        Ok(RedisBackend {
            gateway,
            redis: Mutex::new(redis),
            redis_port,
            tls,
            gateway_url,
            redis_url,
            redis_tls_url,
            http,
            dir,
        })
    }

    /// Stops redis-server (the gateway stays up and answers 503s), as an outage would.
    pub fn stop_redis(&self) {
        self.redis.lock().unwrap_or_else(|p| p.into_inner()).stop();
    }

    /// Starts redis-server again on the same port, empty (it has no persistence).
    pub fn restart_redis(&self) -> Result<(), String> {
        let mut redis = self.redis.lock().unwrap_or_else(|p| p.into_inner());
        redis.stop();
        *redis = start_redis(self.redis_port, &self.tls, self.dir.path())?;
        drop(redis);
        // The gateway's connection to the old process is broken; it reconnects on a failed
        // request. Ready is when a command goes through it again.
        wait_until("the gateway to reach the restarted Redis", Duration::from_secs(20), || {
            let auth = format!("Bearer {REDIS_TOKEN}");
            let answer = self.gateway_call("POST", "/", &[("authorization", &auth)], Some(br#"["PING"]"#));
            (answer.status == 200).then_some(())
        })
    }

    /// The PEM file of the private CA that signed the TLS listener's certificate.
    pub fn tls_ca(&self) -> &std::path::Path {
        &self.tls.ca
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// A direct connection to redis-server, bypassing every edgesync component.
    pub fn redis(&self) -> redis::Connection {
        redis::Client::open(self.redis_url.as_str())
            .and_then(|c| c.get_connection())
            .expect("redis-server accepts connections")
    }

    /// `{"requests", "commands"}` the gateway has served since the last reset.
    pub fn gateway_stats(&self) -> Value {
        call(&self.http, "GET", &format!("{}/__gateway/stats?_token={REDIS_TOKEN}", self.gateway_url), None).json()
    }

    pub fn reset_gateway_stats(&self) {
        let auth = format!("Bearer {REDIS_TOKEN}");
        let answer = self.gateway_call("POST", "/__gateway/reset", &[("authorization", &auth)], None);
        assert_eq!(answer.status, 200, "resetting the gateway's counters: {}", answer.body);
    }

    /// Another `edgesync-gateway` in front of this Redis, with `args` (tokens, policy, TLS;
    /// `--acl-users provision` unless `args` say otherwise) and `env`; returns it and its base
    /// URL (`https://` when `--tls-cert` is given), once it says it listens. Its full token
    /// must be [`REDIS_TOKEN`]: the ACL user of a token is shared by the gateways of a Redis.
    pub fn start_gateway(&self, args: &[&str], env: &[(&str, &str)]) -> Result<(Service, String), String> {
        let port = free_port();
        let mut command = Command::new(gateway_binary());
        command.args(["--listen", &format!("127.0.0.1:{port}"), "--redis-url", &self.redis_url]);
        if !args.contains(&"--acl-users") {
            command.args(["--acl-users", "provision"]);
        }
        command.args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        let log = self.log(&format!("gateway-{port}"));
        let mut service = Service::spawn("edgesync-gateway", command, &log)?;
        wait_until("the extra gateway to listen", Duration::from_secs(20), || {
            if !service.is_running() {
                return Some(Err(std::fs::read_to_string(&log).unwrap_or_default()));
            }
            std::fs::read_to_string(&log).ok().filter(|text| text.contains("listening on")).map(|_| Ok(()))
        })?
        .map_err(|log| format!("the gateway exited: {log}"))?;
        let scheme = if args.contains(&"--tls-cert") { "https" } else { "http" };
        Ok((service, format!("{scheme}://127.0.0.1:{port}")))
    }

    /// The per-run CA, and the certificate and key it signed for 127.0.0.1 (PEM files).
    pub fn tls_files(&self) -> (&std::path::Path, &std::path::Path, &std::path::Path) {
        (&self.tls.ca, &self.tls.certificate, &self.tls.key)
    }

    /// Any request to the gateway, e.g. to test the protocol itself.
    pub fn gateway_call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> HttpAnswer {
        let url = format!("{}{path}", self.gateway_url);
        let mut request = axum::http::Request::builder().method(method).uri(&url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.unwrap_or_default().to_vec()).expect("valid test request");
        let mut response = self.http.run(request).unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
        answer(&mut response)
    }

    /// Names of the services, for diagnostics.
    pub fn services(&self) -> [&str; 2] {
        [self.gateway.name(), "redis-server"]
    }
}

impl Stack {
    /// Starts the whole deployment: [`RedisBackend`], the stand-in and the worker.
    pub fn start(options: StackOptions) -> Result<Stack, String> {
        let backend = RedisBackend::start(&options.binaries)?;
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

impl ExchangeStandin {
    /// Starts `mexc-standin` on a free port with the test credentials.
    pub fn start(binaries: &Binaries) -> Result<ExchangeStandin, String> {
        let dir = tempfile::Builder::new().prefix("edgesync-standin-").tempdir().map_err(|e| e.to_string())?;
        let http = agent();
        let port = free_port();
        let mut command = Command::new(binaries.standin);
        command.args(["--listen", &format!("127.0.0.1:{port}")]);
        command.arg("--fixtures").arg(repo_root().join("fixtures/mexc"));
        command.env("STANDIN_API_KEY", MEXC_API_KEY).env("STANDIN_API_SECRET", MEXC_API_SECRET);
        let mut service = Service::spawn("mexc-standin", command, &dir.path().join("standin.log"))?;
        let url = format!("http://127.0.0.1:{port}");
        wait_ready(&http, &mut service, &format!("{url}/api/v3/ping"), Duration::from_secs(20))?;
        Ok(ExchangeStandin { service, url, http, _dir: dir })
    }

    /// Makes the stand-in answer `body` for `path` (and `symbol`, if given).
    pub fn set_response(&self, path: &str, symbol: Option<&str>, body: &Value) {
        let mut url = format!("{}/__control/response?path={path}", self.url);
        if let Some(symbol) = symbol {
            url.push_str(&format!("&symbol={symbol}"));
        }
        let answer = call(&self.http, "PUT", &url, Some(body));
        assert_eq!(answer.status, 204, "stand-in refused the response: {}", answer.body);
    }

    /// Queues a fault (see `standin::faults`).
    pub fn inject_fault(&self, fault: &Value) {
        let answer = call(&self.http, "POST", &format!("{}/__control/fault", self.url), Some(fault));
        assert_eq!(answer.status, 204, "stand-in refused the fault: {}", answer.body);
    }

    /// Requests served so far: `{"counts": {path: n}, "total": n}`.
    pub fn requests(&self) -> Value {
        call(&self.http, "GET", &format!("{}/__control/requests", self.url), None).json()
    }

    /// Forgets replacements, faults and counts.
    pub fn reset(&self) {
        call(&self.http, "POST", &format!("{}/__control/reset", self.url), None);
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

/// Runs `wrangler dev` on a free 127.0.0.1 port — the repository's worker, or the one
/// `config` (a `wrangler.toml` path) describes — and waits until it answers `/health` (the
/// repository's worker) or `/` (another). Offline and quiet, like the Makefile.
pub fn start_wrangler_dev(
    config: Option<&std::path::Path>,
    vars: &[(String, String)],
    log: &std::path::Path,
) -> Result<(Service, String), String> {
    start_wrangler_dev_persisted(config, vars, log, None)
}

/// [`start_wrangler_dev`], keeping wrangler's local state (Durable Objects) in `state`
/// rather than the repository's `.wrangler/state`.
pub fn start_wrangler_dev_persisted(
    config: Option<&std::path::Path>,
    vars: &[(String, String)],
    log: &std::path::Path,
    state: Option<&std::path::Path>,
) -> Result<(Service, String), String> {
    start_wrangler_dev_at(config, vars, log, state, free_port())
}

/// [`start_wrangler_dev_persisted`] on `port` (127.0.0.1).
pub fn start_wrangler_dev_at(
    config: Option<&std::path::Path>,
    vars: &[(String, String)],
    log: &std::path::Path,
    state: Option<&std::path::Path>,
    port: u16,
) -> Result<(Service, String), String> {
    spawn_wrangler_dev(config, vars, log, state, port).map(|(service, url, _)| (service, url))
}

/// [`start_wrangler_dev_at`], also answering the port of the worker's V8 inspector.
pub fn spawn_wrangler_dev(
    config: Option<&std::path::Path>,
    vars: &[(String, String)],
    log: &std::path::Path,
    state: Option<&std::path::Path>,
    port: u16,
) -> Result<(Service, String, u16), String> {
    let root = repo_root();
    let inspector_port = free_port();
    let wrangler = root.join("node_modules/.bin/wrangler");
    require_tool(wrangler.to_str().unwrap_or_default(), "run `npm ci` in the repository root (`make test` does this)")?;
    let mut command = Command::new(&wrangler);
    command.current_dir(&root).args([
        "dev",
        "--ip",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--inspector-ip",
        "127.0.0.1",
        "--inspector-port",
        &inspector_port.to_string(),
        "--show-interactive-dev-session=false",
        "--log-level",
        "log",
    ]);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    if let Some(state) = state {
        command.arg("--persist-to").arg(state);
    }
    for (name, value) in vars {
        command.arg("--var").arg(format!("{name}:{value}"));
    }
    command
        .env("XDG_CONFIG_HOME", root.join(".xdg"))
        .env("XDG_CACHE_HOME", root.join(".cache"))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        // The banner is what makes wrangler ask the npm registry for a newer version.
        .env("WRANGLER_HIDE_BANNER", "true");
    let mut worker = Service::spawn("wrangler dev", command, log)?;
    let url = format!("http://127.0.0.1:{port}");
    let probe = if config.is_some() { format!("{url}/") } else { format!("{url}/health") };
    wait_ready(&agent(), &mut worker, &probe, Duration::from_secs(240))?;
    Ok((worker, url, inspector_port))
}

/// Another worker process on the same backend and stand-in (e.g. with different vars).
pub struct ExtraWorker {
    service: Service,
    pub url: String,
    /// Its V8 inspector, on 127.0.0.1.
    pub inspector_port: u16,
}

impl ExtraWorker {
    /// CPU time its workerd has used so far, in clock ticks.
    pub fn workerd_cpu_ticks(&self) -> u64 {
        self.service.group_cpu_ticks("workerd")
    }

    /// See [`Service::set_priority`].
    pub fn set_priority(&self, nice: i32) -> Result<(), String> {
        self.service.set_priority(nice)
    }

    /// CPU time its workerd's threads have run so far, ns.
    pub fn workerd_cpu_ns(&self) -> u64 {
        self.service.group_cpu_ns("workerd")
    }

    /// The pids of its workerd processes.
    pub fn workerd_pids(&self) -> Vec<u32> {
        self.service.group_members("workerd")
    }
}

impl Stack {
    /// Starts a second worker against this stack's Redis and stand-in, with `vars` added.
    pub fn extra_worker(&self, vars: &[(&str, &str)]) -> Result<ExtraWorker, String> {
        let mut all = vec![
            ("UPSTASH_REDIS_REST_URL".to_owned(), self.backend.gateway_url.clone()),
            ("UPSTASH_REDIS_REST_TOKEN".to_owned(), REDIS_TOKEN.to_owned()),
            ("MEXC_BASE_URL".to_owned(), self.exchange.url.clone()),
            ("MEXC_API_KEY".to_owned(), MEXC_API_KEY.to_owned()),
            ("MEXC_API_SECRET".to_owned(), MEXC_API_SECRET.to_owned()),
        ];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let name = format!("worker-{}", free_port());
        let state = self.backend.dir.path().join(format!("{name}-state"));
        let (service, url, inspector_port) =
            spawn_wrangler_dev(None, &all, &self.backend.log(&name), Some(&state), free_port())?;
        Ok(ExtraWorker { service, url, inspector_port })
    }
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
