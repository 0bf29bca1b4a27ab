//! The fast path: a workflow file with no problem, read straight into its [`Workflow`].
//!
//! The full path (`check_tree` in the module root) builds the whole spanned parse tree, reads
//! every table into a raw table of `Spanned` fields, keeps them all, turns them into the spec
//! and its spans, then checks the spec, so that every problem can be reported at its line and
//! column. A file with no problem needs none of the spans. This path streams the tasks: each
//! `[[task]]` is read, made into its [`TaskSpec`](crate::model::spec::TaskSpec) and handed
//! to a [`Builder`], which checks it, indexes it and resolves its dependencies while it is
//! still in the cache; nothing is kept per task but its spec. In TOML a task's part of the
//! tree is dropped once read; in JSON ([`super::json::stream`]) no tree of a task is built.
//!
//! It is never more permissive than the full path, because it judges nothing by itself: at
//! the first sign of a problem (a syntax error, a `null`, a repeated or unknown key, a missing
//! `name`, `id` or `task`, a field that does not read, a problem the checks find) it gives up,
//! and the caller runs the full path on the same text, which reports every problem with its
//! place. What it accepts it reads with the full path's own code: the same parsers (`toml`'s,
//! and the `json` module's), the same [`Table::set`] of each raw table for every field but a
//! task's strings, the same [`RawTask::take_spec`] and [`RawWorkflow::into_head`], and the
//! checks of [`Workflow::build`] (the [`Builder`] is what it runs on). The one thing it does
//! by itself is to read a task's string fields (`id`, `command`, `depends_on`, `shell`,
//! `cwd`, ...) when they have the usual shape, a string or an array of strings, without
//! serde's `Spanned` round trip; a value of any other shape goes to [`Table::set`].
//!
//! In JSON the top-level members come in any order: one that comes after `task` (`pools`,
//! say) was not known when the tasks were checked, so the whole workflow is then checked
//! again with [`Workflow::from_spec`].
//!
//! The tests (`fast_tests`) check on thousands of random and damaged workflows, in both
//! formats, that it accepts exactly what the full path accepts, with the same workflow.

use std::ops::Range;

use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

use super::position::TaskSpans;
use super::reader::{Reader, Table};
use super::task::RawTask;
use super::top_level::RawWorkflow;
use crate::model::ids::TaskId;
use crate::model::spec::Problem;
use crate::model::workflow::{Builder, Workflow};

/// The workflow of TOML `text`, if it has no problem at all; `None` means "ask the full path".
pub(super) fn toml(text: &str) -> Option<Workflow> {
    let root = DeTable::parse(text).ok()?.into_inner();
    let mut fast = Fast::new(text);
    let mut strings = Vec::new();
    for (key, value) in root {
        if key.get_ref() != "task" {
            fast.top(key.get_ref(), value)?;
            continue;
        }
        fast.tasks_begin()?;
        let DeValue::Array(items) = value.into_inner() else {
            return None;
        };
        fast.reserve(items.len());
        for item in items {
            let DeValue::Table(table) = item.into_inner() else {
                return None;
            };
            for (key, value) in table {
                let key = key.get_ref();
                let span = value.span();
                match (fast.task_shape(key), value.into_inner()) {
                    (Shape::String, DeValue::String(s)) => fast.task_string(key, span, s)?,
                    (Shape::Strings, DeValue::Array(items))
                        if items.iter().all(|i| i.get_ref().is_str()) =>
                    {
                        strings.extend(items.into_iter().map(|i| {
                            let span = i.span();
                            match i.into_inner() {
                                DeValue::String(s) => (span, s),
                                _ => unreachable!("only strings"),
                            }
                        }));
                        fast.task_strings(key, span, &mut strings)?;
                    }
                    (_, value) => fast.task_field(key, Spanned::new(span, value))?,
                }
            }
            fast.task_end()?;
        }
    }
    fast.finish()
}

/// The workflow of JSON `text`, if it has no problem at all; `None` means "ask the full path".
pub(super) fn json(text: &str) -> Option<Workflow> {
    let mut fast = Fast::new(text);
    // A guess (JSON tasks take 64 bytes and more), so that the tasks are not copied as their
    // vector grows; `Builder::finish` gives back what is not used.
    fast.expected_tasks = text.len() / 64;
    super::json::stream(text, &mut fast)?;
    fast.finish()
}

