//! Connections from the gateway to Redis. A [`Target`] is where and as whom (the URL's
//! address, and the ACL user a token's requests run as); a [`Link`] is one multiplexed
//! connection to it that connects on first use and again after it broke, so the gateway
//! starts before Redis and recovers when Redis returns. Every connection reads its replies
//! through [`ReplyLimit`], so no reply past `--max-response-bytes` is held whole.
//!
//! The streams are opened here (TCP, TLS for `rediss://` with the web PKI roots and any
//! `--redis-tls-ca`, or a Unix socket) rather than by the driver, because the driver offers no way to read a reply
//! piecewise; it still speaks the protocol and authenticates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::reply_limit::ReplyLimit;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A Redis server, the credentials to use on it, and the certificate authorities its TLS
/// certificate is checked against (`rediss://`).
#[derive(Clone)]
pub struct Target {
    addr: ConnectionAddr,
    settings: RedisConnectionInfo,
    roots: Arc<rustls::RootCertStore>,
}

/// Why a Redis URL cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("bad Redis URL: {0}")]
    Url(#[from] RedisError),
    #[error("rediss:// with #insecure is not supported by the gateway: give Redis a certificate the web PKI trusts, or pass its CA with --redis-tls-ca")]
    InsecureTls,
    #[error("client certificates for rediss:// are not supported by the gateway")]
    TlsParameters,
    #[error("the cluster names a node at {0:?}, which is not host:port")]
    NodeAddress(String),
    #[error("a Unix socket cannot be a node of a Redis Cluster")]
    UnixSocketCluster,
    #[error("cannot read the certificate authorities in {path} (--redis-tls-ca): {reason}")]
    Authorities { path: String, reason: String },
}

/// The web PKI's roots, and the PEM certificates in `extra` (a private CA) when given.
fn roots(extra: Option<&std::path::Path>) -> Result<rustls::RootCertStore, TargetError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let Some(path) = extra else { return Ok(roots) };
    let failed = |reason: String| TargetError::Authorities { path: path.display().to_string(), reason };
    let certificates = rustls::pki_types::CertificateDer::pem_file_iter(path).map_err(|e| failed(e.to_string()))?;
    let mut added = 0;
    for certificate in certificates {
        roots.add(certificate.map_err(|e| failed(e.to_string()))?).map_err(|e| failed(e.to_string()))?;
        added += 1;
    }
    if added == 0 {
        return Err(failed("no certificate in it".into()));
    }
    Ok(roots)
}

impl Target {
    /// The server `url` names; `rediss://` is checked against the web PKI's roots and the
    /// PEM certificates in `extra_authorities` (a private CA).
    pub fn from_url(url: &str, extra_authorities: Option<&std::path::Path>) -> Result<Self, TargetError> {
        let info = url.into_connection_info()?;
        if let ConnectionAddr::TcpTls { insecure, tls_params, .. } = info.addr() {
            if *insecure {
                return Err(TargetError::InsecureTls);
            }
            if tls_params.is_some() {
                return Err(TargetError::TlsParameters);
            }
        }
        // `CLIENT SETINFO` is skipped: a read-only user may not run CLIENT, and it only labels.
        let settings = info.redis_settings().clone().set_skip_set_lib_name();
        Ok(Self { addr: info.addr().clone(), settings, roots: Arc::new(roots(extra_authorities)?) })
    }

