//! Reading the TOML workflow format into a [`Workflow`], with file positions in every error.
//!
//! The format is the one in `../shared/DESIGN.md` (every field name there is public). Beyond
//! it: `retry` also takes `jitter` (see [`super::retry`]); a task also takes `labels` (tags
//! node approval rules match) and `compensate_retry` (its compensation's retry policy, same
//! fields as `retry`); `[defaults]` takes any of `timeout`, `retry`, `env`, `cwd`, `pool`,
//! `priority`, `requires_approval`, `approval_timeout`, `compensate_retry`. Durations are
//! [humantime](https://docs.rs/humantime) strings (`"90s"`, `"10m"`, `"1h 30m"`), at most
//! [`super::spec::MAX_WORKFLOW_DURATION`] (100 years). Unknown fields are errors.
//!
//! # What is reported
//! Every problem found, at once, each with its line and column, sorted by position:
//! 1. **TOML syntax errors**, all of them but their echoes: the `toml` parser recovers and
//!    goes on ([`toml::de::DeTable::parse_recoverable`]), which can make one mistake show up
//!    many times, so only the first error of each line is kept, and when an array or inline
//!    table is never closed (the parser then reads the rest of the file as its elements) only
//!    the first error and the "unclosed" one. If there is any syntax error, only these are
//!    reported: what the parser recovers past a syntax error is not necessarily what the file
//!    meant, and checking it would report problems the file does not have.
//! 2. **Field errors.** Every field of every table (the top level, `[pools]`, `[defaults]`,
//!    each `[[task]]`, each `retry` and `compensate_retry` table) is read on its own from the
//!    spanned parse tree, so each unknown field, wrong type, bad duration and invalid task id
//!    is reported, as is a missing `name` or task `id`.
//! 3. **Checks on the values** (the rules of [`Workflow::from_spec`]: commands, pools,
//!    durations, retry ranges, ..., then duplicate ids, dependencies and cycles) on what was
//!    read. A `[[task]]` with a field error is checked for structure only: it keeps its `id`
//!    and `depends_on` (if those read), so the duplicate-id, dependency and cycle checks see
//!    it and another task depending on it is not reported, but its other fields are not
//!    checked; a `[[task]]` whose `id` did not read is left out of every check. A
//!    `[defaults]` with a field error makes every task structure-only (their effective
//!    settings are unknown); a `pools` that is not a table leaves pool references unchecked.
//!
//! User text quoted in messages (ids, keys, names, durations) has its control characters
//! escaped and, beyond 128 characters, is cut to a prefix and its length.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use toml::de::{DeString, DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::ids::TaskId;
use super::quote::{quoted, MAX_QUOTED_CHARS};
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

/// Parses and validates workflow text, reporting every problem found (see the module docs
/// for exactly which).
pub fn parse_workflow(text: &str) -> Result<Workflow, SpecError> {
    if text.trim().is_empty() {
        return Err(SpecError::whole(
            "file is empty; a workflow needs at least `name` and one [[task]]",
        ));
    }
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    let mut reader = Reader {
        text,
        problems: Vec::new(),
    };
    if !syntax_errors.is_empty() {
        for e in worth_showing(syntax_errors) {
            reader.toml_error(&e, 0..0);
        }
        let mut e = sorted(reader.problems);
        e.problems.dedup_by_key(|p| p.line);
        return Err(e);
    }
    let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let raw = reader
        .read::<RawWorkflow>(root)
        .expect("the document is a table")
        .fields;
    let mut problems = reader.problems;
    let field_errors = !problems.is_empty();
    let task_given = raw.task_given;
    let (spec, map) = raw.into_spec(text, &mut problems);
    if field_errors && task_given && spec.tasks.is_empty() {
        // No [[task]] read: "no tasks" would be wrong, the other rules still apply.
        problems.append(&mut Workflow::field_problems(&spec, &map));
        return Err(sorted(problems));
    }
    match Workflow::build(spec, &map) {
        Ok(wf) if problems.is_empty() => Ok(wf),
        Ok(_) => Err(sorted(problems)),
        Err(mut more) => {
            problems.append(&mut more);
            Err(sorted(problems))
        }
    }
}

