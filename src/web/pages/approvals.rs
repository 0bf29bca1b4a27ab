//! `/approvals`: every task waiting for a human decision, oldest first, each with its
//! approve/reject form (or a login link).

use std::sync::Arc;

use axum::extract::State;
use axum::Extension;
use maud::{html, Markup};

use super::forms::decide_form;
use super::{ok_page, task_href, time, PageResult};
use crate::messages::control::{PendingApproval, Request, Response};
use crate::web::{Viewer, Web, WebError};

pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
) -> PageResult {
    let list = match web.ask(Request::Approvals).await? {
        Response::Approvals(a) => a,
        other => return Err(WebError::unavailable(format!("unexpected answer: {other:?}")).into()),
    };
    Ok(ok_page("Approvals", &viewer, render(&list, &viewer)))
}

/// The page's body.
pub(crate) fn render(list: &[PendingApproval], viewer: &Viewer) -> Markup {
    html! {
        h1 { "Approvals" }
        p.count { (list.len()) " waiting" }
        table #approvals {
            thead { tr {
                th { "Workflow" } th { "Task" } th { "Command" } th { "Requested" } th { "Expires" } th { "Decision" }
            } }
            tbody {
                @for a in list {
                    tr data-run=(a.run.to_string()) data-task=(a.task.as_str()) {
                        td { a href=(format!("/runs/{}", a.run)) { (a.workflow) } }
                        td { a href=(task_href(&a.run, a.task.as_str())) { (a.task.as_str()) } }
                        td { code { (a.command) } }
                        td { (time(a.requested_at)) }
                        td { (time(a.expires_at)) }
                        td { (decide_form(viewer, &a.run, a.task.as_str(), "/approvals")) }
                    }
                }
                @if list.is_empty() { tr { td colspan="6" .muted { "Nothing waits for a decision." } } }
            }
        }
    }
}
