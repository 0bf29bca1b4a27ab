//! `/runs/{run}/tasks/{task}[?attempt=N]`: a task's attempts (exit status, CPU, RSS) and the
//! last [`LOG_TAIL`] bytes of one attempt's log, with a link to the whole log; the retry form
//! for a failed or cancelled task, the approve/reject form for one awaiting approval.
//! `app.js` follows the log (polling the log endpoint from the size it saw) while the
//! attempt runs.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::forms::{csrf_input, decide_form, login_link};
use super::{counters, ok_page, span, task_href, time, url_segment, PageResult};
use crate::messages::control::TaskView;
use crate::model::{Approver, Event, RunId, TaskId, TaskState, Timestamp};
use crate::web::api::{attempts, log_path, parse_run, parse_task, run_view, AttemptView};
use crate::web::{Viewer, Web, WebError};

/// Bytes of the end of a log the page shows inline (the rest is behind `a#full-log`).
pub const LOG_TAIL: u64 = 256 * 1024;

/// The task page's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TaskQuery {
    /// The attempt whose log to show (default: the last).
    attempt: Option<u32>,
}

/// The end of a log file: its text (lossy UTF-8), the file's size, whether the start was
/// cut off.
#[derive(Debug, Default)]
pub(crate) struct LogTail {
    pub text: String,
    pub size: u64,
    pub cut: bool,
    /// The attempt wrote no log file (yet).
    pub missing: bool,
}

/// Reads the last [`LOG_TAIL`] bytes of `path` (blocking). A cut start loses its partial
/// first line.
pub(crate) fn read_tail(path: &FsPath) -> std::io::Result<LogTail> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LogTail {
                missing: true,
                ..LogTail::default()
            })
        }
        Err(e) => return Err(e),
    };
    let size = f.metadata()?.len();
    let from = size.saturating_sub(LOG_TAIL);
    f.seek(SeekFrom::Start(from))?;
    let mut buf = Vec::with_capacity((size - from) as usize);
    f.take(LOG_TAIL).read_to_end(&mut buf)?;
    let mut start = 0;
    if from > 0 {
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            start = nl + 1;
        }
    }
    Ok(LogTail {
        text: String::from_utf8_lossy(&buf[start..]).into_owned(),
        size: from + buf.len() as u64,
        cut: from > 0,
        missing: false,
    })
}

pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    Extension(viewer): Extension<Viewer>,
    Path((run, task)): Path<(String, String)>,
    Query(q): Query<TaskQuery>,
) -> PageResult {
    let (run, task) = (parse_run(&run)?, parse_task(&task)?);
    let view = run_view(&web, run).await?;
    let t = view
        .tasks
        .iter()
        .find(|t| t.id == task)
        .ok_or_else(|| WebError::not_found(format!("run {run} has no task {task}")))?;
    let list = attempts(&web, run, &task).await?;
    let decided = decisions(&web, run, &task).await?;
    let log = if t.attempts > 0 || q.attempt.is_some() {
        let (path, attempt) = log_path(&web, run, &task, q.attempt).await?;
        let tail = tokio::task::spawn_blocking(move || read_tail(&path))
            .await
            .map_err(|e| WebError::unavailable(e.to_string()))?
            .map_err(|e| WebError::unavailable(format!("reading the log: {e}")))?;
        Some((attempt, tail))
    } else {
        None
    };
    let mut body = render(run, &view.summary.name, t, &list, log.as_ref(), &viewer);
    if !decided.is_empty() {
        body = html! { (body) (decisions_section(&decided)) };
    }
    Ok(ok_page(
        &format!("{} · {}", task, view.summary.name),
        &viewer,
        body,
    ))
}

/// The page's body.
pub(crate) fn render(
    run: RunId,
    workflow: &str,
    t: &TaskView,
    list: &[AttemptView],
    log: Option<&(u32, LogTail)>,
    viewer: &Viewer,
) -> Markup {
    let id = t.id.as_str();
    let here = task_href(&run, id);
    html! {
        p.crumbs { a href=(format!("/runs/{run}")) { (workflow) } " / " }
        h1 { (id) }
        p.lead {
            "Task of run " a href=(format!("/runs/{run}")) { code { (run.to_string()) } } " is "
            span.state.badge data-task-state=(t.state.as_str()) { (t.state.as_str()) }
        }
        dl.summary {
            dt { "Command" } dd { code { (t.command) } }
            @if !t.depends_on.is_empty() {
                dt { "Depends on" } dd {
                    @for (i, d) in t.depends_on.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href=(task_href(&run, d.as_str())) { (d.as_str()) }
                    }
                }
            }
            dt { "Attempts" } dd { (t.attempts) }
            dt { "Duration" } dd { (span(t.started_at, t.finished_at)) }
            @if let Some(p) = &t.pool { dt { "Pool" } dd { (p) } }
            dt { "Priority" } dd { (t.priority) }
            @if let Some(n) = &t.node { dt { "Node" } dd { (n) } }
            @if let Some(r) = t.retry_at { dt { "Next attempt" } dd { (time(r)) } }
            @if let Some(f) = &t.last_failure {
                dt { "Last failure" } dd.failure {
                    @if let Some(k) = &t.last_failure_kind { code { (k) } ": " }
                    (f)
                }
            }
            dt { "Usage" } dd { (counters(&t.usage)) }
            @if let Some(c) = &t.compensation {
                dt { "Compensation" } dd { (c.state.as_str()) " after " (c.attempts) " attempts"
                    @if let Some(f) = &c.last_failure { ": " (f) } }
            }
        }
        (actions(run, t, viewer, &here))
        h2 { "Attempts" }
        table #attempts {
            thead { tr {
                th { "Attempt" } th { "Outcome" } th { "Started" } th { "Duration" } th { "Exit code" }
                th { "Failure" } th { "CPU user s" } th { "CPU sys s" } th { "Max RSS" }
            } }
            tbody {
                @for a in list {
                    tr data-attempt=(a.attempt) class=(format!("outcome-{}", a.outcome)) {
                        td { a href=(format!("{here}?attempt={}", a.attempt)) { (a.attempt) } }
                        td.outcome { (a.outcome) }
                        td { (time(a.started_at)) }
                        td { (span(Some(a.started_at), a.finished_at)) }
                        td.exit { @if let Some(c) = a.exit_code { (c) } }
                        td.failure { @if let Some(k) = &a.failure_kind { code { (k) } " " } (a.failure.as_deref().unwrap_or("")) }
                        td.num { @if let Some(u) = a.usage { (format!("{:.3}", u.user_cpu_us as f64 / 1e6)) } }
                        td.num { @if let Some(u) = a.usage { (format!("{:.3}", u.system_cpu_us as f64 / 1e6)) } }
                        td.num { @if let Some(u) = a.usage { (rss(u.max_rss_kib)) } }
                    }
                }
                @if list.is_empty() { tr { td colspan="9" .muted { "No attempt yet." } } }
            }
        }
        @match log {
            None => { h2 { "Log" } p.muted { "The task has not run yet." } }
            Some((attempt, tail)) => { (log_section(run, t, *attempt, tail)) }
        }
    }
}

