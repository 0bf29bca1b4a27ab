//! Reading the TOML workflow format into a [`Workflow`], with file positions in every error.
//!
//! The format is the one in `../shared/DESIGN.md` (every field name there is public). Beyond
//! it: `retry` also takes `jitter` (see [`super::retry`]); a task also takes `labels` (tags
//! node approval rules match) and `compensate_retry` (its compensation's retry policy, same
//! fields as `retry`); `[defaults]` takes any of `timeout`, `retry`, `env`, `cwd`, `pool`,
//! `priority`, `requires_approval`, `approval_timeout`, `compensate_retry`. Durations are [humantime](https://docs.rs/humantime) strings (`"90s"`,
//! `"10m"`, `"1h 30m"`). Unknown fields are errors.
//!
//! Errors: syntax and type errors come from the `toml` crate with their span; semantic
//! problems (unknown dependency, cycle, ...) are located with spans kept from the parse. All
//! problems found are returned at once, in file order.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::ids::TaskId;
use super::retry::RetrySpec;
use super::spec::{Command, Problem, SpecError, TaskDefaults, TaskSpec, WorkflowSpec};
use super::workflow::{Loc, Locate, Workflow};

/// Largest workflow text accepted, in bytes (32 MiB). A 100,000-task workflow is about 7 MiB;
/// the cap keeps a wrong file (a log, a database) from being read into memory whole.
pub const MAX_WORKFLOW_BYTES: usize = 32 * 1024 * 1024;

/// Parses and validates workflow bytes: UTF-8 check, size cap, TOML, semantic checks, plan.
pub fn parse_workflow_bytes(bytes: &[u8]) -> Result<Workflow, SpecError> {
    if bytes.len() > MAX_WORKFLOW_BYTES {
        return Err(SpecError::whole(too_large_message(bytes.len() as u64)));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(bytes, e.valid_up_to());
        SpecError {
            source_name: None,
            problems: vec![Problem {
                line: Some(line),
                column: Some(column),
                message: "file is not valid UTF-8 (TOML files must be UTF-8)".to_owned(),
            }],
        }
    })?;
    parse_workflow(text)
}

/// The message for a file over [`MAX_WORKFLOW_BYTES`].
pub fn too_large_message(len: u64) -> String {
    format!(
        "file is {:.1} MiB, larger than the {} MiB limit for workflow files",
        len as f64 / (1024.0 * 1024.0),
        MAX_WORKFLOW_BYTES / (1024 * 1024)
    )
}

/// Parses and validates workflow text.
pub fn parse_workflow(text: &str) -> Result<Workflow, SpecError> {
    if text.trim().is_empty() {
        return Err(SpecError::whole(
            "file is empty; a workflow needs at least `name` and one [[task]]",
        ));
    }
    let raw: RawWorkflow = toml::from_str(text).map_err(|e| {
        let pos = e.span().map(|s| line_col(text.as_bytes(), s.start));
        SpecError {
            source_name: None,
            problems: vec![Problem {
                line: pos.map(|p| p.0),
                column: pos.map(|p| p.1),
                message: e.message().trim_end().to_owned(),
            }],
        }
    })?;
    let mut problems = Vec::new();
    let (spec, map) = raw.into_spec(text, &mut problems);
    match Workflow::build(spec, &map) {
        Ok(wf) if problems.is_empty() => Ok(wf),
        Ok(_) => Err(sorted(problems)),
        Err(mut more) => {
            problems.append(&mut more);
            Err(sorted(problems))
        }
    }
}

fn sorted(mut problems: Vec<Problem>) -> SpecError {
    problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
    SpecError {
        source_name: None,
        problems,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `bytes`.
fn line_col(bytes: &[u8], offset: usize) -> (usize, usize) {
    let offset = offset.min(bytes.len());
    let before = &bytes[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// A humantime duration string in the file.
#[derive(Debug, Clone, Copy)]
struct HumanDuration(Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?}: {e} (examples: \"90s\", \"10m\", \"1h 30m\")"
                ))
            })
    }
}

