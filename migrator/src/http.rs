//! [`NativeHttp`]: core's [`HttpClient`] over a blocking `ureq` agent (with rustls for
//! `https://`), so native code drives the same `UpstashClient` the worker uses. Blocking
//! inside `async fn` is fine here: the CLI and tests drive one future at a time.

use async_trait::async_trait;
use edgesync_core::http::{HttpClient, HttpRequest, HttpResponse, Method, TransportError};

pub struct NativeHttp {
    agent: ureq::Agent,
}

impl Default for NativeHttp {
    /// Trusts Mozilla's roots (bundled) for `https://`.
    fn default() -> Self {
        Self { agent: ureq::Agent::config_builder().http_status_as_error(false).build().into() }
    }
}

impl NativeHttp {
    /// Trusts only `roots` for `https://` (a private CA).
    pub fn trusting(roots: Vec<ureq::tls::Certificate<'static>>) -> Self {
        let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&roots)).build();
        Self { agent: ureq::Agent::config_builder().http_status_as_error(false).tls_config(tls).build().into() }
    }
}

#[async_trait(?Send)]
impl HttpClient for NativeHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let mut builder = ureq::http::Request::builder()
            .method(match request.method {
                Method::Get => "GET",
                Method::Post => "POST",
            })
            .uri(&request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let outbound =
            builder.body(request.body.unwrap_or_default()).map_err(|e| TransportError::Failed(e.to_string()))?;
        let configured = self.agent.configure_request(outbound).timeout_global(Some(request.timeout)).build();
        let mut response = self.agent.run(configured).map_err(|e| match e {
            ureq::Error::Timeout(_) => TransportError::Timeout(request.timeout),
            other => TransportError::Failed(other.to_string()),
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = response.body_mut().read_to_vec().map_err(|e| TransportError::Failed(e.to_string()))?;
        Ok(HttpResponse { status, headers, body })
    }
}