/// An approval decision on a task: when, `approved`/`rejected`/`expired`, by whom.
pub(crate) type Decision = (Timestamp, &'static str, Option<Approver>);

/// The approval decisions journaled for `task` of `run`, oldest first.
async fn decisions(web: &Web, run: RunId, task: &TaskId) -> Result<Vec<Decision>, WebError> {
    let journal = web.ctx.journal.clone();
    let t = task.clone();
    let events = tokio::task::spawn_blocking(move || journal.task_events(run, &t))
        .await
        .map_err(|e| WebError::unavailable(e.to_string()))?
        .map_err(|e| WebError::unavailable(format!("reading the journal: {e}")))?;
    Ok(events
        .into_iter()
        .filter_map(|(_, r)| match r.event {
            Event::ApprovalGranted { approver, .. } => Some((r.time, "approved", Some(approver))),
            Event::ApprovalRejected { approver, .. } => Some((r.time, "rejected", Some(approver))),
            Event::ApprovalExpired { .. } => Some((r.time, "expired", None)),
            _ => None,
        })
        .collect())
}

/// The decisions table (who approved or rejected, and why).
pub(crate) fn decisions_section(list: &[Decision]) -> Markup {
    html! {
        h2 { "Approval decisions" }
        table #decisions {
            thead { tr { th { "When" } th { "Decision" } th { "By" } th { "Reason" } } }
            tbody {
                @for (at, what, who) in list {
                    tr class=(format!("decision-{what}")) {
                        td { (time(*at)) }
                        td.decision { (what) }
                        td { @if let Some(a) = who { (a.name) " " span.muted { "(" (a.os_user) ")" } } }
                        td.reason { @if let Some(r) = who.as_ref().and_then(|a| a.reason.as_deref()) { (r) } }
                    }
                }
            }
        }
    }
}

/// Retry, approve/reject, or a login link, as the task's state allows.
fn actions(run: RunId, t: &TaskView, viewer: &Viewer, here: &str) -> Markup {
    let retryable = matches!(t.state, TaskState::Failed | TaskState::Cancelled);
    html! {
        @if retryable {
            @if viewer.name().is_some() {
                form.retry.act method="post" action=(format!("{here}/retry")) {
                    (csrf_input(viewer))
                    button type="submit" { "Retry task" }
                }
            } @else {
                p.hint { (login_link(here, "Log in to retry this task")) }
            }
        }
        @if t.state == TaskState::AwaitingApproval {
            section.approval {
                h2 { "Approval" }
                p { "This task waits for a decision before its first attempt." }
                (decide_form(viewer, &run, t.id.as_str(), here))
            }
        }
    }
}

/// The log section: the tail inline, the full log linked, follow data for `app.js`.
fn log_section(run: RunId, t: &TaskView, attempt: u32, tail: &LogTail) -> Markup {
    let raw = format!(
        "/api/runs/{run}/tasks/{}/log?attempt={attempt}",
        url_segment(t.id.as_str())
    );
    let live = attempt == t.attempts && matches!(t.state, TaskState::Running);
    html! {
        h2 { "Log of attempt " (attempt) }
        p.hint {
            @if tail.missing {
                "The attempt wrote no log (yet). "
            } @else if tail.cut {
                "The last " (LOG_TAIL / 1024) " KiB of " (size(tail.size)) "; "
            } @else {
                (size(tail.size)) "; "
            }
            a #full-log href=(raw) { "the full log" }
            @if live { " · " span #log-status { "following while the task runs" } }
        }
        pre #log data-log-url=(raw) data-log-size=(tail.size)
            data-task-url=(format!("/api/runs/{run}/tasks/{}", url_segment(t.id.as_str())))
            data-follow=[live.then_some("1")] { (tail.text) }
    }
}

/// A size in bytes for people.
fn size(b: u64) -> String {
    if b < 1024 {
        format!("{b} bytes")
    } else if b < 1024 * 1024 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", b as f64 / 1024.0 / 1024.0)
    }
}

/// Max RSS (KiB) for people.
fn rss(kib: u64) -> String {
    if kib < 10 * 1024 {
        format!("{kib} KiB")
    } else {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    }
}
