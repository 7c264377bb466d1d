//! [`FetchClient`]: core's [`HttpClient`] over `worker::Fetch`, with the per-request timeout
//! enforced by the runtime's own `AbortSignal.timeout()` (connect to last body byte), so no
//! timer of ours races each request.

use async_trait::async_trait;
use edgesync_core::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError, RESPONSE_HEADERS};
use worker::js_sys::Uint8Array;
use worker::{AbortSignal, Fetch, Headers, Request, RequestInit};

pub struct FetchClient;

#[async_trait(?Send)]
impl HttpClient for FetchClient {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let failed = |e: worker::Error| TransportError::Failed(e.to_string());
        let headers = Headers::new();
        for (name, value) in &request.headers {
            headers.append(name, value).map_err(failed)?;
        }
        let mut init = RequestInit::new();
        init.with_method(match request.method {
            Method::Get => worker::Method::Get,
            Method::Post => worker::Method::Post,
        })
        .with_headers(headers);
        if let Some(body) = &request.body {
            init.with_body(Some(Uint8Array::from(body.as_slice()).into()));
        }
        let outbound = Request::new_with_init(&request.url, &init).map_err(failed)?;

        let signal = AbortSignal::from(worker::web_sys::AbortSignal::timeout_with_u32(
            u32::try_from(request.timeout.as_millis()).unwrap_or(u32::MAX),
        ));
        let exchange = async {
            let fetch = Fetch::Request(outbound);
            let mut response = fetch.send_with_signal(&signal).await?;
            let status = response.status_code();
            let all = response.headers();
            let headers = RESPONSE_HEADERS
                .iter()
                .filter_map(|name| all.get(name).ok().flatten().map(|value| (name.to_string(), value)))
                .collect();
            let body = response.bytes().await?;
            Ok::<_, worker::Error>(HttpResponse { status, headers, body })
        };
        let outcome = exchange.await.map_err(|error| {
            if signal.aborted() {
                TransportError::Timeout(request.timeout)
            } else {
                failed(error)
            }
        });
        outcome
    }
}
