//! Building a [`Workflow`] one task at a time: each task's field rules, its place in the id
//! index and its dependencies are checked when it arrives, while it is still in the cache,
//! instead of in passes over every task once all are there (each such pass reads every task
//! from memory again, which is most of the time validation takes for large workflows).
//!
//! Whether tasks are pushed one by one (the parser's fast path, as it reads them) or all at
//! once ([`Workflow::build`], [`Workflow::rebuild`]), the checks and the order of the problems
//! are those of checking in passes: the top-level rules, the field rules of each task in
//! order, duplicate ids in order, dependency problems in order of task and position, then a
//! cycle, then the template references.

use std::collections::HashSet;
use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};

use super::check::{check_head, check_task};
use super::handoff::{check_references, has_references};
use super::{Loc, Locate, NoSource, Problems, Workflow};
use crate::model::ids::TaskIndex;
use crate::model::plan::Plan;
use crate::model::spec::{Problem, TaskSpec, WorkflowSpec};

/// Most slots of [`Builder::recent`] (16 KiB).
const RECENT: usize = 4096;

/// An empty slot of [`Builder::recent`].
const EMPTY: TaskIndex = TaskIndex::MAX;

/// A workflow being built: the tasks so far, checked, indexed and with their dependencies
/// resolved as far as the tasks so far allow.
pub(crate) struct Builder<'l> {
    /// The spec: its top-level fields, and the tasks so far.
    spec: WorkflowSpec,
    /// Whether the field rules and template references are checked (not when rebuilding a
    /// replayed spec, which only needs its index and plan).
    fields: bool,
    /// The top-level and field problems, in order.
    problems: Problems<'l>,
    /// Duplicate ids, in order of task.
    duplicates: Vec<Problem>,
    /// Dependency problems, with the (task, position in `depends_on`) they are about: they
    /// are found out of order (an unknown id only at the end), and listed in this order.
    dependency_problems: Vec<((TaskIndex, usize), Problem)>,
    /// Whether every dependency so far names another task.
    deps_ok: bool,
    /// Task id → index.
    index: HashTable<TaskIndex>,
    /// Hasher of `index`.
    hasher: DefaultHashBuilder,
    /// Hash of each task's id, so that growing `index` does not read every task again.
    hashes: Vec<u64>,
    /// The last task indexed in each slot (by id hash; [`EMPTY`] if none): a cache small
    /// enough to stay close to the processor (at most [`RECENT`] slots, a power of two), in
    /// front of `index`, which for a large workflow is not (most dependencies name a task a
    /// little before them).
    recent: Vec<TaskIndex>,
    /// `(dependency, dependent)` for each dependency, in order of task and position; a
    /// dependency on a task not seen yet is filled in at the end (see `pending`).
    edges: Vec<(TaskIndex, TaskIndex)>,
    /// Dependencies on tasks not seen yet: slot in `edges`, task, position in `depends_on`.
    pending: Vec<(usize, TaskIndex, usize)>,
    /// Tasks with a `for_each`, for the fan-outs.
    mapped: Vec<TaskIndex>,
    /// Tasks with a template or `for_each`, for [`check_references`].
    references: Vec<TaskIndex>,
}

impl Builder<'static> {
    /// A builder for the tasks of a file that is read as they come: `head` is the spec with
    /// no tasks (they are [`push`](Self::push)ed), problems carry no positions.
    pub(crate) fn new(head: WorkflowSpec) -> Self {
        Builder::start(head, &NoSource, true)
    }
}

impl<'l> Builder<'l> {
    /// Checks the top-level rules (with `fields`) and every task of `spec`.
    pub(super) fn start(spec: WorkflowSpec, locate: &'l dyn Locate, fields: bool) -> Self {
        let n = spec.tasks.len();
        let mut b = Builder {
            spec,
            fields,
            problems: Problems {
                list: Vec::new(),
                locate,
            },
            duplicates: Vec::new(),
            dependency_problems: Vec::new(),
            deps_ok: true,
            index: HashTable::with_capacity(n),
            hasher: DefaultHashBuilder::default(),
            hashes: Vec::with_capacity(n),
            recent: Vec::new(),
            edges: Vec::new(),
            pending: Vec::new(),
            mapped: Vec::new(),
            references: Vec::new(),
        };
        b.size_recent(n);
        if fields {
            check_head(&b.spec, &mut b.problems);
        }
        for i in 0..n {
            b.visit(i);
        }
        b
    }

