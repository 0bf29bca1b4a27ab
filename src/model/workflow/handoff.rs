//! The checks of outputs, templates, gates and fan-out (`max_output`, `gate`, `for_each`,
//! `{{ ... }}` in `command` and `env`): field rules, then, once the DAG is planned, that every
//! task a template names is upstream.

use crate::model::ids::TaskIndex;
use crate::model::spec::{Command, TaskSpec, WorkflowSpec, MAX_MAX_FAN_OUT, MAX_MAX_OUTPUT};
use crate::model::template::{self, Expr, Root};

use super::*;

/// Why templates are refused in shell lines, and what to do instead.
const SHELL_ADVICE: &str = "templates are not resolved in a shell line (an output pasted into \
     a shell line is an injection); pass the value through `env` instead, e.g. \
     env = { FILE = \"{{ tasks.list.output.file }}\" } and use \"$FILE\" in the line";

/// Field rules of one task's handoff settings and templates.
pub(super) fn check_task(p: &mut Problems<'_>, i: TaskIndex, task: &TaskSpec) {
    let id = &task.id;
    if task.id.split_instance().is_some() {
        p.at(
            Loc::Task(i),
            format!("task id `{id}`: `[` and `]` are reserved for the instances of mapped tasks"),
        );
    }
    let h = task.handoff();
    if h.and_then(|h| h.expansion).is_some() {
        p.at(
            Loc::Task(i),
            format!("task `{id}`: expansion is set by the node, not by a workflow"),
        );
    }
    if let Some(max) = h.and_then(|h| h.max_output) {
        max_output_rule(
            p,
            Loc::TaskField(i, "max_output"),
            &format!("task `{id}`"),
            max,
        );
    }
    let mapped = task.for_each().is_some();
    if let Some(max) = h.and_then(|h| h.max_fan_out) {
        max_fan_out_rule(
            p,
            Loc::TaskField(i, "max_fan_out"),
            &format!("task `{id}`"),
            max,
        );
        if !mapped {
            p.at(
                Loc::TaskField(i, "max_fan_out"),
                format!("task `{id}` sets max_fan_out but has no for_each"),
            );
        }
    }
    if let Some(fe) = task.for_each() {
        if let Err(e) = template::parse_for_each(fe) {
            p.at(Loc::TaskField(i, "for_each"), format!("task `{id}`: {e}"));
        }
    }
    // Templates: resolved in command elements and env values only.
    let check_text = |p: &mut Problems<'_>, field: &'static str, text: &str| {
        if !has_template(text) {
            // No `{{`: no expression (the common case, checked without a searcher).
            return;
        }
        match template::exprs(text) {
            Err(e) => p.at(
                Loc::TaskField(i, field),
                format!("task `{id}`: {field}: {e}"),
            ),
            Ok(exprs) => {
                for e in exprs {
                    if matches!(e.root, Root::Item | Root::Index) && !mapped {
                        p.at(
                            Loc::TaskField(i, field),
                            format!(
                                "task `{id}`: {e} is only available in a mapped task \
                                 (one with for_each)"
                            ),
                        );
                    }
                }
            }
        }
    };
    match &task.command {
        Command::Argv(argv) => argv.iter().for_each(|a| check_text(p, "command", a)),
        Command::Shell(text) if template::has_exprs(text) => p.at(
            Loc::TaskField(i, "command"),
            format!("task `{id}`: `shell` holds a template: {SHELL_ADVICE}"),
        ),
        Command::Shell(_) => {}
    }
    for v in task.env.values() {
        check_text(p, "env", v);
    }
    for (field, command) in [
        ("compensate", task.compensate.as_ref()),
        ("gate", h.and_then(|h| h.gate.as_ref())),
    ] {
        match command {
            Some(Command::Shell(text)) if template::has_exprs(text) => p.at(
                Loc::TaskField(i, field),
                format!("task `{id}`: `{field}_shell` holds a template: {SHELL_ADVICE}"),
            ),
            Some(Command::Argv(argv)) if argv.iter().any(|a| template::has_exprs(a)) => p.at(
                Loc::TaskField(i, field),
                format!(
                    "task `{id}`: `{field}` holds a template; templates are resolved only in \
                     `command` and `env` (the {field} reads the task's environment, so put the \
                     value in `env`)"
                ),
            ),
            _ => {}
        }
    }
    if let Some(gate) = h.and_then(|h| h.gate.as_ref()) {
        super::check::check_command(p, i, id, "gate", gate);
    }
}

