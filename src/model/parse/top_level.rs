//! The top-level table of a workflow file (`name`, `max_concurrency`, `[pools]`,
//! `[defaults]`, `[[task]]`) and the spec made of it.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::de::DeValue;
use toml::Spanned;

use super::defaults::RawDefaults;
use super::duration::dur;
use super::position::{inner, span_of, SourceMap, TaskSpans};
use super::reader::{Read, Reader, Table};
use super::task::RawTask;
use crate::model::resilience::{BreakerFile, HookFile, Resilience};
use crate::model::spec::{Command, Problem, TaskDefaults, TaskSpec, WorkflowSpec};

/// The top-level table as read; each field is unset if absent or unreadable.
#[derive(Default, Clone)]
pub(super) struct RawWorkflow {
    pub(super) name: Option<Spanned<String>>,
    pub(super) max_concurrency: Option<Spanned<u32>>,
    /// Pools as declared: name, and slots unless they did not read.
    pub(super) pools: Vec<(Spanned<String>, Option<u32>)>,
    /// `pools` is there but is not a table, so pool references cannot be checked.
    pub(super) pools_unreadable: bool,
    pub(super) defaults: Option<Read<RawDefaults>>,
    pub(super) tasks: Vec<Read<RawTask>>,
    /// Whether the file has a `task` key, so no task read is not "no tasks".
    pub(super) task_given: bool,
    /// `output = "TASK"` (event schema 4).
    pub(super) output: Option<Spanned<String>>,
    /// `[authority]` (event schema 4).
    pub(super) authority: Option<Spanned<crate::model::authority::AuthorityFile>>,
    /// `[[breakers]]` and `[[hooks]]`, checked (event schema 7).
    pub(super) resilience: Resilience,
    /// Where `breakers` and `hooks` are, if given.
    pub(super) resilience_spans: Vec<(&'static str, Range<usize>)>,
}

impl Table for RawWorkflow {
    const FIELDS: &'static [&'static str] = &[
        "name",
        "max_concurrency",
        "pools",
        "defaults",
        "task",
        "output",
        "authority",
        "breakers",
        "hooks",
    ];
    const REQUIRED: &'static [&'static str] = &["name"];

    fn set(&mut self, key: &str, value: Spanned<DeValue<'_>>, r: &mut Reader<'_>) -> Option<bool> {
        Some(match key {
            "name" => r.field(value, &mut self.name),
            "max_concurrency" => r.field(value, &mut self.max_concurrency),
            "output" => r.field(value, &mut self.output),
            "authority" => r.field(value, &mut self.authority),
            "breakers" => {
                let mut read: Option<Spanned<Vec<Spanned<BreakerFile>>>> = None;
                let ok = r.field(value, &mut read);
                let Some(read) = read else { return Some(ok) };
                self.resilience_spans.push(("breakers", read.span()));
                let mut good = ok;
                for (i, b) in read.into_inner().into_iter().enumerate() {
                    let span = b.span();
                    match b.get_ref().resolve(None) {
                        Ok(spec) => self.resilience.breakers.push(spec),
                        Err(e) => {
                            r.at(&span, format!("breakers[{i}]: {e}"));
                            good = false;
                        }
                    }
                }
                good
            }
            "hooks" => {
                let mut read: Option<Spanned<Vec<Spanned<HookFile>>>> = None;
                let ok = r.field(value, &mut read);
                let Some(read) = read else { return Some(ok) };
                self.resilience_spans.push(("hooks", read.span()));
                let mut good = ok;
                for (i, h) in read.into_inner().into_iter().enumerate() {
                    let span = h.span();
                    match h.get_ref().resolve(i) {
                        Ok(spec) => self.resilience.hooks.push(spec),
                        Err(e) => {
                            r.at(&span, format!("hooks[{i}]: {e}"));
                            good = false;
                        }
                    }
                }
                good
            }
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

/// What [`RawWorkflow::into_head`] found about the tables every task depends on.
pub(super) struct Head {
    /// `[defaults]` had a field error: every task's effective settings are unknown, so
    /// tasks are read for structure only.
    pub(super) structure_only: bool,
    /// `pools` is a table, so pool references can be checked.
    pub(super) pools_known: bool,
}

impl RawWorkflow {
    /// The spec to check and the spans to locate its problems, following the rules of the
    /// [parse module docs](super) for tables that did not read completely.
    pub(super) fn into_spec<'t>(
        mut self,
        text: &'t str,
        problems: &mut Vec<Problem>,
    ) -> (WorkflowSpec, SourceMap<'t>) {
        let raw_tasks = std::mem::take(&mut self.tasks);
        let (mut spec, mut map, head) = self.into_head(text);
        spec.tasks.reserve_exact(raw_tasks.len());
        map.tasks.reserve_exact(raw_tasks.len());
        for raw in raw_tasks {
            let complete = raw.complete && !head.structure_only;
            if let Some((task, spans)) = task_spec(
                raw.span,
                raw.fields,
                complete,
                text,
                problems,
                head.pools_known,
            ) {
                map.tasks.push(spans);
                spec.tasks.push(task);
            }
        }
        (spec, map)
    }

    /// Everything but the tasks (`self.tasks` is not looked at): the spec with no tasks, the
    /// spans of its top-level fields, and what the tasks depend on.
    pub(super) fn into_head(self, text: &str) -> (WorkflowSpec, SourceMap<'_>, Head) {
        let mut map = SourceMap {
            text,
            name: span_of(&self.name),
            max_concurrency: span_of(&self.max_concurrency),
            pools: BTreeMap::new(),
            defaults: BTreeMap::new(),
            top: [
                ("output", span_of(&self.output)),
                ("authority", span_of(&self.authority)),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .chain(self.resilience_spans.iter().cloned())
            .collect(),
            tasks: Vec::new(),
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
                    ("max_output", span_of(&d.max_output)),
                    ("max_fan_out", span_of(&d.max_fan_out)),
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
                    max_output: inner(d.max_output),
                    max_fan_out: inner(d.max_fan_out),
                }
            }
        };
        let spec = WorkflowSpec {
            // A name that did not read is reported already; "-" stands in for it.
            name: inner(self.name).unwrap_or_else(|| "-".to_owned()),
            max_concurrency: inner(self.max_concurrency),
            pools,
            defaults,
            tasks: Vec::new(),
            delegation: delegation(self.output, self.authority),
            resilience: (self.resilience != Resilience::default())
                .then(|| Box::new(self.resilience.clone())),
            origin: None,
        };
        let head = Head {
            structure_only,
            pools_known,
        };
        (spec, map, head)
    }
}

/// `output` and `[authority]` as the spec holds them (`None` if neither is set).
fn delegation(
    output: Option<Spanned<String>>,
    authority: Option<Spanned<crate::model::authority::AuthorityFile>>,
) -> Option<Box<crate::model::spec::Delegation>> {
    if output.is_none() && authority.is_none() {
        return None;
    }
    Some(Box::new(crate::model::spec::Delegation {
        output: inner(output),
        authority: inner(authority).map(|a| a.into_ask()).unwrap_or_default(),
    }))
}

/// The spec of one `[[task]]` table (at byte span `table`) and its spans; `None` if its id did
/// not read (it is reported already and cannot be named). A table that did not read
/// `complete`ly is read for structure only: id and dependencies, no field set, so none is
/// checked.
pub(super) fn task_spec(
    table: Range<usize>,
    mut t: RawTask,
    complete: bool,
    text: &str,
    problems: &mut Vec<Problem>,
    pools_known: bool,
) -> Option<(TaskSpec, TaskSpans)> {
    let id = t.id.take()?;
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
        t.take_spec(id, depends_on, &mut spans, text, problems, pools_known)
    } else {
        TaskSpec {
            depends_on,
            ..TaskSpec::new(id, Command::Argv(vec!["<unread>".into()]))
        }
    };
    Some((task, spans))
}