/// The syntax errors to report, in file order. When an array or inline table is never closed,
/// the parser reads the rest of the file as its elements: then only the first error and that
/// one, since every error between them is an echo of the missing bracket. (The caller keeps
/// the first error of each line, for the same reason.)
fn worth_showing(mut errors: Vec<toml::de::Error>) -> Vec<toml::de::Error> {
    errors.sort_by_key(|e| e.span().map_or(0, |s| s.start));
    let unclosed = errors.iter().position(|e| {
        let m = e.message();
        m.starts_with("unclosed array,") || m.starts_with("unclosed inline table")
    });
    if let Some(i) = unclosed {
        let unclosed = errors.remove(i);
        errors.truncate(i.min(1));
        errors.push(unclosed);
    }
    errors
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
                let mut reason = e.to_string();
                if let humantime::DurationError::UnknownUnit { unit, .. } = &e {
                    // humantime quotes the unit in full.
                    reason = reason.replace(&format!("{unit:?}"), &format!("{:?}", quoted(unit)));
                }
                serde::de::Error::custom(format!(
                    "invalid duration {:?}: {reason} (examples: \"90s\", \"10m\", \"1h 30m\")",
                    quoted(&text)
                ))
            })
    }
}

fn dur(d: Option<Spanned<HumanDuration>>) -> Option<Duration> {
    d.map(|d| d.into_inner().0)
}

/// Reads the spanned parse tree field by field, collecting a located problem for each field
/// that does not read.
struct Reader<'t> {
    /// The file, to turn byte spans into lines and columns.
    text: &'t str,
    /// Everything found so far, in reading order.
    problems: Vec<Problem>,
}

/// A table of the format, read one field at a time by [`Reader::read`].
trait Table: Default {
    /// Every field the table takes, for the "unknown field" message.
    const FIELDS: &'static [&'static str];
    /// Fields that must be present.
    const REQUIRED: &'static [&'static str];

    /// Reads field `key` from `value` into `self`: `None` if the table has no such field,
    /// else whether it read without a problem (problems go to `reader`).
    fn set(
        &mut self,
        key: &str,
        value: Spanned<DeValue<'_>>,
        reader: &mut Reader<'_>,
    ) -> Option<bool>;
}

/// A table as read: its fields, where it is, and whether every field read.
struct Read<T> {
    /// Byte span of the table in the file.
    span: Range<usize>,
    /// The fields that read; those with a problem are left unset.
    fields: T,
    /// Whether there was no problem: no unknown, missing or unreadable field.
    complete: bool,
}

