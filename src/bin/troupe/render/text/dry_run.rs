//! Dry runs: the plan of a workflow file, what an operator command would change.

use super::*;

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
        let mut notes: Vec<std::borrow::Cow<'static, str>> = Vec::new();
        if t.requires_approval {
            notes.push("approval".into());
        }
        if t.compensates {
            notes.push("compensates".into());
        }
        if let Some(s) = wf.task(t.task).swarm() {
            let how = if s.vote.is_some() {
                "then a vote"
            } else {
                "equal outputs"
            };
            notes.push(
                format!(
                    "swarm: {} replicas, quorum {} ({how})",
                    s.replicas, s.quorum
                )
                .into(),
            );
        }
        if let Some(d) = wf.task(t.task).deadline() {
            notes.push(match d {
                troupe::model::spec::Deadline::At(at) => format!("deadline {at}").into(),
                troupe::model::spec::Deadline::After(after) => {
                    format!("deadline {} after submission", human(after)).into()
                }
            });
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
