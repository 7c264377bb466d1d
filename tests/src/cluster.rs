//! [`RedisCluster`]: a Redis Cluster of real `redis-server` processes on 127.0.0.1 — masters
//! and replicas, created with `redis-cli --cluster create` and polled until every node reports
//! `cluster_state:ok` and knows every other. Stopped (every process) when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use crate::harness::require_tool;
use crate::process::{wait_until, Service};

/// The highest port a node may use: its cluster bus listens on the port + 10000.
const HIGHEST_PORT: u16 = 55535;

pub struct RedisCluster {
    /// Each node's port and process (in a `Mutex` so an outage can stop and restart it).
    nodes: Vec<(u16, Mutex<Service>)>,
    masters: usize,
    /// The CA, certificate and key files when the nodes speak TLS only (clients and the
    /// cluster bus).
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
    tls_ca: Option<PathBuf>,
    dir: tempfile::TempDir,
}

/// Starts one node on `port`, its cluster config (`nodes-{port}.conf`) in `dir`: a node
/// started again on the same port finds its identity and slots there.
fn spawn_node(port: u16, dir: &Path, tls: Option<(&Path, &Path, &Path)>) -> Result<Service, String> {
    let mut command = Command::new("redis-server");
    command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
    match tls {
        None => {
            command.args(["--port", &port.to_string()]);
        }
        Some((ca, certificate, key)) => {
            command.args(["--port", "0", "--tls-port", &port.to_string(), "--tls-cluster", "yes"]);
            command.args(["--tls-replication", "yes", "--tls-auth-clients", "no"]);
            command.arg("--tls-cert-file").arg(certificate).arg("--tls-key-file").arg(key);
            command.arg("--tls-ca-cert-file").arg(ca);
        }
    }
    command.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"]);
    command.args(["--cluster-config-file", &format!("nodes-{port}.conf")]);
    command.arg("--dir").arg(dir);
    Service::spawn("redis-server (cluster)", command, &dir.join(format!("node-{port}.log")))
}

/// Waits until the node on `port` answers, or says why it cannot.
fn wait_node(port: u16, service: &mut Service, tls_ca: Option<&Path>) -> Result<(), String> {
    wait_until("a cluster node to answer", Duration::from_secs(20), || {
        (info(port, "server", tls_ca).is_some() || !service.is_running()).then_some(())
    })?;
    if !service.is_running() {
        return Err(format!("redis-server on {port} exited:\n{}", service.log_tail(20)));
    }
    Ok(())
}

