//! Authentication of the private and admin routes.
//!
//! - **Private** routes need `Authorization: Bearer $READ_TOKEN` (the scheme in any case, as
//!   RFC 9110 allows), the token compared in constant time.
//! - **Admin** routes need `X-Edgesync-Timestamp` (Unix seconds, within `ADMIN_WINDOW_SECONDS`
//!   of now, default 300) and `X-Edgesync-Signature`: lowercase hex HMAC-SHA256 with
//!   `ADMIN_SECRET` over `{timestamp}\n{METHOD}\n{path_and_query}\n{hex sha256(body)}`. A
//!   signature is usable once: it is remembered in Redis (`{namespace}:nonce:{signature}`,
//!   `SET NX EX`) for as long as its timestamp stays acceptable — until `timestamp + window`,
//!   however far ahead of now the timestamp is — and a replay is a 401. The nonce lives
//!   outside the versioned key space, where no invalidation reaches.
//!
//! An unconfigured secret disables its routes with a 503 saying so — never opens them.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiRequest};
use crate::exchange::sign::hmac_sha256_hex;
use crate::keys::Segment;
use crate::store::{Command, Reply};
use crate::App;

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(401, "unauthorized", message)
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Checks the bearer token of a private route.
pub fn require_reader(app: &App<'_>, request: &ApiRequest) -> Result<(), ApiError> {
    let Some(token) = &app.config.read_token else {
        return Err(ApiError::new(
            503,
            "private_routes_disabled",
            "READ_TOKEN is not configured; private routes are off",
        ));
    };
    let presented = request
        .header("authorization")
        .and_then(|h| h.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim());
    if equal(presented, token.expose()) {
        Ok(())
    } else {
        Err(unauthorized("missing or wrong bearer token"))
    }
}

/// The string an admin request signs.
pub fn admin_message(timestamp: &str, method: &str, path_and_query: &str, body: &[u8]) -> String {
    format!("{timestamp}\n{method}\n{path_and_query}\n{}", hex::encode(Sha256::digest(body)))
}

/// True when `seconds` is at most `window` seconds from `now`. Checked arithmetic: a timestamp
/// near `i64::MIN` would otherwise wrap the difference into the window.
fn within_window(now: i64, seconds: i64, window: i64) -> bool {
    now.checked_sub(seconds).and_then(i64::checked_abs).is_some_and(|distance| distance <= window)
}

