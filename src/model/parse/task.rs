//! One `[[task]]` table: reading its fields and, when they all read, its [`TaskSpec`].

use std::collections::BTreeMap;
use std::ops::Range;

use toml::de::DeValue;
use toml::Spanned;

use super::defaults::RawRetry;
use super::duration::{dur, HumanDuration};
use super::position::{inner, line_col, span_of, TaskSpans};
use super::reader::{Reader, Table};
use crate::model::ids::TaskId;
use crate::model::spec::{Command, Deadline, Handoff, Problem, Swarm, TaskScheduling, TaskSpec};

/// A `[[task]]` table as read; the fields mirror [`TaskSpec`], unset if absent or
/// unreadable.
#[derive(Default, Clone)]
pub(super) struct RawTask {
    pub(super) id: Option<Spanned<TaskId>>,
    pub(super) command: Option<Spanned<Vec<String>>>,
    pub(super) shell: Option<Spanned<String>>,
    pub(super) cwd: Option<Spanned<String>>,
    pub(super) depends_on: Option<Spanned<Vec<Spanned<TaskId>>>>,
    pub(super) priority: Option<Spanned<i32>>,
    pub(super) pool: Option<Spanned<String>>,
    pub(super) requires_approval: Option<Spanned<bool>>,
    pub(super) compensate: Option<Spanned<Vec<String>>>,
    pub(super) compensate_shell: Option<Spanned<String>>,
    pub(super) approval_timeout: Option<Spanned<HumanDuration>>,
    pub(super) timeout: Option<Spanned<HumanDuration>>,
    pub(super) retry: Option<Spanned<RawRetry>>,
    pub(super) env: Option<Spanned<BTreeMap<String, String>>>,
    pub(super) labels: Option<Spanned<Vec<String>>>,
    pub(super) node_labels: Option<Spanned<Vec<String>>>,
    pub(super) secret_env: Option<Spanned<Vec<String>>>,
    pub(super) compensate_retry: Option<Spanned<RawRetry>>,
    pub(super) max_output: Option<Spanned<u64>>,
    pub(super) gate: Option<Spanned<Vec<String>>>,
    pub(super) gate_shell: Option<Spanned<String>>,
    pub(super) for_each: Option<Spanned<String>>,
    pub(super) max_fan_out: Option<Spanned<u32>>,
    pub(super) retry_policy: Option<Spanned<String>>,
    pub(super) deadline: Option<Spanned<RawDeadline>>,
    pub(super) replicas: Option<Spanned<u32>>,
    pub(super) quorum: Option<Spanned<u32>>,
    pub(super) vote: Option<Spanned<Vec<String>>>,
}

/// A `deadline` as read: an RFC 3339 instant in UTC, or a humantime duration counted from
/// the run's submission.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawDeadline(Deadline);

impl<'de> serde::Deserialize<'de> for RawDeadline {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_deadline(&text)
            .map(RawDeadline)
            .map_err(serde::de::Error::custom)
    }
}

/// Reads a `deadline`: `"2026-12-01T09:00:00Z"` (RFC 3339, UTC) or `"30m"` (from submission).
pub fn parse_deadline(text: &str) -> Result<Deadline, String> {
    let t = text.trim();
    if t.len() >= 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-' {
        return humantime::parse_rfc3339_weak(t)
            .map(|st| Deadline::At(crate::model::time::Timestamp::from_system_time(st)))
            .map_err(|e| {
                format!(
                    "invalid deadline {:?}: {e} (an RFC 3339 instant in UTC such as \
                     \"2026-12-01T09:00:00Z\", or a duration from submission such as \"30m\")",
                    crate::model::quote::quoted(text)
                )
            });
    }
    humantime::parse_duration(t)
        .map(Deadline::After)
        .map_err(|e| {
            format!(
                "invalid deadline {:?}: {e} (a duration from submission such as \"30m\", or an \
                 RFC 3339 instant in UTC such as \"2026-12-01T09:00:00Z\")",
                crate::model::quote::quoted(text)
            )
        })
}

