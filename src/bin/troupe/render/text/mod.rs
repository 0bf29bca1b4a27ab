//! Text output: the tables and lines commands print for people. Free text that came from a
//! workflow file or an operator (names, failures, reasons) goes through [`printable`], so it
//! cannot add lines or send terminal escapes.
//!
//! # Layout
//! - this file: events, runs, tasks, the node, command results, workflow summaries.
//! - `operate`: queue, approvals, dead letters (`failed`), metrics, health.
//! - `dry_run`: the plan of a workflow, what a command would change.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use troupe::messages::control::{
    Command as AdminCommand, DryRunView, FailedTask, Health, HealthReport, NodeView,
    PendingApproval, QueueView, RunSummary, RunView, TaskView,
};
use troupe::model::dry_run::WorkflowPreview;
use troupe::model::quote::printable;
use troupe::model::rollup::MetricsReport;
use troupe::model::{EventRecord, RunState, Seq, TaskIndex, TaskState, Timestamp, Workflow};

mod dry_run;
mod operate;

pub(crate) use dry_run::*;
pub(crate) use operate::*;

/// One event as a line of text: seq, time, type, target, attempt.
pub(crate) fn event_line(seq: Seq, record: &EventRecord) -> String {
    let mut line = format!(
        "{seq:>8}  {}  {:<22}",
        record.time,
        record.event.type_name()
    );
    match (record.event.run(), record.event.task()) {
        (Some(r), Some(t)) => line.push_str(&format!("  {r}/{t}")),
        (Some(r), None) => line.push_str(&format!("  {r}")),
        _ => {}
    }
    if let Some(a) = record.event.attempt() {
        line.push_str(&format!("  attempt {a}"));
    }
    if let troupe::model::Event::ApprovalGranted { approver, .. }
    | troupe::model::Event::ApprovalRejected { approver, .. } = &record.event
    {
        line.push_str(&format!(
            "  by {} ({})",
            printable(&approver.name),
            printable(&approver.os_user)
        ));
        if let Some(r) = &approver.reason {
            line.push_str(&format!(": {}", printable(r)));
        }
    }
    line
}

/// The tasks of a run as a table (with a compensation column when the run is a saga).
pub(crate) fn print_tasks(tasks: &[TaskView]) {
    let mut out = std::io::stdout().lock();
    let saga = tasks.iter().any(|t| t.compensate.is_some());
    let _ = if saga {
        writeln!(
            out,
            "{:<24} {:<17} {:>8}  {:<13} DETAIL",
            "TASK", "FORWARD", "ATTEMPTS", "COMPENSATION"
        )
    } else {
        writeln!(
            out,
            "{:<24} {:<17} {:>8}  DETAIL",
            "TASK", "STATE", "ATTEMPTS"
        )
    };
    for t in tasks {
        let mut detail = match (&t.last_failure, t.retry_at) {
            (Some(f), Some(at)) => format!("{}; retry at {at}", printable(f)),
            (Some(f), None) => printable(f).into_owned(),
            _ => String::new(),
        };
        let mut extra = Vec::new();
        if let Some(n) = t.instances {
            extra.push(format!(
                "mapped: {n} instance{}",
                if n == 1 { "" } else { "s" }
            ));
        } else if t.for_each.is_some() && t.id.split_instance().is_none() {
            extra.push("mapped: expands when its upstream succeeds".to_owned());
        }
        if !t.usage.is_empty() {
            extra.push(format!("usage: {}", usage_text(&t.usage)));
        }
        if !extra.is_empty() {
            if !detail.is_empty() {
                detail.push_str("; ");
            }
            detail.push_str(&extra.join("; "));
        }
        // The forward outcome of a compensated step is that it succeeded.
        let forward = if t.state == TaskState::Compensated {
            "succeeded"
        } else {
            t.state.as_str()
        };
        if !saga {
            let _ = writeln!(
                out,
                "{:<24} {:<17} {:>8}  {}",
                t.id.as_str(),
                forward,
                t.attempts,
                detail
            );
            continue;
        }
        let comp = match (&t.compensation, &t.compensate) {
            (Some(c), _) => {
                use troupe::model::CompensationState as C;
                let failing = matches!(c.state, C::Retrying | C::Failed);
                if let Some(f) = c.last_failure.as_ref().filter(|_| failing) {
                    let retry = c
                        .retry_at
                        .map(|at| format!("; retry at {at}"))
                        .unwrap_or_default();
                    detail = format!(
                        "compensation attempt {}: {}{retry}",
                        c.attempts,
                        printable(f)
                    );
                }
                format!("{} ({})", c.state.as_str(), c.attempts)
            }
            (None, Some(_)) => "-".to_owned(),
            (None, None) => "none".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<17} {:>8}  {:<13} {}",
            t.id.as_str(),
            forward,
            t.attempts,
            comp,
            detail
        );
    }
}

