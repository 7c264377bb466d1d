//! [`ClusterBackend`]: a Redis Cluster of real `redis-server`s (3 masters, a replica each)
//! and the Upstash-REST gateway in front of it, given one node's URL — what a self-hosted
//! deployment that outgrew one Redis runs — with the calls tests make on them.

use std::process::Command;
use std::time::Duration;

use super::{agent, answer, gateway_binary, wait_ready, Binaries, HttpAnswer, REDIS_TOKEN};
use crate::cluster::RedisCluster;
use crate::process::{free_port, wait_until, Service};

/// A cluster and the gateway in front of it. Fields drop in order: the gateway first.
pub struct ClusterBackend {
    gateway: Service,
    pub cluster: RedisCluster,
    pub gateway_url: String,
    http: ureq::Agent,
    dir: tempfile::TempDir,
}

impl ClusterBackend {
    /// Starts a 3-master cluster with a replica per master, and the gateway given the URL of
    /// its first node, making its token's ACL user on every node.
    pub fn start(binaries: &Binaries) -> Result<ClusterBackend, String> {
        let cluster = RedisCluster::start(3, 1)?;
        let dir = tempfile::Builder::new().prefix("edgesync-e2e-cluster-").tempdir().map_err(|e| e.to_string())?;
        let http = agent();
        let port = free_port();
        let mut command = Command::new(binaries.gateway);
        command.args(["--listen", &format!("127.0.0.1:{port}"), "--redis-url", &cluster.urls()[0]]);
        command.args(["--acl-users", "provision"]);
        command.env("GATEWAY_TOKEN", REDIS_TOKEN);
        let mut gateway = Service::spawn("edgesync-gateway (cluster)", command, &dir.path().join("gateway.log"))?;
        let gateway_url = format!("http://127.0.0.1:{port}");
        wait_ready(&http, &mut gateway, &format!("{gateway_url}/?_token={REDIS_TOKEN}"), Duration::from_secs(30))?;
        Ok(ClusterBackend { gateway, cluster, gateway_url, http, dir })
    }

    /// Another gateway in front of this cluster with `args` and `env` (`--acl-users
    /// provision` unless `args` say otherwise); returns it and its base URL once it listens.
    pub fn start_gateway(&self, args: &[&str], env: &[(&str, &str)]) -> Result<(Service, String), String> {
        let port = free_port();
        let mut command = Command::new(gateway_binary());
        command.args(["--listen", &format!("127.0.0.1:{port}"), "--redis-url", &self.cluster.urls()[0]]);
        if !args.contains(&"--acl-users") {
            command.args(["--acl-users", "provision"]);
        }
        command.args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        let log = self.dir.path().join(format!("gateway-{port}.log"));
        let mut service = Service::spawn("edgesync-gateway (cluster)", command, &log)?;
        wait_until("the extra gateway to listen", Duration::from_secs(30), || {
            if !service.is_running() {
                return Some(Err(std::fs::read_to_string(&log).unwrap_or_default()));
            }
            std::fs::read_to_string(&log).ok().filter(|text| text.contains("listening on")).map(|_| Ok(()))
        })?
        .map_err(|log| format!("the gateway exited: {log}"))?;
        Ok((service, format!("http://127.0.0.1:{port}")))
    }

    /// Any request to the gateway.
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

    /// The gateway's log so far.
    pub fn gateway_log(&self) -> String {
        std::fs::read_to_string(self.gateway.log_path()).unwrap_or_default()
    }
}
