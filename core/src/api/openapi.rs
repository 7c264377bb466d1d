//! The OpenAPI 3.1 document, served at `/openapi.json`. It is hand-written (`openapi.json`
//! beside this file) and pinned to the router by a test in `routes`: the document's paths and
//! methods must be exactly the route table's.

use super::ApiResponse;

pub const DOCUMENT: &str = include_str!("openapi.json");

pub fn document() -> ApiResponse {
    ApiResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: DOCUMENT.into(),
    }
    .with_header("cache-control", "public, max-age=3600")
}
