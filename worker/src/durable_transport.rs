//! [`ObjectTransport`]: core's durable-tier transport over a Durable Object stub — one
//! `fetch` to the namespace's `EdgeStore` instance per request, the body the JSON core
//! encoded (and decodes). Like the exchange's and Redis's subrequests (`fetch_client.rs`), a
//! call is one small JavaScript function: the request body goes from a view of wasm memory
//! and the answer comes back as bytes, in one crossing each way, rather than through
//! `Request`, `RequestInit`, the stub's `fetch` and `text()` one by one with a copy of the
//! body into a JavaScript string first.

use async_trait::async_trait;
use edgesync_core::store::durable::DurableTransport;
use edgesync_core::store::StoreError;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::Env;

/// The binding name in wrangler.toml.
pub const BINDING: &str = "EDGE_STORE";

#[wasm_bindgen(inline_js = r#"
// The stub of `name`'s instance in the namespace `objects`.
export function edgesyncObjectStub(objects, name) {
  return objects.get(objects.idFromName(name));
}
// One request to the object: `body` is a Uint8Array view of wasm memory, which `fetch` copies
// into its request before this function first awaits (fetch builds its own request from
// whatever it is given, so one made here would be built twice). Answers [status, bytes] or [0, message].
export async function edgesyncCallObject(stub, body) {
  try {
    // The host is never resolved: a stub's fetch goes to the object.
    const response = await stub.fetch("https://edge-store.internal/", { method: "POST", body });
    return [response.status, new Uint8Array(await response.arrayBuffer())];
  } catch (error) {
    return [0, String((error && error.message) || error)];
  }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = edgesyncObjectStub, catch)]
    fn object_stub(objects: &JsValue, name: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = edgesyncCallObject)]
    fn call_object(stub: &JsValue, body: JsValue) -> js_sys::Promise;
}

pub struct ObjectTransport {
    stub: JsValue,
}

impl ObjectTransport {
    /// The stub of `namespace`'s instance, when the binding exists.
    pub fn for_namespace(env: &Env, namespace: &str) -> Option<Self> {
        let objects: JsValue = env.durable_object(BINDING).ok()?.into();
        Some(Self { stub: object_stub(&objects, namespace).ok()? })
    }
}

fn unavailable(message: String) -> StoreError {
    StoreError::Unavailable(format!("durable copy: {message}"))
}

#[async_trait(?Send)]
impl DurableTransport for ObjectTransport {
    async fn call(&self, request: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        // SAFETY: the view over wasm memory is read only by `fetch`, which copies the body
        // before `edgesyncCallObject` first awaits, i.e. before this call returns; nothing
        // allocates in wasm in between (an allocation could grow the memory and detach it).
        let promise = call_object(&self.stub, unsafe { js_sys::Uint8Array::view(&request) }.into());
        let answer: js_sys::Array =
            JsFuture::from(promise).await.map_err(|error| unavailable(format!("{error:?}")))?.unchecked_into();
        match answer.get(0).as_f64() {
            Some(status) if (200.0..300.0).contains(&status) => {
                Ok(answer.get(1).unchecked_into::<js_sys::Uint8Array>().to_vec())
            }
            Some(status) if status > 0.0 => Err(unavailable(format!("the object answered {status}"))),
            _ => Err(unavailable(answer.get(1).as_string().unwrap_or_else(|| "no answer".to_owned()))),
        }
    }
}
