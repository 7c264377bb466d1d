//! [`MexcClient`]: MEXC Spot v3 calls over [`HttpClient`]. Each call answers with the typed
//! value, the raw JSON it was read from (which sync tasks store verbatim) and when it was
//! fetched. Status codes map to [`ExchangeError`] here, once.
//!
//! Signed calls carry `X-MEXC-APIKEY`, `recvWindow`, a `timestamp` corrected by the offset to
//! MEXC's clock (measured from `/api/v3/time` once per client, or once per isolate when the
//! client shares a [`ClockOffset`], and again after a 700003), and
//! the HMAC `signature`. Every call is an idempotent GET, so it is retried on 5xx, timeouts and
//! transport errors with jittered backoff; 429 and 418 wait the `Retry-After` MEXC asks for.
//! All waiting stops at the client's deadline (the cron invocation's budget): a wait that
//! would pass it fails at once instead.

use std::cell::Cell;
use std::time::Duration;

use futures_util::lock::Mutex;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::Value;

use super::clock_offset::ClockOffset;
use super::model::{Account, ErrorBody, ServerTime, Ticker24h, Trade};
use super::sign::{query_string, Signer};
use super::{ExchangeConfig, ExchangeError};
use crate::clock::{splitmix64, Backoff, Clock, Sleep};
use crate::domain::Segment;
use crate::http::{HttpClient, HttpRequest, HttpResponse, Method};

/// MEXC's code for a timestamp outside `recvWindow`.
const TIMESTAMP_OUTSIDE_WINDOW: i64 = 700_003;
/// Most `Retry-After` waits one call makes.
const MAX_RATE_LIMIT_WAITS: u32 = 3;

/// A typed answer with the raw response it came from.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub value: T,
    /// The response body verbatim (checked to be JSON): what raw records and the account
    /// embed, never parsed into a tree and encoded again.
    pub raw: Box<RawValue>,
    /// Our clock when the response arrived, ms since the epoch.
    pub fetched_at_ms: i64,
    /// The endpoint's short name in raw-response keys, e.g. `ticker_24hr`.
    pub endpoint: &'static str,
}

impl<T> Fetched<T> {
    pub fn new(value: T, raw: Box<RawValue>, fetched_at_ms: i64, endpoint: &'static str) -> Self {
        Self { value, raw, fetched_at_ms, endpoint }
    }

    /// The raw response as stored: MEXC's bytes as they came.
    pub fn raw_json(&self) -> &RawValue {
        &self.raw
    }
}

/// `body` parsed as `T` — straight from the bytes, into typed structs that skip the fields
/// nobody reads — and kept verbatim as the raw response.
fn parse_body<T: DeserializeOwned>(endpoint: &'static str, body: Vec<u8>) -> Result<(T, Box<RawValue>), ExchangeError> {
    let malformed = |reason: String| ExchangeError::Malformed { endpoint, reason };
    let value = serde_json::from_slice(&body).map_err(|e| malformed(e.to_string()))?;
    let text = String::from_utf8(body).map_err(|e| malformed(e.to_string()))?;
    let raw = RawValue::from_string(text).map_err(|e| malformed(e.to_string()))?;
    Ok((value, raw))
}

/// How a client may retry and how long it may spend.
#[derive(Clone, Copy)]
pub struct RetryPolicy<'a> {
    pub sleep: &'a dyn Sleep,
    /// Retries after the first attempt, for 5xx / timeouts / transport errors.
    pub retries: u32,
    pub backoff: Backoff,
    /// Absolute time (ms, our clock) after which nothing waits any more.
    pub deadline_ms: i64,
}

pub struct MexcClient<'a> {
    http: &'a dyn HttpClient,
    clock: &'a dyn Clock,
    config: &'a ExchangeConfig,
    retry: Option<RetryPolicy<'a>>,
    /// MEXC's clock minus ours, once measured. `Cell`: the client serves one task.
    offset_ms: Cell<Option<i64>>,
    /// The isolate's measurement, shared by its clients when given.
    shared_offset: Option<&'a ClockOffset>,
    /// Held while measuring, so concurrent signed calls wait for one `/api/v3/time`.
    measuring: Mutex<()>,
    calls: Cell<u64>,
    /// The secret keyed once for every signed call of this client.
    signer: std::cell::OnceCell<Signer>,
}