impl Reader<'_> {
    fn at(&mut self, span: &Range<usize>, message: String) {
        let (line, column) = line_col(self.text.as_bytes(), span.start);
        self.problems.push(Problem {
            line: Some(line),
            column: Some(column),
            message,
        });
    }

    /// A problem found by the `toml` crate (syntax, or a value's type); at `fallback` if it
    /// carries no span.
    fn toml_error(&mut self, e: &toml::de::Error, fallback: Range<usize>) {
        let span = e.span().unwrap_or(fallback);
        self.at(&span, e.message().trim_end().to_owned());
    }

    /// Reads `value` as a table of `T`; `None` (and a problem) if it is not a table.
    fn read<T: Table>(&mut self, value: Spanned<DeValue<'_>>) -> Option<Read<T>> {
        let span = value.span();
        let table = match value.into_inner() {
            DeValue::Table(table) => table,
            other => {
                self.at(
                    &span,
                    format!("invalid type: {}, expected a table", other.type_str()),
                );
                return None;
            }
        };
        let mut fields = T::default();
        let mut complete = true;
        let mut missing: Vec<&str> = T::REQUIRED.to_vec();
        for (key, value) in table {
            let name: &str = key.get_ref();
            missing.retain(|m| *m != name);
            match fields.set(name, value, self) {
                Some(ok) => complete &= ok,
                None => {
                    self.unknown_field(&key, T::FIELDS);
                    complete = false;
                }
            }
        }
        for field in missing {
            self.at(&span, format!("missing field `{field}`"));
            complete = false;
        }
        Some(Read {
            span,
            fields,
            complete,
        })
    }

    /// Reads a nested table into `slot`, set only if it read completely.
    fn table<T: Table>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        slot: &mut Option<Spanned<T>>,
    ) -> bool {
        match self.read::<T>(value) {
            Some(t) if t.complete => {
                *slot = Some(Spanned::new(t.span, t.fields));
                true
            }
            _ => false,
        }
    }

    /// Deserializes `value` as a `T` into `slot`; whether it did.
    fn field<T: DeserializeOwned>(
        &mut self,
        value: Spanned<DeValue<'_>>,
        slot: &mut Option<Spanned<T>>,
    ) -> bool {
        let span = value.span();
        // serde quotes a string of the wrong type in full: keep a long one to shorten it.
        let long = value
            .get_ref()
            .as_str()
            .filter(|s| s.chars().count() > MAX_QUOTED_CHARS)
            .map(str::to_owned);
        match Spanned::<T>::deserialize(ValueDeserializer::from(value)) {
            Ok(v) => {
                *slot = Some(v);
                true
            }
            Err(mut e) => {
                if let Some(long) = long {
                    let message = e
                        .message()
                        .replace(&format!("{long:?}"), &format!("{:?}", quoted(&long)));
                    e = serde::de::Error::custom(message);
                }
                self.toml_error(&e, span);
                false
            }
        }
    }

    fn unknown_field(&mut self, key: &Spanned<DeString<'_>>, expected: &[&str]) {
        let expected: Vec<String> = expected.iter().map(|f| format!("`{f}`")).collect();
        self.at(
            &key.span(),
            format!(
                "unknown field {}, expected one of {}",
                quoted(key.get_ref()),
                expected.join(", ")
            ),
        );
    }
}

/// The top-level table as read; each field is unset if absent or unreadable.
#[derive(Default)]
struct RawWorkflow {
    name: Option<Spanned<String>>,
    max_concurrency: Option<Spanned<u32>>,
    /// Pools as declared: name, and slots unless they did not read.
    pools: Vec<(Spanned<String>, Option<u32>)>,
    /// `pools` is there but is not a table, so pool references cannot be checked.
    pools_unreadable: bool,
    defaults: Option<Read<RawDefaults>>,
    tasks: Vec<Read<RawTask>>,
    /// Whether the file has a `task` key, so no task read is not "no tasks".
    task_given: bool,
}

impl Table for RawWorkflow {
    const FIELDS: &'static [&'static str] =
        &["name", "max_concurrency", "pools", "defaults", "task"];
    const REQUIRED: &'static [&'static str] = &["name"];

    fn set(&mut self, key: &str, value: Spanned<DeValue<'_>>, r: &mut Reader<'_>) -> Option<bool> {
        Some(match key {
            "name" => r.field(value, &mut self.name),
            "max_concurrency" => r.field(value, &mut self.max_concurrency),
            "pools" => {
                let span = value.span();
                match value.into_inner() {
                    DeValue::Table(table) => {
                        let mut ok = true;
                        for (name, slots) in table {
                            let mut read: Option<Spanned<u32>> = None;
                            ok &= r.field(slots, &mut read);
                            let name = Spanned::new(name.span(), name.into_inner().into_owned());
                            self.pools.push((name, read.map(Spanned::into_inner)));
                        }
                        ok
                    }
                    other => {
                        r.at(
                            &span,
                            format!(
                                "invalid type: {}, expected a table of pool = slots",
                                other.type_str()
                            ),
                        );
                        self.pools_unreadable = true;
                        false
                    }
                }
            }
            "defaults" => {
                let span = value.span();
                // Not a table: as unknown as a table with a field error.
                let defaults = r.read(value).unwrap_or(Read {
                    span,
                    fields: RawDefaults::default(),
                    complete: false,
                });
                let complete = defaults.complete;
                self.defaults = Some(defaults);
                complete
            }
            "task" => {
                self.task_given = true;
                let span = value.span();
                match value.into_inner() {
                    DeValue::Array(items) => {
                        let mut ok = true;
                        for item in items {
                            match r.read::<RawTask>(item) {
                                Some(task) => {
                                    ok &= task.complete;
                                    self.tasks.push(task);
                                }
                                None => ok = false,
                            }
                        }
                        ok
                    }
                    other => {
                        r.at(
                            &span,
                            format!(
                                "invalid type: {}, expected an array of tables ([[task]])",
                                other.type_str()
                            ),
                        );
                        false
                    }
                }
            }
            _ => return None,
        })
    }
}

