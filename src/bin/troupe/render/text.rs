//! Text output: the tables and lines commands print for people. Free text that came from a
//! workflow file or an operator (names, failures, reasons) goes through [`printable`], so it
//! cannot add lines or send terminal escapes.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use troupe::messages::control::{
    Command as AdminCommand, DryRunView, Health, HealthReport, NodeView, PendingApproval,
    QueueView, RunSummary, RunView, TaskView,
};
use troupe::model::dry_run::WorkflowPreview;
use troupe::model::quote::printable;
use troupe::model::rollup::MetricsReport;
use troupe::model::{EventRecord, RunState, Seq, TaskIndex, TaskState, Timestamp, Workflow};

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
}

/// All runs as a table: `troupe list`.
pub(crate) fn print_runs(runs: &[RunSummary]) {
    println!(
        "{:<26} {:<20} {:<20} {:>9}  SUBMITTED",
        "RUN", "WORKFLOW", "STATE", "DONE"
    );
    for r in runs {
        println!(
            "{:<26} {:<20} {:<20} {:>4}/{:<4}  {}",
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
        AdminCommand::Approve { run, task, .. } => format!("approved {run}/{task}"),
        AdminCommand::Reject { run, task, .. } => format!("rejected {run}/{task}"),
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

/// The queue as a table (with why tasks are held back when `verbose`): `troupe queue`.
pub(crate) fn print_queue(
    q: &QueueView,
    verbose: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} queued{}, {} running on {} workers, {:.1} attempts/s over the last minute{}",
        q.total,
        if q.total > q.entries.len() as u64 {
            format!(" (first {} shown)", q.entries.len())
        } else {
            String::new()
        },
        q.running,
        q.workers,
        q.throughput,
        if q.halted { "; HALTED" } else { "" }
    )?;
    writeln!(
        out,
        "{:<40} {:<17} {:>5} {:<10} {:>8} {:>10}{}",
        "RUN/TASK",
        "STATE",
        "PRIO",
        "POOL",
        "WAITING",
        "STARTS IN",
        if verbose { "  BLOCKED" } else { "" }
    )?;
    for e in &q.entries {
        let starts = match e.estimated_start {
            Some(at) => short_duration(at.saturating_since(q.now)),
            None => "-".to_owned(),
        };
        write!(
            out,
            "{:<40} {:<17} {:>5} {:<10} {:>8} {:>10}",
            format!("{}/{}", e.run, e.task),
            e.state.as_str(),
            e.priority,
            printable(e.pool.as_deref().unwrap_or("-")),
            short_duration(q.now.saturating_since(e.waiting_since)),
            starts
        )?;
        if verbose {
            write!(out, "  {}", printable(e.blocked.as_deref().unwrap_or("")))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Pending approvals as a table, ages and expiries taken at `now`: `troupe approvals`.
pub(crate) fn print_approvals(
    list: &[PendingApproval],
    now: Timestamp,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<40} {:<16} {:>8} {:>10}  COMMAND",
        "RUN/TASK", "WORKFLOW", "AGE", "EXPIRES IN"
    )?;
    let short = |d: Duration| {
        let s = d.as_secs();
        match s {
            0..60 => format!("{s}s"),
            60..3600 => format!("{}m", s / 60),
            3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
            _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
        }
    };
    for p in list {
        writeln!(
            out,
            "{:<40} {:<16} {:>8} {:>10}  {}",
            format!("{}/{}", p.run, p.task),
            printable(&p.workflow),
            short(now.saturating_since(p.requested_at)),
            short(p.expires_at.saturating_since(now)),
            printable(&p.command)
        )?;
    }
    Ok(())
}

/// Metrics of a window, overall then per pool: `troupe metrics`.
pub(crate) fn print_metrics(r: &MetricsReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "window: {} ({} to {}), {} buckets",
        humantime::format_duration(Duration::from_secs(r.window_secs)),
        r.from,
        r.to,
        r.buckets
    )?;
    writeln!(
        out,
        "{:<12} {:>10} {:>9} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "POOL", "TASKS/H", "SUCCEEDED", "FAILED", "ERRORS", "MEAN", "P50", "P95", "P99", "RETRIES"
    )?;
    let ms = |v: f64| {
        let d = Duration::from_micros((v * 1000.0) as u64);
        if v < 1000.0 {
            format!("{v:.0}ms")
        } else if v < 60_000.0 {
            format!("{:.1}s", d.as_secs_f64())
        } else {
            format!("{:.1}m", d.as_secs_f64() / 60.0)
        }
    };
    let rows = std::iter::once(&r.total).chain(r.pools.iter());
    for p in rows {
        let name = match p.pool.as_deref() {
            None => "(all)",
            Some("") => "(no pool)",
            Some(n) => n,
        };
        let name = printable(name);
        let (mean, p50, p95, p99) = match &p.latency {
            Some(l) => (ms(l.mean_ms), ms(l.p50_ms), ms(l.p95_ms), ms(l.p99_ms)),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        writeln!(
            out,
            "{:<12} {:>10.1} {:>9} {:>7} {:>7.1}% {:>9} {:>9} {:>9} {:>9} {:>8}",
            name,
            p.throughput_per_hour,
            p.counts.succeeded,
            p.counts.failed,
            p.error_rate * 100.0,
            mean,
            p50,
            p95,
            p99,
            p.counts.retries
        )?;
    }
    // Usage counters (TROUPE_USAGE), when any were reported in the window.
    let pools = std::iter::once(&r.total)
        .chain(r.pools.iter())
        .filter(|p| !p.usage.is_empty());
    for p in pools {
        let name = match p.pool.as_deref() {
            None => "(all)".to_owned(),
            Some("") => "pool (none)".to_owned(),
            Some(n) => format!("pool {}", printable(n)),
        };
        writeln!(out, "usage {name}: {}", usage_text(&p.usage))?;
    }
    for (label, usage) in &r.labels {
        writeln!(
            out,
            "usage label {}: {}",
            printable(label),
            usage_text(usage)
        )?;
    }
    Ok(())
}

/// The overall status, then one line per check: `troupe health`.
pub(crate) fn print_health(report: &HealthReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", report.status.as_str())?;
    for c in &report.checks {
        let mark = match c.status {
            Health::Healthy => "ok",
            Health::Degraded => "DEGRADED",
            Health::Unhealthy => "UNHEALTHY",
        };
        writeln!(
            out,
            "  {:<11} {:<9} {} (value {} {}, threshold {} {})",
            c.name,
            mark,
            c.message,
            num(c.value),
            c.unit,
            num(c.threshold),
            c.unit
        )?;
    }
    Ok(())
}

/// A figure without needless decimals.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Most names a line of dry-run output lists before `and N more`.
const NAMES_PER_LINE: usize = 8;

/// `a, b, c` — or, past `max`, the first `max` and `and N more`.
fn some_names<S: AsRef<str>>(names: &[S], max: usize) -> String {
    let shown: Vec<&str> = names.iter().take(max).map(AsRef::as_ref).collect();
    let mut line = shown.join(", ");
    if names.len() > max {
        line.push_str(&format!(" and {} more", names.len() - max));
    }
    line
}

/// A duration as a person writes it (`5m`, `1h 30m`).
fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// The plan of a workflow: `troupe run FILE --dry-run`. A header line, one line per wave,
/// then the critical path, approvals, compensations, templates and fan-outs (when there are
/// any) and the tasks' effective settings.
pub(crate) fn print_workflow_dry_run(
    file: &Path,
    wf: &Workflow,
    p: &WorkflowPreview,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let id = |t: TaskIndex| wf.task_id(t).as_str();
    let spec = wf.spec();
    let mut caps = Vec::new();
    if let Some(c) = spec.max_concurrency {
        caps.push(format!("max_concurrency {c}"));
    }
    for (pool, slots) in &spec.pools {
        caps.push(format!("pool {} {slots}", printable(pool)));
    }
    writeln!(
        out,
        "{}: dry run of `{}`: {} task{}, {} wave{} (at least {} step{}){}; nothing submitted",
        printable(&file.display().to_string()),
        printable(&spec.name),
        wf.len(),
        if wf.len() == 1 { "" } else { "s" },
        p.waves.len(),
        if p.waves.len() == 1 { "" } else { "s" },
        p.min_steps,
        if p.min_steps == 1 { "" } else { "s" },
        if caps.is_empty() {
            String::new()
        } else {
            format!(" within {}", caps.join(", "))
        },
    )?;
    for (k, wave) in p.waves.iter().enumerate() {
        let names: Vec<&str> = wave.iter().map(|&t| id(t)).collect();
        if names.len() > NAMES_PER_LINE {
            writeln!(
                out,
                "wave {} ({} tasks): {}",
                k + 1,
                names.len(),
                some_names(&names, NAMES_PER_LINE)
            )?;
        } else {
            writeln!(out, "wave {}: {}", k + 1, names.join(", "))?;
        }
    }
    let path: Vec<&str> = p.critical_path.tasks.iter().map(|&t| id(t)).collect();
    let path_text = if path.len() > 2 * NAMES_PER_LINE {
        format!(
            "{} → … → {}",
            path[..NAMES_PER_LINE].join(" → "),
            path[path.len() - 2..].join(" → ")
        )
    } else {
        path.join(" → ")
    };
    writeln!(
        out,
        "critical path ({} task{}): {path_text}",
        p.critical_path.length,
        if p.critical_path.length == 1 { "" } else { "s" }
    )?;
    let approvals: Vec<String> = p
        .approvals
        .iter()
        .map(|&t| match wf.approval_timeout(t) {
            Some(d) => format!("{} (expires after {})", id(t), human(d)),
            None => format!("{} (node's default expiry)", id(t)),
        })
        .collect();
    if approvals.is_empty() {
        writeln!(out, "approvals: none")?;
    } else {
        writeln!(out, "approvals: {}", some_names(&approvals, NAMES_PER_LINE))?;
    }
    let undo: Vec<&str> = p.compensations.iter().map(|&t| id(t)).collect();
    if undo.is_empty() {
        writeln!(out, "compensations: none (not a saga)")?;
    } else {
        writeln!(
            out,
            "compensations, in undo order: {}",
            some_names(&undo, 2 * NAMES_PER_LINE)
        )?;
    }
    // Templates are resolved at dispatch (outputs exist only once their task succeeded);
    // mapped tasks expand at run time (one step in the waves above).
    if !p.templates.is_empty() {
        let uses: Vec<String> = p
            .templates
            .iter()
            .map(|u| {
                format!(
                    "{} reads {} ({})",
                    id(u.task),
                    id(u.source),
                    printable(&u.text)
                )
            })
            .collect();
        writeln!(out, "templates: {}", some_names(&uses, NAMES_PER_LINE))?;
    }
    if !p.fan_outs.is_empty() {
        let fans: Vec<String> = p
            .fan_outs
            .iter()
            .map(|f| {
                format!(
                    "{} for each of {} (expands when {} succeeds)",
                    id(f.task),
                    printable(&f.over),
                    id(f.source)
                )
            })
            .collect();
        writeln!(out, "fan-outs: {}", some_names(&fans, NAMES_PER_LINE))?;
    }
    const TASK_ROWS: usize = 50;
    writeln!(
        out,
        "{:<24} {:>4}  {:<12} {:>8}  {:<10} {:>8}  NOTES",
        "TASK", "WAVE", "POOL", "PRIORITY", "TIMEOUT", "ATTEMPTS"
    )?;
    for t in p.tasks.iter().take(TASK_ROWS) {
        let mut notes = Vec::new();
        if t.requires_approval {
            notes.push("approval");
        }
        if t.compensates {
            notes.push("compensates");
        }
        let row = format!(
            "{:<24} {:>4}  {:<12} {:>8}  {:<10} {:>8}  {}",
            id(t.task),
            t.wave,
            printable(t.pool.as_deref().unwrap_or("-")),
            t.priority,
            t.timeout.map_or("-".to_owned(), human),
            if t.max_attempts == 0 {
                "unlimited".to_owned()
            } else {
                t.max_attempts.to_string()
            },
            notes.join(", ")
        );
        writeln!(out, "{}", row.trim_end())?;
    }
    if p.tasks.len() > TASK_ROWS {
        writeln!(
            out,
            "… and {} more tasks (--json lists every one)",
            p.tasks.len() - TASK_ROWS
        )?;
    }
    Ok(())
}

/// What a control command would change: `troupe cancel|suspend|resume|retry|halt
/// --dry-run`. Tasks are grouped by transition (`pending → cancelled: b, c and 40 more`).
pub(crate) fn print_command_dry_run(
    cmd: &AdminCommand,
    v: &DryRunView,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let (verb, target) = match cmd {
        AdminCommand::Cancel(t) => ("cancel", Some(t)),
        AdminCommand::Suspend(t) => ("suspend", Some(t)),
        AdminCommand::Resume(t) => ("resume", Some(t)),
        AdminCommand::Retry(t) => ("retry", Some(t)),
        AdminCommand::Halt { kill: true } => ("halt --kill", None),
        AdminCommand::Halt { kill: false } => ("halt", None),
        _ => ("command", None),
    };
    writeln!(
        out,
        "dry run: `troupe {verb}{}` would journal {}; nothing was changed",
        target.map(|t| format!(" {t}")).unwrap_or_default(),
        v.events.join(", ")
    )?;
    for r in &v.runs {
        writeln!(out, "  run {}: {} → {}", r.run, r.from, r.to)?;
    }
    // Group task transitions, in order of first appearance.
    let mut groups: Vec<((TaskState, TaskState), Vec<&str>)> = Vec::new();
    for t in &v.tasks {
        match groups.iter_mut().find(|(k, _)| *k == (t.from, t.to)) {
            Some((_, names)) => names.push(t.task.as_str()),
            None => groups.push(((t.from, t.to), vec![t.task.as_str()])),
        }
    }
    for ((from, to), names) in &groups {
        writeln!(
            out,
            "  {from} → {to}: {}{}",
            if names.len() > NAMES_PER_LINE {
                format!("{} tasks: ", names.len())
            } else {
                String::new()
            },
            some_names(names, NAMES_PER_LINE)
        )?;
    }
    for c in &v.compensations {
        writeln!(
            out,
            "  compensation of {}: {} → {}",
            c.task,
            c.from.map_or("not needed", |s| s.as_str()),
            c.to.as_str()
        )?;
    }
    let attempts = |list: &[troupe::messages::control::RunningAttempt]| -> Vec<String> {
        list.iter()
            .map(|a| {
                format!(
                    "{}/{} {}attempt {}",
                    a.run,
                    a.task,
                    if a.compensation { "compensation " } else { "" },
                    a.attempt
                )
            })
            .collect()
    };
    if let Some(h) = &v.halt {
        if h.halted {
            writeln!(
                out,
                "  the node is halted already: halting again changes nothing"
            )?;
        }
        writeln!(
            out,
            "  dispatch stops: {} queued task{} would wait until `troupe unhalt`",
            h.queued,
            if h.queued == 1 { "" } else { "s" }
        )?;
        if !h.kill && !h.running.is_empty() {
            writeln!(
                out,
                "  {} running attempt{} would go on (--kill would terminate them): {}",
                h.running.len(),
                if h.running.len() == 1 { "" } else { "s" },
                some_names(&attempts(&h.running), NAMES_PER_LINE)
            )?;
        }
    }
    if !v.terminate.is_empty() {
        writeln!(
            out,
            "  would terminate {} running attempt{}: {}",
            v.terminate.len(),
            if v.terminate.len() == 1 { "" } else { "s" },
            some_names(&attempts(&v.terminate), NAMES_PER_LINE)
        )?;
    }
    if v.runs.is_empty() && v.tasks.is_empty() && v.compensations.is_empty() && v.halt.is_none() {
        writeln!(out, "  no run or task would change state")?;
    }
    Ok(())
}
