//! The JSON API under `/api/` (docs/http-api.md; the OpenAPI 3.1 document is served at
//! `/api/openapi.json`). Reads come from the read model in the shapes of the CLI's `--json`
//! ([`crate::messages::control::json`]); actions go through [`super::actions`].
//!
//! Errors are JSON, `{"error": {"code", "message"}}`, with the status of
//! [`WebError`](super::WebError).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{actions, Viewer, Web, WebError};
use crate::messages::control::json::{run_json, summary_json, task_json};
use crate::messages::control::{Request, Response as Answer, RunSummary, RunView};
use crate::messages::scheduler::AttemptKind;
use crate::model::{Event, Failure, ResourceUsage, RunId, RunState, TaskId, Timestamp};

/// The OpenAPI document (OpenAPI 3.1), compiled into the binary.
pub const OPENAPI: &str = include_str!("assets/openapi.json");

/// Most runs one `GET /api/runs` returns.
pub const MAX_RUNS_PER_PAGE: usize = 500;

/// The routes of `/api/` (nested there by [`super::router`]).
pub fn routes() -> Router<Arc<Web>> {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/runs", get(list).post(submit))
        .route("/runs/{run}", get(run))
        .route("/runs/{run}/cancel", post(cancel))
        .route("/runs/{run}/tasks/{task}", get(task))
        .route("/runs/{run}/tasks/{task}/log", get(log))
        .route("/runs/{run}/tasks/{task}/retry", post(retry))
        .route("/runs/{run}/tasks/{task}/approve", post(approve))
        .route("/runs/{run}/tasks/{task}/reject", post(reject))
        .route("/events", get(super::live::events))
        .route("/runs/{run}/stream", get(super::live::run_stream))
        .fallback(|| async { WebError::not_found("no such API endpoint (see /api/openapi.json)") })
        .layer(axum::middleware::map_response(json_errors))
}

/// Turns the errors axum answers by itself (a query, path or body that does not parse:
/// 400; a method the path does not take: 405; a content type it does not read: 415) into
/// the API's JSON error shape, so every error under `/api/` is JSON.
async fn json_errors(r: Response) -> Response {
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return r;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let (parts, body) = r.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .unwrap_or_default();
    let mut message = String::from_utf8_lossy(&text).trim().to_owned();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_owned();
    }
    let mut out = WebError::new(status, code, message).into_response();
    for (k, v) in parts.headers.iter() {
        if k == header::ALLOW {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Parses a run id from a path segment (404 if it is not one: no such run can exist).
pub fn parse_run(s: &str) -> Result<RunId, WebError> {
    s.parse()
        .map_err(|e| WebError::not_found(format!("no run {s:?}: {e}")))
}

/// Parses a task id from a path segment (404 if it is not one).
pub fn parse_task(s: &str) -> Result<TaskId, WebError> {
    TaskId::new(s).map_err(|e| WebError::not_found(format!("no task {s:?}: {e}")))
}

/// The filters of the runs list (`GET /api/runs`, the runs page).
#[derive(Debug, Default, Deserialize)]
pub struct RunFilter {
    /// Only runs in this state (snake_case, e.g. `failed`).
    pub state: Option<String>,
    /// Only runs whose workflow name contains this text.
    pub name: Option<String>,
    /// Most runs to return (default 50, at most [`MAX_RUNS_PER_PAGE`]).
    pub limit: Option<usize>,
    /// Runs to skip, newest first.
    pub offset: Option<usize>,
}

/// One page of runs, newest first, and how many match in all.
pub async fn runs_page(web: &Web, f: &RunFilter) -> Result<(Vec<RunSummary>, usize), WebError> {
    let state = match f.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            RunState::ALL
                .into_iter()
                .find(|x| x.as_str() == s)
                .ok_or_else(|| {
                    let all: Vec<&str> = RunState::ALL.iter().map(|x| x.as_str()).collect();
                    WebError::bad_request(format!(
                        "state {s:?} is not a run state ({})",
                        all.join(", ")
                    ))
                })?,
        ),
        None => None,
    };
    let mut runs = match web.ask(Request::List).await? {
        Answer::Runs(r) => r,
        other => return Err(WebError::unexpected(&other)),
    };
    let name = f.name.as_deref().unwrap_or("").to_lowercase();
    runs.retain(|r| {
        state.is_none_or(|s| r.state == s)
            && (name.is_empty() || r.name.to_lowercase().contains(&name))
    });
    runs.sort_by(|a, b| b.submitted_at.cmp(&a.submitted_at).then(b.id.cmp(&a.id)));
    let total = runs.len();
    let limit = f.limit.unwrap_or(50).clamp(1, MAX_RUNS_PER_PAGE);
    let page = runs
        .into_iter()
        .skip(f.offset.unwrap_or(0))
        .take(limit)
        .collect();
    Ok((page, total))
}

async fn list(
    State(web): State<Arc<Web>>,
    Query(f): Query<RunFilter>,
) -> Result<Json<Value>, WebError> {
    let (runs, total) = runs_page(&web, &f).await?;
    Ok(Json(json!({
        "total": total,
        "offset": f.offset.unwrap_or(0),
        "runs": runs.iter().map(summary_json).collect::<Vec<_>>(),
    })))
}

