//! The route table: every path the API answers, with its method and access level. Keeping it
//! here, not in the worker, lets native tests check it against the OpenAPI document and keeps
//! the worker a thin adapter.

use super::params::echo;
use super::{admin, auth, health, market, metrics, openapi, page, price, private, ApiError, ApiRequest, ApiResponse};
use crate::App;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// `Authorization: Bearer $READ_TOKEN`.
    Private,
    /// HMAC-signed, single use.
    Admin,
}

/// What a matched route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Page(page::Asset),
    Health,
    OpenApi,
    Price,
    PriceHistory,
    Ticker,
    Ohlcv,
    Deals,
    Orderbook,
    Account,
    Positions,
    Cost,
    RawLatest,
    RawHistory,
    SyncStatus,
    Stats,
    Metrics,
    SyncNow,
    Invalidate,
    Warm,
}

/// One route: method, path pattern (`{name}` matches one non-empty segment), access, handler.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
    pub access: Access,
    pub handler: Handler,
}

const fn route(method: &'static str, pattern: &'static str, access: Access, handler: Handler) -> Route {
    Route { method, pattern, access, handler }
}

pub const ROUTES: &[Route] = &[
    route("GET", "/", Access::Public, Handler::Page(page::Asset::Html)),
    route("GET", "/app.js", Access::Public, Handler::Page(page::Asset::Script)),
    route("GET", "/app.css", Access::Public, Handler::Page(page::Asset::Style)),
    route("GET", "/health", Access::Public, Handler::Health),
    route("GET", "/openapi.json", Access::Public, Handler::OpenApi),
    route("GET", "/v1/price/{symbol}", Access::Public, Handler::Price),
    route("GET", "/v1/price/{symbol}/history", Access::Public, Handler::PriceHistory),
    route("GET", "/v1/ticker/{symbol}", Access::Public, Handler::Ticker),
    route("GET", "/v1/ohlcv/{symbol}", Access::Public, Handler::Ohlcv),
    route("GET", "/v1/deals/{symbol}", Access::Public, Handler::Deals),
    route("GET", "/v1/orderbook/{symbol}", Access::Public, Handler::Orderbook),
    route("GET", "/v1/account", Access::Private, Handler::Account),
    route("GET", "/v1/positions", Access::Private, Handler::Positions),
    route("GET", "/v1/cost/{symbol}", Access::Private, Handler::Cost),
    route("GET", "/v1/raw/{endpoint}/latest", Access::Private, Handler::RawLatest),
    route("GET", "/v1/raw/{endpoint}/history", Access::Private, Handler::RawHistory),
    route("GET", "/v1/sync/status", Access::Private, Handler::SyncStatus),
    route("GET", "/v1/stats", Access::Private, Handler::Stats),
    route("GET", "/metrics", Access::Private, Handler::Metrics),
    route("POST", "/v1/admin/sync/{task}", Access::Admin, Handler::SyncNow),
    route("POST", "/v1/admin/invalidate", Access::Admin, Handler::Invalidate),
    route("POST", "/v1/admin/warm", Access::Admin, Handler::Warm),
];