/// Checks an admin request's signature, freshness and single use.
pub async fn require_admin(app: &App<'_>, request: &ApiRequest) -> Result<(), ApiError> {
    let Some(secret) = &app.config.admin_secret else {
        return Err(ApiError::new(
            503,
            "admin_routes_disabled",
            "ADMIN_SECRET is not configured; admin routes are off",
        ));
    };
    let timestamp = request.header("x-edgesync-timestamp").unwrap_or_default();
    let signature = request.header("x-edgesync-signature").unwrap_or_default().to_ascii_lowercase();
    let seconds: i64 = timestamp.parse().map_err(|_| unauthorized("X-Edgesync-Timestamp must be Unix seconds"))?;
    let window = i64::try_from(app.config.admin_window.as_secs()).unwrap_or(i64::MAX);
    let now = app.clock.now_ms() / 1000;
    if !within_window(now, seconds, window) {
        return Err(unauthorized(&format!("timestamp is more than {window} s from now")));
    }
    let path_and_query = match request.query.as_str() {
        "" => request.path.clone(),
        query => format!("{}?{query}", request.path),
    };
    let message = admin_message(timestamp, &request.method.to_ascii_uppercase(), &path_and_query, &request.body);
    let expected = hmac_sha256_hex(secret.expose().as_bytes(), message.as_bytes());
    if !equal(&signature, &expected) {
        return Err(unauthorized("bad signature"));
    }
    let nonce = Segment::new("signature", &signature).map_err(|_| unauthorized("bad signature"))?;
    // The timestamp stays acceptable until `seconds + window`; so must the memory of its use
    // (one second more, because `now` is rounded down).
    let remember_for = seconds + window - now + 1;
    let remember =
        Command::new("SET").arg(app.config.keys.nonce(&nonce)).arg("1").arg("NX").arg("EX").arg(remember_for.max(1));
    match app.store.backing_store().execute(&remember).await {
        Ok(Reply::Nil) => Err(unauthorized("signature already used")),
        Ok(_) => Ok(()),
        // Without Redis a replay cannot be ruled out: refuse rather than risk it.
        Err(error) => Err(ApiError::new(503, "store_unavailable", format!("cannot check replay: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use futures_executor::block_on;

    use super::*;

    fn with_app(vars: &[(&str, &str)], check: impl FnOnce(&App<'_>)) {
        crate::test_app::with_app(vars, &crate::test_app::NoNetwork, check)
    }

    #[test]
    fn unconfigured_secrets_close_their_routes_with_503() {
        with_app(&[], |app| {
            let request = ApiRequest::get("/v1/account");
            assert_eq!(require_reader(app, &request).unwrap_err().status, 503);
            assert_eq!(block_on(require_admin(app, &request)).unwrap_err().status, 503);
        });
    }

    #[test]
    fn admin_requests_are_signed_fresh_and_single_use() {
        with_app(&[("ADMIN_SECRET", "s3cret")], |app| {
            let signed = |seconds: i64, body: &[u8]| {
                let timestamp = seconds.to_string();
                let message = admin_message(&timestamp, "POST", "/v1/admin/warm?x=1", body);
                let mut request = ApiRequest {
                    method: "POST".into(),
                    path: "/v1/admin/warm".into(),
                    query: "x=1".into(),
                    body: body.to_vec(),
                    ..ApiRequest::default()
                };
                request.headers.push(("X-Edgesync-Timestamp".into(), timestamp));
                request.headers.push(("X-Edgesync-Signature".into(), hmac_sha256_hex(b"s3cret", message.as_bytes())));
                request
            };
            let now = 1_700_000_000;
            let good = signed(now, b"{}");
            assert!(block_on(require_admin(app, &good)).is_ok());
            assert_eq!(block_on(require_admin(app, &good)).unwrap_err().message, "signature already used");
            assert_eq!(block_on(require_admin(app, &signed(now - 301, b"{}"))).unwrap_err().status, 401);
            // A timestamp ahead of now is remembered until it is too old to be accepted.
            let ahead = signed(now + 295, b"{}");
            assert!(block_on(require_admin(app, &ahead)).is_ok());
            let ttl = block_on(app.store.backing_store().execute(&Command::new("TTL").arg(
                app.config.keys.nonce(&Segment::new("s", ahead.header("x-edgesync-signature").unwrap()).unwrap()),
            )))
            .unwrap();
            assert_eq!(ttl, Reply::Int(596));
            // Far outside i64's room around now: refused, not wrapped into the window.
            for extreme in [-9_223_372_035_058_435_323, i64::MIN, i64::MAX] {
                let error = block_on(require_admin(app, &signed(extreme, b"{}"))).unwrap_err();
                assert_eq!((error.status, error.message.contains("from now")), (401, true), "{extreme}");
            }
            let mut tampered = signed(now, b"{}");
            tampered.body = b"{\"all\":true}".to_vec();
            assert_eq!(block_on(require_admin(app, &tampered)).unwrap_err().message, "bad signature");
        });
    }

    #[test]
    fn timestamps_are_compared_with_checked_arithmetic() {
        assert!(within_window(1_700_000_000, 1_700_000_300, 300));
        assert!(!within_window(1_700_000_000, 1_700_000_301, 300));
        assert!(!within_window(1_700_000_000, -9_223_372_035_058_435_323, 300));
        assert!(!within_window(1_700_000_000, i64::MIN, 300));
        assert!(!within_window(-1, i64::MAX, 300));
    }

    #[test]
    fn bearer_tokens_compare_exactly() {
        with_app(&[("READ_TOKEN", "tok")], |app| {
            let mut request = ApiRequest::get("/v1/account");
            assert_eq!(require_reader(app, &request).unwrap_err().status, 401);
            request.headers.push(("Authorization".into(), "Bearer tok".into()));
            assert!(require_reader(app, &request).is_ok());
            request.headers[0].1 = "bearer tok".into();
            assert!(require_reader(app, &request).is_ok(), "the scheme is case-insensitive");
            request.headers[0].1 = "Bearer tok2".into();
            assert_eq!(require_reader(app, &request).unwrap_err().status, 401);
            request.headers[0].1 = "Basic tok".into();
            assert_eq!(require_reader(app, &request).unwrap_err().status, 401);
        });
    }
}
