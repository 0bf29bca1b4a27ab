//! The JSON shapes of the views: one `serde_json::Value` per view, as the CLI's `--json`
//! prints them (docs/cli.md) and the HTTP API answers them (docs/http-api.md). Field names
//! and formats here are a stable interface: scripts parse them.

use std::path::Path;

use serde_json::json;

use crate::messages::control::{
    DryRunView, FailedTask, HealthReport, NodeView, PendingApproval, QueueView, RunSummary,
    RunView, RunningAttempt, Target, TaskView,
};
use crate::model::dry_run::WorkflowPreview;
use crate::model::plan::CriticalPath;
use crate::model::rollup::MetricsReport;
use crate::model::{EventRecord, Seq, SpecError, TaskIndex, Timestamp, Workflow};

/// An optional time as RFC 3339 text, or `null`.
pub fn opt_time(t: Option<Timestamp>) -> serde_json::Value {
    t.map(|t| json!(t.to_string()))
        .unwrap_or(serde_json::Value::Null)
}

/// A run's summary: `troupe list --json` (one per run) and the head of a run's view.
pub fn summary_json(s: &RunSummary) -> serde_json::Value {
    json!({
        "id": s.id.to_string(),
        "name": s.name,
        "state": s.state.as_str(),
        "submitted_at": s.submitted_at.to_string(),
        "finished_at": opt_time(s.finished_at),
        "tasks_total": s.tasks,
        "tasks_succeeded": s.succeeded,
        "tasks_failed": s.failed,
        "tasks_running": s.running,
        "tasks_awaiting_approval": s.awaiting_approval,
        "parent": s.parent.as_ref().map(|(r, _)| r.to_string()),
        "parent_task": s.parent.as_ref().map(|(_, t)| t.as_str()),
        "key": s.key,
        "children": s.children.0,
        "children_live": s.children.1,
    })
}

/// One task: `troupe tasks --json`, `troupe status RUN/TASK --json`.
pub fn task_json(t: &TaskView) -> serde_json::Value {
    json!({
        "id": t.id.as_str(),
        "state": t.state.as_str(),
        "attempts": t.attempts,
        "depends_on": t.depends_on.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "priority": t.priority,
        "pool": t.pool,
        "command": t.command,
        "started_at": opt_time(t.started_at),
        "finished_at": opt_time(t.finished_at),
        "retry_at": opt_time(t.retry_at),
        "last_failure": t.last_failure,
        "last_failure_kind": t.last_failure_kind,
        "usage": t.usage,
        "for_each": t.for_each,
        "instances": t.instances,
        "compensate": t.compensate,
        "node": t.node,
        "compensation": t.compensation.as_ref().map(|c| json!({
            "state": c.state.as_str(),
            "attempts": c.attempts,
            "retry_at": opt_time(c.retry_at),
            "last_failure": c.last_failure,
        })),
    })
}

/// A run with its tasks: `troupe status RUN --json`, `troupe run --json`.
pub fn run_json(v: &RunView) -> serde_json::Value {
    let mut j = summary_json(&v.summary);
    j["suspended"] = json!(v.suspended);
    j["tasks"] = json!(v.tasks.iter().map(task_json).collect::<Vec<_>>());
    j["usage"] = json!(v.usage);
    j
}

/// The node: `troupe status --json`.
pub fn node_json(n: &NodeView) -> serde_json::Value {
    json!({
        "node_id": n.node_id,
        "pid": n.pid,
        "state": if n.halted { "halted" } else { "running" },
        "halted": n.halted,
        "stop_file": n.stop_file,
        "fault": n.fault,
        "active_runs": n.active_runs,
        "active_child_runs": n.active_child_runs,
        "total_runs": n.total_runs,
        "running_attempts": n.running_attempts,
        "queued_tasks": n.queued_tasks,
        "workers": n.workers,
        "last_seq": n.last_seq,
    })
}

