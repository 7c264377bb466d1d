//! Admin calls as an operator makes them, following the README's recipe independently of the
//! worker's code: HMAC-SHA256 over `{timestamp}\n{METHOD}\n{path_and_query}\n{hex sha256(body)}`.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::harness::{HttpAnswer, Stack};

/// Unix seconds now.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

/// The lowercase hex signature of a `POST` to `path_and_query` with `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: &str, path_and_query: &str, body: &[u8]) -> String {
    let message = format!("{timestamp}\nPOST\n{path_and_query}\n{}", hex::encode(Sha256::digest(body)));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A `POST` with the given timestamp and signature headers.
pub fn post_signed(stack: &Stack, path_and_query: &str, body: &[u8], timestamp: &str, signature: &str) -> HttpAnswer {
    stack.request(
        "POST",
        path_and_query,
        &[
            ("x-edgesync-timestamp", timestamp),
            ("x-edgesync-signature", signature),
            ("content-type", "application/json"),
        ],
        body,
    )
}

/// A `POST` of `body` signed now with `secret`.
pub fn post(stack: &Stack, secret: &str, path_and_query: &str, body: &Value) -> HttpAnswer {
    let body = body.to_string();
    let timestamp = now_secs().to_string();
    let signature = sign(secret, &timestamp, path_and_query, body.as_bytes());
    post_signed(stack, path_and_query, body.as_bytes(), &timestamp, &signature)
}
