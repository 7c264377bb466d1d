//! [`FetchClient`]: core's [`HttpClient`] over the runtime's `fetch`, in one crossing each way:
//! a small JavaScript function (below) calls `fetch` — the body copied once, straight
//! from wasm memory — awaits the response and its whole body, and answers with the status, the
//! headers core reads and the bytes. Calling `Headers`, `RequestInit`, `Request`, `fetch`,
//! `arrayBuffer` one by one through `web_sys` crossed the wasm↔JS boundary a dozen times per
//! subrequest and wrapped two promises in Rust closures, which was most of what the isolate
//! spent per subrequest beyond the runtime's own work (`docs/benchmarks.md`, "CPU per cron
//! invocation"). The per-request timeout is the runtime's `AbortSignal.timeout()` (connect to
//! last body byte), so no timer of ours races it.

use async_trait::async_trait;
use edgesync_core::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError, RESPONSE_HEADERS};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
// One subrequest. `headers` is "name\nvalue\n…"; `body` a Uint8Array view of wasm memory (or
// undefined), which `fetch` copies into its request before this function first awaits. `wanted` names
// the response headers to answer, "name\n…". Answers [status, [header values], bytes], or
// [0, "timeout" | message] when no response came.
export async function edgesyncFetch(url, method, headers, body, timeoutMs, wanted) {
  try {
    const init = { method, signal: AbortSignal.timeout(timeoutMs) };
    if (headers.length > 0) {
      const parts = headers.split("\n");
      const pairs = [];
      for (let i = 0; i + 1 < parts.length; i += 2) pairs.push([parts[i], parts[i + 1]]);
      init.headers = pairs;
    }
    if (body !== undefined) init.body = body;
    // `fetch(url, init)`, not `fetch(new Request(url, init))`: fetch builds its own request
    // from whatever it is given, so one made here would be built twice.
    const response = await fetch(url, init);
    const found = wanted.split("\n").map((name) => response.headers.get(name));
    const bytes = new Uint8Array(await response.arrayBuffer());
    return [response.status, found, bytes];
  } catch (error) {
    const timedOut = error && (error.name === "TimeoutError" || error.name === "AbortError");
    return [0, timedOut ? "timeout" : String((error && error.message) || error)];
  }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = edgesyncFetch)]
    fn edgesync_fetch(
        url: &str,
        method: &str,
        headers: &str,
        body: JsValue,
        timeout_ms: u32,
        wanted: &str,
    ) -> js_sys::Promise;
}

pub struct FetchClient;

/// Core's `RESPONSE_HEADERS` as the script takes them (joined once per isolate).
fn wanted_headers() -> &'static str {
    static WANTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    WANTED.get_or_init(|| RESPONSE_HEADERS.join("\n"))
}

/// The headers as `edgesync_fetch` takes them: `name\nvalue\n…` (names and values never hold a
/// newline: the runtime would refuse them anyway).
fn joined_headers(request: &HttpRequest) -> String {
    let mut joined = String::new();
    for (name, value) in &request.headers {
        joined.push_str(name);
        joined.push('\n');
        joined.push_str(value);
        joined.push('\n');
    }
    joined
}

fn text(value: &JsValue) -> String {
    value.as_string().unwrap_or_else(|| format!("{value:?}"))
}

#[async_trait(?Send)]
impl HttpClient for FetchClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let timeout_ms = u32::try_from(request.timeout.as_millis()).unwrap_or(u32::MAX);
        let method = match request.method {
            Method::Get => "GET",
            Method::Post => "POST",
        };
        let headers = joined_headers(&request);
        // Before the view below: its first call allocates.
        let wanted = wanted_headers();
        let promise = match &request.body {
            // SAFETY: the view over wasm memory is read only by `fetch`, which copies the
            // body before `edgesyncFetch` first awaits, i.e. before this call returns; nothing
            // allocates in wasm in between (an allocation could grow the memory and detach the
            // view). It saves copying a pipeline (hundreds of KB) into a JS buffer first.
            Some(body) => edgesync_fetch(
                &request.url,
                method,
                &headers,
                unsafe { js_sys::Uint8Array::view(body) }.into(),
                timeout_ms,
                wanted,
            ),
            None => edgesync_fetch(&request.url, method, &headers, JsValue::UNDEFINED, timeout_ms, wanted),
        };
        let answer: js_sys::Array =
            JsFuture::from(promise).await.map_err(|e| TransportError::Failed(text(&e)))?.unchecked_into();
        let status = answer.get(0).as_f64().unwrap_or(0.0) as u16;
        if status == 0 {
            let why = text(&answer.get(1));
            return Err(if why == "timeout" {
                TransportError::Timeout(request.timeout)
            } else {
                TransportError::Failed(why)
            });
        }
        let found: js_sys::Array = answer.get(1).unchecked_into();
        let headers = RESPONSE_HEADERS
            .iter()
            .enumerate()
            .filter_map(|(i, name)| found.get(i as u32).as_string().map(|value| (name.to_string(), value)))
            .collect();
        let body = answer.get(2).unchecked_into::<js_sys::Uint8Array>().to_vec();
        Ok(HttpResponse { status, headers, body })
    }
}