/// One event: `troupe events --json` (one object per line).
pub fn event_json(seq: Seq, record: &EventRecord) -> serde_json::Value {
    let mut v = json!({
        "seq": seq,
        "time": record.time.to_string(),
        "type": record.event.type_name(),
    });
    if let Some(run) = record.event.run() {
        v["run"] = json!(run.to_string());
    }
    if let Some(task) = record.event.task() {
        v["task"] = json!(task.as_str());
    }
    if let Some(attempt) = record.event.attempt() {
        v["attempt"] = json!(attempt);
    }
    use crate::model::Event as E;
    let (failure, usage, retry_at) = match &record.event {
        E::TaskSucceeded { usage, .. } | E::CompensationSucceeded { usage, .. } => {
            (None, usage.as_ref(), None)
        }
        E::AttemptFailed {
            failure,
            usage,
            retry_at,
            ..
        } => (Some(failure), usage.as_ref(), Some(*retry_at)),
        E::TaskFailed { failure, usage, .. } => (Some(failure), usage.as_ref(), None),
        E::CompensationFailed {
            failure,
            usage,
            retry_at,
            ..
        } => (Some(failure), usage.as_ref(), *retry_at),
        E::NodeHalted { kill } => {
            v["kill"] = json!(kill);
            (None, None, None)
        }
        E::ApprovalGranted { approver, .. } | E::ApprovalRejected { approver, .. } => {
            v["approver"] = json!({
                "name": approver.name,
                "os_user": approver.os_user,
                "reason": approver.reason,
            });
            (None, None, None)
        }
        _ => (None, None, None),
    };
    match &record.event {
        E::TaskOutput { output, .. } => v["output_bytes"] = json!(output.len()),
        E::AttemptUsage { counters, .. } => v["counters"] = json!(counters),
        E::TaskExpanded { count, .. } => v["count"] = json!(count),
        E::QuorumReached { replicas, .. } => v["replicas"] = json!(replicas),
        E::NodeJoined {
            node,
            epoch,
            addr,
            slots,
            labels,
        } => {
            v["node"] = json!(node);
            v["epoch"] = json!(epoch);
            v["addr"] = json!(addr);
            v["slots"] = json!(slots);
            v["labels"] = json!(labels);
        }
        E::NodeLost {
            node,
            epoch,
            reason,
        } => {
            v["node"] = json!(node);
            v["epoch"] = json!(epoch);
            v["reason"] = json!(reason);
        }
        E::NodeLeft { node, epoch } => {
            v["node"] = json!(node);
            v["epoch"] = json!(epoch);
        }
        E::NodeDraining { node } => v["node"] = json!(node),
        E::JoinRefused { node, addr, reason } => {
            v["node"] = json!(node);
            v["addr"] = json!(addr);
            v["reason"] = json!(reason);
        }
        E::AttemptPlaced { node, epoch, .. } => {
            v["node"] = json!(node);
            v["epoch"] = json!(epoch);
        }
        E::ResultRejected {
            node,
            epoch,
            outcome,
            reason,
            ..
        } => {
            v["node"] = json!(node);
            v["epoch"] = json!(epoch);
            v["outcome"] = json!(outcome);
            v["reason"] = json!(reason);
        }
        E::RunSpawned {
            workflow, spawn, ..
        } => {
            v["workflow"] = json!(workflow.spec().name);
            v["parent"] = json!(spawn.parent.as_ref().map(|(r, _)| r.to_string()));
            v["parent_task"] = json!(spawn.parent.as_ref().map(|(_, t)| t.as_str()));
            v["parent_attempt"] = json!(spawn.attempt);
            v["key"] = json!(spawn.key);
            v["input_bytes"] = json!(spawn.input.as_ref().map(String::len));
            v["reserved"] = json!(spawn.reserved);
            v["budget"] = json!(spawn.authority.budget);
            v["max_depth"] = json!(spawn.authority.max_depth);
            v["on_failure"] = json!(spawn.on_failure.as_str());
            v["on_parent_exit"] = json!(spawn.on_parent_exit.as_str());
            v["on_budget_exhausted"] = json!(spawn.on_budget_exhausted.as_str());
        }
        E::SpawnRefused {
            key,
            reason,
            message,
            ..
        } => {
            v["key"] = json!(key);
            v["reason"] = json!(reason);
            v["message"] = json!(message);
        }
        E::EscalationDecided {
            approved,
            approver,
            extend,
            ..
        } => {
            v["approved"] = json!(approved);
            v["approver"] = json!({
                "name": approver.name,
                "os_user": approver.os_user,
                "reason": approver.reason,
            });
            v["extend"] = json!(extend);
        }
        E::BudgetExhausted {
            counter,
            used,
            limit,
            ..
        }
        | E::EscalationRequested {
            counter,
            used,
            limit,
            ..
        } => {
            v["counter"] = json!(counter);
            v["used"] = json!(used);
            v["limit"] = json!(limit);
        }
        _ => {}
    }
    if let Some(f) = failure {
        v["failure"] = json!(f.to_string());
        v["failure_kind"] = json!(f.kind());
    }
    if let Some(u) = usage {
        v["usage"] = json!({
            "user_cpu_us": u.user_cpu_us,
            "system_cpu_us": u.system_cpu_us,
            "max_rss_kib": u.max_rss_kib,
        });
    }
    if let Some(at) = retry_at {
        v["retry_at"] = json!(at.to_string());
    }
    v
}