struct Call<'p> {
    endpoint: &'static str,
    path: &'static str,
    params: &'p [(&'p str, String)],
    signed: bool,
}

impl<'a> MexcClient<'a> {
    /// A client that tries each call once.
    pub fn new(http: &'a dyn HttpClient, clock: &'a dyn Clock, config: &'a ExchangeConfig) -> Self {
        Self {
            http,
            clock,
            config,
            retry: None,
            offset_ms: Cell::new(None),
            shared_offset: None,
            measuring: Mutex::new(()),
            calls: Cell::new(0),
            signer: std::cell::OnceCell::new(),
        }
    }

    pub fn with_retries(mut self, retry: RetryPolicy<'a>) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Reuses (and keeps) the isolate's measurement of MEXC's clock.
    pub fn with_shared_offset(mut self, offset: &'a ClockOffset) -> Self {
        self.shared_offset = Some(offset);
        self
    }

    /// `GET /api/v3/ticker/24hr?symbol=…`: the rolling 24 h ticker of one symbol.
    pub async fn ticker_24hr(&self, symbol: &Segment) -> Result<Fetched<Ticker24h>, ExchangeError> {
        let params = [("symbol", symbol.to_string())];
        self.call(Call { endpoint: "ticker_24hr", path: "/api/v3/ticker/24hr", params: &params, signed: false }).await
    }

    /// `GET /api/v3/klines?symbol&interval&limit`: candles, oldest first, as MEXC's rows.
    pub async fn klines(&self, symbol: &Segment, interval: &str, limit: u32) -> Result<Fetched<Value>, ExchangeError> {
        let params = [("symbol", symbol.to_string()), ("interval", interval.to_owned()), ("limit", limit.to_string())];
        self.call(Call { endpoint: "klines", path: "/api/v3/klines", params: &params, signed: false }).await
    }

    /// `GET /api/v3/depth?symbol&limit`: the order book.
    pub async fn depth(&self, symbol: &Segment, limit: u32) -> Result<Fetched<Value>, ExchangeError> {
        let params = [("symbol", symbol.to_string()), ("limit", limit.to_string())];
        self.call(Call { endpoint: "depth", path: "/api/v3/depth", params: &params, signed: false }).await
    }

    /// `GET /api/v3/trades?symbol&limit`: recent public trades ("deals").
    pub async fn trades(&self, symbol: &Segment, limit: u32) -> Result<Fetched<Value>, ExchangeError> {
        let params = [("symbol", symbol.to_string()), ("limit", limit.to_string())];
        self.call(Call { endpoint: "trades", path: "/api/v3/trades", params: &params, signed: false }).await
    }

    /// `GET /api/v3/time`: MEXC's clock.
    pub async fn server_time(&self) -> Result<Fetched<ServerTime>, ExchangeError> {
        self.call(Call { endpoint: "time", path: "/api/v3/time", params: &[], signed: false }).await
    }

    /// `GET /api/v3/account` (signed): balances and permissions.
    pub async fn account(&self) -> Result<Fetched<Account>, ExchangeError> {
        self.call(Call { endpoint: "account_info", path: "/api/v3/account", params: &[], signed: true }).await
    }

    /// `GET /api/v3/myTrades?symbol&startTime&limit` (signed): fills from `start_ms` on,
    /// oldest first, at most `limit` (MEXC caps it at 100 and the window at one month).
    pub async fn my_trades(
        &self,
        symbol: &Segment,
        start_ms: i64,
        limit: u32,
    ) -> Result<Fetched<Vec<Trade>>, ExchangeError> {
        let params =
            [("symbol", symbol.to_string()), ("startTime", start_ms.to_string()), ("limit", limit.to_string())];
        self.call(Call { endpoint: "my_trades", path: "/api/v3/myTrades", params: &params, signed: true }).await
    }

    /// Measures MEXC's clock offset (once per client, or per isolate when shared; again after
    /// a 700003).
    async fn offset(&self) -> i64 {
        if let Some(offset) = self.known_offset() {
            return offset;
        }
        let _measuring = self.measuring.lock().await;
        if let Some(offset) = self.known_offset() {
            return offset;
        }
        let sent = self.clock.now_ms();
        // Without MEXC's time the call may still succeed on our clock: don't fail here.
        // Boxed: `server_time` goes through `call`, which calls back here for signed calls.
        let offset = match Box::pin(self.server_time()).await {
            Ok(time) => time.value.server_time - (sent + time.fetched_at_ms) / 2,
            Err(_) => 0,
        };
        self.offset_ms.set(Some(offset));
        if let Some(shared) = self.shared_offset {
            shared.set(offset, self.clock.now_ms());
        }
        offset
    }

    /// This client's measurement, else the isolate's while it is fresh.
    fn known_offset(&self) -> Option<i64> {
        self.offset_ms.get().or_else(|| {
            let shared = self.shared_offset?.get(self.clock.now_ms())?;
            self.offset_ms.set(Some(shared));
            Some(shared)
        })
    }

    fn url(
        &self,
        call: &Call<'_>,
        timestamp_ms: Option<i64>,
    ) -> Result<(String, Vec<(String, String)>), ExchangeError> {
        let mut params: Vec<(&str, String)> = call.params.to_vec();
        let mut headers = Vec::new();
        if let Some(timestamp) = timestamp_ms {
            let (Some(key), Some(secret)) = (&self.config.api_key, &self.config.api_secret) else {
                return Err(ExchangeError::MissingCredentials { endpoint: call.endpoint });
            };
            params.push(("recvWindow", self.config.recv_window_ms.to_string()));
            params.push(("timestamp", timestamp.to_string()));
            let query = query_string(&params);
            let signature = self.signer.get_or_init(|| Signer::new(secret.expose().as_bytes())).sign(query.as_bytes());
            headers.push(("X-MEXC-APIKEY".to_owned(), key.expose().to_owned()));
            return Ok((format!("{}{}?{query}&signature={signature}", self.config.base_url, call.path), headers));
        }
        let query = query_string(&params);
        let separator = if query.is_empty() { "" } else { "?" };
        Ok((format!("{}{}{separator}{query}", self.config.base_url, call.path), headers))
    }

    /// Waits `delay` if the policy allows it before the deadline; false when it may not.
    async fn wait(&self, delay: Duration) -> bool {
        match &self.retry {
            Some(retry) if self.clock.now_ms() + delay.as_millis() as i64 <= retry.deadline_ms => {
                retry.sleep.sleep(delay).await;
                true
            }
            _ => false,
        }
    }

    async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<Fetched<T>, ExchangeError> {
        let seed = splitmix64(self.calls.replace(self.calls.get() + 1) ^ self.clock.now_ms() as u64);
        let (mut attempt, mut rate_waits, mut resynced) = (0, 0, false);
        loop {
            let timestamp = match call.signed {
                true => Some(self.clock.now_ms() + self.offset().await),
                false => None,
            };
            let (url, headers) = self.url(&call, timestamp)?;
            let mut request = HttpRequest::new(Method::Get, url, self.config.timeout);
            request.headers = headers;
            let outcome = match self.http.send(request).await {
                Ok(response) => read_body(response),
                Err(error) => Err(ExchangeError::Transport(error)),
            };
            let error = match outcome {
                Ok(body) => {
                    let (value, raw) = parse_body(call.endpoint, body)?;
                    return Ok(Fetched::new(value, raw, self.clock.now_ms(), call.endpoint));
                }
                Err(error) => error,
            };
            let retries = self.retry.map_or(0, |r| r.retries);
            match &error {
                ExchangeError::RateLimited { retry_after_secs, .. } if rate_waits < MAX_RATE_LIMIT_WAITS => {
                    rate_waits += 1;
                    if !self.wait(Duration::from_secs(retry_after_secs.unwrap_or(1))).await {
                        return Err(error);
                    }
                }
                ExchangeError::Api { code: TIMESTAMP_OUTSIDE_WINDOW, .. } if call.signed && !resynced => {
                    resynced = true;
                    self.offset_ms.set(None);
                    if let Some(shared) = self.shared_offset {
                        shared.forget();
                    }
                }
                _ if error.is_transient() && attempt < retries => {
                    attempt += 1;
                    let backoff = self.retry.map(|r| r.backoff.delay(attempt, seed)).unwrap_or_default();
                    if !self.wait(backoff).await {
                        return Err(error);
                    }
                }
                _ => return Err(error),
            }
        }
    }
}

/// Maps the status and returns the body of a successful response.
fn read_body(response: HttpResponse) -> Result<Vec<u8>, ExchangeError> {
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
    Ok(response.body)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use async_trait::async_trait;

    use super::*;
    use crate::clock::FixedClock;
    use crate::http::TransportError;
    use crate::secret::Secret;

    /// Plays back canned responses in order and records the requests (a unit-test double;
    /// the end-to-end suite runs the client against the MEXC stand-in).
    struct Script {
        responses: RefCell<VecDeque<HttpResponse>>,
        seen: RefCell<Vec<HttpRequest>>,
    }

    #[async_trait(?Send)]
    impl HttpClient for Script {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
            self.seen.borrow_mut().push(request);
            self.responses.borrow_mut().pop_front().ok_or(TransportError::Failed("no more responses".into()))
        }
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    struct Waits(RefCell<Vec<Duration>>);

    #[async_trait(?Send)]
    impl Sleep for Waits {
        async fn sleep(&self, duration: Duration) {
            self.0.borrow_mut().push(duration);
        }
    }

    fn script(responses: Vec<HttpResponse>) -> Script {
        Script { responses: RefCell::new(VecDeque::from(responses)), seen: RefCell::new(Vec::new()) }
    }

    fn retry_policy(waits: &Waits) -> RetryPolicy<'_> {
        RetryPolicy {
            sleep: waits,
            retries: 2,
            backoff: Backoff { base: Duration::from_millis(10), cap: Duration::from_millis(10) },
            deadline_ms: 10_000,
        }
    }