/// The run view of `run` (404 if unknown).
pub async fn run_view(web: &Web, run: RunId) -> Result<RunView, WebError> {
    match web.ask(Request::Run(run)).await? {
        Answer::Run(v) => Ok(*v),
        other => Err(WebError::unexpected(&other)),
    }
}

async fn run(
    State(web): State<Arc<Web>>,
    Path(run): Path<String>,
) -> Result<Json<Value>, WebError> {
    let v = run_view(&web, parse_run(&run)?).await?;
    Ok(Json(run_json(&v)))
}

/// One attempt of a task, from the task's journaled events.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptView {
    /// 1-based attempt number.
    pub attempt: u32,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended (`None`: still running, or cut off by a cancel).
    pub finished_at: Option<Timestamp>,
    /// `running`, `succeeded`, `failed` (for good), `retrying` (failed, another follows),
    /// `cancelled`.
    pub outcome: &'static str,
    /// Why it failed, in words.
    pub failure: Option<String>,
    /// The failure's kind (`exit`, `signal`, `timed_out`, ...).
    pub failure_kind: Option<String>,
    /// The exit status, for a failure by exit.
    pub exit_code: Option<i32>,
    /// What its process used.
    pub usage: Option<ResourceUsage>,
}

impl AttemptView {
    /// The JSON shape (`attempts_detail` of `GET /api/runs/{run}/tasks/{task}`).
    pub fn json(&self) -> Value {
        json!({
            "attempt": self.attempt,
            "started_at": self.started_at.to_string(),
            "finished_at": self.finished_at.map(|t| t.to_string()),
            "outcome": self.outcome,
            "failure": self.failure,
            "failure_kind": self.failure_kind,
            "exit_code": self.exit_code,
            "user_cpu_s": self.usage.map(|u| u.user_cpu_us as f64 / 1e6),
            "system_cpu_s": self.usage.map(|u| u.system_cpu_us as f64 / 1e6),
            "max_rss_kib": self.usage.map(|u| u.max_rss_kib),
        })
    }
}

/// The attempts of `task` of `run`, oldest first, from the task's stream in the journal.
pub async fn attempts(web: &Web, run: RunId, task: &TaskId) -> Result<Vec<AttemptView>, WebError> {
    let journal = web.ctx.journal.clone();
    let t = task.clone();
    let events = tokio::task::spawn_blocking(move || journal.task_events(run, &t))
        .await
        .map_err(|e| WebError::unavailable(e.to_string()))?
        .map_err(|e| WebError::internal(e.to_string()))?;
    let mut out: Vec<AttemptView> = Vec::new();
    for (_, record) in events {
        let end = |out: &mut Vec<AttemptView>,
                   attempt: u32,
                   outcome,
                   failure: Option<&Failure>,
                   usage: Option<ResourceUsage>| {
            if let Some(a) = out.iter_mut().rev().find(|a| a.attempt == attempt) {
                a.finished_at = Some(record.time);
                a.outcome = outcome;
                a.failure = failure.map(|f| f.to_string());
                a.failure_kind = failure.map(|f| f.kind().to_owned());
                a.exit_code = match failure {
                    Some(Failure::Exit { code }) => Some(*code),
                    _ => None,
                };
                a.usage = usage;
            }
        };
        match &record.event {
            Event::AttemptStarted { attempt, .. } => out.push(AttemptView {
                attempt: *attempt,
                started_at: record.time,
                finished_at: None,
                outcome: "running",
                failure: None,
                failure_kind: None,
                exit_code: None,
                usage: None,
            }),
            Event::TaskSucceeded { attempt, usage, .. } => {
                end(&mut out, *attempt, "succeeded", None, *usage)
            }
            Event::AttemptFailed {
                attempt,
                failure,
                usage,
                ..
            } => end(&mut out, *attempt, "retrying", Some(failure), *usage),
            Event::TaskFailed {
                attempt,
                failure,
                usage,
                ..
            } => end(&mut out, *attempt, "failed", Some(failure), *usage),
            Event::TaskCancelled { .. } => {
                if let Some(a) = out.last_mut().filter(|a| a.outcome == "running") {
                    a.outcome = "cancelled";
                    a.finished_at = Some(record.time);
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

async fn task(
    State(web): State<Arc<Web>>,
    Path((run, task)): Path<(String, String)>,
) -> Result<Json<Value>, WebError> {
    let (run, task) = (parse_run(&run)?, parse_task(&task)?);
    let v = run_view(&web, run).await?;
    let t = v
        .tasks
        .iter()
        .find(|t| t.id == task)
        .ok_or_else(|| WebError::not_found(format!("run {run} has no task {task}")))?;
    let mut j = task_json(t);
    j["run"] = json!(run.to_string());
    j["attempts_detail"] = json!(attempts(&web, run, &task)
        .await?
        .iter()
        .map(AttemptView::json)
        .collect::<Vec<_>>());
    Ok(Json(j))
}

/// The query of the log endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct LogQuery {
    /// The attempt (default: the last one).
    pub attempt: Option<u32>,
    /// Start at this byte (default 0); a live follower asks from where it stopped.
    pub offset: Option<u64>,
}

/// The path of an attempt's log, the attempt defaulting to the task's last (404 if the task
/// never ran or the attempt does not exist).
pub async fn log_path(
    web: &Web,
    run: RunId,
    task: &TaskId,
    attempt: Option<u32>,
) -> Result<(std::path::PathBuf, u32), WebError> {
    let v = run_view(web, run).await?;
    let t = v
        .tasks
        .iter()
        .find(|t| &t.id == task)
        .ok_or_else(|| WebError::not_found(format!("run {run} has no task {task}")))?;
    let attempt = attempt.unwrap_or(t.attempts);
    if attempt == 0 || attempt > t.attempts {
        return Err(WebError::not_found(format!(
            "task {task} of run {run} has no attempt {attempt} (it has {})",
            t.attempts
        )));
    }
    let path = web
        .ctx
        .config
        .layout()
        .attempt_log(run, task, AttemptKind::Forward, attempt);
    Ok((path, attempt))
}

/// Streams a file from `offset` (text/plain, 64 KiB chunks, never whole in memory). The
/// header `X-Log-Size` gives the file's size when opened.
pub async fn stream_file(path: &std::path::Path, offset: u64) -> Result<Response, WebError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(WebError::not_found("the attempt wrote no log (yet)"))
        }
        Err(e) => return Err(WebError::internal(e.to_string())),
    };
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let offset = offset.min(size);
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| WebError::internal(e.to_string()))?;
    let left = size - offset;
    let stream = futures::stream::unfold((file, left), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; (64 * 1024).min(left as usize)];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)),
                    (file, left - n as u64),
                ))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("valid"),
    );
    h.insert(header::CONTENT_LENGTH, left.into());
    h.insert("x-log-size", size.into());
    h.insert("x-content-type-options", "nosniff".parse().expect("valid"));
    Ok(r)
}

