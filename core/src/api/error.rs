//! [`ApiError`]: every way a request can fail, with its HTTP status, a stable machine code
//! and a sentence for people. Rendered once, as `{"error": {"code": …, "message": …}}`.

use serde_json::json;

use super::ApiResponse;
use crate::store::tiered::ReadError;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Extra headers, e.g. `Allow` on a 405.
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), headers: Vec::new() }
    }

    /// A 400 naming the parameter. The reason is cut to 200 characters: it may quote input
    /// (a parser's "unknown field `…`"), which callers also cut with [`super::params::echo`].
    pub fn bad_request(parameter: &str, reason: impl std::fmt::Display) -> Self {
        let reason = reason.to_string();
        Self::new(400, "bad_request", format!("invalid {parameter}: {}", crate::codec::shorten(&reason, 200)))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not_found", message)
    }

    pub fn into_response(self) -> ApiResponse {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = ApiResponse::json(self.status, &body).with_header("cache-control", "no-store");
        response.headers.extend(self.headers);
        response
    }
}

impl From<StoreError> for ApiError {
    /// A store failure the handler could not work around: the data may exist, so 503, not 404.
    fn from(error: StoreError) -> Self {
        ApiError::new(503, "store_unavailable", format!("the store could not answer: {error}"))
    }
}

impl From<ReadError> for ApiError {
    /// An unreadable permanent value is a 500 `unreadable_value`: the data exists (so not
    /// 404), the fault is the stored state, not the request (so not 4xx), and retrying will
    /// not help (so not 503). The message names the key and the shape expected.
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Store(error) => error.into(),
            ReadError::Unreadable(unreadable) => ApiError::new(500, "unreadable_value", unreadable.to_string()),
        }
    }
}
