//! The fast path: a workflow file with no problem, read straight into its spec.
//!
//! The full path (`check_tree` in the module root) builds the whole spanned parse tree, reads
//! every table into a raw table of `Spanned` fields, keeps them all, then turns them into the
//! spec and its spans, so that every problem can be reported at its line and column. A valid
//! file needs none of the spans: this path streams the tasks one at a time (a task's part of
//! the tree is dropped once its [`TaskSpec`] is made; in JSON no tree of a task is built at
//! all), keeps no span, and validates the spec with [`Workflow::from_spec`].
//!
//! It is never more permissive than the full path, because it judges nothing itself: on the
//! first sign of any problem (a syntax error, a `null`, a repeated or unknown key, a missing
//! `name`, `id` or `task`, a field that does not read, a field-check or structure problem)
//! it gives up, and the caller runs the full path on the same text, which reports every
//! problem with its position. What it accepts it reads with the full path's own code: the
//! same parsers (`toml`'s, and `json`'s [`Parser`](super::json)), the same
//! [`Table::set`] of each raw table for every field but a task's strings, the same
//! [`RawTask::into_spec`] and [`RawWorkflow::into_head`], the same checks. The one thing
//! it does by itself is to read a task's string fields (`id`, `command`, `depends_on`,
//! `shell`, `cwd`, ...) when they have the usual shape (a string, an array of strings)
//! without serde's `Spanned` round trip; any other shape goes to [`Table::set`]. The tests
//! (`fast_tests`) check on mutated workflows, in both formats, that it accepts exactly what
//! the full path accepts, with the same spec.

use std::ops::Range;

use toml::de::{DeArray, DeString, DeTable, DeValue};
use toml::Spanned;

use super::position::TaskSpans;
use super::reader::{Reader, Table};
use super::task::RawTask;
use super::top_level::RawWorkflow;
use crate::model::ids::TaskId;
use crate::model::spec::{Problem, TaskSpec};
use crate::model::workflow::Workflow;

/// The workflow of TOML `text`, if it has no problem at all; `None` means "ask the full path".
pub(super) fn toml(text: &str) -> Option<Workflow> {
    let root = DeTable::parse(text).ok()?.into_inner();
    let mut fast = Fast::new(text);
    for (key, value) in root {
        if key.get_ref() != "task" {
            fast.top(key.get_ref(), value)?;
            continue;
        }
        fast.tasks_begin()?;
        let DeValue::Array(items) = value.into_inner() else {
            return None;
        };
        fast.tasks.reserve_exact(items.len());
        for item in items {
            let DeValue::Table(table) = item.into_inner() else {
                return None;
            };
            for (key, value) in table {
                fast.task_field(key.get_ref(), value)?;
            }
            fast.task_end()?;
        }
    }
    fast.finish()
}

/// The workflow of JSON `text`, if it has no problem at all; `None` means "ask the full path".
pub(super) fn json(text: &str) -> Option<Workflow> {
    let mut fast = Fast::new(text);
    super::json::stream(text, &mut fast)?;
    fast.finish()
}

/// Where a format's reader hands what it reads (the JSON reader streams into it; see
/// [`super::json::stream`]). Each method returns `None` to give up.
pub(super) trait Visitor<'t> {
    /// A top-level member other than `task`.
    fn top(&mut self, key: &str, value: Spanned<DeValue<'t>>) -> Option<()>;
    /// The `task` member begins (an array of task tables follows).
    fn tasks_begin(&mut self) -> Option<()>;
    /// A member of the current task table.
    fn task_field(&mut self, key: &str, value: Spanned<DeValue<'t>>) -> Option<()>;
    /// The current task table ends.
    fn task_end(&mut self) -> Option<()>;
}

/// The state of a fast read: the top-level fields so far, the task being read, the specs of
/// the tasks before it.
struct Fast<'t> {
    /// For the raw tables' `set`: must find no problem.
    reader: Reader<'t>,
    /// The top-level fields but `task` (its `tasks` stay empty).
    head: RawWorkflow,
    /// Bit `i`: field `i` of [`RawWorkflow::FIELDS`] was seen (a repeat gives up).
    head_seen: u32,
    /// The task being read.
    task: RawTask,
    /// Bit `i`: field `i` of [`RawTask::FIELDS`] was seen in the task being read.
    task_seen: u32,
    /// Scratch for [`RawTask::into_spec`], which records where fields are; cleared per task.
    spans: TaskSpans,
    /// Problems [`RawTask::into_spec`] found (there must be none).
    problems: Vec<Problem>,
    /// The tasks read so far.
    tasks: Vec<TaskSpec>,
}

/// Bit of `key` among `fields`, if it is one of them.
fn bit(fields: &[&str], key: &str) -> Option<u32> {
    fields.iter().position(|f| *f == key).map(|i| 1 << i)
}

impl<'t> Fast<'t> {
    fn new(text: &'t str) -> Self {
        const { assert!(RawTask::FIELDS.len() <= 32 && RawWorkflow::FIELDS.len() <= 32) };
        Fast {
            reader: Reader {
                text,
                problems: Vec::new(),
            },
            head: RawWorkflow::default(),
            head_seen: 0,
            task: RawTask::default(),
            task_seen: 0,
            spans: TaskSpans {
                table: 0..0,
                id: 0..0,
                depends_on: Vec::new(),
                fields: Vec::new(),
            },
            problems: Vec::new(),
            tasks: Vec::new(),
        }
    }