fn dur(d: Option<HumanDuration>) -> Option<Duration> {
    d.map(|d| d.0)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    name: Spanned<String>,
    max_concurrency: Option<Spanned<u32>>,
    #[serde(default)]
    pools: BTreeMap<Spanned<String>, u32>,
    defaults: Option<RawDefaults>,
    #[serde(default, rename = "task")]
    tasks: Vec<Spanned<RawTask>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    timeout: Option<Spanned<HumanDuration>>,
    retry: Option<Spanned<RawRetry>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    pool: Option<Spanned<String>>,
    priority: Option<i32>,
    requires_approval: Option<bool>,
    approval_timeout: Option<Spanned<HumanDuration>>,
    compensate_retry: Option<Spanned<RawRetry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<u32>,
    initial_interval: Option<HumanDuration>,
    backoff_coefficient: Option<f64>,
    max_interval: Option<HumanDuration>,
    jitter: Option<f64>,
}

impl From<RawRetry> for RetrySpec {
    fn from(r: RawRetry) -> Self {
        RetrySpec {
            max_attempts: r.max_attempts,
            initial_interval: dur(r.initial_interval),
            backoff_coefficient: r.backoff_coefficient,
            max_interval: dur(r.max_interval),
            jitter: r.jitter,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: Spanned<TaskId>,
    command: Option<Spanned<Vec<String>>>,
    shell: Option<Spanned<String>>,
    cwd: Option<String>,
    #[serde(default)]
    depends_on: Vec<Spanned<TaskId>>,
    priority: Option<i32>,
    pool: Option<Spanned<String>>,
    requires_approval: Option<bool>,
    compensate: Option<Spanned<Vec<String>>>,
    compensate_shell: Option<Spanned<String>>,
    approval_timeout: Option<Spanned<HumanDuration>>,
    timeout: Option<Spanned<HumanDuration>>,
    retry: Option<Spanned<RawRetry>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    labels: Option<Spanned<Vec<String>>>,
    compensate_retry: Option<Spanned<RawRetry>>,
}

/// Byte spans kept from the parse so semantic problems can name a line.
struct SourceMap<'t> {
    text: &'t str,
    name: Range<usize>,
    max_concurrency: Option<Range<usize>>,
    pools: BTreeMap<String, Range<usize>>,
    defaults: BTreeMap<&'static str, Range<usize>>,
    tasks: Vec<TaskSpans>,
}

struct TaskSpans {
    table: Range<usize>,
    id: Range<usize>,
    depends_on: Vec<Range<usize>>,
    fields: Vec<(&'static str, Range<usize>)>,
}

impl Locate for SourceMap<'_> {
    fn locate(&self, loc: Loc<'_>) -> Option<(usize, usize)> {
        let span = match loc {
            Loc::Nowhere => return None,
            Loc::Name => Some(self.name.clone()),
            Loc::MaxConcurrency => self.max_concurrency.clone(),
            Loc::Pool(name) => self.pools.get(name).cloned(),
            Loc::Defaults(field) => self.defaults.get(field).cloned(),
            Loc::Task(t) => self.tasks.get(t as usize).map(|s| s.id.clone()),
            Loc::TaskField(t, field) => self.tasks.get(t as usize).map(|s| {
                s.fields
                    .iter()
                    .find(|(f, _)| *f == field)
                    .map_or_else(|| s.table.clone(), |(_, span)| span.clone())
            }),
            Loc::Dependency(t, i) => self
                .tasks
                .get(t as usize)
                .and_then(|s| s.depends_on.get(i).cloned()),
        }?;
        Some(line_col(self.text.as_bytes(), span.start))
    }
}

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

impl RawWorkflow {
    fn into_spec<'t>(
        self,
        text: &'t str,
        problems: &mut Vec<Problem>,
    ) -> (WorkflowSpec, SourceMap<'t>) {
        let mut map = SourceMap {
            text,
            name: self.name.span(),
            max_concurrency: self.max_concurrency.as_ref().map(|m| m.span()),
            pools: BTreeMap::new(),
            defaults: BTreeMap::new(),
            tasks: Vec::with_capacity(self.tasks.len()),
        };
        let mut pools = BTreeMap::new();
        for (name, slots) in self.pools {
            map.pools.insert(name.get_ref().clone(), name.span());
            pools.insert(name.into_inner(), slots);
        }
        let defaults = match self.defaults {
            None => TaskDefaults::default(),
            Some(d) => {
                let mut keep = |field: &'static str, span: Option<Range<usize>>| {
                    if let Some(span) = span {
                        map.defaults.insert(field, span);
                    }
                };
                keep("timeout", d.timeout.as_ref().map(|s| s.span()));
                keep("retry", d.retry.as_ref().map(|s| s.span()));
                keep("pool", d.pool.as_ref().map(|s| s.span()));
                keep(
                    "approval_timeout",
                    d.approval_timeout.as_ref().map(|s| s.span()),
                );
                keep(
                    "compensate_retry",
                    d.compensate_retry.as_ref().map(|s| s.span()),
                );
                TaskDefaults {
                    timeout: d.timeout.map(|t| t.into_inner().0),
                    retry: d.retry.map(|r| r.into_inner().into()).unwrap_or_default(),
                    env: d.env,
                    cwd: d.cwd,
                    pool: d.pool.map(Spanned::into_inner),
                    priority: d.priority,
                    requires_approval: d.requires_approval,
                    approval_timeout: d.approval_timeout.map(|t| t.into_inner().0),
                    compensate_retry: d
                        .compensate_retry
                        .map(|r| r.into_inner().into())
                        .unwrap_or_default(),
                }
            }
        };
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for raw in self.tasks {
            let table = raw.span();
            let t = raw.into_inner();
            let id_span = t.id.span();
            let id = t.id.into_inner();
            let mut fields: Vec<(&'static str, Range<usize>)> = Vec::new();
            let mut problem = |span: &Range<usize>, message: String| {
                let (line, column) = line_col(text.as_bytes(), span.start);
                problems.push(Problem {
                    line: Some(line),
                    column: Some(column),
                    message,
                });
            };
            let command = match command_from(t.command, t.shell, ("command", "shell")) {
                Ok(Some((c, span))) => {
                    fields.push(("command", span));
                    c
                }
                Ok(None) => {
                    problem(
                        &table,
                        format!(
                            "task `{id}` has neither `command` nor `shell`; give one \
                             (`command = [\"prog\", \"arg\"]` or `shell = \"prog arg\"`)"
                        ),
                    );
                    Command::Argv(vec!["<missing>".into()])
                }
                Err(msg) => {
                    problem(&table, format!("task `{id}` {msg}"));
                    Command::Argv(vec!["<conflict>".into()])
                }
            };
            let compensate = match command_from(
                t.compensate,
                t.compensate_shell,
                ("compensate", "compensate_shell"),
            ) {
                Ok(Some((c, span))) => {
                    fields.push(("compensate", span));
                    Some(c)
                }
                Ok(None) => None,
                Err(msg) => {
                    problem(&table, format!("task `{id}` {msg}"));
                    None
                }
            };
            let mut span_of = |field: &'static str, span: Option<Range<usize>>| {
                if let Some(span) = span {
                    fields.push((field, span));
                }
            };
            span_of("pool", t.pool.as_ref().map(|s| s.span()));
            span_of("retry", t.retry.as_ref().map(|s| s.span()));
            span_of("timeout", t.timeout.as_ref().map(|s| s.span()));
            span_of(
                "approval_timeout",
                t.approval_timeout.as_ref().map(|s| s.span()),
            );
            span_of("labels", t.labels.as_ref().map(|s| s.span()));
            span_of(
                "compensate_retry",
                t.compensate_retry.as_ref().map(|s| s.span()),
            );
            let depends_on_spans = t.depends_on.iter().map(|d| d.span()).collect();
            map.tasks.push(TaskSpans {
                table,
                id: id_span,
                depends_on: depends_on_spans,
                fields,
            });
            tasks.push(TaskSpec {
                id,
                command,
                cwd: t.cwd,
                depends_on: t.depends_on.into_iter().map(Spanned::into_inner).collect(),
                priority: t.priority,
                pool: t.pool.map(Spanned::into_inner),
                requires_approval: t.requires_approval,
                compensate,
                approval_timeout: t.approval_timeout.map(|d| d.into_inner().0),
                timeout: t.timeout.map(|d| d.into_inner().0),
                retry: t.retry.map(|r| Box::new(r.into_inner().into())),
                env: t.env,
                labels: t.labels.map(Spanned::into_inner).unwrap_or_default(),
                compensate_retry: t.compensate_retry.map(|r| Box::new(r.into_inner().into())),
            });
        }
        let spec = WorkflowSpec {
            name: self.name.into_inner(),
            max_concurrency: self.max_concurrency.map(Spanned::into_inner),
            pools,
            defaults,
            tasks,
        };
        (spec, map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse_workflow(text).unwrap_err().to_string()
    }

