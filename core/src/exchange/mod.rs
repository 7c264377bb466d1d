//! The MEXC Spot v3 client (see `docs/design.md`, "Exchange client").
//!
//! - [`sign`]: request signing, exactly as MEXC documents it.
//! - [`model`]: typed responses, tolerant of `""`, `null` and unknown fields.
//! - [`clock_offset`]: MEXC's clock offset, kept for the isolate.
//! - [`client`]: [`MexcClient`], which turns calls into HTTP over [`crate::http::HttpClient`]
//!   and answers with typed values plus the raw JSON they came from.
//!
//! The client never logs and never puts its key or secret into an error.

pub mod client;
pub mod clock_offset;
pub mod model;
pub mod sign;

use std::time::Duration;

pub use client::{Fetched, MexcClient};

use crate::domain::Segment;
use crate::http::TransportError;
use crate::secret::Secret;

/// MEXC's public production endpoint.
pub const MEXC_BASE_URL: &str = "https://api.mexc.com";

#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// `MEXC_BASE_URL`, without a trailing `/`.
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub api_secret: Option<Secret>,
    /// `recvWindow` sent with signed calls (MEXC default 5000, max 60000).
    pub recv_window_ms: u64,
    /// Bound on one HTTP request.
    pub timeout: Duration,
}

/// Why an exchange call produced no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("exchange unreachable: {0}")]
    Transport(#[from] TransportError),
    /// MEXC answered with its error body `{"code": …, "msg": …}`.
    #[error("MEXC error {code} (HTTP {status}): {msg}")]
    Api { status: u16, code: i64, msg: String },
    /// 429 (rate limit) or 418 (IP ban) with the `Retry-After` MEXC asked for.
    #[error("rate limited by MEXC (HTTP {status}), retry after {retry_after_secs:?} s")]
    RateLimited { status: u16, retry_after_secs: Option<u64> },
    /// A non-2xx status without a MEXC error body (e.g. a proxy's 502).
    #[error("MEXC answered HTTP {status}")]
    Status { status: u16 },
    /// A 2xx answer whose body is not the documented shape.
    #[error("malformed response from {endpoint}: {reason}")]
    Malformed { endpoint: &'static str, reason: String },
    #[error("MEXC_API_KEY and MEXC_API_SECRET are required for {endpoint}")]
    MissingCredentials { endpoint: &'static str },
}

impl ExchangeError {
    /// True for failures worth retrying an idempotent call after: 5xx (the outcome is
    /// unknown, MEXC says), timeouts and transport errors.
    pub fn is_transient(&self) -> bool {
        match self {
            ExchangeError::Status { status } | ExchangeError::Api { status, .. } => *status >= 500,
            ExchangeError::Transport(_) => true,
            _ => false,
        }
    }

    /// MEXC's error code, when MEXC sent one.
    pub fn code(&self) -> Option<i64> {
        match self {
            ExchangeError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Checks a symbol as MEXC spells it: 2–32 upper-case ASCII letters and digits (`QRLUSDT`).
pub fn validate_symbol(text: &str) -> Result<Segment, String> {
    let well_formed =
        (2..=32).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !well_formed {
        let shown = crate::codec::shorten(text, 33);
        return Err(format!("`{shown}` is not a MEXC symbol (2-32 upper-case letters and digits, e.g. QRLUSDT)"));
    }
    Segment::new("symbol", text).map_err(|e| e.to_string())
}