    /// Marks top-level field `key` as seen; `None` if it is unknown or seen already.
    fn see_top(&mut self, key: &str) -> Option<()> {
        let b = bit(RawWorkflow::FIELDS, key)?;
        (self.head_seen & b == 0).then(|| self.head_seen |= b)
    }

    /// The workflow, once everything is read: `None` if a required field is missing or the
    /// checks find a problem.
    fn finish(self) -> Option<Workflow> {
        let required = RawWorkflow::REQUIRED
            .iter()
            .chain(&["task"])
            .all(|f| bit(RawWorkflow::FIELDS, f).is_some_and(|b| self.head_seen & b != 0));
        if !required || !self.reader.problems.is_empty() || !self.problems.is_empty() {
            return None;
        }
        let (mut spec, _, head) = self.head.into_head(self.reader.text);
        if head.structure_only || !head.pools_known {
            return None;
        }
        spec.tasks = self.tasks;
        Workflow::from_spec(spec).ok()
    }
}

impl<'t> Visitor<'t> for Fast<'t> {
    fn top(&mut self, key: &str, value: Spanned<DeValue<'t>>) -> Option<()> {
        self.see_top(key)?;
        let ok = self.head.set(key, value, &mut self.reader)?;
        (ok && self.reader.problems.is_empty()).then_some(())
    }

    fn tasks_begin(&mut self) -> Option<()> {
        self.see_top("task")
    }

    fn task_field(&mut self, key: &str, mut value: Spanned<DeValue<'t>>) -> Option<()> {
        let b = bit(RawTask::FIELDS, key)?;
        if self.task_seen & b != 0 {
            return None;
        }
        self.task_seen |= b;
        let t = &mut self.task;
        let span = value.span();
        let read = match key {
            "id" => take_string(&mut value)
                .map(|s| TaskId::new(s).ok().map(|id| t.id = Some(Spanned::new(span, id)))),
            "depends_on" => take_strings(&mut value).map(|items| {
                let ids: Result<Vec<_>, _> = items
                    .into_iter()
                    .map(|(span, s)| TaskId::new(s).map(|id| Spanned::new(span, id)))
                    .collect();
                ids.ok().map(|ids| t.depends_on = Some(Spanned::new(span, ids)))
            }),
            "command" | "compensate" | "gate" | "labels" => {
                take_strings(&mut value).map(|items| {
                    let argv = items.into_iter().map(|(_, s)| s.into_owned()).collect();
                    let slot = match key {
                        "command" => &mut t.command,
                        "compensate" => &mut t.compensate,
                        "gate" => &mut t.gate,
                        _ => &mut t.labels,
                    };
                    *slot = Some(Spanned::new(span, argv));
                    Some(())
                })
            }
            "shell" | "cwd" | "pool" | "compensate_shell" | "gate_shell" | "for_each" => {
                take_string(&mut value).map(|s| {
                    let slot = match key {
                        "shell" => &mut t.shell,
                        "cwd" => &mut t.cwd,
                        "pool" => &mut t.pool,
                        "compensate_shell" => &mut t.compensate_shell,
                        "gate_shell" => &mut t.gate_shell,
                        _ => &mut t.for_each,
                    };
                    *slot = Some(Spanned::new(span, s.into_owned()));
                    Some(())
                })
            }
            _ => None,
        };
        match read {
            // The usual shape, read (or not: an invalid id gives up).
            Some(done) => done,
            // Any other field or shape: the full path's reader of the field.
            None => {
                let ok = t.set(key, value, &mut self.reader)?;
                (ok && self.reader.problems.is_empty()).then_some(())
            }
        }
    }

    fn task_end(&mut self) -> Option<()> {
        let mut raw = std::mem::take(&mut self.task);
        self.task_seen = 0;
        let id = raw.id.take()?.into_inner();
        let depends_on = raw
            .depends_on
            .take()
            .map(|d| d.into_inner().into_iter().map(Spanned::into_inner).collect())
            .unwrap_or_default();
        self.spans.fields.clear();
        let spec = raw.into_spec(
            id,
            depends_on,
            &mut self.spans,
            self.reader.text,
            &mut self.problems,
            true,
        );
        if !self.problems.is_empty() {
            return None;
        }
        self.tasks.push(spec);
        Some(())
    }
}

/// The string of a string value (left empty in `value`); `None` (value untouched) for any
/// other value.
fn take_string<'t>(value: &mut Spanned<DeValue<'t>>) -> Option<DeString<'t>> {
    match value.get_mut() {
        DeValue::String(s) => Some(std::mem::take(s)),
        _ => None,
    }
}

/// The strings (and their spans) of an array of strings (left empty in `value`); `None`
/// (value untouched) for any other value.
fn take_strings<'t>(
    value: &mut Spanned<DeValue<'t>>,
) -> Option<impl Iterator<Item = (Range<usize>, DeString<'t>)>> {
    let DeValue::Array(items) = value.get_mut() else {
        return None;
    };
    if !items
        .iter()
        .all(|i| matches!(i.get_ref(), DeValue::String(_)))
    {
        return None;
    }
    Some(std::mem::replace(items, DeArray::new()).into_iter().map(|i| {
        let span = i.span();
        match i.into_inner() {
            DeValue::String(s) => (span, s),
            _ => unreachable!("checked above"),
        }
    }))
}
