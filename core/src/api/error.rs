//! [`ApiError`]: every way a request can fail, with its HTTP status, a stable machine code
//! and a sentence for people. Rendered once, as `{"error": {"code": …, "message": …}}`.

use serde_json::json;

use super::ApiResponse;
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

    pub fn bad_request(parameter: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(400, "bad_request", format!("invalid {parameter}: {reason}"))
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
