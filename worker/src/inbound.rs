//! The inbound request as core's [`ApiRequest`], read within bounds: a URL longer than
//! [`MAX_URL_BYTES`] is a 414, and a body is refused by its `Content-Length` before a byte is
//! read, or — without one (chunked) — streamed and refused once it passes [`MAX_BODY_BYTES`].
//! An isolate has 128 MB; buffering a hostile upload whole would cost it and its memory tier,
//! so nothing here holds more than the cap.

use edgesync_core::api::{ApiError, ApiRequest, MAX_BODY_BYTES, REQUEST_HEADERS};
use worker::js_sys::{Reflect, Uint8Array};
use worker::wasm_bindgen::JsCast;
use worker::wasm_bindgen_futures::JsFuture;
use worker::web_sys::ReadableStreamDefaultReader;
use worker::Request;

/// Longest URL accepted, in bytes (Cloudflare's own limit is 16 KB).
pub const MAX_URL_BYTES: usize = 8 * 1024;

fn too_large(what: &str) -> ApiError {
    ApiError::new(413, "body_too_large", format!("request bodies are limited to {MAX_BODY_BYTES} bytes; {what}"))
}

pub async fn read(req: &mut Request) -> Result<ApiRequest, ApiError> {
    let url = req.url().map_err(|e| ApiError::new(400, "bad_request", format!("the URL cannot be read: {e}")))?;
    if url.as_str().len() > MAX_URL_BYTES {
        return Err(ApiError::new(414, "uri_too_long", format!("URLs are limited to {MAX_URL_BYTES} bytes")));
    }
    // Only the headers core reads cross the JS boundary.
    let all = req.headers();
    let headers: Vec<(String, String)> = REQUEST_HEADERS
        .iter()
        .filter_map(|name| all.get(name).ok().flatten().map(|value| (name.to_string(), value)))
        .collect();
    if let Some(length) = all.get("content-length").ok().flatten() {
        if length.trim().parse::<u64>().map_or(true, |n| n > MAX_BODY_BYTES as u64) {
            return Err(too_large(&format!("Content-Length is {}", length.chars().take(20).collect::<String>())));
        }
    }
    let body = match req.inner().body() {
        Some(stream) => read_capped(stream.get_reader().unchecked_into()).await?,
        None => Vec::new(),
    };
    Ok(ApiRequest {
        method: req.method().to_string(),
        path: url.path().to_owned(),
        query: url.query().unwrap_or_default().to_owned(),
        headers,
        body,
    })
}

fn unreadable(error: worker::wasm_bindgen::JsValue) -> ApiError {
    ApiError::new(400, "bad_request", format!("the body cannot be read: {error:?}"))
}

/// How much of an over-long body without a length is read and thrown away before the
/// stream is cancelled. Draining lets the connection carry the next request (`wrangler dev`'s
/// proxy stalls for ~20 s on a request whose body was cancelled half-read); memory stays at
/// the cap either way.
pub const MAX_DRAIN_BYTES: usize = 16 * 1024 * 1024;

fn done(step: &worker::wasm_bindgen::JsValue) -> Result<bool, ApiError> {
    Ok(Reflect::get(step, &"done".into()).map_err(unreadable)?.is_truthy())
}

/// Reads the body until it ends or passes [`MAX_BODY_BYTES`]. Past the cap nothing more is
/// kept: the rest is drained up to [`MAX_DRAIN_BYTES`], then the stream is cancelled.
async fn read_capped(reader: ReadableStreamDefaultReader) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    loop {
        let step = JsFuture::from(reader.read()).await.map_err(unreadable)?;
        if done(&step)? {
            return Ok(body);
        }
        let chunk: Uint8Array = Reflect::get(&step, &"value".into()).map_err(unreadable)?.unchecked_into();
        if body.len() + chunk.length() as usize <= MAX_BODY_BYTES {
            body.extend_from_slice(&chunk.to_vec());
            continue;
        }
        let mut drained = body.len() + chunk.length() as usize;
        drop(body);
        while drained <= MAX_DRAIN_BYTES {
            let step = JsFuture::from(reader.read()).await.map_err(unreadable)?;
            if done(&step)? {
                return Err(too_large("this one is longer"));
            }
            let length = Reflect::get(&step, &"value".into()).map_err(unreadable)?;
            drained += length.unchecked_into::<Uint8Array>().length() as usize;
        }
        let _ = JsFuture::from(reader.cancel()).await;
        return Err(too_large("this one is longer"));
    }
}
