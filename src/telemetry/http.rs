//! The node's HTTP endpoints.
//!
//! `/metrics` (Prometheus text format 0.0.4), `/healthz` (liveness: 200 while the process
//! serves HTTP) and `/readyz` (200 when the journal takes a write and the scheduler answers,
//! each within 1 s; 503 with the failing check otherwise), served by axum on the node's
//! `http_addr`. The listener is bound before anything else starts, so a port in use stops
//! the node before it touches the journal.

use std::sync::Arc;

use super::health::ready;
use crate::context::NodeContext;

/// Serves `/metrics`, `/healthz`, `/readyz`, and the web UI and API ([`crate::web`], whose
/// tokens and sessions `auth` holds) on `listener` until `stop` is notified.
pub async fn serve_http(
    listener: std::net::TcpListener,
    shared: Arc<NodeContext>,
    auth: crate::web::Auth,
    stop: Arc<tokio::sync::Notify>,
) -> std::io::Result<()> {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;

    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(sh): axum::extract::State<Arc<NodeContext>>| async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        sh.metrics.render(),
                    )
                },
            ),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(
                |axum::extract::State(sh): axum::extract::State<Arc<NodeContext>>| async move {
                    match ready(&sh).await {
                        Ok(()) => (StatusCode::OK, "ready\n".to_string()).into_response(),
                        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n"))
                            .into_response(),
                    }
                },
            ),
        )
        .with_state(Arc::clone(&shared));
    let web = Arc::new(crate::web::Web::new(shared, auth));
    let app = app.merge(crate::web::router(web));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.notified().await })
        .await
}
