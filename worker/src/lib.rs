//! The Cloudflare Worker: a thin adapter between workers-rs and `edgesync-core`.
//!
//! - `#[event(fetch)]` converts the request ([`inbound`]), calls
//!   [`edgesync_core::api::handle`], converts back. Whatever fails in the adapter itself is
//!   still a JSON error, never the runtime's text 500.
//! - `#[event(scheduled)]` runs [`edgesync_core::sync::run_cron`] and logs one JSON line per task.
//! - [`fetch_client`]: `worker::Fetch` as core's [`edgesync_core::http::HttpClient`].
//! - [`page`]: the page's built files, compiled in.
//! - [`runtime`]: builds core's services (config, store tier, clock, log) from the `Env`.
//! - [`durable_object`]: the `EdgeStore` Durable Object (SQLite) holding the durable copy;
//!   [`durable_transport`] reaches it from a request.
//!
//! No business logic lives here; it is all in core, where native tests reach it.

mod durable_object;
mod durable_transport;
mod fetch_client;
mod inbound;
mod page;
mod runtime;
mod waiter;

use edgesync_core::api::{self, ApiError, ApiResponse};
use worker::{event, Context, Env, Headers, Request, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let response = match inbound::read(&mut req).await {
        Ok(request) => match runtime::Runtime::from_env(&env) {
            Ok(runtime) => {
                let tiers = runtime.tiers();
                api::handle(&runtime.app(&tiers), &request).await
            }
            Err(error) => runtime::config_error_response(&error),
        },
        Err(error) => error.into_response(),
    };
    into_worker_response(response).or_else(|error| {
        let error = ApiError::new(500, "internal_error", format!("the response could not be built: {error}"));
        into_worker_response(error.into_response())
    })
}

#[event(scheduled)]
async fn scheduled(event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let runtime = match runtime::Runtime::from_env(&env) {
        Ok(runtime) => runtime,
        Err(error) => {
            // `scheduled` cannot fail visibly to Cloudflare, so the log line is the signal.
            worker::console_error!("{}", serde_json::json!({ "event": "config_error", "error": error.to_string() }));
            return;
        }
    };
    let tiers = runtime.tiers();
    match edgesync_core::sync::run_cron(&runtime.app(&tiers), &event.cron()).await {
        Ok(reports) => {
            for report in reports {
                let line = serde_json::to_string(&report).unwrap_or_default();
                if report.ok {
                    worker::console_log!("{line}");
                } else {
                    worker::console_error!("{line}");
                }
            }
        }
        Err(error) => {
            worker::console_error!("{}", serde_json::json!({ "event": "cron_unmapped", "error": error.to_string() }))
        }
    }
}

fn into_worker_response(response: ApiResponse) -> Result<Response> {
    let headers: Headers = response.headers.iter().collect();
    Ok(Response::from_bytes(response.body)?.with_status(response.status).with_headers(headers))
}
