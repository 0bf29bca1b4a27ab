//! `/runs?state=STATE&name=TEXT&page=N`: the runs, newest first, [`PER_PAGE`] a page.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Extension;
use maud::html;
use serde::Deserialize;

use super::{ok_page, progress, query, span, time, PageResult};
use crate::model::RunState;
use crate::web::api::{runs_page, RunFilter};
use crate::web::{Viewer, Web};

/// Runs a page shows.
pub const PER_PAGE: usize = 50;

/// The runs page's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunsQuery {
    /// Only runs in this state (empty: all).
    #[serde(default)]
    state: String,
    /// Only runs whose workflow name contains this text.
    #[serde(default)]
    name: String,
    /// 1-based page.
    page: Option<usize>,
}

pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Query(q): Query<RunsQuery>,
) -> PageResult {
    let page = q.page.unwrap_or(1).max(1);
    let filter = RunFilter {
        state: Some(q.state.clone()),
        name: Some(q.name.clone()),
        limit: Some(PER_PAGE),
        offset: Some((page - 1).saturating_mul(PER_PAGE)),
    };
    let (runs, total) = runs_page(&web, &filter).await?;
    let pages = total.div_ceil(PER_PAGE).max(1);
    let link = |p: usize| {
        let p = p.to_string();
        format!(
            "/runs{}",
            query(&[("state", &q.state), ("name", &q.name), ("page", &p)])
        )
    };
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/runs" {
            label { "State "
                select name="state" {
                    option value="" selected[q.state.is_empty()] { "any" }
                    @for s in RunState::ALL {
                        option value=(s.as_str()) selected[q.state == s.as_str()] { (s.as_str()) }
                    }
                }
            }
            " "
            label { "Name " input type="search" name="name" value=(q.name) placeholder="contains"; }
            " " button type="submit" { "Filter" }
            @if !q.state.is_empty() || !q.name.is_empty() {
                " " a href="/runs" { "clear" }
            }
        }
        p.count { (total) " runs" @if pages > 1 { ", page " (page) " of " (pages) } }
        table #runs {
            thead { tr { th { "State" } th { "Name" } th { "Run" } th { "Progress" } th { "Duration" } th { "Submitted" } } }
            tbody {
                @for r in &runs {
                    tr data-run=(r.id.to_string()) class=(format!("state-{}", r.state.as_str())) {
                        td.state { (r.state.as_str()) }
                        td.name {
                            a href=(format!("/runs/{}", r.id)) { (r.name) }
                            @if r.parent.is_some() { " " span.tag { "child" } }
                            @if r.awaiting_approval > 0 { " " span.tag.await { (r.awaiting_approval) " awaiting approval" } }
                        }
                        td.id { a href=(format!("/runs/{}", r.id)) { code { (r.id.to_string()) } } }
                        td { (progress(r.succeeded, r.failed, r.tasks)) }
                        td.duration { (span(Some(r.submitted_at), r.finished_at)) }
                        td { (time(r.submitted_at)) }
                    }
                }
                @if runs.is_empty() {
                    tr { td colspan="6" .muted { "No runs" @if total == 0 && (q.state.is_empty() && q.name.is_empty()) { " yet: submit one with " code { "troupe submit FILE" } } "." } }
                }
            }
        }
        nav.pager {
            @if page > 1 { a rel="prev" href=(link(page - 1)) { "← newer" } }
            @if page < pages { " " a rel="next" href=(link(page + 1)) { "older →" } }
        }
    };
    Ok(ok_page("Runs", &viewer, body))
}
