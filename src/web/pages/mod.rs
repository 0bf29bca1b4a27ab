//! The HTML pages, rendered on the server with maud (every interpolated value is escaped,
//! so task ids, workflow names, reasons and log lines are text, never markup). Each page
//! works without JavaScript; `assets/app.js` adds live updates.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};

use super::{Viewer, Web, WebError};

/// The routes of the pages.
pub fn routes() -> Router<Arc<Web>> {
    Router::new().route("/", get(|| async { Redirect::to("/runs") }))
}

/// The frame every page shares: head, navigation, who is logged in.
pub fn layout(title: &str, viewer: &Viewer, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(csrf) = viewer.csrf() {
                    meta name="csrf-token" content=(csrf);
                }
                title { (title) " · troupe" }
                link rel="stylesheet" href="/assets/app.css";
                script src="/assets/app.js" defer {}
            }
            body {
                nav {
                    a href="/runs" { "Runs" }
                    " " a href="/approvals" { "Approvals" }
                    " " a href="/node" { "Node" }
                    span.who {
                        @match viewer.name() {
                            Some(name) => { "signed in as " (name) }
                            None => { a href="/login" { "Log in" } }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// An error as an HTML page with its status.
pub fn error_page(e: &WebError) -> Response {
    let title = e.status.canonical_reason().unwrap_or("Error");
    let body = html! {
        h1 { (e.status.as_u16()) " " (title) }
        p.error { (e.message) }
    };
    (e.status, layout(title, &Viewer::Anonymous, body)).into_response()
}

/// The login form; `error` says why the last try failed.
pub fn login_page(viewer: &Viewer, next: Option<&str>, error: Option<&str>) -> Response {
    let body = html! {
        h1 { "Log in" }
        @if let Some(e) = error { p.error { (e) } }
        form method="post" action="/login" {
            label { "Token " input type="password" name="token" autocomplete="current-password" required; }
            @if let Some(n) = next { input type="hidden" name="next" value=(n); }
            " " button type="submit" { "Log in" }
        }
    };
    let status = if error.is_some() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    (status, layout("Log in", viewer, body)).into_response()
}