/// `[defaults]` as read; the fields mirror [`TaskDefaults`], unset if absent or unreadable.
#[derive(Default)]
struct RawDefaults {
    timeout: Option<Spanned<HumanDuration>>,
    retry: Option<Spanned<RawRetry>>,
    env: Option<Spanned<BTreeMap<String, String>>>,
    cwd: Option<Spanned<String>>,
    pool: Option<Spanned<String>>,
    priority: Option<Spanned<i32>>,
    requires_approval: Option<Spanned<bool>>,
    approval_timeout: Option<Spanned<HumanDuration>>,
    compensate_retry: Option<Spanned<RawRetry>>,
}

impl Table for RawDefaults {
    const FIELDS: &'static [&'static str] = &[
        "timeout",
        "retry",
        "env",
        "cwd",
        "pool",
        "priority",
        "requires_approval",
        "approval_timeout",
        "compensate_retry",
    ];
    const REQUIRED: &'static [&'static str] = &[];

    fn set(&mut self, key: &str, value: Spanned<DeValue<'_>>, r: &mut Reader<'_>) -> Option<bool> {
        Some(match key {
            "timeout" => r.field(value, &mut self.timeout),
            "retry" => r.table(value, &mut self.retry),
            "env" => r.field(value, &mut self.env),
            "cwd" => r.field(value, &mut self.cwd),
            "pool" => r.field(value, &mut self.pool),
            "priority" => r.field(value, &mut self.priority),
            "requires_approval" => r.field(value, &mut self.requires_approval),
            "approval_timeout" => r.field(value, &mut self.approval_timeout),
            "compensate_retry" => r.table(value, &mut self.compensate_retry),
            _ => return None,
        })
    }
}

/// A `retry` or `compensate_retry` table as read; the fields mirror [`RetrySpec`].
#[derive(Default)]
struct RawRetry {
    max_attempts: Option<Spanned<u32>>,
    initial_interval: Option<Spanned<HumanDuration>>,
    backoff_coefficient: Option<Spanned<f64>>,
    max_interval: Option<Spanned<HumanDuration>>,
    jitter: Option<Spanned<f64>>,
}

impl Table for RawRetry {
    const FIELDS: &'static [&'static str] = &[
        "max_attempts",
        "initial_interval",
        "backoff_coefficient",
        "max_interval",
        "jitter",
    ];
    const REQUIRED: &'static [&'static str] = &[];

    fn set(&mut self, key: &str, value: Spanned<DeValue<'_>>, r: &mut Reader<'_>) -> Option<bool> {
        Some(match key {
            "max_attempts" => r.field(value, &mut self.max_attempts),
            "initial_interval" => r.field(value, &mut self.initial_interval),
            "backoff_coefficient" => r.field(value, &mut self.backoff_coefficient),
            "max_interval" => r.field(value, &mut self.max_interval),
            "jitter" => r.field(value, &mut self.jitter),
            _ => return None,
        })
    }
}

impl From<RawRetry> for RetrySpec {
    fn from(r: RawRetry) -> Self {
        RetrySpec {
            max_attempts: r.max_attempts.map(Spanned::into_inner),
            initial_interval: dur(r.initial_interval),
            backoff_coefficient: r.backoff_coefficient.map(Spanned::into_inner),
            max_interval: dur(r.max_interval),
            jitter: r.jitter.map(Spanned::into_inner),
        }
    }
}