/// `[defaults]` handoff rules: `max_output`, and no templates in `[defaults] env` (it is
/// merged into every task, including the ones a template would name).
pub(super) fn check_defaults(p: &mut Problems<'_>, spec: &WorkflowSpec) {
    let d = &spec.defaults;
    if let Some(max) = d.max_output {
        max_output_rule(p, Loc::Defaults("max_output"), "[defaults]", max);
    }
    if let Some(max) = d.max_fan_out {
        max_fan_out_rule(p, Loc::Defaults("max_fan_out"), "[defaults]", max);
    }
    if d.env.values().any(|v| template::has_exprs(v)) {
        p.at(
            Loc::Defaults("env"),
            "[defaults] env holds a template; templates are resolved only in a task's own \
             `command` and `env`",
        );
    }
}

fn max_fan_out_rule(p: &mut Problems<'_>, at: Loc<'_>, owner: &str, max: u32) {
    if max > MAX_MAX_FAN_OUT {
        p.at(
            at,
            format!("{owner}: max_fan_out must be at most {MAX_MAX_FAN_OUT}, got {max}"),
        );
    }
}

fn max_output_rule(p: &mut Problems<'_>, at: Loc<'_>, owner: &str, max: u64) {
    if max == 0 || max > MAX_MAX_OUTPUT {
        p.at(
            at,
            format!(
                "{owner}: max_output must be between 1 and {MAX_MAX_OUTPUT} bytes (64 MiB), \
                 got {max}"
            ),
        );
    }
}

/// Every expression of a task's `command` and `env`, with the field holding it (syntax
/// errors skipped: reported by the field rules).
pub(crate) fn task_templates(task: &TaskSpec) -> Vec<(&'static str, Expr)> {
    let mut out = Vec::new();
    if let Command::Argv(argv) = &task.command {
        for a in argv {
            let exprs = template::exprs(a).unwrap_or_default();
            out.extend(exprs.into_iter().map(|e| ("command", e)));
        }
    }
    for v in task.env.values() {
        let exprs = template::exprs(v).unwrap_or_default();
        out.extend(exprs.into_iter().map(|e| ("env", e)));
    }
    out
}

/// Whether `text` holds `{{` (a template's opening): a byte scan, as most texts are short
/// and have no `{`.
fn has_template(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = bytes[from..].iter().position(|&b| b == b'{') {
        let at = from + at;
        if bytes.get(at + 1) == Some(&b'{') {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Whether [`check_references`] has anything to check in `task`: a `for_each`, or a `{{` in
/// a `command` element or an `env` value (a superset of the tasks with an expression).
pub(super) fn has_references(task: &TaskSpec) -> bool {
    task.for_each().is_some()
        || matches!(&task.command, Command::Argv(argv) if argv.iter().any(|a| has_template(a)))
        || task.env.values().any(|v| has_template(v))
}

/// Structure rules, on a planned workflow: each task a template or `for_each` names exists
/// and is upstream; a `for_each` does not name a mapped task. Only the tasks of `tasks` (in
/// order) are looked at: those [`has_references`] picks, as no other task has anything to
/// check.
pub(super) fn check_references(wf: &Workflow, p: &mut Problems<'_>, tasks: &[TaskIndex]) {
    for &i in tasks {
        let task = wf.task(i);
        let mut named = task_templates(task);
        if let Some(e) = task
            .for_each()
            .and_then(|f| template::parse_for_each(f).ok())
        {
            named.push(("for_each", e));
        }
        for (field, e) in named {
            let Root::Output(source) = &e.root else {
                continue;
            };
            let id = &task.id;
            let Some(s) = wf.task_index(source.as_str()) else {
                p.at(
                    Loc::TaskField(i, field),
                    format!(
                        "task `{id}`: {e} names `{source}`, which is not a task in this workflow"
                    ),
                );
                continue;
            };
            if !is_upstream(wf, s, i) {
                p.at(
                    Loc::TaskField(i, field),
                    format!(
                        "task `{id}`: {e} names `{source}`, which is not upstream of `{id}`; \
                         add it to depends_on (outputs exist only once a task succeeded)"
                    ),
                );
            } else if field == "for_each" && wf.task(s).for_each().is_some() {
                p.at(
                    Loc::TaskField(i, field),
                    format!(
                        "task `{id}`: for_each names `{source}`, which is itself mapped; \
                         fan out over a task that combines its outputs instead"
                    ),
                );
            }
        }
    }
}

/// Whether `a` is upstream (a dependency, direct or not) of `b`. Direct dependencies are
/// checked first; otherwise a walk up from `b`.
fn is_upstream(wf: &Workflow, a: TaskIndex, b: TaskIndex) -> bool {
    let plan = wf.plan();
    if plan.upstream(b).any(|u| u == a) {
        return true;
    }
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<TaskIndex> = plan.upstream(b).collect();
    while let Some(u) = stack.pop() {
        if u == a {
            return true;
        }
        if seen.insert(u) {
            stack.extend(plan.upstream(u));
        }
    }
    false
}
