//! Connections: a URL becomes an `edgesync_core::store::Store`.
//!
//! - `redis://` and `rediss://` (TLS): RESP through the `redis` crate, pipelined.
//! - `https://` (and `http://`): the Upstash REST protocol through core's client, with the
//!   token from `--token` / `UPSTASH_REDIS_REST_TOKEN`.
//!
//! TLS (`rediss://`, `https://`) trusts Mozilla's roots, bundled (webpki), or — with
//! [`Trust::from_pem_file`], the CLI's `--tls-ca` — only the CA certificates of a PEM file, for
//! a self-hosted Redis with a private CA.
//!
//! Credentials in URLs and tokens are never printed: [`redacted`] is what messages show.

use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use edgesync_core::secret::Secret;
use edgesync_core::store::upstash::{UpstashClient, UpstashConfig};
use edgesync_core::store::{Command, CommandError, Replies, Reply, Store, StoreError};

use crate::cluster::topology::TopologyError;
use crate::cluster::ClusterStore;
use crate::http::NativeHttp;

/// A URL with any password replaced, for messages.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}***@{}", &url[..scheme_end + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to {url}: {reason}{hint}", hint = tls_hint(reason))]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Usage(String),
}

/// What to do about a TLS failure whose cause is not obvious from rustls's words.
fn tls_hint(reason: &str) -> &'static str {
    if reason.contains("CaUsedAsEndEntity") {
        "; the server presents a CA certificate as its own (a self-signed certificate marked as a CA): \
         give --tls-ca the CA that signed the server's certificate, and have the server present a leaf \
         certificate signed by it"
    } else if reason.contains("UnknownIssuer") {
        "; the server's certificate is not signed by a CA this migrator trusts: give --tls-ca (or \
         --target-tls-ca) the PEM of the CA that signed it"
    } else {
        ""
    }
}

/// Which certificate authorities TLS connections trust.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// PEM of the CA certificates to trust instead of the bundled roots.
    ca_pem: Option<Vec<u8>>,
}

impl Trust {
    /// Trusts only the CA certificates in the PEM file at `path`.
    pub fn from_pem_file(path: &Path) -> Result<Self, ConnectError> {
        let pem = std::fs::read(path)
            .map_err(|e| ConnectError::Usage(format!("--tls-ca {}: cannot read it: {e}", path.display())))?;
        if ca_certificates(&pem).is_empty() {
            return Err(ConnectError::Usage(format!("--tls-ca {}: no PEM certificate in it", path.display())));
        }
        Ok(Self { ca_pem: Some(pem) })
    }
}

fn ca_certificates(pem: &[u8]) -> Vec<ureq::tls::Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => Some(certificate),
            _ => None,
        })
        .collect()
}

/// How to open a connection: what a step that works on several connections at once (apply's
/// reader and mover threads) opens each of them from.
#[derive(Clone)]
pub struct Connector {
    url: String,
    token: Option<String>,
    trust: Trust,
}

impl Connector {
    pub fn new(url: &str, token: Option<&str>, trust: &Trust) -> Self {
        Self { url: url.to_owned(), token: token.map(str::to_owned), trust: trust.clone() }
    }

    pub fn open(&self) -> Result<Box<dyn Store>, ConnectError> {
        open_with(&self.url, self.token.as_deref(), &self.trust)
    }

    /// Opens the URL, telling a cluster from a single Redis.
    pub fn open_connection(&self) -> Result<Connection, ConnectError> {
        open_connection(&self.url, self.token.as_deref(), &self.trust)
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.token.as_ref().map(|_| "***");
        f.debug_struct("Connector").field("url", &redacted(&self.url)).field("token", &token).finish()
    }
}

/// Opens `url` as a store, trusting the bundled roots for TLS.
pub fn open(url: &str, token: Option<&str>) -> Result<Box<dyn Store>, ConnectError> {
    open_with(url, token, &Trust::default())
}

/// Opens `url` as a store.
pub fn open_with(url: &str, token: Option<&str>, trust: &Trust) -> Result<Box<dyn Store>, ConnectError> {
    Ok(match open_connection(url, token, trust)? {
        Connection::Single(store) => store,
        Connection::Cluster(cluster) => cluster,
    })
}

/// What a URL leads to: one Redis (or an Upstash REST endpoint), or a Redis Cluster found from
/// any of its nodes.
pub enum Connection {
    Single(Box<dyn Store>),
    Cluster(Box<ClusterStore>),
}