    /// Another node of the same cluster (`host:port`, `[v6]:port`), with the same credentials
    /// and TLS.
    pub fn at(&self, address: &str) -> Result<Self, TargetError> {
        let bad = || TargetError::NodeAddress(address.to_owned());
        let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = match host.trim_start_matches('[').trim_end_matches(']') {
            // A node that does not know the address it is reached at announces none (`""`,
            // or `?` for an unknown endpoint): it is where this target is.
            "" | "?" => match &self.addr {
                ConnectionAddr::Tcp(own, _) | ConnectionAddr::TcpTls { host: own, .. } => own.clone(),
                _ => return Err(TargetError::UnixSocketCluster),
            },
            host => host.to_owned(),
        };
        let addr = match &self.addr {
            ConnectionAddr::Tcp(..) => ConnectionAddr::Tcp(host, port),
            ConnectionAddr::TcpTls { insecure, tls_params, .. } => {
                ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: tls_params.clone() }
            }
            _ => return Err(TargetError::UnixSocketCluster),
        };
        Ok(Self { addr, settings: self.settings.clone(), roots: Arc::clone(&self.roots) })
    }

    /// Where this target connects, `host:port` (as a cluster names its nodes).
    pub fn address(&self) -> String {
        match &self.addr {
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } if host.contains(':') => {
                format!("[{host}]:{port}")
            }
            ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
            other => format!("{other:?}"),
        }
    }

    /// The same server, as `user` with `password`.
    pub fn as_user(&self, user: &str, password: &str) -> Self {
        Self {
            addr: self.addr.clone(),
            settings: self.settings.clone().set_username(user).set_password(password),
            roots: Arc::clone(&self.roots),
        }
    }

    /// The ACL user this target authenticates as (`default` when the URL names none).
    pub fn user(&self) -> &str {
        self.settings.username().unwrap_or("default")
    }

    /// A connection of its own for pub/sub, each message at most `message_limit` bytes.
    pub async fn pubsub(&self, message_limit: usize) -> Result<redis::aio::PubSub, RedisError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, open(&self.addr, &self.roots))
            .await
            .map_err(|_| RedisError::from((redis::ErrorKind::Io, "connecting to Redis timed out")))??;
        let setup = redis::aio::PubSub::new(&self.settings, ReplyLimit::new(stream, message_limit));
        tokio::time::timeout(CONNECT_TIMEOUT, setup)
            .await
            .map_err(|_| RedisError::from((redis::ErrorKind::Io, "Redis did not answer the connection setup")))?
    }

    /// Whether this server is a node of a Redis Cluster (`INFO cluster`); `None` when it does
    /// not answer now.
    pub async fn is_cluster_node(&self) -> Option<bool> {
        let mut connection = self.connect(64 * 1024, Some(Duration::from_secs(2))).await.ok()?;
        let info: String = redis::cmd("INFO").arg("cluster").query_async(&mut connection).await.ok()?;
        Some(info.lines().any(|line| line.trim() == "cluster_enabled:1"))
    }

    /// A new connection whose replies are each at most `reply_limit` bytes.
    pub async fn connect(
        &self,
        reply_limit: usize,
        response_timeout: Option<Duration>,
    ) -> Result<MultiplexedConnection, RedisError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, open(&self.addr, &self.roots))
            .await
            .map_err(|_| RedisError::from((redis::ErrorKind::Io, "connecting to Redis timed out")))??;
        let config = AsyncConnectionConfig::new().set_response_timeout(response_timeout);
        let setup =
            MultiplexedConnection::new_with_config(&self.settings, ReplyLimit::new(stream, reply_limit), config);
        let (connection, driver) = tokio::time::timeout(CONNECT_TIMEOUT, setup)
            .await
            .map_err(|_| RedisError::from((redis::ErrorKind::Io, "Redis did not answer the connection setup")))??;
        tokio::spawn(driver);
        Ok(connection)
    }
}

trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

async fn open(addr: &ConnectionAddr, roots: &Arc<rustls::RootCertStore>) -> Result<Box<dyn Duplex>, RedisError> {
    Ok(match addr {
        // Nagle stays on, as the driver leaves it: under load it coalesces the multiplexed
        // connection's small writes (measured: ~10 % more requests/s than with TCP_NODELAY).
        ConnectionAddr::Tcp(host, port) => Box::new(tokio::net::TcpStream::connect((host.as_str(), *port)).await?),
        ConnectionAddr::TcpTls { host, port, .. } => {
            let socket = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
            let config =
                rustls::ClientConfig::builder().with_root_certificates(Arc::clone(roots)).with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                RedisError::from((redis::ErrorKind::InvalidClientConfig, "bad TLS host name", e.to_string()))
            })?;
            Box::new(tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, socket).await?)
        }
        ConnectionAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
        other => {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "unsupported address",
                format!("{other:?}"),
            )))
        }
    })
}

/// Makes a link's ACL user exist again on `node` after it lost it (a restart without
/// persistence); the ACL module implements it, so links need not know how users are made.
pub trait Provision: Send + Sync {
    fn provision_again<'a>(&'a self, node: &'a Target) -> futures_util::future::BoxFuture<'a, Result<(), String>>;
}

/// One multiplexed connection to a [`Target`], replaced after it broke.
pub struct Link {
    target: Target,
    /// Creates the target's ACL user again if Redis lost it.
    provisioner: Option<Arc<dyn Provision>>,
    reply_limit: usize,
    response_timeout: Option<Duration>,
    current: RwLock<Option<(u64, MultiplexedConnection)>>,
    connecting: tokio::sync::Mutex<()>,
    generations: AtomicU64,
}

/// A connection handed out by a [`Link`], with the generation to report it broken by.
#[derive(Clone)]
pub struct Leased {
    pub connection: MultiplexedConnection,
    generation: u64,
}

impl Link {
    /// Where and as whom this link connects.
    pub fn target(&self) -> &Target {
        &self.target
    }