/// The queue: `troupe queue --json`.
pub fn queue_json(q: &QueueView) -> serde_json::Value {
    json!({
        "now": q.now.to_string(),
        "halted": q.halted,
        "running": q.running,
        "workers": q.workers,
        "throughput_per_s": q.throughput,
        "total": q.total,
        "tasks": q.entries.iter().map(|e| json!({
            "run": e.run.to_string(),
            "task": e.task.as_str(),
            "workflow": e.workflow,
            "state": e.state.as_str(),
            "priority": e.priority,
            "pool": e.pool,
            "waiting_since": e.waiting_since.to_string(),
            "wait_s": q.now.saturating_since(e.waiting_since).as_secs_f64(),
            "retry_at": opt_time(e.retry_at),
            "estimated_start": opt_time(e.estimated_start),
            "blocked": e.blocked,
            "score": e.score.score,
            "score_parts": {
                "priority": e.score.priority,
                "deadline": e.score.deadline,
                "age": e.score.age,
                "labels": e.score.labels,
            },
            "deadline": opt_time(e.deadline),
            "labels": e.labels,
        })).collect::<Vec<_>>(),
    })
}

/// One pending approval, its age taken at `now`: `troupe approvals --json`.
pub fn approval_json(p: &PendingApproval, now: Timestamp) -> serde_json::Value {
    json!({
        "run": p.run.to_string(),
        "task": p.task.as_str(),
        "workflow": p.workflow,
        "command": p.command,
        "requested_at": p.requested_at.to_string(),
        "age_s": now.saturating_since(p.requested_at).as_secs(),
        "expires_at": p.expires_at.to_string(),
    })
}

/// One task failed for good, with the path of its last attempt's log (`None`: it never ran)
/// and that log's last lines: `troupe failed --json`.
pub fn failed_json(f: &FailedTask, log: Option<&Path>, tail: &[String]) -> serde_json::Value {
    json!({
        "run": f.run.to_string(),
        "workflow": f.workflow,
        "run_state": f.run_state.as_str(),
        "task": f.task.as_str(),
        "state": "failed",
        "kind": f.kind,
        "exit_code": f.exit_code,
        "signal": f.signal,
        "message": f.message,
        "attempts": f.attempts,
        "failed_at": f.failed_at.to_string(),
        "labels": f.labels,
        "log": log.map(|p| p.display().to_string()),
        "log_tail": tail,
    })
}

/// A valid workflow file: `troupe validate --json`.
pub fn valid_json(file: &Path, wf: &Workflow, cp: &CriticalPath) -> serde_json::Value {
    json!({
        "valid": true,
        "file": file.display().to_string(),
        "name": wf.spec().name,
        "tasks": wf.len(),
        "edges": wf.plan().edge_count(),
        "critical_path": cp.tasks.iter().map(|&t| wf.task_id(t).as_str()).collect::<Vec<_>>(),
    })
}

/// An invalid workflow file and its problems: `troupe validate --json`.
pub fn invalid_json(file: &Path, e: &SpecError) -> serde_json::Value {
    let problems: Vec<_> = e
        .problems
        .iter()
        .map(|p| json!({"line": p.line, "column": p.column, "message": p.message}))
        .collect();
    json!({"valid": false, "file": file.display().to_string(), "errors": problems})
}

/// Metrics of a window: `troupe metrics --json` (the report's serde shape).
pub fn metrics_json(r: &MetricsReport) -> serde_json::Value {
    serde_json::to_value(r).expect("serializable")
}

/// Health checks: `troupe health --json` (the report's serde shape).
pub fn health_json(r: &HealthReport) -> serde_json::Value {
    serde_json::to_value(r).expect("serializable")
}

