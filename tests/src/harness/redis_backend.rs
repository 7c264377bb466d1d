//! [`RedisBackend`]: `redis-server` (no persistence; a TLS listener with a CA made for the
//! run) — or a Redis Cluster of them ([`Backing::Cluster`]: 3 masters, a replica each) — and
//! the Upstash-REST gateway in front of it, with the calls tests make on them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

use super::direct_redis::DirectRedis;
use super::{agent, answer, call, gateway_binary, require_tool, wait_ready, Binaries, HttpAnswer, REDIS_TOKEN};
use crate::cluster::RedisCluster;
use crate::process::{free_port, wait_until, Service};

/// Which Redis a backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// One `redis-server`.
    Server,
    /// A Redis Cluster (3 masters, a replica each); the gateway is given its first node.
    Cluster,
}

impl Backing {
    /// `Cluster` for a suite compiled as `<name>_cluster` (pass `env!("CARGO_CRATE_NAME")`):
    /// `tests/tests/sync_cluster.rs` and `api_cluster.rs` are `sync.rs` and `api.rs` again, so
    /// the same assertions run on both.
    pub fn of_suite(crate_name: &str) -> Self {
        if crate_name.ends_with("_cluster") {
            Backing::Cluster
        } else {
            Backing::Server
        }
    }
}

/// The Redis behind the gateway.
enum Servers {
    /// In a `Mutex` so a test can stop and restart Redis behind a shared backend.
    One(Mutex<Service>),
    Cluster(RedisCluster),
}

/// redis-server (or a cluster) and the Upstash-REST gateway in front of it. Fields drop in
/// order.
pub struct RedisBackend {
    gateway: Service,
    redis: Servers,
    redis_port: u16,
    tls: RedisTls,
    pub gateway_url: String,
    /// The server's URL, or the first node's of a cluster.
    pub redis_url: String,
    /// The same Redis over TLS (`rediss://`), its certificate signed by [`RedisBackend::tls_ca`]
    /// (one server only: a cluster's nodes speak plain text).
    pub redis_tls_url: String,
    http: ureq::Agent,
    pub(super) dir: tempfile::TempDir,
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

/// [`start_redis`] on free ports (its own and the TLS listener's, set in `tls`): a port found
/// free can be taken — by another process, or as a connection's local port — before
/// redis-server binds it, so a start that found it taken tries new ports, a few times.
fn start_redis_on_free_ports(tls: &mut RedisTls, dir: &std::path::Path) -> Result<(Service, u16), String> {
    let mut attempts = 0;
    loop {
        let port = free_port();
        match start_redis(port, tls, dir) {
            Ok(redis) => return Ok((redis, port)),
            Err(error) if error.contains("Address already in use") && attempts < 4 => {
                attempts += 1;
                tls.port = free_port();
            }
            Err(error) => return Err(error),
        }
    }
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
        Self::start_on(binaries, Backing::Server)
    }

    /// Starts `backing` and the gateway in front of it (given a cluster's first node).
    pub fn start_on(binaries: &Binaries, backing: Backing) -> Result<RedisBackend, String> {
        require_tool("redis-server", "install it with `apt-get install redis-server` (`make test` does this)")?;
        let dir = tempfile::Builder::new().prefix("edgesync-e2e-").tempdir().map_err(|e| e.to_string())?;
        let log = |name: &str| dir.path().join(format!("{name}.log"));

        let mut tls = RedisTls::generate(dir.path())?;
        let (redis, redis_port, redis_url) = match backing {
            Backing::Server => {
                let (redis, port) = start_redis_on_free_ports(&mut tls, dir.path())?;
                (Servers::One(Mutex::new(redis)), port, format!("redis://127.0.0.1:{port}"))
            }
            Backing::Cluster => {
                let cluster = RedisCluster::start(3, 1)?;
                let url = cluster.urls()[0].clone();
                let port = url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_default();
                (Servers::Cluster(cluster), port, url)
            }
        };

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
        Ok(RedisBackend { gateway, redis, redis_port, tls, gateway_url, redis_url, redis_tls_url, http, dir })
    }

