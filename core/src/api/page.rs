//! `GET /`, `/app.js`, `/app.css`: the trader's page (`web/src`, bundled by esbuild at build
//! time). The edge hands the built files in as [`PageAssets`]; core routes and serves them,
//! with a content security policy that lets the page talk to this origin only — the page
//! loads nothing from anywhere else, and the browser enforces it.

use super::ApiResponse;

/// The built page. Empty strings where an edge has none (native tests).
#[derive(Debug, Clone, Copy)]
pub struct PageAssets {
    pub html: &'static str,
    pub script: &'static str,
    pub style: &'static str,
}

impl PageAssets {
    pub const NONE: PageAssets = PageAssets { html: "", script: "", style: "" };
}

/// One of the page's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Html,
    Script,
    Style,
}

/// Same origin only; uPlot sets inline styles on the elements it draws.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn serve(assets: &PageAssets, asset: Asset) -> ApiResponse {
    let (body, content_type, cache) = match asset {
        // The page is small and names its files without versions: revalidate it each time.
        Asset::Html => (assets.html, "text/html; charset=utf-8", "no-cache"),
        Asset::Script => (assets.script, "text/javascript; charset=utf-8", "public, max-age=300"),
        Asset::Style => (assets.style, "text/css; charset=utf-8", "public, max-age=300"),
    };
    if body.is_empty() {
        return super::ApiError::new(404, "not_found", "this build has no page").into_response();
    }
    ApiResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), content_type.into()),
            ("cache-control".into(), cache.into()),
            ("content-security-policy".into(), CONTENT_SECURITY_POLICY.into()),
            ("x-content-type-options".into(), "nosniff".into()),
            ("referrer-policy".into(), "no-referrer".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}
