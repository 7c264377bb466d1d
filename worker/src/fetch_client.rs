//! [`FetchClient`]: core's [`HttpClient`] over `worker::Fetch`, with the per-request timeout
//! enforced by racing the fetch against a timer and aborting the loser.

use async_trait::async_trait;
use edgesync_core::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};
use futures_util::future::{select, Either};
use worker::js_sys::Uint8Array;
use worker::{AbortController, Delay, Fetch, Headers, Request, RequestInit};

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

        let controller = AbortController::default();
        let signal = controller.signal();
        let exchange = Box::pin(async move {
            let fetch = Fetch::Request(outbound);
            let mut response = fetch.send_with_signal(&signal).await?;
            let status = response.status_code();
            let headers = response.headers().entries().collect();
            let body = response.bytes().await?;
            Ok::<_, worker::Error>(HttpResponse { status, headers, body })
        });
        let outcome = match select(exchange, Box::pin(Delay::from(request.timeout))).await {
            Either::Left((outcome, _)) => outcome.map_err(failed),
            Either::Right(_) => {
                controller.abort();
                Err(TransportError::Timeout(request.timeout))
            }
        };
        outcome
    }
}
