//! `/runs/{run}[?page=N]`: a run's summary, its DAG as SVG ([`crate::web::graph`]) and its
//! task table (paged by [`TASKS_PER_PAGE`] above [`TABLE_PAGED_ABOVE`] tasks); the cancel
//! form while it is unfinished. `app.js` follows `/api/runs/{run}/stream` to recolour the
//! nodes and update the table and the state without a reload; a summarised graph it
//! refreshes from `/runs/{run}/graph` (the SVG alone) at most every 2 s while tasks move.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::forms::{csrf_input, login_link};
use super::{counters, ok_page, progress, span, task_href, time, PageResult};
use crate::messages::control::{RunView, TaskView};
use crate::model::RunId;
use crate::web::api::{parse_run, run_view};
use crate::web::graph::{dag_svg, FULL_GRAPH_MAX_TASKS};
use crate::web::{Viewer, Web, WebError};

/// Rows of the task table a page shows once the run has more than [`TABLE_PAGED_ABOVE`]
/// tasks.
pub const TASKS_PER_PAGE: usize = 500;

/// Up to this many tasks the task table shows them all.
pub const TABLE_PAGED_ABOVE: usize = 2_000;

/// The run page's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunQuery {
    /// 1-based page of the task table.
    page: Option<usize>,
}

pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Path(run): Path<String>,
    Query(q): Query<RunQuery>,
) -> PageResult {
    let run = parse_run(&run)?;
    let mut view = run_view(&web, run).await?;
    let tasks = std::mem::take(&mut view.tasks);
    // The layout is CPU work (tens of ms for big graphs): off the async threads.
    let (svg, tasks) = tokio::task::spawn_blocking(move || (dag_svg(run, &tasks), tasks))
        .await
        .map_err(|e| WebError::unavailable(format!("drawing the graph failed: {e}")))?;
    view.tasks = tasks;
    let body = render(&view, &viewer, svg, q.page.unwrap_or(1));
    Ok(ok_page(&view.summary.name, &viewer, body))
}

/// How long a summarised graph is served to other pages before it is drawn again.
pub const GRAPH_REUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// A summarised graph as drawn, shared by the pages that re-fetch it.
#[derive(Debug, Clone)]
pub struct DrawnGraph {
    /// When it was drawn.
    drawn: std::time::Instant,
    /// The SVG.
    svg: Arc<String>,
}