impl Connection {
    pub fn store(&self) -> &dyn Store {
        match self {
            Connection::Single(store) => store.as_ref(),
            Connection::Cluster(cluster) => cluster.as_ref(),
        }
    }

    pub fn cluster(&self) -> Option<&ClusterStore> {
        match self {
            Connection::Single(_) => None,
            Connection::Cluster(cluster) => Some(cluster),
        }
    }
}

/// Opens `url`: a `redis://` or `rediss://` node that says it is part of a cluster (`INFO
/// cluster`) opens the whole cluster, with the URL's credentials and TLS settings for every node.
pub fn open_connection(url: &str, token: Option<&str>, trust: &Trust) -> Result<Connection, ConnectError> {
    let plain = url.starts_with("redis://") || url.starts_with("http://");
    if plain && trust.ca_pem.is_some() {
        return Err(ConnectError::Usage(format!(
            "--tls-ca is for rediss:// and https:// URLs; `{}` does not use TLS",
            redacted(url)
        )));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        // Asked first on database 0: a cluster node refuses `SELECT`, and must be recognised
        // before a URL naming another database is refused for it.
        let opener = NodeOpener::new(url, trust)?;
        let first = opener.open(opener.address())?;
        let unreachable = |e: StoreError| ConnectError::Unreachable { url: redacted(url), reason: e.to_string() };
        if !is_cluster_node(&first).map_err(unreachable)? {
            let first = if opener.database == 0 { first } else { open_resp(url, trust)? };
            return Ok(Connection::Single(Box::new(first)));
        }
        if opener.database != 0 {
            return Err(ConnectError::Usage(format!(
                "`{}` is a Redis Cluster node: a cluster has only database 0, and this URL names database {}",
                redacted(url),
                opener.database
            )));
        }
        let address = opener.address().to_owned();
        let cluster = ClusterStore::discover(opener, address, first).map_err(|error| match error {
            // A cluster that does not serve every slot cannot be migrated as a whole: say so.
            incomplete @ TopologyError::Incomplete { .. } => ConnectError::Usage(incomplete.to_string()),
            other => ConnectError::Unreachable { url: redacted(url), reason: other.to_string() },
        })?;
        return Ok(Connection::Cluster(Box::new(cluster)));
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        let token = token.ok_or_else(|| {
            ConnectError::Usage(
                "an https:// or http:// (Upstash REST) URL needs --token or UPSTASH_REDIS_REST_TOKEN".into(),
            )
        })?;
        let config = UpstashConfig { url: url.to_owned(), token: Secret::new(token), timeout: Duration::from_secs(30) };
        let http = match &trust.ca_pem {
            Some(pem) => NativeHttp::trusting(ca_certificates(pem)),
            None => NativeHttp::default(),
        };
        return Ok(Connection::Single(Box::new(UpstashClient::new(http, config))));
    }
    Err(ConnectError::Usage(format!("`{}` is not a redis://, rediss:// or https:// URL", redacted(url))))
}

fn open_resp(url: &str, trust: &Trust) -> Result<RespStore, ConnectError> {
    let unreachable = |e: redis::RedisError| ConnectError::Unreachable { url: redacted(url), reason: e.to_string() };
    let client = match &trust.ca_pem {
        Some(pem) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) },
        ),
        None => redis::Client::open(url),
    }
    .map_err(unreachable)?;
    let connection = client.get_connection_with_timeout(Duration::from_secs(10)).map_err(unreachable)?;
    // A node that stops answering (paused, partitioned) fails the call instead of hanging it:
    // the cluster store then reads the topology again, and a step fails with exit 3, resumable.
    connection.set_read_timeout(Some(IO_TIMEOUT)).map_err(unreachable)?;
    connection.set_write_timeout(Some(IO_TIMEOUT)).map_err(unreachable)?;
    Ok(RespStore { connection: RefCell::new(connection), buffer: RefCell::default() })
}

/// Whether a node runs in cluster mode (`cluster_enabled:1` in `INFO cluster`).
fn is_cluster_node(node: &RespStore) -> Result<bool, StoreError> {
    let mut replies = node.run(&[Command::new("INFO").arg("cluster")])?;
    match replies.pop() {
        Some(Ok(reply)) => Ok(reply.into_string().unwrap_or_default().lines().any(|l| l.trim() == "cluster_enabled:1")),
        // A server that refuses INFO (a managed service's restricted user) is not taken for a
        // single node silently: the error names what failed.
        Some(Err(error)) => Err(StoreError::Command { command: "INFO cluster".into(), error }),
        None => Err(StoreError::Unavailable("INFO cluster: no reply".into())),
    }
}

