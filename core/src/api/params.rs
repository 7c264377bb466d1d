//! Query and path parameters, checked against what MEXC accepts before anything is fetched:
//! a bad value is a 400 naming the parameter, never an exchange error or a malformed key.

use super::{ApiError, ApiRequest};
use crate::exchange::validate_symbol;
use crate::keys::Segment;
use crate::market::KLINE_INTERVALS;

impl ApiRequest {
    /// The first value of query parameter `name`, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes()).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
    }

    /// A request header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Longest piece of a caller's input repeated back in an error message, in characters.
pub const MAX_ECHO_CHARS: usize = 64;

/// `text` as an error message may quote it: at most [`MAX_ECHO_CHARS`] characters, the rest
/// replaced by `…`, so a hostile 10 kB parameter never comes back whole.
pub fn echo(text: &str) -> String {
    crate::codec::shorten(text, MAX_ECHO_CHARS).into_owned()
}

pub fn symbol(text: &str) -> Result<Segment, ApiError> {
    validate_symbol(text).map_err(|reason| ApiError::bad_request("symbol", reason))
}

/// A kline interval MEXC knows (`1m 5m 15m 30m 60m 4h 1d 1W 1M`).
pub fn interval(request: &ApiRequest, default: &str) -> Result<Segment, ApiError> {
    let value = request.query_param("interval").unwrap_or_else(|| default.to_owned());
    if !KLINE_INTERVALS.contains(&value.as_str()) {
        return Err(ApiError::bad_request(
            "interval",
            format!("`{}` is not one of {}", echo(&value), KLINE_INTERVALS.join(", ")),
        ));
    }
    Segment::new("interval", &value).map_err(|e| ApiError::bad_request("interval", e))
}

/// An integer `limit` in `1..=max`, `default` when absent.
pub fn limit(request: &ApiRequest, default: u32, max: u32) -> Result<u32, ApiError> {
    match request.query_param("limit") {
        None => Ok(default),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => {
                Err(ApiError::bad_request("limit", format!("`{}` is not a whole number from 1 to {max}", echo(&text))))
            }
        },
    }
}

/// A time bound in ms since the epoch, if given.
pub fn millis(request: &ApiRequest, name: &'static str) -> Result<Option<i64>, ApiError> {
    match request.query_param(name) {
        None => Ok(None),
        Some(text) => match text.parse::<i64>() {
            Ok(ms) if ms >= 0 => Ok(Some(ms)),
            _ => Err(ApiError::bad_request(
                name,
                format!("`{}` is not a time in milliseconds since the epoch", echo(&text)),
            )),
        },
    }
}

/// `[from, to]` from two parameters, checked to be in order.
pub fn time_range(
    request: &ApiRequest,
    from: &'static str,
    to: &'static str,
) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let (start, end) = (millis(request, from)?, millis(request, to)?);
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(ApiError::bad_request(from, format!("{from} ({s}) is after {to} ({e})")));
        }
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_and_checked() {
        let request = ApiRequest::get("/x?interval=1m&limit=0&from=5&to=3&q=a%20b+c");
        assert_eq!(request.query_param("q").as_deref(), Some("a b c"));
        assert_eq!(interval(&request, "60m").unwrap().as_str(), "1m");
        assert!(interval(&ApiRequest::get("/x?interval=2m"), "60m").unwrap_err().message.contains("interval"));
        assert_eq!(limit(&request, 10, 100).unwrap_err().status, 400);
        assert_eq!(limit(&ApiRequest::get("/x"), 10, 100).unwrap(), 10);
        assert!(time_range(&request, "from", "to").unwrap_err().message.contains("from"));
        assert!(millis(&ApiRequest::get("/x?from=soon"), "from").is_err());
        let long = "Z".repeat(10_000);
        let message = symbol(&long).unwrap_err().message;
        assert!(message.chars().count() < 200 && message.contains('…'), "{message}");
        assert_eq!(echo("short"), "short");
    }
}