    const OK: &str = r#"
name = "release"
max_concurrency = 4
[pools]
cc = 2
[defaults]
timeout = "10m"
retry = { max_attempts = 3, initial_interval = "1s", backoff_coefficient = 2.0, max_interval = "1m" }
env = { LC_ALL = "C" }
[[task]]
id = "build"
command = ["make", "-j2"]
cwd = "src"
pool = "cc"
compensate = ["make", "clean"]
[[task]]
id = "test"
shell = "make test && echo ok"
depends_on = ["build"]
priority = 5
retry = { max_attempts = 1 }
requires_approval = true
approval_timeout = "1h"
"#;

    #[test]
    fn parses_the_design_example() {
        let wf = parse_workflow(OK).unwrap();
        let spec = wf.spec();
        assert_eq!(spec.name, "release");
        assert_eq!(spec.max_concurrency, Some(4));
        assert_eq!(spec.pools["cc"], 2);
        assert_eq!(spec.tasks.len(), 2);
        assert_eq!(
            spec.tasks[1].command,
            Command::Shell("make test && echo ok".into())
        );
        let test = wf.task_index("test").unwrap();
        assert_eq!(wf.retry_policy(test).max_attempts, 1);
        assert_eq!(wf.retry_policy(test).max_interval, Duration::from_secs(60));
        assert_eq!(wf.timeout(test), Some(Duration::from_secs(600)));
        assert_eq!(wf.priority(test), 5);
        assert!(wf.requires_approval(test));
        assert!(wf.is_saga());
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let e = err("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ncolour = \"red\"\n");
        assert!(e.starts_with("5:1: unknown field `colour`"), "{e}");
    }