/// Opens the other nodes of a cluster with the URL it was found from: the same scheme, user,
/// password and TLS trust, another host and port.
#[derive(Clone)]
pub struct NodeOpener {
    /// The URL without its database.
    url: url::Url,
    address: String,
    trust: Trust,
    database: u32,
}

impl NodeOpener {
    pub fn new(url: &str, trust: &Trust) -> Result<Self, ConnectError> {
        let usage = |why: &str| ConnectError::Usage(format!("`{}`: {why}", redacted(url)));
        let parsed = url::Url::parse(url).map_err(|e| usage(&e.to_string()))?;
        let database = match parsed.path().trim_start_matches('/') {
            "" => 0,
            text => text.parse().map_err(|_| usage(&format!("`{text}` is not a database number")))?,
        };
        let host = parsed.host_str().ok_or_else(|| usage("no host"))?;
        let address = format!("{host}:{}", parsed.port().unwrap_or(6379));
        let mut url = parsed;
        url.set_path("");
        Ok(Self { url, address, trust: trust.clone(), database })
    }

    /// The `host:port` of the URL itself.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// A connection to the node at `host:port`.
    pub fn open(&self, address: &str) -> Result<RespStore, ConnectError> {
        let usage = || ConnectError::Usage(format!("the cluster announced a node `{address}` that is not host:port"));
        let (host, port) = address.rsplit_once(':').ok_or_else(usage)?;
        let port: u16 = port.parse().map_err(|_| usage())?;
        let mut url = self.url.clone();
        url.set_host(Some(host)).map_err(|_| usage())?;
        url.set_port(Some(port)).map_err(|()| usage())?;
        open_resp(url.as_str(), &self.trust)
    }
}

/// How long a read or a write on a RESP connection may block.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// RESP over one connection. `RefCell`: the CLI drives one future at a time.
pub struct RespStore {
    connection: RefCell<redis::Connection>,
    /// The last pipeline's bytes, kept so the next is encoded without allocating anew (a move
    /// batch is ~1 MB).
    buffer: RefCell<Vec<u8>>,
}

/// A pipeline larger than this is not kept for the next one.
const KEPT_BUFFER_BYTES: usize = 8 << 20;

