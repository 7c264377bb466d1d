//! The HTTP transport the Upstash and MEXC clients speak through. The trait is deliberately
//! tiny (one request in, one response out) so the worker can implement it with
//! `worker::Fetch` and native code with any blocking or async client. It owns no retry or
//! status policy: callers decide what a 429 or a 5xx means for them.

use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// The response headers core reads (the Upstash sync token, MEXC's `Retry-After`): a
/// transport may return only these, which spares the worker copying every header of every
/// response across the JS boundary.
pub const RESPONSE_HEADERS: [&str; 2] = ["upstash-sync-token", "retry-after"];

/// One outbound request. `timeout` bounds the whole exchange, connect to last body byte.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
}

impl HttpRequest {
    pub fn new(method: Method, url: impl Into<String>, timeout: Duration) -> Self {
        Self { method, url: url.into(), headers: Vec::new(), body: None, timeout }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header with this name, compared case-insensitively as HTTP requires.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why no response arrived. A response with any status code is not a transport error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Failed(String),
}

/// Sends HTTP requests. `?Send` because the worker's `Fetch` futures hold JS values and are
/// not `Send`; wasm is single-threaded, and native callers drive these futures on one task.
#[async_trait(?Send)]
pub trait HttpClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// A borrowed client is a client: one transport can serve several users (e.g. the exchange
/// and Redis clients of a bench sharing one stand-in).
#[async_trait(?Send)]
impl<T: HttpClient + ?Sized> HttpClient for &T {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(request).await
    }
}