impl Table for RawTask {
    const FIELDS: &'static [&'static str] = &[
        "id",
        "command",
        "shell",
        "cwd",
        "depends_on",
        "priority",
        "pool",
        "requires_approval",
        "compensate",
        "compensate_shell",
        "approval_timeout",
        "timeout",
        "retry",
        "env",
        "labels",
        "node_labels",
        "secret_env",
        "compensate_retry",
        "max_output",
        "gate",
        "gate_shell",
        "for_each",
        "max_fan_out",
        "retry_policy",
        "deadline",
        "replicas",
        "quorum",
        "vote",
    ];
    const REQUIRED: &'static [&'static str] = &["id"];

    fn set(&mut self, key: &str, value: Spanned<DeValue<'_>>, r: &mut Reader<'_>) -> Option<bool> {
        Some(match key {
            "id" => r.field(value, &mut self.id),
            "command" => r.field(value, &mut self.command),
            "shell" => r.field(value, &mut self.shell),
            "cwd" => r.field(value, &mut self.cwd),
            "depends_on" => r.field(value, &mut self.depends_on),
            "priority" => r.field(value, &mut self.priority),
            "pool" => r.field(value, &mut self.pool),
            "requires_approval" => r.field(value, &mut self.requires_approval),
            "compensate" => r.field(value, &mut self.compensate),
            "compensate_shell" => r.field(value, &mut self.compensate_shell),
            "approval_timeout" => r.field(value, &mut self.approval_timeout),
            "timeout" => r.field(value, &mut self.timeout),
            "retry" => r.table(value, &mut self.retry),
            "env" => r.field(value, &mut self.env),
            "labels" => r.field(value, &mut self.labels),
            "node_labels" => r.field(value, &mut self.node_labels),
            "secret_env" => r.field(value, &mut self.secret_env),
            "compensate_retry" => r.table(value, &mut self.compensate_retry),
            "max_output" => r.field(value, &mut self.max_output),
            "gate" => r.field(value, &mut self.gate),
            "gate_shell" => r.field(value, &mut self.gate_shell),
            "for_each" => r.field(value, &mut self.for_each),
            "max_fan_out" => r.field(value, &mut self.max_fan_out),
            "retry_policy" => r.field(value, &mut self.retry_policy),
            "deadline" => r.field(value, &mut self.deadline),
            "replicas" => r.field(value, &mut self.replicas),
            "quorum" => r.field(value, &mut self.quorum),
            "vote" => r.field(value, &mut self.vote),
            _ => return None,
        })
    }
}

/// The command of `argv` or `shell` (whichever is set) and its span; an error message if
/// both are.
fn command_from(
    argv: Option<Spanned<Vec<String>>>,
    shell: Option<Spanned<String>>,
    (argv_name, shell_name): (&str, &str),
) -> Result<Option<(Command, Range<usize>)>, String> {
    match (argv, shell) {
        (Some(_), Some(_)) => Err(format!(
            "sets both `{argv_name}` and `{shell_name}`; use `{argv_name}` for an argv or \
             `{shell_name}` for a shell line, not both"
        )),
        (Some(a), None) => {
            let span = a.span();
            Ok(Some((Command::Argv(a.into_inner()), span)))
        }
        (None, Some(s)) => {
            let span = s.span();
            Ok(Some((Command::Shell(s.into_inner()), span)))
        }
        (None, None) => Ok(None),
    }
}

