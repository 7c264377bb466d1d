//! [`FetchClient`]: core's [`HttpClient`] over the runtime's `fetch`, called through
//! `web_sys` directly: one call builds the request, one awaits the response, one awaits the
//! whole body as an `ArrayBuffer` (copied into wasm memory once) — rather than reading the
//! body stream chunk by chunk through closures, which is most of a subrequest's isolate CPU
//! (`docs/benchmarks.md`, "CPU per cron invocation"). The per-request timeout is the runtime's
//! own `AbortSignal.timeout()` (connect to last body byte), so no timer of ours races it.

use async_trait::async_trait;
use edgesync_core::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError, RESPONSE_HEADERS};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortSignal, Headers, Request, RequestInit, Response, WorkerGlobalScope};

pub struct FetchClient;

fn failed(error: JsValue) -> TransportError {
    let message = error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"));
    TransportError::Failed(message)
}

async fn exchange(request: &HttpRequest, signal: &AbortSignal) -> Result<HttpResponse, JsValue> {
    let headers = Headers::new()?;
    for (name, value) in &request.headers {
        headers.append(name, value)?;
    }
    let init = RequestInit::new();
    init.set_method(match request.method {
        Method::Get => "GET",
        Method::Post => "POST",
    });
    init.set_headers(&headers);
    init.set_signal(Some(signal));
    if let Some(body) = &request.body {
        init.set_body(&js_sys::Uint8Array::from(body.as_slice()));
    }
    // A `Request` rather than `fetch(url, init)`: the runtime builds one either way, and
    // `wrangler dev`'s fetch wrapper (which checks URLs) would build a second one from a string.
    let outbound = Request::new_with_str_and_init(&request.url, &init)?;
    // `fetch` is a method of the global scope in workerd; no `instanceof` check needed.
    let global: WorkerGlobalScope = js_sys::global().unchecked_into();
    let response: Response = JsFuture::from(global.fetch_with_request(&outbound)).await?.unchecked_into();
    let status = response.status();
    let all = response.headers();
    let headers = RESPONSE_HEADERS
        .iter()
        .filter_map(|name| all.get(name).ok().flatten().map(|value| (name.to_string(), value)))
        .collect();
    let buffer = JsFuture::from(response.array_buffer()?).await?;
    let body = js_sys::Uint8Array::new(&buffer).to_vec();
    Ok(HttpResponse { status, headers, body })
}

#[async_trait(?Send)]
impl HttpClient for FetchClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let signal = AbortSignal::timeout_with_u32(u32::try_from(request.timeout.as_millis()).unwrap_or(u32::MAX));
        exchange(&request, &signal).await.map_err(|error| {
            if signal.aborted() {
                TransportError::Timeout(request.timeout)
            } else {
                failed(error)
            }
        })
    }
}
