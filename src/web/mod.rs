//! The web UI and the HTTP API, served by the node on `http_addr` beside `/metrics`
//! (docs/web.md, docs/http-api.md; decision D71).
//!
//! Everything here reads from the read model ([`crate::read`]) and acts through the same
//! router as the control socket ([`crate::actors::control::route`]): a page or an API call
//! is one more client, never a second way into the scheduler.
//!
//! # Layout
//! - [`auth`]: the tokens file, sessions, CSRF tokens; the guard every request passes.
//! - [`error`]: errors as JSON (`/api/`) with a fitting HTTP status.
//! - [`actions`]: submit, cancel, retry, approve, reject: shared by the API and the pages.
//! - [`api`]: the JSON endpoints under `/api/` and the OpenAPI document.
//! - [`live`]: Server-Sent Events: the committed-event feed (`/api/events`) and a run's task
//!   states (`/api/runs/{run}/stream`, what a run page follows).
//! - [`pages`]: the HTML pages (maud).
//! - [`graph`]: a run's DAG as SVG, laid out by layout-rs (summarised for big runs).
//! - [`assets`]: CSS and JavaScript compiled into the binary.

pub mod actions;
pub mod api;
pub mod assets;
pub mod auth;
pub mod error;
pub mod graph;
pub mod live;
pub mod pages;

use std::sync::Arc;

use axum::Router;

use crate::context::NodeContext;
use crate::messages::control::{Request, Response};
pub use auth::{Auth, Viewer};
pub use error::WebError;

/// What every handler of the web UI and API shares.
pub struct Web {
    /// The node: its read model, its router, its config (data dir, logs).
    pub ctx: Arc<NodeContext>,
    /// Tokens and sessions.
    pub auth: Auth,
    /// The producers of the run pages' live streams, one per followed run.
    pub streams: Arc<live::RunStreams>,
    /// Summarised graphs drawn in the last [`pages::GRAPH_REUSE`], by run: every open page
    /// of a big run re-fetches its graph, and they share one drawing.
    pub graphs: std::sync::Mutex<std::collections::HashMap<crate::model::RunId, pages::DrawnGraph>>,
}

impl Web {
    /// The web UI and API of the node `ctx`, with `auth`'s tokens.
    pub fn new(ctx: Arc<NodeContext>, auth: Auth) -> Self {
        Web {
            ctx,
            auth,
            streams: Arc::default(),
            graphs: Default::default(),
        }
    }

    /// Answers `request` as the control socket would (reads from the read model, commands
    /// once durable). A `Response::Error` becomes a [`WebError`] with a fitting status.
    pub async fn ask(&self, request: Request) -> Result<Response, WebError> {
        match crate::actors::control::route(&self.ctx, request).await {
            Ok(Response::Error(e)) => Err(WebError::from(e)),
            Ok(r) => Ok(r),
            Err(e) => Err(WebError::unavailable(e.to_string())),
        }
    }
}

/// The web UI's and API's routes, behind the [`auth::guard`]; merged into the node's HTTP
/// server by [`crate::telemetry::http::serve_http`].
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .nest("/api", api::routes())
        .merge(pages::routes())
        .merge(assets::routes())
        .merge(auth::routes())
        .fallback(|| async { pages::error_page(&WebError::not_found("no such page")) })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&web),
            auth::guard,
        ))
        .with_state(web)
}
