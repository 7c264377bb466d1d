//! The route table: every path the API answers, with its method. Keeping the table here,
//! not in the worker, lets native tests check it against the OpenAPI document and lets the
//! worker stay a thin adapter.

use super::{health, price, ApiError, ApiRequest, ApiResponse};
use crate::App;

/// What a matched route runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Health,
    Price,
}

/// One route: method, path pattern (`{name}` matches one non-empty segment), handler.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub pattern: &'static str,
    pub handler: Handler,
}

pub const ROUTES: &[Route] = &[
    Route { method: "GET", pattern: "/health", handler: Handler::Health },
    Route { method: "GET", pattern: "/v1/price/{symbol}", handler: Handler::Price },
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
        return Err(ApiError::not_found(format!("no route for {path}")));
    }
    let mut error = ApiError::new(405, "method_not_allowed", format!("{method} is not allowed on {path}"));
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
    let param = |name: &str| params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).unwrap_or_default();
    let _ = request;
    match route.handler {
        Handler::Health => Ok(health::health(app)),
        Handler::Price => price::price(app, param("symbol")).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_methods_and_params() {
        let (route, params) = resolve("GET", "/v1/price/QRLUSDT").unwrap();
        assert_eq!(route.handler, Handler::Price);
        assert_eq!(params, vec![("symbol", "QRLUSDT".to_owned())]);
        assert_eq!(resolve("GET", "/v1/price/").unwrap_err().status, 404);
        assert_eq!(resolve("GET", "/v1/price/A/B").unwrap_err().status, 404);
        assert_eq!(resolve("GET", "/nope").unwrap_err().status, 404);
        let wrong_method = resolve("POST", "/health").unwrap_err();
        assert_eq!(wrong_method.status, 405);
        assert_eq!(wrong_method.headers, vec![("allow".to_owned(), "GET".to_owned())]);
    }
}