/// A duration as seconds (`null` for none).
fn opt_secs(d: Option<std::time::Duration>) -> serde_json::Value {
    d.map(|d| json!(d.as_secs_f64()))
        .unwrap_or(serde_json::Value::Null)
}

/// The plan of a workflow: `troupe run FILE --dry-run --json` (shape in docs/operations.md,
/// "Dry runs").
pub fn workflow_dry_run_json(file: &Path, wf: &Workflow, p: &WorkflowPreview) -> serde_json::Value {
    let id = |t: TaskIndex| wf.task_id(t).as_str();
    let ids = |list: &[TaskIndex]| list.iter().map(|&t| id(t)).collect::<Vec<_>>();
    json!({
        "dry_run": true,
        "valid": true,
        "file": file.display().to_string(),
        "name": wf.spec().name,
        "tasks_total": wf.len(),
        "edges": wf.plan().edge_count(),
        "max_concurrency": wf.spec().max_concurrency,
        "pools": wf.spec().pools,
        "steps": p.waves.len(),
        "min_steps": p.min_steps,
        "waves": p.waves.iter().map(|w| ids(w)).collect::<Vec<_>>(),
        "critical_path": {
            "length": p.critical_path.length,
            "tasks": ids(&p.critical_path.tasks),
        },
        "approvals": p.approvals.iter().map(|&t| json!({
            "task": id(t),
            "approval_timeout_s": opt_secs(wf.approval_timeout(t)),
        })).collect::<Vec<_>>(),
        "compensations": ids(&p.compensations),
        "tasks": p.tasks.iter().map(|t| json!({
            "id": id(t.task),
            "wave": t.wave,
            "pool": t.pool,
            "priority": t.priority,
            "timeout_s": opt_secs(t.timeout),
            "max_attempts": t.max_attempts,
            "requires_approval": t.requires_approval,
            "approval_timeout_s": opt_secs(t.approval_timeout),
            "compensates": t.compensates,
        })).collect::<Vec<_>>(),
        "templates": p.templates.iter().map(|u| json!({
            "task": id(u.task),
            "field": u.field,
            "source": id(u.source),
            "text": u.text,
            "resolved": "at dispatch",
        })).collect::<Vec<_>>(),
        "fan_outs": p.fan_outs.iter().map(|f| json!({
            "task": id(f.task),
            "over": f.over,
            "source": id(f.source),
            "max_instances": wf.max_fan_out(f.task),
        })).collect::<Vec<_>>(),
    })
}

/// A running attempt in a dry run's lists.
fn attempt_json(a: &RunningAttempt) -> serde_json::Value {
    json!({
        "run": a.run.to_string(),
        "task": a.task.as_str(),
        "workflow": a.workflow,
        "attempt": a.attempt,
        "compensation": a.compensation,
        "started_at": a.started_at.to_string(),
    })
}

/// What a control command would change: `troupe cancel|suspend|resume|retry|halt --dry-run
/// --json` (shape in docs/operations.md, "Dry runs").
pub fn command_dry_run_json(
    verb: &str,
    target: Option<&Target>,
    v: &DryRunView,
) -> serde_json::Value {
    json!({
        "dry_run": true,
        "command": verb,
        "target": target.map(|t| t.to_string()),
        "events": v.events,
        "runs": v.runs.iter().map(|r| json!({
            "run": r.run.to_string(),
            "from": r.from.as_str(),
            "to": r.to.as_str(),
        })).collect::<Vec<_>>(),
        "tasks": v.tasks.iter().map(|t| json!({
            "run": t.run.to_string(),
            "task": t.task.as_str(),
            "from": t.from.as_str(),
            "to": t.to.as_str(),
        })).collect::<Vec<_>>(),
        "compensations": v.compensations.iter().map(|c| json!({
            "run": c.run.to_string(),
            "task": c.task.as_str(),
            "from": c.from.map(|s| s.as_str()),
            "to": c.to.as_str(),
        })).collect::<Vec<_>>(),
        "terminate": v.terminate.iter().map(attempt_json).collect::<Vec<_>>(),
        "halt": v.halt.as_ref().map(|h| json!({
            "halted": h.halted,
            "kill": h.kill,
            "queued": h.queued,
            "running": h.running.iter().map(attempt_json).collect::<Vec<_>>(),
        })),
    })
}