/// A `[[task]]` table as read; the fields mirror [`TaskSpec`], unset if absent or
/// unreadable.
#[derive(Default)]
struct RawTask {
    id: Option<Spanned<TaskId>>,
    command: Option<Spanned<Vec<String>>>,
    shell: Option<Spanned<String>>,
    cwd: Option<Spanned<String>>,
    depends_on: Option<Spanned<Vec<Spanned<TaskId>>>>,
    priority: Option<Spanned<i32>>,
    pool: Option<Spanned<String>>,
    requires_approval: Option<Spanned<bool>>,
    compensate: Option<Spanned<Vec<String>>>,
    compensate_shell: Option<Spanned<String>>,
    approval_timeout: Option<Spanned<HumanDuration>>,
    timeout: Option<Spanned<HumanDuration>>,
    retry: Option<Spanned<RawRetry>>,
    env: Option<Spanned<BTreeMap<String, String>>>,
    labels: Option<Spanned<Vec<String>>>,
    compensate_retry: Option<Spanned<RawRetry>>,
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
        "compensate_retry",
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
            "compensate_retry" => r.table(value, &mut self.compensate_retry),
            _ => return None,
        })
    }
}

/// Byte spans kept from the parse so semantic problems can name a line.
struct SourceMap<'t> {
    text: &'t str,
    name: Option<Range<usize>>,
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
            Loc::Name => self.name.clone(),
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

/// The span of an optional field, if it is set.
fn span_of<T>(field: &Option<Spanned<T>>) -> Option<Range<usize>> {
    field.as_ref().map(Spanned::span)
}

fn inner<T>(field: Option<Spanned<T>>) -> Option<T> {
    field.map(Spanned::into_inner)
}

impl RawWorkflow {
    /// The spec to check and the spans to locate its problems, following the rules of the
    /// module docs for tables that did not read completely.
    fn into_spec<'t>(
        self,
        text: &'t str,
        problems: &mut Vec<Problem>,
    ) -> (WorkflowSpec, SourceMap<'t>) {
        let mut map = SourceMap {
            text,
            name: span_of(&self.name),
            max_concurrency: span_of(&self.max_concurrency),
            pools: BTreeMap::new(),
            defaults: BTreeMap::new(),
            tasks: Vec::with_capacity(self.tasks.len()),
        };
        let mut pools = BTreeMap::new();
        for (name, slots) in self.pools {
            map.pools.insert(name.get_ref().clone(), name.span());
            // Slots that did not read are reported already; 1 stands in for them.
            pools.insert(name.into_inner(), slots.unwrap_or(1));
        }
        let pools_known = !self.pools_unreadable;
        // A [defaults] with a field error leaves every task's effective settings unknown.
        let mut structure_only = false;
        let defaults = match self.defaults {
            None => TaskDefaults::default(),
            Some(d) if !d.complete => {
                structure_only = true;
                TaskDefaults::default()
            }
            Some(Read { fields: d, .. }) => {
                for (field, span) in [
                    ("timeout", span_of(&d.timeout)),
                    ("retry", span_of(&d.retry)),
                    ("env", span_of(&d.env)),
                    ("cwd", span_of(&d.cwd)),
                    ("pool", span_of(&d.pool)),
                    ("approval_timeout", span_of(&d.approval_timeout)),
                    ("compensate_retry", span_of(&d.compensate_retry)),
                ] {
                    if let Some(span) = span {
                        map.defaults.insert(field, span);
                    }
                }
                TaskDefaults {
                    timeout: dur(d.timeout),
                    retry: d.retry.map(|r| r.into_inner().into()).unwrap_or_default(),
                    env: inner(d.env).unwrap_or_default(),
                    cwd: inner(d.cwd),
                    pool: inner(d.pool).filter(|_| pools_known),
                    priority: inner(d.priority),
                    requires_approval: inner(d.requires_approval),
                    approval_timeout: dur(d.approval_timeout),
                    compensate_retry: d
                        .compensate_retry
                        .map(|r| r.into_inner().into())
                        .unwrap_or_default(),
                }
            }
        };
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for raw in self.tasks {
            let table = raw.span;
            let complete = raw.complete && !structure_only;
            let mut t = raw.fields;
            // A task whose id did not read is reported already and cannot be named.
            let Some(id) = t.id.take() else { continue };
            let id_span = id.span();
            let id = id.into_inner();
            let (depends_on_spans, depends_on): (Vec<_>, Vec<_>) = inner(t.depends_on.take())
                .unwrap_or_default()
                .into_iter()
                .map(|d| (d.span(), d.into_inner()))
                .unzip();
            let mut spans = TaskSpans {
                table,
                id: id_span,
                depends_on: depends_on_spans,
                fields: Vec::new(),
            };
            let task = if complete {
                t.into_spec(id, depends_on, &mut spans, text, problems, pools_known)
            } else {
                // Structure only: id and dependencies; no field is set, so none is checked.
                TaskSpec {
                    depends_on,
                    ..TaskSpec::new(id, Command::Argv(vec!["<unread>".into()]))
                }
            };
            map.tasks.push(spans);
            tasks.push(task);
        }
        let spec = WorkflowSpec {
            // A name that did not read is reported already; "-" stands in for it.
            name: inner(self.name).unwrap_or_else(|| "-".to_owned()),
            max_concurrency: inner(self.max_concurrency),
            pools,
            defaults,
            tasks,
        };
        (spec, map)
    }
}

