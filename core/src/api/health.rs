//! `GET /health`: liveness and which store tier the worker runs on. Without Redis configured
//! the worker keeps data only in this isolate's memory, and says so here.

use serde_json::json;

use super::ApiResponse;
use crate::App;

pub fn health(app: &App<'_>) -> ApiResponse {
    let body = match app.config.redis {
        Some(_) => json!({ "status": "ok", "store": "redis", "version": env!("CARGO_PKG_VERSION") }),
        None => json!({
            "status": "ok",
            "store": "memory",
            "version": env!("CARGO_PKG_VERSION"),
            "warning": "no Redis configured (UPSTASH_REDIS_REST_URL unset): data lives only in this isolate's memory",
        }),
    };
    ApiResponse::json(200, &body).with_header("cache-control", "no-store")
}