    /// The cluster, when the backend is one.
    pub fn cluster(&self) -> Option<&RedisCluster> {
        match &self.redis {
            Servers::One(_) => None,
            Servers::Cluster(cluster) => Some(cluster),
        }
    }

    /// Stops redis-server — or every node of the cluster — (the gateway stays up and answers
    /// 503s), as an outage would.
    pub fn stop_redis(&self) {
        match &self.redis {
            Servers::One(redis) => redis.lock().unwrap_or_else(|p| p.into_inner()).stop(),
            Servers::Cluster(cluster) => cluster.stop(),
        }
    }

    /// Starts redis-server (or every node) again on the same port, empty (no persistence).
    pub fn restart_redis(&self) -> Result<(), String> {
        self.restart_redis_behind_the_gateway()?;
        // The gateway's connection to the old process is broken; it reconnects on a failed
        // request. Ready is when a command goes through it again.
        wait_until("the gateway to reach the restarted Redis", Duration::from_secs(20), || {
            let auth = format!("Bearer {REDIS_TOKEN}");
            let answer = self.gateway_call("POST", "/", &[("authorization", &auth)], Some(br#"["PING"]"#));
            (answer.status == 200).then_some(())
        })
    }

    /// [`RedisBackend::restart_redis`] without sending anything through the gateway: the
    /// first request after it is the gateway's first use of its broken connection.
    pub fn restart_redis_behind_the_gateway(&self) -> Result<(), String> {
        match &self.redis {
            Servers::One(redis) => {
                let mut redis = redis.lock().unwrap_or_else(|p| p.into_inner());
                redis.stop();
                *redis = start_redis(self.redis_port, &self.tls, self.dir.path())?;
            }
            Servers::Cluster(cluster) => cluster.restart()?,
        }
        Ok(())
    }

    /// The PEM file of the private CA that signed the TLS listener's certificate.
    pub fn tls_ca(&self) -> &std::path::Path {
        &self.tls.ca
    }

    pub(super) fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// A direct client of the backend's Redis, bypassing every edgesync component: a
    /// connection to redis-server, or a cluster client routing by slot.
    pub fn redis(&self) -> DirectRedis {
        match &self.redis {
            Servers::One(_) => DirectRedis::Server(
                redis::Client::open(self.redis_url.as_str())
                    .and_then(|c| c.get_connection())
                    .expect("redis-server accepts connections"),
            ),
            Servers::Cluster(cluster) => DirectRedis::Cluster(Box::new(cluster.client())),
        }
    }

    /// Every key matching `pattern`, read from Redis directly: `SCAN` on one server, each
    /// master's `KEYS` on a cluster (a cluster client's `SCAN` asks one node).
    pub fn keys_matching(&self, pattern: &str) -> Vec<String> {
        match &self.redis {
            Servers::One(_) => {
                let mut redis = self.redis();
                let keys = redis::Commands::scan_match::<_, String>(&mut redis, pattern).unwrap();
                keys.collect::<Result<_, _>>().unwrap()
            }
            Servers::Cluster(cluster) => cluster
                .ports_with_role("master")
                .into_iter()
                .flat_map(|port| {
                    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
                    redis::cmd("KEYS").arg(pattern).query::<Vec<String>>(&mut client.get_connection().unwrap()).unwrap()
                })
                .collect(),
        }
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

    /// Another `edgesync-gateway` in front of this Redis (or the `--redis-url` in `args`),
    /// with `args` (tokens, policy, TLS; `--acl-users provision` unless `args` say otherwise)
    /// and `env`; returns it and its base URL (`https://` when `--tls-cert` is given), once it
    /// says it listens. Its full token must be [`REDIS_TOKEN`]: the ACL user of a token is
    /// shared by the gateways of a Redis.
    pub fn start_gateway(&self, args: &[&str], env: &[(&str, &str)]) -> Result<(Service, String), String> {
        let port = free_port();
        let mut command = Command::new(gateway_binary());
        command.args(["--listen", &format!("127.0.0.1:{port}")]);
        if !args.contains(&"--redis-url") {
            command.args(["--redis-url", &self.redis_url]);
        }
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
