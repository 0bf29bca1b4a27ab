//! What a web client may do: submit a workflow, cancel a run, retry a task, approve or
//! reject a gate. The API ([`super::api`]) and the pages' forms ([`super::pages`]) both come
//! here; each becomes the same control request the CLI sends, so the node checks and
//! journals it the same way. The guard ([`super::auth::guard`]) has already made sure the
//! caller holds a token; the approver is recorded as the token's NAME, with `os_user`
//! `http` (there is no peer process to ask).

use axum::http::StatusCode;

use super::{Viewer, Web, WebError};
use crate::messages::control::{Command, Request, Response, Target};
use crate::model::parse::{WorkflowFormat, MAX_WORKFLOW_BYTES};
use crate::model::{Approver, RunId, TaskId, Workflow};

/// What `os_user` an approval made over HTTP records.
pub const HTTP_OS_USER: &str = "http";

/// The NAME acting, or 401 (the guard lets no anonymous action through; this is the second
/// lock on the door).
fn actor(viewer: &Viewer) -> Result<&str, WebError> {
    viewer.name().ok_or_else(|| {
        WebError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this action needs a token",
        )
    })
}

/// Submits the workflow in `text` (TOML, or JSON if it starts with `{`); a relative `cwd`
/// is taken from the node's data dir. Returns the run and whether an unfinished run of the
/// same workflow was reused. An invalid workflow is 400 with every problem as
/// `request:LINE:COL: message`.
pub async fn submit(web: &Web, viewer: &Viewer, text: &str) -> Result<(RunId, bool), WebError> {
    actor(viewer)?;
    if !web.ctx.config.socket_submissions {
        return Err(WebError::new(
            StatusCode::CONFLICT,
            "conflict",
            "this is the embedded node of a `troupe run`: it takes no other runs; serve the \
             data dir with `troupe node start`",
        ));
    }
    if text.len() > MAX_WORKFLOW_BYTES {
        return Err(WebError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            crate::model::parse::too_large_message(text.len() as u64),
        ));
    }
    let format = if text.trim_start().starts_with('{') {
        WorkflowFormat::Json
    } else {
        WorkflowFormat::Toml
    };
    let folder = web.ctx.config.data_dir.clone();
    let workflow: Workflow = format
        .parse_bytes(text.as_bytes())
        .and_then(|w| crate::workflow_file::anchor(w, &folder))
        .map_err(|e| WebError::bad_request(e.with_source_name("request").to_string()))?;
    match web.ask(Request::Submit(Box::new(workflow))).await? {
        Response::Submitted { run, attached } => Ok((run, attached)),
        other => Err(WebError::unexpected(&other)),
    }
}

/// Cancels `run` (running attempts are terminated).
pub async fn cancel(web: &Web, viewer: &Viewer, run: RunId) -> Result<(), WebError> {
    actor(viewer)?;
    command(web, Command::Cancel(Target::Run(run))).await
}

/// Retries `task` of `run` (a failed or cancelled task, with its upstream_failed dependents).
pub async fn retry(web: &Web, viewer: &Viewer, run: RunId, task: TaskId) -> Result<(), WebError> {
    actor(viewer)?;
    command(web, Command::Retry(Target::Task(run, task))).await
}

/// Approves (`approve`) or rejects the gate `task` of `run` awaits, as the viewer's NAME.
pub async fn decide(
    web: &Web,
    viewer: &Viewer,
    run: RunId,
    task: TaskId,
    approve: bool,
    reason: Option<String>,
) -> Result<(), WebError> {
    let approver = Approver {
        name: actor(viewer)?.to_owned(),
        os_user: HTTP_OS_USER.to_owned(),
        reason: reason.filter(|r| !r.trim().is_empty()),
    };
    let c = if approve {
        Command::Approve {
            run,
            task,
            approver,
        }
    } else {
        Command::Reject {
            run,
            task,
            approver,
        }
    };
    command(web, c).await
}

async fn command(web: &Web, c: Command) -> Result<(), WebError> {
    match web.ask(Request::Command(c)).await? {
        Response::Done => Ok(()),
        other => Err(WebError::unexpected(&other)),
    }
}