/// Captured `{name}` segments of a matched pattern.
pub type Params = Vec<(&'static str, String)>;

/// Finds the route for `method` and `path`: 404 when no pattern matches the path, 405 (with
/// `Allow`) when patterns match but none for this method. `HEAD` is answered like `GET`.
pub fn resolve(method: &str, path: &str) -> Result<(&'static Route, Params), ApiError> {
    let method = if method.eq_ignore_ascii_case("HEAD") { "GET" } else { method };
    let mut allowed = Vec::new();
    for route in ROUTES {
        if let Some(params) = match_pattern(route.pattern, path) {
            if route.method.eq_ignore_ascii_case(method) {
                return Ok((route, params));
            }
            allowed.push(route.method);
        }
    }
    if allowed.is_empty() {
        return Err(ApiError::not_found(format!("no route for {}", echo(path))));
    }
    let mut error =
        ApiError::new(405, "method_not_allowed", format!("{} is not allowed on {}", echo(method), echo(path)));
    error.headers.push(("allow".into(), allowed.join(", ")));
    Err(error)
}

fn match_pattern(pattern: &'static str, path: &str) -> Option<Params> {
    let mut params = Vec::new();
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some(expected), Some(actual)) => {
                if let Some(name) = expected.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    if actual.is_empty() {
                        return None;
                    }
                    params.push((name, actual.to_owned()));
                } else if expected != actual {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

pub(super) async fn call(
    app: &App<'_>,
    route: &Route,
    params: &Params,
    request: &ApiRequest,
) -> Result<ApiResponse, ApiError> {
    match route.access {
        Access::Public => {}
        Access::Private => auth::require_reader(app, request)?,
        Access::Admin => auth::require_admin(app, request).await?,
    }
    let param = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).unwrap_or_default();
    match route.handler {
        Handler::Health => Ok(health::health(app, request.query_param("deep").is_some_and(|v| v != "0")).await),
        Handler::OpenApi => Ok(openapi::document()),
        Handler::Price => price::price(app, param("symbol")).await,
        Handler::PriceHistory => price::history(app, param("symbol"), request).await,
        Handler::Ticker => {
            market::read_through(app, market::query(app, market::MarketKind::Ticker, param("symbol"), request)?).await
        }
        Handler::Ohlcv => {
            market::read_through(app, market::query(app, market::MarketKind::Ohlcv, param("symbol"), request)?).await
        }
        Handler::Deals => {
            market::read_through(app, market::query(app, market::MarketKind::Deals, param("symbol"), request)?).await
        }
        Handler::Orderbook => {
            market::read_through(app, market::query(app, market::MarketKind::Orderbook, param("symbol"), request)?)
                .await
        }
        Handler::Account => private::account(app).await,
        Handler::Positions => private::positions(app).await,
        Handler::Cost => private::cost(app, param("symbol")).await,
        Handler::RawLatest => private::raw_latest(app, param("endpoint")).await,
        Handler::RawHistory => private::raw_history(app, param("endpoint"), request).await,
        Handler::SyncStatus => private::sync_status(app).await,
        Handler::Stats => private::store_stats(app).await,
        Handler::Metrics => metrics::metrics(app).await,
        Handler::Page(asset) => Ok(page::serve(app.page, asset)),
        Handler::SyncNow => admin::sync_now(app, param("task")).await,
        Handler::Invalidate => admin::invalidate(app, request).await,
        Handler::Warm => admin::warm_cache(app, request).await,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    #[test]
    fn the_openapi_document_has_exactly_these_routes() {
        let document: Value = serde_json::from_str(openapi::DOCUMENT).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let documented: BTreeSet<(String, String)> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                item.as_object().unwrap().keys().map(move |m| (m.to_ascii_uppercase(), path.clone()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> =
            ROUTES.iter().map(|r| (r.method.to_owned(), r.pattern.to_owned())).collect();
        assert_eq!(documented, routed);
    }

    #[test]
    fn resolves_paths_methods_and_params() {
        let (route, params) = resolve("GET", "/v1/price/QRLUSDT").unwrap();
        assert_eq!(route.handler, Handler::Price);
        assert_eq!(params, vec![("symbol", "QRLUSDT".to_owned())]);
        assert_eq!(resolve("GET", "/v1/price/QRLUSDT/history").unwrap().0.handler, Handler::PriceHistory);
        assert_eq!(resolve("GET", "/v1/price/").unwrap_err().status, 404);
        assert_eq!(resolve("GET", "/v1/price/A/B").unwrap_err().status, 404);
        assert_eq!(resolve("GET", "/nope").unwrap_err().status, 404);
        let wrong_method = resolve("POST", "/health").unwrap_err();
        assert_eq!(wrong_method.status, 405);
        assert_eq!(wrong_method.headers, vec![("allow".to_owned(), "GET".to_owned())]);
        assert_eq!(resolve("GET", "/v1/admin/warm").unwrap_err().status, 405);
    }
}