/// Encodes `commands` as RESP arrays of bulk strings, straight from their arguments (the
/// `redis` crate would copy each into its own command first).
fn encode(commands: &[Command], out: &mut Vec<u8>) {
    // Every argument has a length header: formatted on the stack (itoa), not into a String.
    fn header(out: &mut Vec<u8>, kind: u8, n: usize) {
        out.push(kind);
        out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
        header(out, b'$', bytes.len());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.clear();
    for command in commands {
        header(out, b'*', 1 + command.args().len());
        bulk(out, command.name().as_bytes());
        command.args().iter().for_each(|arg| bulk(out, arg));
    }
}

fn to_cmd(command: &Command) -> redis::Cmd {
    let mut cmd = redis::cmd(command.name());
    for arg in command.args() {
        cmd.arg(arg.as_slice());
    }
    cmd
}

fn to_reply(value: redis::Value) -> Reply {
    use redis::Value as V;
    match value {
        V::Nil => Reply::Nil,
        V::Int(n) => Reply::Int(n),
        V::BulkString(bytes) => Reply::Bulk(bytes),
        V::SimpleString(s) => Reply::Bulk(s.into_bytes()),
        V::Okay => Reply::bulk("OK"),
        V::Array(items) | V::Set(items) => Reply::Array(items.into_iter().map(to_reply).collect()),
        V::Map(pairs) => Reply::Array(pairs.into_iter().flat_map(|(k, v)| [to_reply(k), to_reply(v)]).collect()),
        V::Double(d) => Reply::Bulk(d.to_string().into_bytes()),
        V::Boolean(b) => Reply::Int(i64::from(b)),
        V::VerbatimString { text, .. } => Reply::Bulk(text.into_bytes()),
        other => Reply::Bulk(format!("{other:?}").into_bytes()),
    }
}

fn error_text(error: &redis::RedisError) -> Option<String> {
    let code = error.code()?;
    Some(match error.detail() {
        Some(detail) => format!("{code} {detail}"),
        None => code.to_owned(),
    })
}

/// One command's error reply, as Redis wrote it (`NOSCRIPT No matching script…`).
fn command_error(error: redis::RedisError) -> CommandError {
    CommandError(error_text(&error).unwrap_or_else(|| error.to_string()))
}

fn store_error(error: redis::RedisError) -> StoreError {
    match error_text(&error) {
        Some(text) => StoreError::Rejected { status: 400, message: text },
        None => StoreError::Unavailable(error.to_string()),
    }
}

impl RespStore {
    pub(crate) fn run(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let mut buffer = self.buffer.borrow_mut();
        encode(commands, &mut buffer);
        let values =
            redis::ConnectionLike::req_packed_commands(&mut *self.connection.borrow_mut(), &buffer, 0, commands.len());
        if buffer.capacity() > KEPT_BUFFER_BYTES {
            *buffer = Vec::new();
        }
        Ok(values
            .map_err(store_error)?
            .into_iter()
            .map(|value| match value {
                redis::Value::ServerError(error) => Err(command_error(error.into())),
                value => Ok(to_reply(value)),
            })
            .collect())
    }

    /// Sends `commands` without reading their replies: a cluster sends every master its part
    /// of a pipeline before it reads any, so the masters work at the same time.
    pub(crate) fn send(&self, commands: &[Command]) -> Result<(), StoreError> {
        let mut buffer = self.buffer.borrow_mut();
        encode(commands, &mut buffer);
        let sent = self.connection.borrow_mut().send_packed_command(&buffer);
        if buffer.capacity() > KEPT_BUFFER_BYTES {
            *buffer = Vec::new();
        }
        sent.map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Reads the replies of `count` commands [`RespStore::send`] sent.
    pub(crate) fn receive(&self, count: usize) -> Result<Replies, StoreError> {
        let mut connection = self.connection.borrow_mut();
        (0..count)
            .map(|_| match connection.recv_response() {
                Ok(redis::Value::ServerError(error)) => Ok(Err(command_error(error.into()))),
                Ok(value) => Ok(Ok(to_reply(value))),
                Err(error) if error.code().is_some() => Ok(Err(command_error(error))),
                Err(error) => Err(StoreError::Unavailable(error.to_string())),
            })
            .collect()
    }

    pub(crate) fn run_atomic(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.atomic().ignore_errors();
        for command in commands {
            pipe.add_command(to_cmd(command));
        }
        let results: Vec<redis::RedisResult<redis::Value>> =
            pipe.query(&mut *self.connection.borrow_mut()).map_err(store_error)?;
        Ok(results.into_iter().map(|result| result.map(to_reply).map_err(command_error)).collect())
    }
}

#[async_trait(?Send)]
impl Store for RespStore {
    async fn pipeline(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.run(commands)
    }

    async fn transaction(&self, commands: &[Command]) -> Result<Replies, StoreError> {
        self.run_atomic(commands)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_say_what_to_do() {
        let error = ConnectError::Unreachable {
            url: "rediss://h:6380".into(),
            reason: "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))".into(),
        };
        assert!(error.to_string().contains("give --tls-ca the CA that signed"), "{error}");
        let plain = ConnectError::Unreachable { url: "redis://h".into(), reason: "Connection refused".into() };
        assert_eq!(plain.to_string(), "cannot connect to redis://h: Connection refused");
    }

    #[test]
    fn pipelines_are_encoded_as_arrays_of_bulk_strings() {
        let mut out = b"left over".to_vec();
        encode(&[Command::new("SET").arg("k").arg("v\r\n"), Command::new("PING")], &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n*1\r\n$4\r\nPING\r\n");
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(redacted("redis://user:pw@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redacted("https://eu1.upstash.io"), "https://eu1.upstash.io");
    }

    #[test]
    fn a_ca_file_without_certificates_or_for_a_plain_url_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate").unwrap();
        let error = Trust::from_pem_file(&file).unwrap_err();
        assert!(matches!(&error, ConnectError::Usage(m) if m.contains("no PEM certificate")), "{error}");
        let missing = Trust::from_pem_file(&dir.path().join("absent.pem")).unwrap_err();
        assert!(matches!(&missing, ConnectError::Usage(m) if m.contains("cannot read")), "{missing}");

        let trust = Trust { ca_pem: Some(b"-----BEGIN CERTIFICATE-----".to_vec()) };
        let error = open_with("redis://:secret@127.0.0.1:1/0", None, &trust).err().unwrap();
        assert!(matches!(&error, ConnectError::Usage(m) if m.contains("does not use TLS")), "{error}");
        assert!(!error.to_string().contains("secret"));
    }
}
