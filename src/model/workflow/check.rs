//! The field checks of a workflow spec: names, commands, environments, durations, retry
//! settings, pools; every problem is collected, with where it lies.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::model::ids::{TaskId, TaskIndex};
use crate::model::quote::{quoted, MAX_QUOTED_CHARS};
use crate::model::spec::{too_long, valid_env_name, Command, TaskSpec, WorkflowSpec};

use super::*;

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(super) fn check_command(
    p: &mut Problems<'_>,
    i: TaskIndex,
    id: &TaskId,
    field: &'static str,
    command: &Command,
) {
    let at = Loc::TaskField(i, field);
    match command {
        Command::Argv(argv) if argv.is_empty() => p.at(
            at,
            format!("task `{id}`: `{field}` is empty; give at least the program to run"),
        ),
        Command::Argv(argv) if argv[0].is_empty() => p.at(
            at,
            format!("task `{id}`: the program name (`{field}[0]`) is empty"),
        ),
        Command::Argv(argv) if argv.iter().any(|a| a.contains('\0')) => p.at(
            at,
            format!("task `{id}`: `{field}` contains a NUL byte, which no program can receive"),
        ),
        Command::Shell(text) if text.trim().is_empty() => {
            p.at(at, format!("task `{id}`: the shell line is empty"))
        }
        Command::Shell(text) if text.contains('\0') => p.at(
            at,
            format!("task `{id}`: the shell line contains a NUL byte"),
        ),
        _ => {}
    }
}

pub(super) fn check_env(
    p: &mut Problems<'_>,
    at: Loc<'_>,
    owner: &str,
    env: &BTreeMap<String, String>,
) {
    for (k, v) in env {
        if k.is_empty() || k.contains('=') || k.contains('\0') {
            p.at(
                at,
                format!(
                    "{owner}: env name {} is not a valid variable name",
                    quoted(k)
                ),
            );
        }
        if v.contains('\0') {
            p.at(
                at,
                format!("{owner}: env value of {} contains a NUL byte", quoted(k)),
            );
        }
    }
}

/// `secret_env`: portable variable names, not `TROUPE_*` (troupe sets those), each once, and
/// not also given a value in `env` (task or `[defaults]`).
fn check_secret_env(p: &mut Problems<'_>, spec: &WorkflowSpec, i: TaskIndex, task: &TaskSpec) {
    let id = &task.id;
    let at = Loc::TaskField(i, "secret_env");
    for (n, name) in task.secret_env.iter().enumerate() {
        if !valid_env_name(name) {
            p.at(
                at,
                format!(
                    "task `{id}`: secret_env name {} is not a valid environment variable name \
                     (letters, digits and `_`, not starting with a digit)",
                    quoted(name)
                ),
            );
        } else if name.starts_with("TROUPE_") {
            p.at(
                at,
                format!(
                    "task `{id}`: secret_env name `{name}`: TROUPE_* variables are set by troupe"
                ),
            );
        } else if task.secret_env[..n].contains(name) {
            p.at(at, format!("task `{id}`: secret_env names `{name}` twice"));
        } else if task.env.contains_key(name) || spec.defaults.env.contains_key(name) {
            p.at(
                at,
                format!(
                    "task `{id}`: `{name}` is both in secret_env and in env; a secret's value \
                     comes from the node, not the workflow"
                ),
            );
        }
    }
}

/// The pools declared, for a message about an undeclared one.
fn declared(spec: &WorkflowSpec) -> String {
    if spec.pools.is_empty() {
        "no pools are declared".to_owned()
    } else {
        // Plain names are listed bare; others (too long, odd characters) quoted.
        // At most 20, so a file declaring thousands does not flood the terminal.
        let mut names: Vec<String> = spec
            .pools
            .keys()
            .take(20)
            .map(|n| {
                if valid_name(n) && n.len() <= MAX_QUOTED_CHARS {
                    n.clone()
                } else {
                    quoted(n).to_string()
                }
            })
            .collect();
        if spec.pools.len() > names.len() {
            names.push(format!("and {} more", spec.pools.len() - names.len()));
        }
        format!("declared: {}", names.join(", "))
    }
}

/// Field-level rules (everything but the graph structure): [`check_head`], then
/// [`check_task`] of each task in order.
pub(super) fn check_fields(spec: &WorkflowSpec, p: &mut Problems<'_>) {
    check_head(spec, p);
    for (i, task) in spec.tasks.iter().enumerate() {
        check_task(spec, p, i as TaskIndex, task);
    }
}

