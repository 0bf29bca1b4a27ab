//! The HTML pages, rendered on the server with maud (every interpolated value is escaped,
//! so task ids, workflow names, reasons and log lines are text, never markup). Each page
//! works without JavaScript; `assets/app.js` adds live updates (docs/web.md).
//!
//! - [`runs`]: `/runs`, the runs with filters and paging.
//! - [`run`]: `/runs/{run}`, the run's DAG ([`super::graph`]) and task table; cancel.
//! - [`task`]: `/runs/{run}/tasks/{task}`, attempts and the log; retry, approve, reject.
//! - [`approvals`]: `/approvals`, the gates waiting for a decision.
//! - [`node`]: `/node`, health, queue, running attempts, charts; `/nodes`, worker nodes.
//! - [`tree`]: `/runs/{run}/tree`, the agent tree of a run.

mod approvals;
mod forms;
pub(crate) use forms::local_next;
pub use run::{DrawnGraph, GRAPH_REUSE};
mod node;
mod run;
mod runs;
mod task;
mod tree;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};

use super::{Viewer, Web, WebError};
use crate::model::{Counters, Timestamp};

pub use super::graph::url_segment;

/// The routes of the pages (GET pages and the forms' POST handlers).
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/runs", get(runs::page))
        .route("/runs/{run}", get(run::page))
        .route("/runs/{run}/graph", get(run::graph))
        .route("/runs/{run}/cancel", post(forms::cancel))
        .route("/runs/{run}/tree", get(tree::page))
        .route("/runs/{run}/tasks/{task}", get(task::page))
        .route("/runs/{run}/tasks/{task}/retry", post(forms::retry))
        .route("/runs/{run}/tasks/{task}/decide", post(forms::decide))
        .route("/approvals", get(approvals::page))
        .route("/node", get(node::page))
        .route("/nodes", get(node::nodes_page))
}

/// A page handler's error: rendered by [`error_page`] with its status.
pub(crate) struct PageError(pub WebError);

impl From<WebError> for PageError {
    fn from(e: WebError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        error_page(&self.0)
    }
}

/// What page handlers return.
pub(crate) type PageResult = Result<Response, PageError>;

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
                    a.brand href="/runs" { "troupe" }
                    a href="/runs" { "Runs" }
                    a href="/approvals" { "Approvals" }
                    a href="/node" { "Node" }
                    span.who {
                        @match viewer.name() {
                            Some(name) => {
                                "signed in as " strong { (name) }
                                @if let Some(csrf) = viewer.csrf() {
                                    form.inline method="post" action="/logout" {
                                        input type="hidden" name="csrf" value=(csrf);
                                        button type="submit" { "Log out" }
                                    }
                                }
                            }
                            None => { a href="/login" { "Log in" } }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A full page with status 200.
pub(crate) fn ok_page(title: &str, viewer: &Viewer, body: Markup) -> Response {
    layout(title, viewer, body).into_response()
}

/// An error as an HTML page with its status.
pub fn error_page(e: &WebError) -> Response {
    let title = e.status.canonical_reason().unwrap_or("Error");
    let body = html! {
        h1 { (e.status.as_u16()) " " (title) }
        p.error { (e.message) }
        p { a href="/runs" { "Back to the runs" } }
    };
    (e.status, layout(title, &Viewer::Anonymous, body)).into_response()
}

/// The login form; `error` says why the last try failed.
pub fn login_page(viewer: &Viewer, next: Option<&str>, error: Option<&str>) -> Response {
    let body = html! {
        h1 { "Log in" }
        @if let Some(e) = error { p.error { (e) } }
        form.login method="post" action="/login" {
            label { "Token " input type="password" name="token" autocomplete="current-password" required; }
            @if let Some(n) = next { input type="hidden" name="next" value=(n); }
            " " button type="submit" { "Log in" }
        }
        p.hint { "A token is a line `NAME TOKEN` of the node's " code { "[http] tokens_file" } "." }
    };
    let status = if error.is_some() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    (status, layout("Log in", viewer, body)).into_response()
}

/// The node's clock now, as the journal stamps events.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

/// A duration for people: `850 ms`, `12.3 s`, `4m 05s`, `2h 03m`, `3d 04h`.
pub(crate) fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1_000 {
        format!("{ms} ms")
    } else if s < 60 {
        format!("{:.1} s", d.as_secs_f64())
    } else if s < 3_600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h {:02}m", s / 3_600, (s % 3_600) / 60)
    } else {
        format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3_600)
    }
}

/// From `start` to `end` (or now, while it goes on); empty without a start.
pub(crate) fn span(start: Option<Timestamp>, end: Option<Timestamp>) -> String {
    match start {
        Some(s) => duration(end.unwrap_or_else(now).saturating_since(s)),
        None => String::new(),
    }
}

/// A `<time>` element showing `t` as RFC 3339 to the second.
pub(crate) fn time(t: Timestamp) -> Markup {
    let full = t.to_string();
    let shown = full.get(..19).map_or(full.clone(), |s| s.replace('T', " "));
    html! { time datetime=(full) title=(full) { (shown) } }
}

/// Usage counters as `key=value` pairs (empty: a dash).
pub(crate) fn counters(c: &Counters) -> Markup {
    html! {
        @if c.is_empty() {
            span.muted { "–" }
        } @else {
            @for (i, (k, v)) in c.iter().enumerate() {
                @if i > 0 { ", " }
                (k) "=" (number(*v))
            }
        }
    }
}

/// A number without a needless fraction: `3`, `0.25`, `1234.5`.
pub(crate) fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A small progress bar: `done` of `total` (with `failed` in red).
pub(crate) fn progress(done: u32, failed: u32, total: u32) -> Markup {
    let pct = |n: u32| {
        if total == 0 {
            0.0
        } else {
            100.0 * f64::from(n) / f64::from(total)
        }
    };
    html! {
        span.progress title=(format!("{done} of {total} succeeded, {failed} failed")) {
            span.bar {
                span.ok data-progress="ok" style=(format!("width:{:.1}%", pct(done))) {}
                span.bad data-progress="bad" style=(format!("width:{:.1}%", pct(failed))) {}
            }
            " " span data-summary="tasks_succeeded" { (done) } "/" span data-summary="tasks_total" { (total) }
        }
    }
}

/// The page of a run's task: `/runs/RUN/tasks/TASK`.
pub(crate) fn task_href(run: &crate::model::RunId, task: &str) -> String {
    format!("/runs/{run}/tasks/{}", url_segment(task))
}

/// A `?query` string of the non-empty `pairs`, percent-encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_segment(v)))
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

#[cfg(test)]
mod tests;
