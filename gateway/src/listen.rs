//! Where the gateway listens, and over what. Loopback is the default; any other address is
//! accepted only with TLS (a certificate and key, served with rustls) or with an explicit
//! `--insecure-listen`, for a gateway behind a proxy that terminates TLS — so exposing Redis
//! in plain text is never an accident.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls { cert: PathBuf, key: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub addr: SocketAddr,
    pub transport: Transport,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    #[error(
        "refusing to listen on {0} in plain text: pass --tls-cert and --tls-key, or --insecure-listen behind a proxy that terminates TLS"
    )]
    PlainBeyondLoopback(SocketAddr),
    #[error("--tls-cert and --tls-key go together")]
    HalfTls,
}

/// Checks the listening choice before anything binds.
pub fn decide(
    addr: SocketAddr,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    insecure: bool,
) -> Result<Listen, ListenError> {
    let transport = match (cert, key) {
        (Some(cert), Some(key)) => Transport::Tls { cert, key },
        (None, None) => Transport::Plain,
        _ => return Err(ListenError::HalfTls),
    };
    if transport == Transport::Plain && !addr.ip().is_loopback() && !insecure {
        return Err(ListenError::PlainBeyondLoopback(addr));
    }
    Ok(Listen { addr, transport })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_beyond_loopback_needs_saying_so() {
        let any: SocketAddr = "0.0.0.0:8079".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:8079".parse().unwrap();
        assert_eq!(decide(any, None, None, false), Err(ListenError::PlainBeyondLoopback(any)));
        assert_eq!(decide(any, None, None, true).unwrap().transport, Transport::Plain);
        assert_eq!(decide(loopback, None, None, false).unwrap().transport, Transport::Plain);
        let tls = decide(any, Some("c.pem".into()), Some("k.pem".into()), false).unwrap();
        assert!(matches!(tls.transport, Transport::Tls { .. }));
        assert_eq!(decide(any, Some("c.pem".into()), None, false), Err(ListenError::HalfTls));
    }
}
