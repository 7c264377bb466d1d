//! The page's built files (`make wasm` bundles `web/src` into `web/build` first), compiled
//! into the worker so it serves them itself: one deployable, no request to anywhere else.

use edgesync_core::api::page::PageAssets;

pub static ASSETS: PageAssets = PageAssets {
    html: include_str!("../../web/build/index.html"),
    script: include_str!("../../web/build/app.js"),
    style: include_str!("../../web/build/app.css"),
};