/// How a task field is read when its value has the usual shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A string ([`Visitor::task_string`]).
    String,
    /// An array of strings ([`Visitor::task_strings`]).
    Strings,
    /// Anything else: a spanned value ([`Visitor::task_field`]).
    Value,
}

/// Where a format's reader hands what it reads (the JSON reader streams into it; see
/// [`super::json::stream`]). Each method returns `None` to give up.
pub(super) trait Visitor<'t> {
    /// A top-level member other than `task`.
    fn top(&mut self, key: &str, value: Spanned<DeValue<'t>>) -> Option<()>;
    /// The `task` member begins (an array of task tables follows).
    fn tasks_begin(&mut self) -> Option<()>;
    /// How task field `key` is read when its value has the usual shape: a value of that
    /// shape goes to the method of the shape, any other to [`task_field`](Self::task_field).
    fn task_shape(&self, key: &str) -> Shape;
    /// A task field of [`Shape::String`] (its value's span and the string).
    fn task_string(&mut self, key: &str, span: Range<usize>, value: DeString<'t>) -> Option<()>;
    /// A task field of [`Shape::Strings`] (its value's span, and each string and its span,
    /// drained from `items`).
    fn task_strings(
        &mut self,
        key: &str,
        span: Range<usize>,
        items: &mut Vec<(Range<usize>, DeString<'t>)>,
    ) -> Option<()>;
    /// Any other member of the current task table.
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
    /// The tasks so far, checked as they come against the top-level fields before `task`;
    /// made when `task` begins.
    builder: Option<Builder<'static>>,
    /// A top-level field came after `task`: the tasks were checked without it, so
    /// [`finish`](Fast::finish) checks the whole workflow again.
    late: bool,
    /// Tasks to make room for when `task` begins.
    expected_tasks: usize,
    /// The task being read, but its id and dependencies; left default by
    /// [`RawTask::take_spec`] after each task, so it is not reallocated or copied.
    task: RawTask,
    /// The id of the task being read.
    id: Option<TaskId>,
    /// The dependencies of the task being read.
    depends_on: Vec<TaskId>,
    /// Bit `i`: field `i` of [`RawTask::FIELDS`] was seen in the task being read.
    task_seen: u32,
    /// Scratch for [`RawTask::take_spec`], which records where fields are; cleared per task.
    spans: TaskSpans,
    /// Problems [`RawTask::take_spec`] found (there must be none).
    problems: Vec<Problem>,
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
            builder: None,
            late: false,
            expected_tasks: 0,
            task: RawTask::default(),
            id: None,
            depends_on: Vec::new(),
            task_seen: 0,
            spans: TaskSpans {
                table: 0..0,
                id: 0..0,
                depends_on: Vec::new(),
                fields: Vec::new(),
            },
            problems: Vec::new(),
        }
    }

    /// Room for `n` more tasks.
    fn reserve(&mut self, n: usize) {
        if let Some(b) = &mut self.builder {
            b.reserve(n);
        }
    }

    /// Marks top-level field `key` as seen; `None` if it is unknown or seen already.
    fn see_top(&mut self, key: &str) -> Option<()> {
        let b = bit(RawWorkflow::FIELDS, key)?;
        (self.head_seen & b == 0).then(|| self.head_seen |= b)
    }

    /// Marks field `key` of the current task as seen; `None` if it is unknown or seen
    /// already.
    fn see_task(&mut self, key: &str) -> Option<()> {
        let b = bit(RawTask::FIELDS, key)?;
        (self.task_seen & b == 0).then(|| self.task_seen |= b)
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
        let builder = self.builder?;
        if !self.late {
            return builder.finish().ok();
        }
        let (mut spec, _, head) = self.head.into_head(self.reader.text);
        if head.structure_only || !head.pools_known {
            return None;
        }
        spec.tasks = builder.into_spec().tasks;
        Workflow::from_spec(spec).ok()
    }
}

