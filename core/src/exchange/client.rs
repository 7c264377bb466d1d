//! [`MexcClient`]: MEXC Spot v3 calls over [`HttpClient`]. Each call answers with the typed
//! value, the raw JSON it was read from (which sync tasks store verbatim) and when it was
//! fetched. Status codes map to [`ExchangeError`] here, once.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::model::{ErrorBody, Ticker24h};
use super::sign::query_string;
use super::{ExchangeConfig, ExchangeError};
use crate::clock::Clock;
use crate::http::{HttpClient, HttpRequest, HttpResponse, Method};
use crate::keys::Segment;

/// A typed answer with the raw response it came from.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub value: T,
    pub raw: Value,
    /// Our clock when the response arrived, ms since the epoch.
    pub fetched_at_ms: i64,
    /// The endpoint's short name in raw-response keys, e.g. `ticker_24hr`.
    pub endpoint: &'static str,
}

pub struct MexcClient<'a> {
    http: &'a dyn HttpClient,
    clock: &'a dyn Clock,
    config: &'a ExchangeConfig,
}

impl<'a> MexcClient<'a> {
    pub fn new(http: &'a dyn HttpClient, clock: &'a dyn Clock, config: &'a ExchangeConfig) -> Self {
        Self { http, clock, config }
    }

    /// `GET /api/v3/ticker/24hr?symbol=…`: the rolling 24 h ticker of one symbol.
    pub async fn ticker_24hr(&self, symbol: &Segment) -> Result<Fetched<Ticker24h>, ExchangeError> {
        self.get_public("ticker_24hr", "/api/v3/ticker/24hr", &[("symbol", symbol.to_string())]).await
    }

    /// `GET /api/v3/klines?symbol&interval&limit`: candles, oldest first, as MEXC's rows.
    pub async fn klines(&self, symbol: &Segment, interval: &str, limit: u32) -> Result<Fetched<Value>, ExchangeError> {
        let params = [("symbol", symbol.to_string()), ("interval", interval.to_owned()), ("limit", limit.to_string())];
        self.get_public("klines", "/api/v3/klines", &params).await
    }

    /// `GET /api/v3/depth?symbol&limit`: the order book.
    pub async fn depth(&self, symbol: &Segment, limit: u32) -> Result<Fetched<Value>, ExchangeError> {
        self.get_public("depth", "/api/v3/depth", &[("symbol", symbol.to_string()), ("limit", limit.to_string())]).await
    }

    /// `GET /api/v3/trades?symbol&limit`: recent public trades ("deals").
    pub async fn trades(&self, symbol: &Segment, limit: u32) -> Result<Fetched<Value>, ExchangeError> {
        self.get_public("trades", "/api/v3/trades", &[("symbol", symbol.to_string()), ("limit", limit.to_string())])
            .await
    }

    async fn get_public<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<Fetched<T>, ExchangeError> {
        let url = format!("{}{path}?{}", self.config.base_url, query_string(params));
        let request = HttpRequest::new(Method::Get, url, self.config.timeout);
        let response = self.http.send(request).await?;
        let raw = read_json(endpoint, &response)?;
        let value = serde_json::from_value(raw.clone())
            .map_err(|e| ExchangeError::Malformed { endpoint, reason: e.to_string() })?;
        Ok(Fetched { value, raw, fetched_at_ms: self.clock.now_ms(), endpoint })
    }
}

/// Maps the status and returns the JSON body of a successful response.
fn read_json(endpoint: &'static str, response: &HttpResponse) -> Result<Value, ExchangeError> {
    let status = response.status;
    if status == 429 || status == 418 {
        let retry_after_secs = response.header("Retry-After").and_then(|v| v.trim().parse().ok());
        return Err(ExchangeError::RateLimited { status, retry_after_secs });
    }
    if !(200..300).contains(&status) {
        return Err(match serde_json::from_slice::<ErrorBody>(&response.body) {
            Ok(ErrorBody { code, msg }) => ExchangeError::Api { status, code, msg },
            Err(_) => ExchangeError::Status { status },
        });
    }
    serde_json::from_slice(&response.body).map_err(|e| ExchangeError::Malformed { endpoint, reason: e.to_string() })
}
