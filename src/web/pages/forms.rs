//! The pages' forms: cancel a run, retry a task, approve or reject a gate. Each POSTs to a
//! path beside its page (not under `/api/`), carries the session's CSRF token in
//! `input[name=csrf]` (the guard has checked it before a handler runs), calls the same
//! [`crate::web::actions`] as the API, and answers 303 back to a page; a refusal renders the
//! error page with its status.

use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::{task_href, url_segment, PageResult};
use crate::web::api::{parse_run, parse_task};
use crate::web::{actions, Viewer, Web, WebError};

/// The hidden CSRF input every acting form carries (nothing for a viewer without a session).
pub(crate) fn csrf_input(viewer: &Viewer) -> Markup {
    html! {
        @if let Some(c) = viewer.csrf() {
            input type="hidden" name="csrf" value=(c);
        }
    }
}

/// A link to the login page that comes back to `next`.
pub(crate) fn login_link(next: &str, text: &str) -> Markup {
    html! { a.login href=(format!("/login?next={}", url_segment(next))) { (text) } }
}

/// A form with only its CSRF token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CsrfForm {
    /// Checked by the guard.
    #[serde(default)]
    #[allow(dead_code)]
    csrf: String,
}

/// The approve/reject form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DecideForm {
    /// `approve` or `reject`.
    #[serde(default)]
    decision: String,
    /// Why (optional; journaled with the decision).
    #[serde(default)]
    reason: String,
    /// Where to go afterwards (a path on this server; default `/approvals`).
    #[serde(default)]
    next: String,
}

/// Where a form may send the browser afterwards: a local path, never another site.
pub(crate) fn local_next(next: &str, default: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control);
    if ok {
        next.to_owned()
    } else {
        default.to_owned()
    }
}

/// `POST /runs/{run}/cancel` → 303 to the run.
pub(crate) async fn cancel(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Path(run): Path<String>,
    Form(_): Form<CsrfForm>,
) -> PageResult {
    let run = parse_run(&run)?;
    actions::cancel(&web, &viewer, run).await?;
    Ok(Redirect::to(&format!("/runs/{run}")).into_response())
}

/// `POST /runs/{run}/tasks/{task}/retry` → 303 to the task.
pub(crate) async fn retry(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Path((run, task)): Path<(String, String)>,
    Form(_): Form<CsrfForm>,
) -> PageResult {
    let (run, task) = (parse_run(&run)?, parse_task(&task)?);
    actions::retry(&web, &viewer, run, task.clone()).await?;
    Ok(Redirect::to(&task_href(&run, task.as_str())).into_response())
}

/// `POST /runs/{run}/tasks/{task}/decide` (`decision=approve|reject`, `reason`, `next`) →
/// 303 to `next` or `/approvals`.
pub(crate) async fn decide(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Path((run, task)): Path<(String, String)>,
    Form(f): Form<DecideForm>,
) -> PageResult {
    let (run, task) = (parse_run(&run)?, parse_task(&task)?);
    let approve = match f.decision.as_str() {
        "approve" => true,
        "reject" => false,
        other => {
            return Err(WebError::bad_request(format!(
                "form field decision: {other:?} is neither \"approve\" nor \"reject\""
            ))
            .into())
        }
    };
    let reason = Some(f.reason).filter(|r| !r.trim().is_empty());
    actions::decide(&web, &viewer, run, task, approve, reason).await?;
    Ok(Redirect::to(&local_next(&f.next, "/approvals")).into_response())
}

/// The approve/reject form of `task` of `run` (or a login link for a viewer without a
/// name); `next` is where to go afterwards.
pub(crate) fn decide_form(
    viewer: &Viewer,
    run: &crate::model::RunId,
    task: &str,
    next: &str,
) -> Markup {
    html! {
        @if viewer.name().is_some() {
            form.decide.act method="post" action=(format!("{}/decide", task_href(run, task))) {
                (csrf_input(viewer))
                input type="hidden" name="next" value=(next);
                input type="text" name="reason" placeholder="reason (optional)" maxlength="1000";
                " " button.ok type="submit" name="decision" value="approve" { "Approve" }
                " " button.danger type="submit" name="decision" value="reject" { "Reject" }
            }
        } @else {
            (login_link(next, "Log in to decide"))
        }
    }
}