impl<'t> Visitor<'t> for Fast<'t> {
    fn top(&mut self, key: &str, value: Spanned<DeValue<'t>>) -> Option<()> {
        self.see_top(key)?;
        self.late |= self.builder.is_some();
        let ok = self.head.set(key, value, &mut self.reader)?;
        (ok && self.reader.problems.is_empty()).then_some(())
    }

    fn tasks_begin(&mut self) -> Option<()> {
        self.see_top("task")?;
        let (head, _, flags) = self.head.clone().into_head(self.reader.text);
        if flags.structure_only || !flags.pools_known {
            return None;
        }
        let mut builder = Builder::new(head);
        builder.reserve(self.expected_tasks);
        self.builder = Some(builder);
        Some(())
    }

    fn task_shape(&self, key: &str) -> Shape {
        match key {
            "id" | "shell" | "cwd" | "pool" | "compensate_shell" | "gate_shell" | "for_each" => {
                Shape::String
            }
            "depends_on" | "command" | "compensate" | "gate" | "labels" => Shape::Strings,
            _ => Shape::Value,
        }
    }

    fn task_string(&mut self, key: &str, span: Range<usize>, value: DeString<'t>) -> Option<()> {
        self.see_task(key)?;
        let t = &mut self.task;
        let slot = match key {
            "id" => {
                // An invalid id gives up: the full path reports it.
                self.id = Some(TaskId::new(value).ok()?);
                return Some(());
            }
            "shell" => &mut t.shell,
            "cwd" => &mut t.cwd,
            "pool" => &mut t.pool,
            "compensate_shell" => &mut t.compensate_shell,
            "gate_shell" => &mut t.gate_shell,
            "for_each" => &mut t.for_each,
            _ => return None,
        };
        *slot = Some(Spanned::new(span, value.into_owned()));
        Some(())
    }

    fn task_strings(
        &mut self,
        key: &str,
        span: Range<usize>,
        items: &mut Vec<(Range<usize>, DeString<'t>)>,
    ) -> Option<()> {
        self.see_task(key)?;
        let t = &mut self.task;
        let slot = match key {
            "depends_on" => {
                let mut ids = Vec::with_capacity(items.len());
                for (_, s) in items.drain(..) {
                    // An invalid id gives up: the full path reports it.
                    ids.push(TaskId::new(s).ok()?);
                }
                self.depends_on = ids;
                return Some(());
            }
            "command" => &mut t.command,
            "compensate" => &mut t.compensate,
            "gate" => &mut t.gate,
            "labels" => &mut t.labels,
            _ => return None,
        };
        let strings = items.drain(..).map(|(_, s)| s.into_owned()).collect();
        *slot = Some(Spanned::new(span, strings));
        Some(())
    }

    fn task_field(&mut self, key: &str, value: Spanned<DeValue<'t>>) -> Option<()> {
        self.see_task(key)?;
        let ok = self.task.set(key, value, &mut self.reader)?;
        (ok && self.reader.problems.is_empty()).then_some(())
    }

    fn task_end(&mut self) -> Option<()> {
        self.task_seen = 0;
        let t = &mut self.task;
        // `id` and `depends_on` read as another shape (which would be a problem) are in `t`.
        let (Some(id), None, None) = (self.id.take(), t.id.take(), t.depends_on.take()) else {
            return None;
        };
        self.spans.fields.clear();
        let spec = t.take_spec(
            id,
            std::mem::take(&mut self.depends_on),
            &mut self.spans,
            self.reader.text,
            &mut self.problems,
            true,
        );
        if !self.problems.is_empty() {
            return None;
        }
        let builder = self.builder.as_mut()?;
        builder.push(spec);
        // Any problem: the full path reports it. Unless `pools` or `defaults` may still come
        // (after `task`, in JSON) and make it go: the tasks are then checked again with them
        // (see `finish`).
        if builder.is_clean() {
            return Some(());
        }
        let settled = !self.late
            && ["pools", "defaults"]
                .iter()
                .all(|f| bit(RawWorkflow::FIELDS, f).is_some_and(|b| self.head_seen & b != 0));
        (!settled).then_some(())
    }
}