impl RawTask {
    /// The spec of a task that read completely; `command`/`shell` conflicts go to `problems`.
    fn into_spec(
        self,
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
        let command = match command_from(self.command, self.shell, ("command", "shell")) {
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
            self.compensate,
            self.compensate_shell,
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
        for (field, span) in [
            ("pool", span_of(&self.pool)),
            ("retry", span_of(&self.retry)),
            ("timeout", span_of(&self.timeout)),
            ("approval_timeout", span_of(&self.approval_timeout)),
            ("labels", span_of(&self.labels)),
            ("compensate_retry", span_of(&self.compensate_retry)),
        ] {
            if let Some(span) = span {
                spans.fields.push((field, span));
            }
        }
        TaskSpec {
            id,
            command,
            cwd: inner(self.cwd),
            depends_on,
            priority: inner(self.priority),
            pool: inner(self.pool).filter(|_| pools_known),
            requires_approval: inner(self.requires_approval),
            compensate,
            approval_timeout: dur(self.approval_timeout),
            timeout: dur(self.timeout),
            retry: self.retry.map(|r| Box::new(r.into_inner().into())),
            env: inner(self.env).unwrap_or_default(),
            labels: inner(self.labels).unwrap_or_default(),
            compensate_retry: self
                .compensate_retry
                .map(|r| Box::new(r.into_inner().into())),
        }
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

    fn lines(text: &str) -> Vec<String> {
        err(text).lines().map(str::to_owned).collect()
    }

    #[test]
    fn field_errors_in_several_tasks_are_all_reported_with_the_others() {
        // Task 1: unknown field; task 2 depends on task 3, which has a wrong type (so task 2's
        // dependency is not "unknown"); task 4: an unknown dependency.
        let e = lines(
            "name = \"x\"\n\
             [[task]]\nid = \"a\"\ncommand = [\"true\"]\ncolour = \"red\"\n\
             [[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"c\"]\n\
             [[task]]\nid = \"c\"\ncommand = [\"true\"]\npriority = \"high\"\n\
             [[task]]\nid = \"d\"\ncommand = [\"true\"]\ndepends_on = [\"nope\"]\n",
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].starts_with("5:1: unknown field `colour`, expected one of `id`"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("13:12: invalid type: string \"high\", expected i32"),
            "{e:?}"
        );
        assert_eq!(
            e[2],
            "17:15: task `d` depends on `nope`, which is not a task in this workflow"
        );
    }

    #[test]
    fn one_task_reports_every_bad_field() {
        let e = lines(
            "name = \"x\"\n[[task]]\nid = \"a\"\ncommand = \"true\"\n\
             timeout = \"soon\"\nretry = { max_attempts = -1, jitter = \"some\" }\n",
        );
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(
            e[0].starts_with("4:11: invalid type: string \"true\""),
            "{e:?}"
        );
        assert!(e[1].starts_with("5:11: invalid duration \"soon\""), "{e:?}");
        assert!(e[2].starts_with("6:26: "), "{e:?}");
        assert!(
            e[3].starts_with("6:39: invalid type: string \"some\""),
            "{e:?}"
        );
    }

    #[test]
    fn a_task_without_a_readable_id_is_left_out_of_the_checks() {
        let e = lines(
            "name = \"x\"\n[[task]]\ncommand = [\"true\"]\n\
             [[task]]\nid = \"b b\"\ncommand = [\"true\"]\n\
             [[task]]\nid = \"c\"\nshell = \"true\"\n",
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0], "2:1: missing field `id`");
        assert!(e[1].starts_with("5:6: task id `b b` contains ' '"), "{e:?}");
        let e = lines("name = \"a\\tb\"\n[[task]]\nid = 7\ncommand = [\"true\"]\n");
        assert_eq!(e.len(), 2, "no \"workflow has no tasks\": {e:?}");
        assert!(
            e[0].starts_with("1:8: `name` contains the control character"),
            "{e:?}"
        );
        assert!(e[1].starts_with("3:6: invalid type: integer `7`"), "{e:?}");
    }

    #[test]
    fn broken_defaults_leave_tasks_to_structure_checks() {
        // Without the broken requires_approval, the task's approval_timeout would be an error.
        let e = lines(
            "name = \"x\"\n[defaults]\nrequires_approval = \"yes\"\n\
             [[task]]\nid = \"a\"\ncommand = [\"true\"]\napproval_timeout = \"1h\"\n\
             depends_on = [\"zz\"]\n",
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("3:21: invalid type: string \"yes\", expected a boolean"));
        assert!(
            e[1].contains("depends on `zz`, which is not a task"),
            "{e:?}"
        );
        let e = lines(
            "name = \"x\"\ndefaults = 1\n\
             [[task]]\nid = \"a\"\ncommand = [\"true\"]\napproval_timeout = \"1h\"\n",
        );
        assert_eq!(e, ["2:12: invalid type: integer, expected a table"]);
    }

    #[test]
    fn top_level_problems_are_all_reported() {
        let e = lines("max_concurrency = \"many\"\npools = 3\ncolour = 1\ntask = 5\n");
        assert_eq!(e.len(), 5, "{e:?}");
        assert!(e[0].starts_with("1:1: missing field `name`"), "{e:?}");
        assert!(
            e[1].starts_with("1:19: invalid type: string \"many\""),
            "{e:?}"
        );
        assert!(
            e[2].starts_with("2:9: invalid type: integer, expected a table"),
            "{e:?}"
        );
        assert!(e[3].starts_with("3:1: unknown field `colour`"), "{e:?}");
        assert!(
            e[4].starts_with("4:8: invalid type: integer, expected an array"),
            "{e:?}"
        );
    }

    #[test]
    fn every_syntax_error_is_reported() {
        let e = lines(
            "name = \"x\"\n[[task]]\nid = \"a\"\ntimeout = 10m\ncommand = [\"true\"]\n\
             [[task]]\nid = \"b\"\ncommand = [\"true\"]\npriority = 1 2\nid = \"c\"\n",
        );
        assert_eq!(
            e,
            [
                "4:11: string values must be quoted, expected literal string",
                "9:12: string values must be quoted, expected literal string",
                "10:1: duplicate key",
            ]
        );
        // Only syntax errors: the unknown field is not reported until they are fixed.
        let e = lines("name = \"x\"\ncolour = 1\n[[task]\nid = \"a\"\n");
        assert_eq!(e, ["3:8: unclosed array table, expected `]`"]);
    }

    #[test]
    fn an_unclosed_bracket_is_not_reported_once_per_line() {
        // The parser reads everything after `[` as array elements, with an error on each line.
        let e = lines(
            "name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"\n\
             [[task]]\nid = \"b\"\ntimeout = 10m\ncommand = [\"true\"]\n",
        );
        assert_eq!(
            e,
            [
                "5:1: missing comma between array elements, expected `,`",
                "8:19: unclosed array, expected `]`",
            ]
        );
        let e = lines("name = \"x\"\nretry = { max_attempts = 3\nfoo = 1\nbar = 2\n");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[1].contains("unclosed inline table"), "{e:?}");
    }

