//! The HTTP API as plain functions: an [`ApiRequest`] in, an [`ApiResponse`] out. The worker
//! converts its `Request` into an `ApiRequest` and calls [`handle`]; everything else (routing,
//! validation, reading the store, error bodies) happens here, natively testable.
//!
//! - [`routes`]: the route table and its matcher (404 for unknown paths, 405 for wrong methods).
//! - [`error`]: [`ApiError`], rendered as `{"error": {"code", "message"}}`.
//! - [`auth`]: bearer tokens for private routes, signed single-use requests for admin routes.
//! - [`params`]: parameter parsing and validation.
//! - [`flight`]: single-flight of exchange calls; [`budget`]: what misses may cost.
//! - [`openapi`]: the OpenAPI 3.1 document (`/openapi.json`).
//! - [`metrics`]: `/metrics`, the counters in the Prometheus text format.
//! - [`page`]: `/`, the trader's page, and its script and style.
//! - [`health`], [`price`], [`market`], [`private`], [`admin`]: one file per route group.

pub mod admin;
pub mod auth;
pub mod budget;
pub mod error;
pub mod flight;
pub mod health;
pub mod market;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod params;
pub mod price;
pub mod private;
pub mod routes;

use serde::Serialize;

pub use error::ApiError;

use crate::store::tiered::Tier;
use crate::App;

/// An HTTP request as the handlers see it.
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    pub method: String,
    /// The path without the query, e.g. `/v1/price/QRLUSDT`.
    pub path: String,
    /// The raw query string without `?`, possibly empty.
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiRequest {
    pub fn get(path_and_query: &str) -> Self {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        Self { method: "GET".into(), path: path.into(), query: query.into(), ..Self::default() }
    }
}

/// An HTTP response: status, headers and a body (always JSON from this API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ApiResponse {
    pub fn json(status: u16, body: &impl Serialize) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                // A stored value is never sniffed into HTML, whatever it holds.
                ("x-content-type-options".into(), "nosniff".into()),
            ],
            body: serde_json::to_vec(body).expect("API bodies always serialize"),
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The request headers the handlers read: an edge may pass only these.
pub const REQUEST_HEADERS: [&str; 3] = ["authorization", "x-edgesync-timestamp", "x-edgesync-signature"];

/// Largest request body accepted (admin bodies are tiny JSON).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Answers one request. Never panics on input and never fails: every error is a JSON response.
pub async fn handle(app: &App<'_>, request: &ApiRequest) -> ApiResponse {
    if request.body.len() > MAX_BODY_BYTES {
        return ApiError::new(413, "body_too_large", format!("request bodies are limited to {MAX_BODY_BYTES} bytes"))
            .into_response();
    }
    let outcome = match routes::resolve(&request.method, &request.path) {
        Ok((route, params)) => routes::call(app, route, &params, request).await,
        Err(error) => Err(error),
    };
    let mut response = outcome.unwrap_or_else(ApiError::into_response);
    if let Some(age_ms) = app.store.durable_age_ms() {
        // Whatever the route, an answer the durable copy served says so, and how old it is.
        response
            .headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("x-edgesync-tier") && !name.eq_ignore_ascii_case("age"));
        response.headers.push(("x-edgesync-tier".into(), Tier::DurableStale.as_str().into()));
        response.headers.push(("age".into(), (age_ms / 1000).to_string()));
    }
    response
}