    /// Sizes [`recent`](Self::recent) for `n` tasks (emptied if it grows).
    fn size_recent(&mut self, n: usize) {
        let slots = n.next_power_of_two().clamp(16, RECENT);
        if slots > self.recent.len() {
            self.recent = vec![EMPTY; slots];
        }
    }

    /// Room for `n` more tasks.
    pub(crate) fn reserve(&mut self, n: usize) {
        self.size_recent(self.spec.tasks.len() + n);
        self.spec.tasks.reserve_exact(n);
        self.hashes.reserve_exact(n);
        let hashes = &self.hashes;
        self.index.reserve(n, |&j| hashes[j as usize]);
    }

    /// Adds the next task and checks it.
    pub(crate) fn push(&mut self, task: TaskSpec) {
        self.spec.tasks.push(task);
        self.visit(self.spec.tasks.len() - 1);
    }

    /// Whether no problem has been found so far (the end may still find some).
    pub(crate) fn is_clean(&self) -> bool {
        self.problems.list.is_empty()
            && self.duplicates.is_empty()
            && self.dependency_problems.is_empty()
            && self.deps_ok
    }

    /// The spec as pushed, unchecked.
    pub(crate) fn into_spec(self) -> WorkflowSpec {
        self.spec
    }

    /// Checks task `i`: its field rules, its id, and its dependencies on the tasks so far.
    fn visit(&mut self, i: usize) {
        let task = &self.spec.tasks[i];
        let tasks = &self.spec.tasks;
        // Past 2^32-1 tasks there are no indices: `finish` reports that alone.
        let Ok(i) = TaskIndex::try_from(i) else {
            if self.fields {
                check_task(&self.spec, &mut self.problems, i as TaskIndex, task);
            }
            return;
        };
        if self.fields {
            check_task(&self.spec, &mut self.problems, i, task);
            if has_references(task) {
                self.references.push(i);
            }
        }
        if task.for_each().is_some() {
            self.mapped.push(i);
        }
        let hasher = &self.hasher;
        let hashes = &self.hashes;
        let id = task.id.as_str();
        let hash = hasher.hash_one(id);
        // Hashes are compared first: they are at hand, the tasks far apart in memory.
        match self.index.entry(
            hash,
            |&j| hashes[j as usize] == hash && tasks[j as usize].id.as_str() == id,
            |&j| hashes[j as usize],
        ) {
            Entry::Occupied(first) => {
                let first_line = self
                    .problems
                    .line_of(Loc::Task(*first.get()))
                    .map(|l| format!(" (first defined on line {l})"))
                    .unwrap_or_default();
                self.duplicates.push(self.problems.problem(
                    Loc::Task(i),
                    format!("duplicate task id `{id}`{first_line}"),
                ));
            }
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
        let slots = self.recent.len();
        self.recent[hash as usize & (slots - 1)] = i;
        self.hashes.push(hash);
        // Short lists are checked for repeats by scanning; long ones with a set, so a task
        // with a million dependencies is not quadratic.
        let mut seen: Option<HashSet<&str>> = (task.depends_on.len() > 16).then(HashSet::new);
        for (k, dep) in task.depends_on.iter().enumerate() {
            let repeated = match &mut seen {
                Some(seen) => !seen.insert(dep.as_str()),
                None => task.depends_on[..k].contains(dep),
            };
            if repeated {
                self.dependency_problems.push((
                    (i, k),
                    self.problems.problem(
                        Loc::Dependency(i, k),
                        format!("task `{}` lists `{dep}` twice in depends_on", task.id),
                    ),
                ));
                continue;
            }
            let name = dep.as_str();
            let hash = hasher.hash_one(name);
            let hashes = &self.hashes;
            let is =
                |j: TaskIndex| hashes[j as usize] == hash && tasks[j as usize].id.as_str() == name;
            // A recent task with that id (most dependencies name one), else the index. With
            // two tasks of one id the recent one may not be the first, as the index would
            // answer, but then the workflow has a duplicate-id problem and no plan: only
            // `i` itself has to be looked up in the index, for the self-dependency rule.
            let recent = self.recent[hash as usize & (self.recent.len() - 1)];
            let found = if recent != EMPTY && recent != i && is(recent) {
                Some(recent)
            } else {
                self.index.find(hash, |&j| is(j)).copied()
            };
            match found {
                Some(j) if j == i => {
                    self.dependency_problems.push((
                        (i, k),
                        self.problems.problem(
                            Loc::Dependency(i, k),
                            format!("task `{dep}` depends on itself (cycle: {dep} → {dep})"),
                        ),
                    ));
                    self.deps_ok = false;
                }
                Some(j) => self.edges.push((j, i)),
                None => {
                    // Not a task so far: maybe a later one (see `finish`).
                    self.pending.push((self.edges.len(), i, k));
                    self.edges.push((TaskIndex::MAX, i));
                }
            }
        }
    }

    /// The index of the task with id `id`, among all tasks.
    fn lookup(&self, id: &str) -> Option<TaskIndex> {
        let tasks = &self.spec.tasks;
        self.index
            .find(self.hasher.hash_one(id), |&j| {
                tasks[j as usize].id.as_str() == id
            })
            .copied()
    }

    /// The workflow, once every task is in: the structure checks left (no tasks, too many,
    /// dependencies on later tasks, cycles), the plan, and the template references.
    pub(crate) fn finish(mut self) -> Result<Workflow, Vec<Problem>> {
        let n = self.spec.tasks.len();
        if n == 0 {
            self.problems.at(
                Loc::Nowhere,
                "workflow has no tasks; add at least one [[task]]",
            );
            return Err(self.problems.list);
        }
        if n > TaskIndex::MAX as usize {
            self.problems
                .at(Loc::Nowhere, "workflow has more than 2^32-1 tasks");
            return Err(self.problems.list);
        }
        for (slot, i, k) in std::mem::take(&mut self.pending) {
            let dep = self.spec.tasks[i as usize].depends_on[k].as_str();
            match self.lookup(dep) {
                // A later task (a task's own id is indexed before its dependencies are looked
                // up, so this is not `i` itself).
                Some(j) => self.edges[slot] = (j, i),
                None => {
                    let task = &self.spec.tasks[i as usize];
                    let message = format!(
                        "task `{}` depends on `{dep}`, which is not a task in this workflow",
                        task.id
                    );
                    self.dependency_problems.push((
                        (i, k),
                        self.problems.problem(Loc::Dependency(i, k), message),
                    ));
                    self.deps_ok = false;
                }
            }
        }
        let mut p = self.problems;
        let structure_problems =
            !self.duplicates.is_empty() || !self.dependency_problems.is_empty();
        p.list.append(&mut self.duplicates);
        // Stable: a (task, position) has at most one problem.
        self.dependency_problems.sort_by_key(|(at, _)| *at);
        p.list.extend(
            self.dependency_problems
                .into_iter()
                .map(|(_, problem)| problem),
        );
        if !self.deps_ok || structure_problems {
            return Err(p.list);
        }
        let mut spec = self.spec;
        // Room reserved for tasks that did not come (a guess of their number) is given back.
        spec.tasks.shrink_to_fit();
        if self.index.capacity() > 2 * n {
            let hashes = &self.hashes;
            self.index.shrink_to(n, |&j| hashes[j as usize]);
        }
        let tasks = &spec.tasks;
        let (index, hasher) = (self.index, self.hasher);
        let lookup = |id: &str| {
            index
                .find(hasher.hash_one(id), |&j| {
                    tasks[j as usize].id.as_str() == id
                })
                .copied()
        };
        let fan_outs = self
            .mapped
            .into_iter()
            .filter_map(|m| {
                let t = &tasks[m as usize];
                if t.expansion().is_some() {
                    return None;
                }
                let e = crate::model::template::parse_for_each(t.for_each()?).ok()?;
                match e.root {
                    crate::model::template::Root::Output(source) => {
                        Some((lookup(source.as_str())?, m))
                    }
                    _ => None,
                }
            })
            .collect();
        let wf = match Plan::build(n, &self.edges) {
            Ok(plan) => Workflow {
                spec,
                plan,
                index,
                hasher,
                fan_outs,
            },
            Err(cycle) => {
                let path: Vec<&str> = cycle
                    .iter()
                    .map(|&t| tasks[t as usize].id.as_str())
                    .collect();
                p.at(
                    Loc::Task(cycle[0]),
                    format!("dependency cycle: {}", path.join(" → ")),
                );
                return Err(p.list);
            }
        };
        if self.fields {
            check_references(&wf, &mut p, &self.references);
            if let Some(out) = wf.spec.delegation().and_then(|d| d.output.as_deref()) {
                if wf.task_index(out).is_none() {
                    p.at(
                        Loc::Top("output"),
                        format!(
                            "`output` names {}, which is not a task in this workflow",
                            crate::model::quote::quoted(out)
                        ),
                    );
                }
            }
        }
        if p.list.is_empty() {
            Ok(wf)
        } else {
            Err(p.list)
        }
    }
}