    #[test]
    fn durations_over_a_century_are_refused_with_their_place() {
        let e = lines(
            "name = \"x\"\n[defaults]\ntimeout = \"1000000years\"\n\
             retry = { max_interval = \"1000000years\", initial_interval = \"1000000years\" }\n\
             [[task]]\nid = \"a\"\ncommand = [\"true\"]\nrequires_approval = true\n\
             approval_timeout = \"36501days\"\n\
             compensate = [\"undo\"]\ncompensate_retry = { initial_interval = \"200years\" }\n",
        );
        assert_eq!(e.len(), 5, "{e:?}");
        assert_eq!(
            e[0],
            "3:11: [defaults] timeout (1000000years) is longer than the limit of 36500 days \
             (100 years)"
        );
        assert!(e[1].starts_with("4:9: [defaults] retry: initial_interval (1000000years)"));
        assert!(e[2].starts_with("4:9: [defaults] retry: max_interval (1000000years)"));
        assert!(
            e[3].starts_with("9:20: task `a`: approval_timeout (99years 11months"),
            "{e:?}"
        );
        assert!(
            e[4].starts_with("11:20: task `a`: compensate_retry: initial_interval (200years)"),
            "{e:?}"
        );
        assert!(parse_workflow(
            "name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ntimeout = \"36500days\"\n"
        )
        .is_ok());
    }

