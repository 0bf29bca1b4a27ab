//! Static assets compiled into the binary (`include_str!`), served under `/assets/` with a
//! day of caching: the stylesheet and the script that adds live updates to the pages.

use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::Web;

/// The stylesheet.
pub const APP_CSS: &str = include_str!("assets/app.css");

/// The script: live updates (SSE), log follow; the pages work without it.
pub const APP_JS: &str = include_str!("assets/app.js");

/// `/assets/app.css` and `/assets/app.js`.
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route(
            "/assets/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
}