/// The rules of the top-level fields, `[pools]` and `[defaults]`.
pub(super) fn check_head(spec: &WorkflowSpec, p: &mut Problems<'_>) {
    if spec.name.trim().is_empty() {
        p.at(Loc::Name, "`name` is empty; give the workflow a name");
    }
    // The name is printed by `troupe list`, `events`, `status`: a newline would forge output
    // lines there, an escape sequence would drive the terminal.
    if let Some(c) = spec.name.chars().find(|c| c.is_control()) {
        p.at(
            Loc::Name,
            format!(
                "`name` contains the control character {c:?}; names are printed on terminals, \
                 so control characters (newline, tab, escape, ...) are not allowed"
            ),
        );
    }
    if spec.max_concurrency == Some(0) {
        p.at(
            Loc::MaxConcurrency,
            "`max_concurrency` must be at least 1 (omit it for no per-run cap)",
        );
    }
    for (name, &slots) in &spec.pools {
        if !valid_name(name) {
            p.at(
                Loc::Pool(name),
                format!(
                    "pool name {} may only use letters, digits, `_`, `.` and `-`",
                    quoted(name)
                ),
            );
        }
        if slots == 0 {
            p.at(
                Loc::Pool(name),
                format!("pool {} has 0 slots; give it at least 1", quoted(name)),
            );
        }
    }
    if let Some(res) = spec.resilience.as_deref() {
        let mut names = std::collections::BTreeSet::new();
        for (i, b) in res.breakers.iter().enumerate() {
            if !names.insert(b.name.as_str()) {
                p.at(
                    Loc::Top("breakers"),
                    format!(
                        "breakers[{i}]: another breaker is named {}",
                        quoted(&b.name)
                    ),
                );
            }
            if let Some(pool) = b
                .scope
                .pool
                .as_ref()
                .filter(|x| !spec.pools.contains_key(*x))
            {
                p.at(
                    Loc::Top("breakers"),
                    format!(
                        "breakers[{i}]: pool {} is not declared under [pools] ({})",
                        quoted(pool),
                        declared(spec)
                    ),
                );
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, h) in res.hooks.iter().enumerate() {
            if !names.insert(h.name.as_str()) {
                p.at(
                    Loc::Top("hooks"),
                    format!("hooks[{i}]: another hook is named {}", quoted(&h.name)),
                );
            }
        }
    }
    let d = &spec.defaults;
    if let Some(pool) = &d.pool {
        if !spec.pools.contains_key(pool) {
            p.at(
                Loc::Defaults("pool"),
                format!(
                    "[defaults] pool {} is not declared under [pools] ({})",
                    quoted(pool),
                    declared(spec)
                ),
            );
        }
    }
    for msg in d.retry.problems() {
        p.at(Loc::Defaults("retry"), format!("[defaults] retry: {msg}"));
    }
    if d.timeout == Some(Duration::ZERO) {
        p.at(
            Loc::Defaults("timeout"),
            "[defaults] timeout must be longer than 0s",
        );
    }
    for (field, value) in [
        ("timeout", d.timeout),
        ("approval_timeout", d.approval_timeout),
    ] {
        if let Some(msg) = value.and_then(|v| too_long(field, v)) {
            p.at(Loc::Defaults(field), format!("[defaults] {msg}"));
        }
    }
    for msg in d.compensate_retry.problems() {
        p.at(
            Loc::Defaults("compensate_retry"),
            format!("[defaults] compensate_retry: {msg}"),
        );
    }
    if d.approval_timeout == Some(Duration::ZERO) {
        p.at(
            Loc::Defaults("approval_timeout"),
            "[defaults] approval_timeout must be longer than 0s",
        );
    }
    check_env(p, Loc::Defaults("env"), "[defaults]", &d.env);
    super::handoff::check_defaults(p, spec);
    if let Some(d) = spec.delegation() {
        if let Err(msg) = d.authority.check() {
            p.at(Loc::Top("authority"), format!("[authority] {msg}"));
        }
    }
    if d.cwd.as_deref().is_some_and(|c| c.contains('\0')) {
        p.at(Loc::Defaults("cwd"), "[defaults] cwd contains a NUL byte");
    }
}

/// The field rules of task `i`, `task` (a `[[task]]` of `spec`).
pub(super) fn check_task(spec: &WorkflowSpec, p: &mut Problems<'_>, i: TaskIndex, task: &TaskSpec) {
    let d = &spec.defaults;
    let id = &task.id;
    check_command(p, i, id, "command", &task.command);
    if let Some(c) = &task.compensate {
        check_command(p, i, id, "compensate", c);
    }
    if let Some(pool) = &task.pool {
        if !spec.pools.contains_key(pool) {
            p.at(
                Loc::TaskField(i, "pool"),
                format!(
                    "task `{id}` uses pool {}, which is not declared under [pools] ({})",
                    quoted(pool),
                    declared(spec)
                ),
            );
        }
    }
    if let Some(r) = &task.retry {
        for msg in r.problems() {
            p.at(
                Loc::TaskField(i, "retry"),
                format!("task `{id}`: retry: {msg}"),
            );
        }
        // Each table may be fine alone and wrong merged: initial_interval from one,
        // max_interval from the other.
        let merged = r.or(d.retry);
        if let (Some(initial), Some(max)) = (merged.initial_interval, merged.max_interval) {
            let alone = |s: &crate::model::retry::RetrySpec| {
                s.initial_interval.is_some() && s.max_interval.is_some()
            };
            if max < initial && !alone(r) && !alone(&d.retry) {
                p.at(
                    Loc::TaskField(i, "retry"),
                    format!(
                        "task `{id}`: retry: max_interval ({}) is shorter than \
                         initial_interval ({}) once merged with [defaults].retry",
                        humantime::format_duration(max),
                        humantime::format_duration(initial)
                    ),
                );
            }
        }
    }
    if task.timeout == Some(Duration::ZERO) {
        p.at(
            Loc::TaskField(i, "timeout"),
            format!("task `{id}`: timeout must be longer than 0s"),
        );
    }
    if task.approval_timeout == Some(Duration::ZERO) {
        p.at(
            Loc::TaskField(i, "approval_timeout"),
            format!("task `{id}`: approval_timeout must be longer than 0s"),
        );
    }
    for (field, value) in [
        ("timeout", task.timeout),
        ("approval_timeout", task.approval_timeout),
    ] {
        if let Some(msg) = value.and_then(|v| too_long(field, v)) {
            p.at(Loc::TaskField(i, field), format!("task `{id}`: {msg}"));
        }
    }
    let requires = task
        .requires_approval
        .or(d.requires_approval)
        .unwrap_or(false);
    if task.approval_timeout.is_some() && !requires {
        p.at(
            Loc::TaskField(i, "approval_timeout"),
            format!(
                "task `{id}` sets approval_timeout but does not require approval \
                 (add requires_approval = true)"
            ),
        );
    }
    if let Some(r) = &task.compensate_retry {
        for msg in r.problems() {
            p.at(
                Loc::TaskField(i, "compensate_retry"),
                format!("task `{id}`: compensate_retry: {msg}"),
            );
        }
        if task.compensate.is_none() {
            p.at(
                Loc::TaskField(i, "compensate_retry"),
                format!(
                    "task `{id}` sets compensate_retry but has no compensation \
                     (add `compensate` or `compensate_shell`)"
                ),
            );
        }
    }
    for (field, labels) in [("labels", &task.labels), ("node_labels", &task.node_labels)] {
        for label in labels {
            if !valid_name(label) {
                p.at(
                    Loc::TaskField(i, field),
                    format!(
                        "task `{id}`: {} {} may only use letters, digits, `_`, `.` and `-`",
                        &field[..field.len() - 1],
                        quoted(label)
                    ),
                );
            }
        }
    }
    if !task.env.is_empty() {
        check_env(p, Loc::Task(i), &format!("task `{id}`"), &task.env);
    }
    check_secret_env(p, spec, i, task);
    super::handoff::check_task(p, i, task);
    check_swarm(spec, p, i, task);
    if task.cwd.as_deref().is_some_and(|c| c.contains('\0')) {
        p.at(
            Loc::Task(i),
            format!("task `{id}`: cwd contains a NUL byte"),
        );
    }
}

/// The swarm rules of task `i` (`replicas`, `quorum`, `vote`; see D67 in
/// docs/decisions.md for why a swarm takes no `compensate`, `for_each` or approval).
fn check_swarm(spec: &WorkflowSpec, p: &mut Problems<'_>, i: TaskIndex, task: &TaskSpec) {
    use crate::model::spec::MAX_REPLICAS;
    let Some(s) = task.swarm() else { return };
    let id = &task.id;
    if s.replicas < 2 || s.replicas > MAX_REPLICAS {
        p.at(
            Loc::TaskField(i, "replicas"),
            format!(
                "task `{id}`: replicas must be from 2 to {MAX_REPLICAS}, got {} \
                 (`quorum` and `vote` need `replicas`)",
                s.replicas
            ),
        );
        return;
    }
    if s.quorum == 0 || s.quorum > s.replicas {
        p.at(
            Loc::TaskField(i, "quorum"),
            format!(
                "task `{id}`: quorum must be from 1 to replicas ({}), got {}",
                s.replicas, s.quorum
            ),
        );
    }
    if let Some(v) = &s.vote {
        check_command(p, i, id, "vote", v);
    }
    let refuse = |p: &mut Problems<'_>, field: &'static str, why: &str| {
        p.at(
            Loc::TaskField(i, field),
            format!("task `{id}` sets replicas and {field}: {why}"),
        );
    };
    if task.compensate.is_some() {
        refuse(
            p,
            "compensate",
            "a swarm's losing replicas are cancelled mid-effect, so their effects cannot be \
             undone one by one; keep side effects out of the swarm and compensate in a \
             downstream task",
        );
    }
    if task.for_each().is_some() {
        refuse(
            p,
            "for_each",
            "a mapped task cannot also be a swarm; make each instance's work a swarm task \
             downstream",
        );
    }
    if task
        .requires_approval
        .or(spec.defaults.requires_approval)
        .unwrap_or(false)
    {
        refuse(
            p,
            "requires_approval",
            "approve an upstream task instead (each replica would ask on its own)",
        );
    }
}