    pub fn new(target: Target, reply_limit: usize, response_timeout: Option<Duration>) -> Self {
        Self {
            target,
            provisioner: None,
            reply_limit,
            response_timeout,
            current: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            generations: AtomicU64::new(0),
        }
    }

    /// A link whose user the gateway provisioned, and provisions again when Redis lost it.
    pub fn provisioned_by(mut self, provisioner: Option<Arc<dyn Provision>>) -> Self {
        self.provisioner = provisioner;
        self
    }

    async fn connect(&self, response_timeout: Option<Duration>) -> Result<MultiplexedConnection, RedisError> {
        match self.target.connect(self.reply_limit, response_timeout).await {
            Err(error) if is_unknown_user(&error) && self.provisioner.is_some() => {
                if let Some(provisioner) = &self.provisioner {
                    provisioner.provision_again(&self.target).await.map_err(|e| {
                        RedisError::from((
                            redis::ErrorKind::AuthenticationFailed,
                            "cannot provision the ACL user again",
                            e,
                        ))
                    })?;
                }
                self.target.connect(self.reply_limit, response_timeout).await
            }
            outcome => outcome,
        }
    }

    fn cached(&self) -> Option<Leased> {
        let current = self.current.read().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .map(|(generation, connection)| Leased { connection: connection.clone(), generation: *generation })
    }

    /// The current connection, connecting first when there is none.
    pub async fn lease(&self) -> Result<Leased, RedisError> {
        if let Some(leased) = self.cached() {
            return Ok(leased);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(leased) = self.cached() {
            return Ok(leased);
        }
        let connection = self.connect(self.response_timeout).await?;
        let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some((generation, connection.clone()));
        Ok(Leased { connection, generation })
    }

    /// Reports what happened on a leased connection: one that broke is replaced next time.
    pub fn returned(&self, leased: &Leased, error: Option<&RedisError>) {
        if error.is_some_and(|e| e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()) {
            let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
            if current.as_ref().is_some_and(|(generation, _)| *generation == leased.generation) {
                *current = None;
            }
        }
    }

    /// Leaves the current connection to the requests already on it; the next lease connects.
    pub fn abandon(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A connection of its own (for a blocking command), with no response timeout.
    pub async fn dedicated(&self) -> Result<MultiplexedConnection, RedisError> {
        self.connect(None).await
    }
}

/// `broken pipe`: the multiplexed connection's driver had ended (Redis closed it: a restart)
/// before the pipeline was written, or the write itself found it closed — nothing reached
/// Redis, so the pipeline may be sent again on a new connection. The driver keeps the I/O
/// error's kind to itself, so its text is what says it (pinned by a test).
pub fn is_broken_pipe(error: &RedisError) -> bool {
    error.is_io_error() && error.to_string().to_ascii_lowercase().contains("broken pipe")
}

/// Redis answers `WRONGPASS` for a user it does not know, as for a wrong password.
fn is_unknown_user(error: &RedisError) -> bool {
    error.code() == Some("WRONGPASS") || error.kind() == redis::ErrorKind::AuthenticationFailed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_is_told_from_a_reset_one() {
        let closed = RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&closed), "{closed}");
        assert!(!is_broken_pipe(&RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset))));
    }

    #[test]
    fn other_nodes_keep_the_credentials_and_tls() {
        let base = Target::from_url("rediss://user:secret@redis.example:7000", None).unwrap();
        let other = base.at("10.0.0.2:7001").unwrap();
        assert_eq!(other.address(), "10.0.0.2:7001");
        assert!(matches!(other.addr, ConnectionAddr::TcpTls { .. }), "TLS on every node");
        assert_eq!((other.user(), other.settings.password()), ("user", Some("secret")));
        assert_eq!(base.at("[::1]:7002").unwrap().address(), "[::1]:7002");
        assert_eq!(base.at(":7003").unwrap().address(), "redis.example:7003", "no address announced");
        assert!(matches!(base.at("nonsense"), Err(TargetError::NodeAddress(_))));
    }

    #[test]
    fn a_private_ca_file_that_holds_no_certificate_is_refused() {
        let empty = std::env::temp_dir().join(format!("edgesync-gateway-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let refused = Target::from_url("rediss://127.0.0.1:6380", Some(&empty));
        std::fs::remove_file(&empty).unwrap();
        assert!(matches!(refused, Err(TargetError::Authorities { .. })));
        let missing = Target::from_url("rediss://127.0.0.1:6380", Some(std::path::Path::new("/nonexistent.pem")));
        assert!(missing.is_err_and(|e| e.to_string().contains("--redis-tls-ca")));
    }
}
