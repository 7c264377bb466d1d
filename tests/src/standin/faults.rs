//! Faults a test can queue: each matches a path (or every path), fires `times` times, then is
//! gone. The shapes follow MEXC's documentation: 429 and 418 carry `Retry-After` (seconds).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    RateLimit,
    Ban,
    ServerError,
    Timeout,
    Malformed,
    Signature,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// Only requests to this path; every path when absent.
    pub path: Option<String>,
    /// How many requests it hits (default 1).
    #[serde(default = "one")]
    pub times: u32,
    pub retry_after: Option<u64>,
    pub status: Option<u16>,
    pub delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

/// Takes one shot of the first fault matching `path`, dropping faults that are used up.
pub fn take(faults: &mut Vec<Fault>, path: &str) -> Option<Fault> {
    let index = faults.iter().position(|f| f.path.as_deref().is_none_or(|p| p == path))?;
    let fault = faults[index].clone();
    faults[index].times = faults[index].times.saturating_sub(1);
    if faults[index].times == 0 {
        faults.remove(index);
    }
    Some(fault)
}

impl Fault {
    /// The response this fault answers with (every kind but `timeout`, which delays).
    pub fn response(&self) -> Response {
        let retry_after = self.retry_after.unwrap_or(1).to_string();
        match self.kind {
            FaultKind::RateLimit => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after)],
                Json(json!({ "code": 429, "msg": "Too many requests, please try again later." })),
            )
                .into_response(),
            FaultKind::Ban => (
                StatusCode::IM_A_TEAPOT,
                [("retry-after", retry_after)],
                Json(json!({ "code": 418, "msg": "IP banned after ignoring 429s." })),
            )
                .into_response(),
            FaultKind::ServerError => {
                let status =
                    StatusCode::from_u16(self.status.unwrap_or(503)).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                (status, "upstream unavailable").into_response()
            }
            FaultKind::Malformed => {
                (StatusCode::OK, [("content-type", "application/json")], r#"{"symbol":"QRLUSDT","lastPrice":"0.01"#)
                    .into_response()
            }
            FaultKind::Signature => (
                StatusCode::BAD_REQUEST,
                Json(json!({ "code": 700002, "msg": "Signature for this request is not valid." })),
            )
                .into_response(),
            FaultKind::Timeout => StatusCode::OK.into_response(),
        }
    }
}
