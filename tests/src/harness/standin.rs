//! [`ExchangeStandin`]: the MEXC stand-in process and its control surface (responses,
//! injected faults, the requests it counted).

use serde_json::Value;

use super::{agent, call, repo_root, wait_ready, Binaries, MEXC_API_KEY, MEXC_API_SECRET};
use crate::process::{free_port, Service};
use std::process::Command;
use std::time::Duration;

/// The MEXC stand-in process and its control surface.
pub struct ExchangeStandin {
    pub(super) service: Service,
    pub url: String,
    http: ureq::Agent,
    _dir: tempfile::TempDir,
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