    fn config() -> ExchangeConfig {
        ExchangeConfig {
            base_url: "http://mexc.test".into(),
            api_key: Some(Secret::new("key")),
            api_secret: Some(Secret::new("45d0b3c26f2644f19bfb98b07741b2f5")),
            recv_window_ms: 5000,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn signed_calls_use_mexc_time_and_sign_the_query() {
        let http =
            script(vec![response(200, &[], r#"{"serverTime": 1000500}"#), response(200, &[], r#"{"balances": []}"#)]);
        let clock = FixedClock::at(1_000_000);
        let config = config();
        let client = MexcClient::new(&http, &clock, &config);
        futures_executor::block_on(client.account()).unwrap();
        let seen = http.seen.borrow();
        let url = &seen[1].url;
        assert!(
            url.starts_with("http://mexc.test/api/v3/account?recvWindow=5000&timestamp=1000500&signature="),
            "{url}"
        );
        let query = url.split_once('?').unwrap().1.rsplit_once("&signature=").unwrap();
        assert_eq!(
            query.1,
            crate::exchange::sign::hmac_sha256_hex(b"45d0b3c26f2644f19bfb98b07741b2f5", query.0.as_bytes())
        );
        assert!(seen[1].headers.contains(&("X-MEXC-APIKEY".into(), "key".into())));
    }

    /// Answers by path after yielding once, so concurrent calls interleave.
    struct Yielding {
        seen: RefCell<Vec<String>>,
    }

    #[async_trait(?Send)]
    impl HttpClient for Yielding {
        async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    return std::task::Poll::Ready(());
                }
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            })
            .await;
            let path = request.url.split('?').next().unwrap_or_default().to_owned();
            self.seen.borrow_mut().push(path.clone());
            let body = if path.ends_with("/time") { r#"{"serverTime": 1000500}"# } else { r#"{"balances": []}"# };
            Ok(response(200, &[], body))
        }
    }

    #[test]
    fn concurrent_signed_calls_measure_the_clock_offset_once() {
        let http = Yielding { seen: RefCell::new(Vec::new()) };
        let clock = FixedClock::at(1_000_000);
        let config = config();
        let client = MexcClient::new(&http, &clock, &config);
        let (first, second) =
            futures_executor::block_on(futures_util::future::join(client.account(), client.account()));
        first.unwrap();
        second.unwrap();
        let seen = http.seen.borrow();
        assert_eq!(seen.iter().filter(|path| path.ends_with("/api/v3/time")).count(), 1, "{seen:?}");
        assert_eq!(seen.iter().filter(|path| path.ends_with("/api/v3/account")).count(), 2, "{seen:?}");
    }

    #[test]
    fn clients_sharing_the_isolate_offset_measure_it_once_until_mexc_refuses_it() {
        let http = Yielding { seen: RefCell::new(Vec::new()) };
        let clock = FixedClock::at(1_000_000);
        let config = config();
        let shared = ClockOffset::default();
        for _ in 0..3 {
            let client = MexcClient::new(&http, &clock, &config).with_shared_offset(&shared);
            futures_executor::block_on(client.account()).unwrap();
        }
        let times = |seen: &[String]| seen.iter().filter(|path| path.ends_with("/api/v3/time")).count();
        assert_eq!(times(&http.seen.borrow()), 1, "three invocations, one measurement");
        let account = http.seen.borrow().iter().find(|p| p.ends_with("/account")).cloned();
        assert!(account.is_some());

        // MEXC refuses a timestamp: the shared offset is forgotten and measured again.
        let refused = script(vec![
            response(400, &[], r#"{"code":700003,"msg":"Timestamp for this request is outside of the recvWindow."}"#),
            response(200, &[], r#"{"serverTime": 1000900}"#),
            response(200, &[], r#"{"balances": []}"#),
        ]);
        let client = MexcClient::new(&refused, &clock, &config).with_shared_offset(&shared);
        futures_executor::block_on(client.account()).unwrap();
        let seen = refused.seen.borrow();
        assert!(seen[1].url.ends_with("/api/v3/time"), "{:?}", seen.iter().map(|r| &r.url).collect::<Vec<_>>());
        assert!(seen[2].url.contains("timestamp=1000900"), "{}", seen[2].url);
        assert_eq!(shared.get(1_000_000), Some(900));
    }

    #[test]
    fn rate_limits_wait_retry_after_within_the_deadline() {
        let http = script(vec![
            response(429, &[("Retry-After", "2")], r#"{"code":429,"msg":"slow down"}"#),
            response(200, &[], r#"{"symbol":"QRLUSDT","lastPrice":"1"}"#),
        ]);
        let (clock, config, waits) = (FixedClock::at(0), config(), Waits(RefCell::new(Vec::new())));
        let retry = retry_policy(&waits);
        let client = MexcClient::new(&http, &clock, &config).with_retries(retry);
        let symbol = Segment::new("symbol", "QRLUSDT").unwrap();
        futures_executor::block_on(client.ticker_24hr(&symbol)).unwrap();
        assert_eq!(*waits.0.borrow(), vec![Duration::from_secs(2)]);

        // A wait past the deadline fails at once.
        let http = script(vec![response(429, &[("Retry-After", "60")], "{}")]);
        let client = MexcClient::new(&http, &clock, &config).with_retries(retry);
        let error = futures_executor::block_on(client.ticker_24hr(&symbol)).unwrap_err();
        assert_eq!(error, ExchangeError::RateLimited { status: 429, retry_after_secs: Some(60) });
    }

    #[test]
    fn server_errors_are_retried_then_reported_with_mexc_codes() {
        let http = script(vec![response(503, &[], "down"), response(502, &[], "down"), response(503, &[], "down")]);
        let (clock, config, waits) = (FixedClock::at(0), config(), Waits(RefCell::new(Vec::new())));
        let retry = retry_policy(&waits);
        let client = MexcClient::new(&http, &clock, &config).with_retries(retry);
        let symbol = Segment::new("symbol", "QRLUSDT").unwrap();
        assert_eq!(
            futures_executor::block_on(client.ticker_24hr(&symbol)).unwrap_err(),
            ExchangeError::Status { status: 503 }
        );
        assert_eq!(http.seen.borrow().len(), 3);

        let http =
            script(vec![response(400, &[], r#"{"code":700002,"msg":"Signature for this request is not valid."}"#)]);
        let client = MexcClient::new(&http, &clock, &config).with_retries(retry);
        assert_eq!(futures_executor::block_on(client.ticker_24hr(&symbol)).unwrap_err().code(), Some(700_002));
    }
}