/// A run: one summary line, then its tasks.
pub(crate) fn print_run(v: &RunView) {
    let s = &v.summary;
    println!(
        "run {} `{}`: {}{} — {}/{} succeeded, {} running, {} failed; submitted {}{}",
        s.id,
        printable(&s.name),
        s.state,
        if v.suspended { " (suspended)" } else { "" },
        s.succeeded,
        s.tasks,
        s.running,
        s.failed,
        s.submitted_at,
        s.finished_at
            .map(|f| format!(", finished {f}"))
            .unwrap_or_default()
    );
    if !v.usage.is_empty() {
        println!("usage: {}", usage_text(&v.usage));
    }
    print_tasks(&v.tasks);
}

/// Counters as `name=value` pairs (`tokens=1200 cost_usd=0.125`), sorted by name.
pub(crate) fn usage_text(usage: &troupe::model::Counters) -> String {
    usage
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The node in one line: `troupe status`.
pub(crate) fn print_node(n: &NodeView) {
    println!(
        "node {} (pid {}): {}{}; {} active run{} of {}; {} attempt{} running, {} task{} queued; {} workers",
        n.node_id,
        n.pid,
        if n.halted { "halted" } else { "running" },
        if n.stop_file { " (STOP file present)" } else { "" },
        n.active_runs,
        if n.active_runs == 1 { "" } else { "s" },
        n.total_runs,
        n.running_attempts,
        if n.running_attempts == 1 { "" } else { "s" },
        n.queued_tasks,
        if n.queued_tasks == 1 { "" } else { "s" },
        n.workers
    );
    if let Some(why) = &n.fault {
        println!(
            "dispatch halted: the journal refused a write: {why}; free space, then `troupe unhalt`"
        );
    }
}

/// All runs as a table: `troupe list`.
pub(crate) fn print_runs(runs: &[RunSummary]) {
    println!(
        "{:<26} {:<20} {:<20} {:>9}  SUBMITTED",
        "RUN", "WORKFLOW", "STATE", "DONE"
    );
    for r in runs {
        // A child names its parent after the columns; a parent counts its children.
        let tree = match (&r.parent, r.children) {
            (Some((p, t)), _) => format!("  ← {p}/{t}"),
            (None, (n, live)) if n > 0 => format!("  children {n} ({live} live)"),
            _ => String::new(),
        };
        println!(
            "{:<26} {:<20} {:<20} {:>4}/{:<4}  {}{tree}",
            r.id.to_string(),
            printable(&r.name),
            r.state.as_str(),
            r.succeeded,
            r.tasks,
            r.submitted_at
        );
    }
}

/// What a control command did, once the node has done it (`cancelled RUN`, `halted; ...`).
pub(crate) fn command_done(cmd: &AdminCommand) -> String {
    match cmd {
        AdminCommand::Cancel(t) => format!("cancelled {t}"),
        AdminCommand::Suspend(t) => format!("suspended {t}"),
        AdminCommand::Resume(t) => format!("resumed {t}"),
        AdminCommand::Retry(t) => format!("retrying {t}"),
        AdminCommand::Halt { kill: true } => "halted; running attempts are being terminated".into(),
        AdminCommand::Halt { kill: false } => "halted; running attempts continue".into(),
        AdminCommand::Unhalt => "dispatching resumed".into(),
        AdminCommand::Drain { node } => format!("draining {node}"),
        AdminCommand::Approve { run, task, .. } => format!("approved {run}/{task}"),
        AdminCommand::Escalation {
            run,
            approved: true,
            ..
        } => format!("approved the escalation of {run}"),
        AdminCommand::Escalation { run, .. } => format!("rejected the escalation of {run}"),
        AdminCommand::Reject { run, task, .. } => format!("rejected {run}/{task}"),
        AdminCommand::ResetBreaker { breaker, .. } => format!("breaker {breaker} closed"),
    }
}

/// How a followed run ended: `troupe run` without `--json`. A run that did not succeed gets
/// its failed tasks and compensations, and where to look next.
pub(crate) fn print_outcome(view: &RunView) {
    let s = &view.summary;
    let took = s
        .finished_at
        .map(|f| f.saturating_since(s.submitted_at))
        .unwrap_or_default();
    println!(
        "run {} `{}` {}: {}/{} tasks succeeded in {:.1} s",
        s.id,
        printable(&s.name),
        s.state,
        s.succeeded,
        s.tasks,
        took.as_secs_f64()
    );
    if s.state != RunState::Succeeded {
        for t in view
            .tasks
            .iter()
            .filter(|t| matches!(t.state, TaskState::Failed | TaskState::Cancelled))
        {
            println!(
                "  {} {}: {}",
                t.id,
                t.state,
                printable(t.last_failure.as_deref().unwrap_or("-"))
            );
        }
        let mut failed_compensation = false;
        for t in &view.tasks {
            if let Some(c) = t
                .compensation
                .as_ref()
                .filter(|c| c.state == troupe::model::CompensationState::Failed)
            {
                failed_compensation = true;
                println!(
                    "  {} compensation failed after {} attempt(s): {}",
                    t.id,
                    c.attempts,
                    printable(c.last_failure.as_deref().unwrap_or("-"))
                );
            }
        }
        println!("  logs: troupe logs {}/TASK", s.id);
        if failed_compensation {
            println!(
                "  compensation logs: troupe logs {}/TASK --compensation; resume with troupe retry {}/TASK",
                s.id, s.id
            );
        }
    }
}

/// A valid workflow in one line: `troupe validate`.
pub(crate) fn workflow_summary(file: &Path, wf: &Workflow, critical: u64) -> String {
    format!(
        "{}: valid workflow `{}`: {} task{}, {} dependenc{}, critical path {} task{}{}\n",
        printable(&file.display().to_string()),
        printable(&wf.spec().name),
        wf.len(),
        if wf.len() == 1 { "" } else { "s" },
        wf.plan().edge_count(),
        if wf.plan().edge_count() == 1 {
            "y"
        } else {
            "ies"
        },
        critical,
        if critical == 1 { "" } else { "s" },
        if wf.is_saga() { " (saga)" } else { "" },
    )
}

/// A wait or an estimate in the queue: `4.2s`, `3m5s`, `2h10m`, `1d3h`.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

/// A figure without needless decimals.
pub(super) fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Most names a line of dry-run output lists before `and N more`.
pub(super) const NAMES_PER_LINE: usize = 8;

/// `a, b, c` — or, past `max`, the first `max` and `and N more`.
pub(super) fn some_names<S: AsRef<str>>(names: &[S], max: usize) -> String {
    let shown: Vec<&str> = names.iter().take(max).map(AsRef::as_ref).collect();
    let mut line = shown.join(", ");
    if names.len() > max {
        line.push_str(&format!(" and {} more", names.len() - max));
    }
    line
}

/// A duration as a person writes it (`5m`, `1h 30m`).
pub(super) fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