impl RawTask {
    /// The spec of a task that read completely; `command`/`shell` conflicts go to `problems`.
    /// Every field is taken, so `self` is left as a default `RawTask` (`id` and
    /// `depends_on`, taken by the caller, included), ready to read the next task into.
    pub(super) fn take_spec(
        &mut self,
        id: TaskId,
        depends_on: Vec<TaskId>,
        spans: &mut TaskSpans,
        text: &str,
        problems: &mut Vec<Problem>,
        pools_known: bool,
    ) -> TaskSpec {
        let table = spans.table.clone();
        let mut problem = |message: String| {
            let (line, column) = line_col(text.as_bytes(), table.start);
            problems.push(Problem {
                line: Some(line),
                column: Some(column),
                message,
            });
        };
        let command =
            match command_from(self.command.take(), self.shell.take(), ("command", "shell")) {
                Ok(Some((c, span))) => {
                    spans.fields.push(("command", span));
                    c
                }
                Ok(None) => {
                    problem(format!(
                        "task `{id}` has neither `command` nor `shell`; give one \
                     (`command = [\"prog\", \"arg\"]` or `shell = \"prog arg\"`)"
                    ));
                    Command::Argv(vec!["<missing>".into()])
                }
                Err(msg) => {
                    problem(format!("task `{id}` {msg}"));
                    Command::Argv(vec!["<conflict>".into()])
                }
            };
        let compensate = match command_from(
            self.compensate.take(),
            self.compensate_shell.take(),
            ("compensate", "compensate_shell"),
        ) {
            Ok(Some((c, span))) => {
                spans.fields.push(("compensate", span));
                Some(c)
            }
            Ok(None) => None,
            Err(msg) => {
                problem(format!("task `{id}` {msg}"));
                None
            }
        };
        let gate = match command_from(
            self.gate.take(),
            self.gate_shell.take(),
            ("gate", "gate_shell"),
        ) {
            Ok(Some((c, span))) => {
                spans.fields.push(("gate", span));
                Some(c)
            }
            Ok(None) => None,
            Err(msg) => {
                problem(format!("task `{id}` {msg}"));
                None
            }
        };
        if let Some(span) = span_of(&self.env) {
            spans.fields.push(("env", span));
        }
        for (field, span) in [
            ("max_output", span_of(&self.max_output)),
            ("for_each", span_of(&self.for_each)),
            ("max_fan_out", span_of(&self.max_fan_out)),
            ("pool", span_of(&self.pool)),
            ("retry", span_of(&self.retry)),
            ("timeout", span_of(&self.timeout)),
            ("approval_timeout", span_of(&self.approval_timeout)),
            ("labels", span_of(&self.labels)),
            ("node_labels", span_of(&self.node_labels)),
            ("secret_env", span_of(&self.secret_env)),
            ("compensate_retry", span_of(&self.compensate_retry)),
            ("retry_policy", span_of(&self.retry_policy)),
            ("requires_approval", span_of(&self.requires_approval)),
            ("deadline", span_of(&self.deadline)),
            ("replicas", span_of(&self.replicas)),
            ("quorum", span_of(&self.quorum)),
            ("vote", span_of(&self.vote)),
        ] {
            if let Some(span) = span {
                spans.fields.push((field, span));
            }
        }
        TaskSpec {
            id,
            command,
            cwd: inner(self.cwd.take()),
            depends_on,
            priority: inner(self.priority.take()),
            pool: inner(self.pool.take()).filter(|_| pools_known),
            requires_approval: inner(self.requires_approval.take()),
            compensate,
            approval_timeout: dur(self.approval_timeout.take()),
            timeout: dur(self.timeout.take()),
            retry: self.retry.take().map(|r| Box::new(r.into_inner().into())),
            env: inner(self.env.take()).unwrap_or_default(),
            labels: inner(self.labels.take()).unwrap_or_default(),
            node_labels: inner(self.node_labels.take()).unwrap_or_default(),
            secret_env: inner(self.secret_env.take()).unwrap_or_default(),
            retry_choice: inner(self.retry_policy.take()).map(|name| {
                Box::new(crate::model::resilience::RetryChoice {
                    name: Some(name),
                    ..Default::default()
                })
            }),
            compensate_retry: self
                .compensate_retry
                .take()
                .map(|r| Box::new(r.into_inner().into())),
            handoff: Handoff {
                max_output: inner(self.max_output.take()),
                gate,
                for_each: inner(self.for_each.take()),
                max_fan_out: inner(self.max_fan_out.take()),
                expansion: None,
            }
            .boxed_if_set(),
            scheduling: self.take_scheduling(),
        }
    }

    /// `deadline` and the swarm fields, boxed if any is set. `quorum` or `vote` without
    /// `replicas` make a swarm of 0 replicas, which the workflow checks refuse by name.
    fn take_scheduling(&mut self) -> Option<Box<TaskScheduling>> {
        let deadline = self.deadline.take().map(|d| d.into_inner().0);
        let replicas = inner(self.replicas.take());
        let quorum = inner(self.quorum.take());
        let vote = inner(self.vote.take()).map(Command::Argv);
        let swarm = (replicas.is_some() || quorum.is_some() || vote.is_some()).then(|| {
            let replicas = replicas.unwrap_or(0);
            let quorum = quorum.unwrap_or(if vote.is_some() {
                replicas
            } else {
                replicas / 2 + 1
            });
            Swarm {
                replicas,
                quorum,
                vote,
            }
        });
        (deadline.is_some() || swarm.is_some())
            .then(|| Box::new(TaskScheduling { deadline, swarm }))
    }
}