    #[test]
    fn bad_duration_is_located() {
        let e = err(
            "name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ntimeout = \"10 parsecs\"\n",
        );
        assert!(
            e.starts_with("5:11: invalid duration \"10 parsecs\""),
            "{e}"
        );
    }

    #[test]
    fn empty_and_non_utf8_files() {
        assert!(err("  \n").contains("file is empty"));
        let e = parse_workflow_bytes(b"name = \"x\"\n# caf\xe9\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "2:6: file is not valid UTF-8 (TOML files must be UTF-8)");
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = vec![b'#'; MAX_WORKFLOW_BYTES + 1];
        let e = parse_workflow_bytes(&big).unwrap_err().to_string();
        assert!(e.contains("larger than the 32 MiB limit"), "{e}");
    }

    #[test]
    fn command_and_shell_rules() {
        let e = err("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nshell = \"true\"\n");
        assert!(
            e.contains("task `a` sets both `command` and `shell`"),
            "{e}"
        );
        let e = err("name = \"x\"\n[[task]]\nid = \"a\"\n");
        assert!(
            e.contains("task `a` has neither `command` nor `shell`"),
            "{e}"
        );
        let e = err("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = []\n");
        assert!(e.contains("4:11: task `a`: `command` is empty"), "{e}");
    }
}