/// A port that is free now, with its cluster-bus port (+ 10000) free too.
fn free_node_port() -> u16 {
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("can bind on 127.0.0.1");
        let port = listener.local_addr().expect("bound").port();
        let port = 20_000 + port % (HIGHEST_PORT - 20_000);
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

/// `INFO section` (`CLUSTER INFO` for `cluster`) of one node, through `redis-cli` so a TLS
/// node is asked the same way as a plain one.
fn info(port: u16, section: &str, tls_ca: Option<&Path>) -> Option<String> {
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    if let Some(ca) = tls_ca {
        command.arg("--tls").arg("--cacert").arg(ca);
    }
    if section == "cluster" {
        command.args(["CLUSTER", "INFO"]);
    } else {
        command.args(["INFO", section]);
    }
    let output = command.output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    (output.status.success() && !text.is_empty() && !text.starts_with("Could not connect")).then_some(text)
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each.
    pub fn start(masters: usize, replicas: usize) -> Result<Self, String> {
        Self::start_with(masters, replicas, None)
    }

    /// A cluster whose nodes speak TLS only — to clients and to each other — with the
    /// certificate and key given, signed by the CA given.
    pub fn start_tls(
        masters: usize,
        replicas: usize,
        ca: &Path,
        certificate: &Path,
        key: &Path,
    ) -> Result<Self, String> {
        Self::start_with(masters, replicas, Some((ca, certificate, key)))
    }

    fn start_with(masters: usize, replicas: usize, tls: Option<(&Path, &Path, &Path)>) -> Result<Self, String> {
        require_tool("redis-server", "install it with `apt-get install redis-server` (`make test` does this)")?;
        require_tool("redis-cli", "it comes with redis-server (`apt-get install redis-server`)")?;
        let dir = tempfile::Builder::new().prefix("edgesync-cluster-").tempdir().map_err(|e| e.to_string())?;
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            let port = free_node_port();
            nodes.push((port, Mutex::new(spawn_node(port, dir.path(), tls)?)));
        }
        for (port, service) in &nodes {
            wait_node(*port, &mut service.lock().unwrap_or_else(|p| p.into_inner()), tls.map(|t| t.0))?;
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(nodes.iter().map(|(port, _)| format!("127.0.0.1:{port}")));
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        if let Some((ca, _, _)) = tls {
            create.arg("--tls").arg("--cacert").arg(ca);
        }
        let created = create.output().map_err(|e| format!("redis-cli --cluster create: {e}"))?;
        if !created.status.success() {
            return Err(format!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&created.stdout)));
        }
        let cluster = Self {
            nodes,
            masters,
            tls: tls.map(|(ca, certificate, key)| (ca.to_owned(), certificate.to_owned(), key.to_owned())),
            tls_ca: tls.map(|t| t.0.to_owned()),
            dir,
        };
        cluster.wait_ok()?;
        Ok(cluster)
    }

    /// Stops every node at once, as a crash of the whole cluster would (their cluster configs
    /// stay). At once: nodes stopped one after the other see the first ones fail, and a
    /// replica promoted meanwhile would come back as the master of their slots — empty, while
    /// its old master's writes are lost to the resync.
    pub fn stop(&self) {
        for (_, service) in &self.nodes {
            let service = service.lock().unwrap_or_else(|p| p.into_inner());
            // SAFETY: a signal to a redis-server this struct started.
            unsafe { libc::kill(service.pid() as i32, libc::SIGKILL) };
        }
        for (_, service) in &self.nodes {
            service.lock().unwrap_or_else(|p| p.into_inner()).stop();
        }
    }

    /// Stops every node (if running) and starts them all again on their ports, empty (no
    /// persistence) but with their identities and slots, and waits until the cluster is ok.
    /// All stop first: a master restarted alone could be failed over meanwhile.
    pub fn restart(&self) -> Result<(), String> {
        self.stop();
        let tls = self.tls.as_ref().map(|(ca, certificate, key)| (ca.as_path(), certificate.as_path(), key.as_path()));
        for (port, service) in &self.nodes {
            *service.lock().unwrap_or_else(|p| p.into_inner()) = spawn_node(*port, self.dir.path(), tls)?;
        }
        for (port, service) in &self.nodes {
            wait_node(*port, &mut service.lock().unwrap_or_else(|p| p.into_inner()), self.tls_ca.as_deref())?;
        }
        self.wait_ok()
    }

    /// Waits until every node says the cluster is ok and knows every node.
    pub fn wait_ok(&self) -> Result<(), String> {
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        for (port, _) in &self.nodes {
            wait_until("cluster_state:ok on every node", Duration::from_secs(30), || {
                info(*port, "cluster", self.tls_ca.as_deref())
                    .filter(|i| i.contains("cluster_state:ok") && i.contains(&known))
                    .map(drop)
            })?;
        }
        Ok(())
    }

    /// Waits until every replica's link to its master is up: before that (a master's first
    /// sync of a replica waits `repl-diskless-sync-delay`, 5 s) a replica holds none of its
    /// master's writes, and a failover to it would lose them.
    pub fn wait_replicas_synced(&self) -> Result<(), String> {
        for port in self.ports_with_role("slave") {
            wait_until("every replica's link to its master up", Duration::from_secs(30), || {
                info(port, "replication", self.tls_ca.as_deref())
                    .filter(|i| i.lines().any(|l| l.trim() == "master_link_status:up"))
                    .map(drop)
            })?;
        }
        Ok(())
    }

    /// `redis://127.0.0.1:{port}` (`rediss://` for a TLS cluster) of every node, masters and
    /// replicas.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls_ca.is_some() { "rediss" } else { "redis" };
        self.nodes.iter().map(|(port, _)| format!("{scheme}://127.0.0.1:{port}")).collect()
    }

    /// The nodes' ports whose role (`INFO replication`) is `role` (`master` or `slave`).
    pub fn ports_with_role(&self, role: &str) -> Vec<u16> {
        let wanted = format!("role:{role}");
        self.nodes
            .iter()
            .map(|(port, _)| *port)
            .filter(|port| {
                info(*port, "replication", self.tls_ca.as_deref())
                    .is_some_and(|i| i.lines().any(|l| l.trim() == wanted))
            })
            .collect()
    }

    pub fn masters(&self) -> usize {
        self.masters
    }

    /// A client that follows the cluster (slots, redirects), as a bot on a cluster would use.
    pub fn client(&self) -> redis::cluster::ClusterConnection {
        redis::cluster::ClusterClient::new(self.urls())
            .expect("cluster URLs")
            .get_connection()
            .expect("cluster connection")
    }

    /// Empties every master (replicas follow).
    pub fn flush(&self) {
        for port in self.ports_with_role("master") {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
            let _: () = redis::cmd("FLUSHALL").query(&mut client.get_connection().unwrap()).unwrap();
        }
    }

    /// How many keys each master holds (`INFO keyspace`, so a TLS cluster is asked too).
    pub fn keys_per_master(&self) -> Vec<u64> {
        self.ports_with_role("master")
            .into_iter()
            .map(|port| {
                let keyspace = info(port, "keyspace", self.tls_ca.as_deref()).unwrap_or_default();
                keyspace
                    .lines()
                    .find_map(|line| line.trim().strip_prefix("db0:keys="))
                    .and_then(|rest| rest.split(',').next())
                    .and_then(|keys| keys.parse().ok())
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// A direct connection to the plain-text node on `port`.
pub fn node(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap().get_connection().unwrap()
}

/// A slot moving from the master holding it to another, as `redis-cli --cluster reshard`
/// moves it: the target importing, the source migrating, the keys migrated in batches, then
/// every master told the new owner.
pub struct SlotMove {
    pub slot: u16,
    pub from: u16,
    pub to: u16,
    from_id: String,
    to_id: String,
    masters: Vec<u16>,
}

impl SlotMove {
    /// Marks `slot` (held by one of `cluster`'s masters) importing on another master and
    /// migrating on its own; no key has moved yet.
    pub fn begin(cluster: &RedisCluster, slot: u16) -> SlotMove {
        let masters = cluster.ports_with_role("master");
        let holds = |port: u16| -> bool {
            let count: u64 = redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot).query(&mut node(port)).unwrap();
            count > 0
        };
        let from = *masters.iter().find(|port| holds(**port)).expect("a master holds the slot");
        let to = *masters.iter().find(|port| **port != from).unwrap();
        let id = |port: u16| -> String { redis::cmd("CLUSTER").arg("MYID").query(&mut node(port)).unwrap() };
        let moving = SlotMove { slot, from, to, from_id: id(from), to_id: id(to), masters };
        moving.set_slot(to, "IMPORTING", &moving.from_id);
        moving.set_slot(from, "MIGRATING", &moving.to_id);
        moving
    }

    fn set_slot(&self, port: u16, state: &str, id: &str) {
        let _: () =
            redis::cmd("CLUSTER").arg("SETSLOT").arg(self.slot).arg(state).arg(id).query(&mut node(port)).unwrap();
    }

    /// Migrates `keys` (of the slot) to the target.
    pub fn migrate(&self, keys: &[String]) {
        let mut migrate = redis::cmd("MIGRATE");
        migrate.arg("127.0.0.1").arg(self.to).arg("").arg(0).arg(5000).arg("KEYS").arg(keys);
        let _: () = migrate.query(&mut node(self.from)).unwrap();
    }

    /// Migrates the slot's remaining keys, tells every master the new owner, and waits until
    /// each answers so in `CLUSTER SLOTS`.
    pub fn finish(&self) {
        loop {
            let batch: Vec<String> =
                redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(self.slot).arg(100).query(&mut node(self.from)).unwrap();
            if batch.is_empty() {
                break;
            }
            self.migrate(&batch);
        }
        for port in &self.masters {
            self.set_slot(*port, "NODE", &self.to_id);
        }
        wait_until("every master to agree on the slot's owner", Duration::from_secs(20), || {
            self.masters
                .iter()
                .all(|port| {
                    let ranges: Vec<Vec<redis::Value>> =
                        redis::cmd("CLUSTER").arg("SLOTS").query(&mut node(*port)).unwrap_or_default();
                    ranges.iter().any(|range| match range.as_slice() {
                        [redis::Value::Int(start), redis::Value::Int(end), redis::Value::Array(master), ..] => {
                            (*start..=*end).contains(&i64::from(self.slot))
                                && matches!(master.get(1), Some(redis::Value::Int(p)) if *p == i64::from(self.to))
                        }
                        _ => false,
                    })
                })
                .then_some(())
        })
        .unwrap();
    }
}