/// `/runs/{run}/graph`: the run's DAG alone (`image/svg+xml`), as the page draws it; what
/// `app.js` fetches to refresh a summarised graph.
pub(crate) async fn graph(State(web): State<Arc<Web>>, Path(run): Path<String>) -> PageResult {
    let run = parse_run(&run)?;
    let now = std::time::Instant::now();
    let reused = web
        .graphs
        .lock()
        .expect("not poisoned")
        .get(&run)
        .filter(|g| now.duration_since(g.drawn) < GRAPH_REUSE)
        .map(|g| Arc::clone(&g.svg));
    let svg = match reused {
        Some(svg) => svg,
        None => {
            let view = run_view(&web, run).await?;
            let n = view.tasks.len();
            let svg = tokio::task::spawn_blocking(move || dag_svg(run, &view.tasks).into_string())
                .await
                .map_err(|e| WebError::unavailable(format!("drawing the graph failed: {e}")))?;
            let svg = Arc::new(svg);
            // Only summarised graphs are shared: a full graph is small and pages of a small
            // run are few.
            if n > FULL_GRAPH_MAX_TASKS {
                let mut graphs = web.graphs.lock().expect("not poisoned");
                graphs.retain(|_, g| now.duration_since(g.drawn) < GRAPH_REUSE);
                graphs.insert(
                    run,
                    DrawnGraph {
                        drawn: now,
                        svg: Arc::clone(&svg),
                    },
                );
            }
            svg
        }
    };
    let svg = svg.as_str().to_owned();
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

/// The page's body (without the frame).
pub(crate) fn render(view: &RunView, viewer: &Viewer, svg: Markup, page: usize) -> Markup {
    let s = &view.summary;
    let run = s.id;
    let state = s.state.as_str();
    let n = view.tasks.len();
    let paged = n > TABLE_PAGED_ABOVE;
    let pages = if paged { n.div_ceil(TASKS_PER_PAGE) } else { 1 };
    let page = page.clamp(1, pages.max(1));
    let rows_from = if paged {
        (page - 1) * TASKS_PER_PAGE
    } else {
        0
    };
    let rows: &[TaskView] = if paged {
        let from = (page - 1) * TASKS_PER_PAGE;
        &view.tasks[from..(from + TASKS_PER_PAGE).min(n)]
    } else {
        &view.tasks
    };
    html! {
        section.run-head data-run-page=(run.to_string()) data-rows-from=(rows_from) data-rows-to=(rows_from + rows.len()) {
            h1 { (s.name) }
            p.lead {
                "Run " code { (run.to_string()) } " is "
                span.state.badge data-run-state=(state) { (state) }
                @if view.suspended { " " span.tag data-suspended { "suspended" } }
                @if let Some(a) = &s.asking { " " span.tag.await { "asks: " (a) } }
            }
            dl.summary {
                dt { "Progress" } dd { (progress(s.succeeded, s.failed, s.tasks)) }
                dt { "Running" } dd data-summary="tasks_running" { (s.running) }
                dt { "Failed" } dd data-summary="tasks_failed" { (s.failed) }
                dt { "Awaiting approval" } dd data-summary="tasks_awaiting_approval" { (s.awaiting_approval) }
                dt { "Submitted" } dd { (time(s.submitted_at)) }
                dt { "Finished" } dd data-summary="finished_at" {
                    @if let Some(f) = s.finished_at { (time(f)) } @else { "–" }
                }
                dt { "Duration" } dd { (span(Some(s.submitted_at), s.finished_at)) }
                dt { "Usage" } dd { (counters(&view.usage)) }
                @if let Some((p, t)) = &s.parent {
                    dt { "Spawned by" } dd {
                        a href=(task_href(p, t.as_str())) { code { (p.to_string()) } " / " (t.as_str()) }
                        @if let Some(k) = &s.key { " (key " code { (k) } ")" }
                    }
                }
                @if s.parent.is_some() || s.children.0 > 0 {
                    dt { "Agent tree" } dd {
                        a #tree-link href=(format!("/runs/{run}/tree")) { "the tree" }
                        " (" (s.children.0) " children, " (s.children.1) " live)"
                    }
                }
            }
            @if !s.state.is_finished() {
                @if viewer.name().is_some() {
                    form.cancel.act method="post" action=(format!("/runs/{run}/cancel")) {
                        (csrf_input(viewer))
                        button.danger type="submit" { "Cancel run" }
                    }
                } @else {
                    p.hint.cancel { (login_link(&format!("/runs/{run}"), "Log in to cancel this run")) }
                }
            }
        }
        h2 { "Graph" }
        @if n > FULL_GRAPH_MAX_TASKS {
            p.hint { (n) " tasks: more than " (FULL_GRAPH_MAX_TASKS)
                ", so the graph shows groups of tasks (by id prefix, or by dependency depth) with their states' counts." }
        }
        div.graph { (svg) }
        div.legend {
            @for st in crate::model::TaskState::ALL {
                span class=(format!("key state-{}", st.as_str())) { (st.as_str()) }
            }
        }
        h2 #tasks-heading { "Tasks" }
        @if paged { (pager(run, page, pages, n)) }
        table #tasks {
            thead { tr {
                th { "Task" } th { "State" } th { "Attempts" } th { "Duration" }
                th { "Failure" } th { "Node" } th { "Usage" }
            } }
            tbody {
                @for t in rows {
                    tr data-task=(t.id.as_str()) class=(format!("state-{}", t.state.as_str())) {
                        td.id { a href=(task_href(&run, t.id.as_str())) { (t.id.as_str()) } }
                        td.state { (t.state.as_str()) }
                        td.attempts { (t.attempts) }
                        td.duration { (span(t.started_at, t.finished_at)) }
                        td.failure title=(t.last_failure.as_deref().unwrap_or("")) {
                            (t.last_failure_kind.as_deref().unwrap_or(""))
                        }
                        td.node { (t.node.as_deref().unwrap_or("")) }
                        td.usage { (counters(&t.usage)) }
                    }
                }
            }
        }
        @if paged { (pager(run, page, pages, n)) }
    }
}

/// Links to the task table's other pages.
fn pager(run: RunId, page: usize, pages: usize, n: usize) -> Markup {
    let from = (page - 1) * TASKS_PER_PAGE + 1;
    let to = (page * TASKS_PER_PAGE).min(n);
    html! {
        nav.pager {
            "Tasks " (from) "–" (to) " of " (n) " "
            @if page > 1 { a rel="prev" href=(format!("/runs/{run}?page={}#tasks-heading", page - 1)) { "← previous" } " " }
            @if page < pages { a rel="next" href=(format!("/runs/{run}?page={}#tasks-heading", page + 1)) { "next →" } }
        }
    }
}
