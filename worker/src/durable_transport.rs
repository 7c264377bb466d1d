//! [`ObjectTransport`]: core's durable-tier transport over a Durable Object stub — one
//! `fetch` to the namespace's `EdgeStore` instance per request, the body the JSON core
//! encoded (and decodes).

use async_trait::async_trait;
use edgesync_core::store::durable::DurableTransport;
use edgesync_core::store::StoreError;
use worker::{Env, Method, Request, RequestInit, Stub};

/// The binding name in wrangler.toml.
pub const BINDING: &str = "EDGE_STORE";

pub struct ObjectTransport {
    stub: Stub,
}

impl ObjectTransport {
    /// The stub of `namespace`'s instance, when the binding exists.
    pub fn for_namespace(env: &Env, namespace: &str) -> Option<Self> {
        let objects = env.durable_object(BINDING).ok()?;
        let stub = objects.id_from_name(namespace).ok()?.get_stub().ok()?;
        Some(Self { stub })
    }
}

#[async_trait(?Send)]
impl DurableTransport for ObjectTransport {
    async fn call(&self, request: String) -> Result<String, StoreError> {
        let unavailable = |error: worker::Error| StoreError::Unavailable(format!("durable copy: {error}"));
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(request.into()));
        // The host is never resolved: a stub's fetch goes to the object.
        let outbound = Request::new_with_init("https://edge-store.internal/", &init).map_err(unavailable)?;
        let mut response = self.stub.fetch_with_request(outbound).await.map_err(unavailable)?;
        response.text().await.map_err(unavailable)
    }
}