async fn log(
    State(web): State<Arc<Web>>,
    Path((run, task)): Path<(String, String)>,
    Query(q): Query<LogQuery>,
) -> Result<Response, WebError> {
    let (run, task) = (parse_run(&run)?, parse_task(&task)?);
    let (path, _) = log_path(&web, run, &task, q.attempt).await?;
    stream_file(&path, q.offset.unwrap_or(0)).await
}

/// The body of `POST /api/runs` as JSON.
#[derive(Deserialize)]
struct SubmitJson {
    /// The workflow file's text (TOML or JSON).
    workflow: String,
}

async fn submit(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let text = if is_json {
        serde_json::from_slice::<SubmitJson>(&body)
            .map_err(|e| {
                WebError::bad_request(format!(
                    "body: {e} (expected {{\"workflow\": \"TOML text\"}})"
                ))
            })?
            .workflow
    } else {
        String::from_utf8(body.to_vec())
            .map_err(|_| WebError::bad_request("body: the workflow is not valid UTF-8"))?
    };
    let (run, attached) = actions::submit(&web, &viewer, &text).await?;
    let status = if attached {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({"run": run.to_string(), "attached": attached})),
    )
        .into_response())
}

async fn cancel(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Path(run): Path<String>,
) -> Result<Json<Value>, WebError> {
    let run = parse_run(&run)?;
    actions::cancel(&web, &viewer, run).await?;
    Ok(Json(json!({"run": run.to_string(), "done": true})))
}

async fn retry(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Path((run, task)): Path<(String, String)>,
) -> Result<Json<Value>, WebError> {
    let (run, task) = (parse_run(&run)?, parse_task(&task)?);
    actions::retry(&web, &viewer, run, task.clone()).await?;
    Ok(Json(
        json!({"run": run.to_string(), "task": task.as_str(), "done": true}),
    ))
}

/// The body of approve and reject (optional).
#[derive(Debug, Default, Deserialize)]
pub struct Decision {
    /// Why (journaled with the decision).
    pub reason: Option<String>,
}

/// Reads an optional JSON body `{"reason": "..."}` (an empty body is no reason).
fn decision(body: &[u8]) -> Result<Decision, WebError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Decision::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| WebError::bad_request(format!("body: {e} (expected {{\"reason\": \"...\"}})")))
}

async fn approve(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Path((run, task)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, WebError> {
    decide(&web, &viewer, &run, &task, true, &body).await
}

async fn reject(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Path((run, task)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, WebError> {
    decide(&web, &viewer, &run, &task, false, &body).await
}

async fn decide(
    web: &Web,
    viewer: &Viewer,
    run: &str,
    task: &str,
    approve: bool,
    body: &[u8],
) -> Result<Json<Value>, WebError> {
    let (run, task) = (parse_run(run)?, parse_task(task)?);
    let d = decision(body)?;
    actions::decide(web, viewer, run, task.clone(), approve, d.reason).await?;
    Ok(Json(json!({
        "run": run.to_string(),
        "task": task.as_str(),
        "decision": if approve { "approved" } else { "rejected" },
        "by": viewer.name(),
    })))
}
