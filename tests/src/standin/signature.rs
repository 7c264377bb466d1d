//! MEXC's signed-request rules, as its documentation states them, implemented here without
//! reference to edgesync's client so a shared misunderstanding cannot pass unnoticed:
//!
//! - header `X-MEXC-APIKEY` must carry the account's key (else 10072);
//! - `signature` = lowercase hex HMAC-SHA256, keyed by the secret, of the total parameter
//!   string: the query string as sent without `signature`, followed by the body (else 700002);
//! - `timestamp` (ms) is required; accepted when `timestamp < serverTime + 1000` and
//!   `serverTime - timestamp <= recvWindow`, `recvWindow` defaulting to 5000 and at most
//!   60000 (else 700003 / 700005).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub struct Request<'a> {
    pub api_key: Option<&'a str>,
    /// The raw query string as received, without `?`.
    pub query: &'a str,
    pub body: &'a str,
    pub server_time_ms: i64,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: i64,
    pub msg: &'static str,
}

const fn reject(code: i64, msg: &'static str) -> Rejection {
    Rejection { code, msg }
}

pub fn verify(request: &Request<'_>, api_key: &str, secret: &str) -> Result<(), Rejection> {
    if request.api_key != Some(api_key) {
        return Err(reject(10072, "Api key info invalid"));
    }
    // The signed string is the query exactly as sent, minus the signature pair.
    let mut signature = None;
    let unsigned: Vec<&str> = request
        .query
        .split('&')
        .filter(|pair| match pair.strip_prefix("signature=") {
            Some(value) => {
                signature = Some(value);
                false
            }
            None => !pair.is_empty(),
        })
        .collect();
    let mut total = unsigned.join("&");
    total.push_str(request.body);
    let param =
        |name: &str| unsigned.iter().find_map(|pair| pair.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')));

    let Some(signature) = signature else {
        return Err(reject(700002, "Signature for this request is not valid."));
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(total.as_bytes());
    let expected = hex::encode(mac.finalize().into_bytes());
    if signature != expected {
        return Err(reject(700002, "Signature for this request is not valid."));
    }

    let recv_window: i64 = match param("recvWindow") {
        None => 5000,
        Some(text) => text.parse().map_err(|_| reject(700005, "recvWindow must less than 60000"))?,
    };
    if !(1..=60_000).contains(&recv_window) {
        return Err(reject(700005, "recvWindow must less than 60000"));
    }
    let timestamp: i64 = param("timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or(reject(700003, "Timestamp for this request is outside of the recvWindow."))?;
    if timestamp >= request.server_time_ms + 1000 || request.server_time_ms - timestamp > recv_window {
        return Err(reject(700003, "Timestamp for this request is outside of the recvWindow."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "45d0b3c26f2644f19bfb98b07741b2f5";
    const SIGNED: &str =
        "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=11&recvWindow=5000&timestamp=1644489390087";
    const SIGNATURE: &str = "fd3e4e8543c5188531eb7279d68ae7d26a573d0fc5ab0d18eb692451654d837a";

    fn request(query: &str, server_time_ms: i64) -> Result<(), Rejection> {
        let r = Request { api_key: Some("key"), query, body: "", server_time_ms };
        verify(&r, "key", SECRET)
    }

    #[test]
    fn accepts_the_documented_vector_within_the_window() {
        let query = format!("{SIGNED}&signature={SIGNATURE}");
        assert_eq!(request(&query, 1_644_489_390_087 + 4_999), Ok(()));
        assert_eq!(request(&query, 1_644_489_390_087 - 999), Ok(()));
    }

    #[test]
    fn rejects_bad_signature_key_and_time() {
        let query = format!("{SIGNED}&signature={SIGNATURE}");
        assert_eq!(request(&query, 1_644_489_390_087 + 5_001).unwrap_err().code, 700003);
        assert_eq!(request(&query, 1_644_489_390_087 - 1_000).unwrap_err().code, 700003);
        let tampered = query.replace("quantity=1", "quantity=2");
        assert_eq!(request(&tampered, 1_644_489_390_087).unwrap_err().code, 700002);
        assert_eq!(request(SIGNED, 1_644_489_390_087).unwrap_err().code, 700002);
        let wrong_key = Request { api_key: Some("other"), query: &query, body: "", server_time_ms: 0 };
        assert_eq!(verify(&wrong_key, "key", SECRET).unwrap_err().code, 10072);
    }
}
