//! [`WorkerWaiter`]: how a request waits in workerd for another request's call it joined
//! (core's `single_flight`): on a timer of its own, so the runtime sees a pending event and
//! does not cancel it as hung, and resuming on a promise of its own, so what it does next
//! (building its response) happens in its own request's context, not the leader's that woke
//! it. workerd runs a promise's continuations in the context that created the promise even
//! when another request resolves it.

use std::time::Duration;

use edgesync_core::single_flight::{Wait, Waiter};
use worker::js_sys::{Function, Promise};
use worker::wasm_bindgen::JsValue;
use worker::wasm_bindgen_futures::JsFuture;

pub struct WorkerWaiter;

impl Waiter for WorkerWaiter {
    fn wait(&self, patience: Duration) -> Wait {
        // Both made now, in the waiting request's context: the timer starts when first
        // polled (at once, by the wait), the promise and its continuation here.
        let mut resolver: Option<Function> = None;
        let promise = Promise::new(&mut |resolve, _reject| resolver = Some(resolve));
        let resumed = JsFuture::from(promise);
        Wait {
            patience: Box::pin(worker::Delay::from(patience)),
            resume: Box::pin(async move {
                if let Some(resolve) = resolver {
                    // Resolving cannot fail; were it to, the wait below would be the timer's.
                    let _ = resolve.call0(&JsValue::UNDEFINED);
                    let _ = resumed.await;
                }
            }),
        }
    }
}
