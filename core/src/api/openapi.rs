//! The OpenAPI 3.1 document, served at `/openapi.json`. It is hand-written (`openapi.json`
//! beside this file) and pinned to the router by a test: the document's paths and methods
//! must be exactly the route table's.

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;
    use crate::api::routes::ROUTES;

    #[test]
    fn document_and_router_have_the_same_routes() {
        let document: Value = serde_json::from_str(DOCUMENT).unwrap();
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
}
