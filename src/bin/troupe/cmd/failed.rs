//! `troupe failed`, `troupe retry --failed`: dead letters. The tasks that failed for good
//! (state `failed`) are listed by the node's read model ([`Request::Failed`]); a redrive
//! sends each one the command `troupe retry RUN/TASK` sends (and a dry run asks the read
//! model what that command would change), so a bulk retry is exactly the single retries it
//! stands for: same decisions ([`troupe::model::decide::retry_task`]), same refusals.
//!
//! Exit codes: `failed` 0 (an empty list too). `retry --failed` 0 when at least one task was
//! retried (or, dry, would be); 2 when nothing was (no task matched the filters, or the node
//! refused every one: a cancelled run, an upstream task still failed); 3 when the node is
//! unreachable or fails part way (what was retried before stays retried).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use troupe::messages::control::{
    Command as AdminCommand, FailedFilter, FailedTask, Request, Response, Target,
};
use troupe::messages::scheduler::AttemptKind;
use troupe::model::quote::printable;

use crate::cmd::logs::tail;
use crate::common::{block, connect, unexpected, Conn, Failed, EXIT_INVALID};
use crate::render::json::{failed_json, print_json};
use crate::render::text::print_failed;

/// `troupe failed [--since DUR] [--run RUN] [--label L]... [--lines N] [--json]`: tasks
/// that failed for good, oldest failure first, each with the last `lines` lines of its last
/// attempt's log (read from `DATA_DIR/logs`, like `troupe logs`).
pub(crate) fn failed(data_dir: &Path, filter: FailedFilter, lines: usize, json: bool) -> ExitCode {
    block("failed", async move {
        let mut conn = connect(data_dir).await?;
        let list = dead_letters(&mut conn, &filter).await?;
        let layout = troupe::layout::DataDir::new(data_dir);
        let logs: Vec<(Option<PathBuf>, Vec<String>)> = list
            .iter()
            .map(|f| {
                if f.attempts == 0 {
                    return (None, Vec::new());
                }
                let path = layout.attempt_log(f.run, &f.task, AttemptKind::Forward, f.attempts);
                // A log removed by retention (or never written) leaves the lines empty.
                let lines = tail(&path, lines).unwrap_or_default();
                (Some(path), lines)
            })
            .collect();
        if json {
            print_json(&json!(list
                .iter()
                .zip(&logs)
                .map(|(f, (path, lines))| failed_json(f, path.as_deref(), lines))
                .collect::<Vec<_>>()));
            return Ok(ExitCode::SUCCESS);
        }
        let mut out = std::io::stdout().lock();
        if list.is_empty() {
            let _ = writeln!(out, "no task failed for good{}", matching(&filter));
            return Ok(ExitCode::SUCCESS);
        }
        let tails: Vec<Vec<String>> = logs.into_iter().map(|(_, lines)| lines).collect();
        let _ = print_failed(&list, &tails, &mut out);
        let _ = writeln!(
            out,
            "{} task{} failed for good{}; `troupe retry --failed` with the same filters \
             redrives them, `troupe logs RUN/TASK` shows a whole log",
            list.len(),
            if list.len() == 1 { "" } else { "s" },
            matching(&filter)
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// What became of one dead letter in a redrive.
enum Outcome {
    /// Retried (or, dry, would be); a dry run names the tasks it would move.
    Retried(Vec<(String, &'static str, &'static str)>),
    /// The node refused its retry, with the reason.
    Skipped(String),
}

/// `troupe retry --failed [--since DUR] [--run RUN] [--label L]... [--dry-run] [--json]`:
/// retries every task that failed for good and matches the filters, each as `troupe retry
/// RUN/TASK` does (fresh retry budget, upstream_failed dependents reopen); one the node
/// refuses is skipped with its reason and the others go on.
pub(crate) fn retry_failed(
    data_dir: &Path,
    filter: FailedFilter,
    dry_run: bool,
    json: bool,
) -> ExitCode {
    block("retry", async move {
        let mut conn = connect(data_dir).await?;
        let list = dead_letters(&mut conn, &filter).await?;
        if list.is_empty() {
            if json {
                print_json(&json!([]));
            }
            return Err(Failed {
                code: EXIT_INVALID,
                message: format!(
                    "nothing to retry: no task failed for good{}",
                    matching(&filter)
                ),
            });
        }
        let mut outcomes = Vec::with_capacity(list.len());
        let mut out = std::io::stdout().lock();
        for f in &list {
            let cmd = AdminCommand::Retry(Target::Task(f.run, f.task.clone()));
            let request = if dry_run {
                Request::DryRun(cmd)
            } else {
                Request::Command(cmd)
            };
            let outcome = match conn.request(request).await {
                Ok(Response::Done) if !dry_run => Outcome::Retried(Vec::new()),
                Ok(Response::DryRun(v)) if dry_run => Outcome::Retried(
                    v.tasks
                        .iter()
                        .map(|t| (t.task.to_string(), t.from.as_str(), t.to.as_str()))
                        .collect(),
                ),
                Ok(r) => return Err(unexpected(r)),
                // Refused or not found (the run was removed meanwhile): this one only.
                Err(e) if e.code == EXIT_INVALID => Outcome::Skipped(e.message),
                Err(e) => {
                    let done = outcomes
                        .iter()
                        .filter(|o| matches!(o, Outcome::Retried(_)))
                        .count();
                    return Err(Failed {
                        code: e.code,
                        message: format!(
                            "{} (after {done} of {} tasks were retried)",
                            e.message,
                            list.len()
                        ),
                    });
                }
            };
            if !json {
                let _ = writeln!(out, "{}", outcome_line(f, &outcome, dry_run));
            }
            outcomes.push(outcome);
        }
        let retried = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Retried(_)))
            .count();
        if json {
            print_json(&json!(list
                .iter()
                .zip(&outcomes)
                .map(|(f, o)| outcome_json(f, o, dry_run))
                .collect::<Vec<_>>()));
        } else {
            let skipped = list.len() - retried;
            let _ = writeln!(
                out,
                "{} {retried} of {} task{} failed for good{}{}",
                if dry_run {
                    "dry run: would retry"
                } else {
                    "retried"
                },
                list.len(),
                if list.len() == 1 { "" } else { "s" },
                if skipped > 0 {
                    format!(" ({skipped} skipped)")
                } else {
                    String::new()
                },
                if dry_run { "; nothing was changed" } else { "" }
            );
        }
        if retried == 0 {
            return Err(Failed {
                code: EXIT_INVALID,
                message: format!(
                    "nothing {}: the node refuses to retry every task that failed for good{}",
                    if dry_run {
                        "would be retried"
                    } else {
                        "retried"
                    },
                    matching(&filter)
                ),
            });
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Asks the node for the dead letters matching `filter`.
async fn dead_letters(conn: &mut Conn, filter: &FailedFilter) -> Result<Vec<FailedTask>, Failed> {
    match conn.request(Request::Failed(filter.clone())).await? {
        Response::Failed(list) => Ok(list),
        r => Err(unexpected(r)),
    }
}

/// ` matching --since 1h --label etl` (empty without filters): names the filters in messages.
fn matching(filter: &FailedFilter) -> String {
    let mut flags = Vec::new();
    if let Some(since) = filter.since {
        flags.push(format!("--since {}", humantime::format_duration(since)));
    }
    if let Some(run) = filter.run {
        flags.push(format!("--run {run}"));
    }
    for l in &filter.labels {
        flags.push(format!("--label {}", printable(l)));
    }
    if flags.is_empty() {
        String::new()
    } else {
        format!(" matching {}", flags.join(" "))
    }
}

/// One line of a redrive's text output.
fn outcome_line(f: &FailedTask, outcome: &Outcome, dry_run: bool) -> String {
    let target = format!("{}/{}", f.run, f.task);
    match outcome {
        Outcome::Retried(moves) if dry_run => format!(
            "would retry {target} ({}): {}",
            printable(&f.message),
            moves
                .iter()
                .map(|(task, from, to)| format!("{task} {from} → {to}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Outcome::Retried(_) => format!("retrying {target} ({})", printable(&f.message)),
        Outcome::Skipped(why) => format!(
            "{} {target}: {}",
            if dry_run { "would skip" } else { "skipped" },
            printable(why)
        ),
    }
}

/// One task of a redrive as JSON: `troupe retry --failed --json`.
fn outcome_json(f: &FailedTask, outcome: &Outcome, dry_run: bool) -> serde_json::Value {
    let (name, reason, moves) = match outcome {
        Outcome::Retried(moves) => (
            if dry_run { "would_retry" } else { "retried" },
            None,
            moves.as_slice(),
        ),
        Outcome::Skipped(why) => ("skipped", Some(why.as_str()), &[][..]),
    };
    let mut v = json!({
        "run": f.run.to_string(),
        "task": f.task.as_str(),
        "workflow": f.workflow,
        "kind": f.kind,
        "message": f.message,
        "outcome": name,
        "reason": reason,
    });
    if dry_run {
        v["tasks"] = json!(moves
            .iter()
            .map(|(task, from, to)| json!({"task": task, "from": from, "to": to}))
            .collect::<Vec<_>>());
    }
    v
}