    #[test]
    fn control_characters_in_the_name_are_refused() {
        for (name, shown) in [
            ("\\nforged line", "'\\n'"),
            ("\\u001b[2J", "'\\u{1b}'"),
            ("a\\tb", "'\\t'"),
            ("a\\u007f", "'\\u{7f}'"),
            ("a\\u0085", "'\\u{85}'"),
        ] {
            let e = lines(&format!(
                "name = \"{name}\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n"
            ));
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(
                e[0].starts_with(&format!(
                    "1:8: `name` contains the control character {shown}"
                )),
                "{e:?}"
            );
        }
        assert!(parse_workflow(
            "name = \"Release 2.0 — ünïcode\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n"
        )
        .is_ok());
    }

    #[test]
    fn control_characters_in_pools_labels_and_keys_are_refused_and_escaped() {
        let e = lines(
            "name = \"x\"\n[pools]\n\"a\\nb\" = 1\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n\
             labels = [\"ok\", \"\\u001b[2J\"]\npool = \"\\r\"\n\"\\u001b]0;x\" = 1\n",
        );
        // The unknown field makes the task structure-only: its labels and pool wait.
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with(r"3:1: pool name `a\nb` may only use letters"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with(r"9:1: unknown field `\u{1b}]0;x`"),
            "{e:?}"
        );
        assert!(e.iter().all(|l| !l.contains('\u{1b}')), "{e:?}");
        let e = lines(
            "name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n\
             labels = [\"ok\", \"\\u001b[2J\"]\npool = \"\\r\"\n",
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with(r"5:10: task `a`: label `\u{1b}[2J` may only use"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with(r"6:8: task `a` uses pool `\r`, which is not declared"),
            "{e:?}"
        );
    }

    #[test]
    fn long_user_text_is_cut_in_messages() {
        let long = "a".repeat(10_000);
        let head = "a".repeat(crate::model::quote::QUOTED_PREFIX_CHARS);
        let cases = [
            format!("name = \"x\"\n[[task]]\nid = \"{long}\"\ncommand = [\"true\"]\n"),
            format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ndepends_on = [\"{long}\"]\n"),
            format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n{long} = 1\n"),
            format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ntimeout = \"{long}\"\n"),
            format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ntimeout = \"1{long}\"\n"),
            format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\npriority = \"{long}\"\n"),
            format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\npool = \"{long}\"\n"),
            format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nlabels = [\"{long}!\"]\n"),
            format!("name = \"x\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nenv = {{ \"{long}=\" = \"1\" }}\n"),
        ];
        for text in cases {
            let e = err(&text);
            assert!(e.len() < 500, "{e}");
            assert!(e.contains(&format!("{head}…")), "{e}");
            assert!(
                e.contains("(10000 characters)") || e.contains("(10001 characters)"),
                "{e}"
            );
        }
    }
}
