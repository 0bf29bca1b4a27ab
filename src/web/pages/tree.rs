//! `/runs/{run}/tree`: a run and the runs its tasks spawned (agent trees), as nested lists
//! with each run's state, subtree usage and budget.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Extension;
use maud::{html, Markup};

use super::{counters, ok_page, task_href, PageResult};
use crate::messages::control::{Request, Response, TreeNode};
use crate::web::api::parse_run;
use crate::web::{Viewer, Web, WebError};

pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Path(run): Path<String>,
) -> PageResult {
    let run = parse_run(&run)?;
    let tree = match web.ask(Request::Tree(run)).await? {
        Response::Tree(t) => t,
        other => return Err(WebError::unavailable(format!("unexpected answer: {other:?}")).into()),
    };
    let body = html! {
        p.crumbs { a href=(format!("/runs/{run}")) { "run " code { (run.to_string()) } } " / " }
        h1 { "Agent tree" }
        p.hint { "Usage is the whole subtree's; left = budget − usage − live children's unused reserves." }
        div #tree { (render(&tree.nodes)) }
    };
    Ok(ok_page("Agent tree", &viewer, body))
}

/// The nodes (depth first, each with its depth) as nested `ul`s.
pub(crate) fn render(nodes: &[TreeNode]) -> Markup {
    let mut i = 0;
    let base = nodes.first().map_or(0, |n| n.depth);
    level(nodes, &mut i, base)
}

/// The nodes from `*i` on at `depth` (and their descendants), as one `ul`.
fn level(nodes: &[TreeNode], i: &mut usize, depth: u32) -> Markup {
    let mut items = Vec::new();
    while let Some(n) = nodes.get(*i).filter(|n| n.depth == depth) {
        *i += 1;
        let children = if nodes.get(*i).is_some_and(|c| c.depth > depth) {
            Some(level(nodes, i, depth + 1))
        } else {
            None
        };
        items.push(html! {
            li data-run=(n.run.to_string()) class=(format!("state-{}", n.state.as_str())) {
                a href=(format!("/runs/{}", n.run)) { (n.name) }
                " " code { (n.run.to_string()) } " "
                span.state.badge { (n.state.as_str()) }
                @if let Some(k) = &n.key { " key " code { (k) } }
                @if let Some((p, t)) = &n.parent { " · spawned by " a href=(task_href(p, t.as_str())) { (t.as_str()) } }
                @if let Some(x) = &n.exhausted { " " span.tag.bad { (x) " exhausted" } }
                @if let Some(a) = &n.asking { " " span.tag.await { "asks: " (a) } }
                div.usage {
                    "usage " (counters(&n.usage))
                    @if !n.budget.is_empty() { " · budget " (counters(&n.budget)) " · left " (counters(&n.left)) }
                }
                @if let Some(c) = children { (c) }
            }
        });
        // A deeper node right after a sibling list closed (malformed depths): skip it
        // rather than loop.
        while nodes.get(*i).is_some_and(|c| c.depth > depth) {
            *i += 1;
        }
    }
    html! { ul.tree { @for it in items { (it) } } }
}
