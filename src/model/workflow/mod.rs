//! A validated workflow: the spec plus its plan (DAG) and a task-id index, with the effective
//! per-task settings (task value, else `[defaults]`, else built-in default).
//!
//! # Layout
//! - this file: [`Workflow`] (building it from a spec, the effective settings, serde).
//! - `builder`: `Builder`, which checks, indexes and plans a workflow one task at a time
//!   (what `Workflow::build` uses, and the parser's fast path as it reads the tasks).
//! - `check`: the field checks, every problem collected with where it lies.
//! - `handoff`: the rules of outputs, templates, gates and fan-out.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashTable};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ids::{TaskId, TaskIndex};
use super::plan::Plan;
use super::retry::RetryPolicy;
use super::spec::{Problem, SpecError, TaskSpec, WorkflowSpec};

mod builder;
#[cfg(test)]
mod builder_tests;
mod check;
mod handoff;
pub(crate) use handoff::task_templates;
#[cfg(test)]
mod tests;

pub(crate) use builder::Builder;
use check::check_fields;

/// Where in the source a problem lies; resolved to a line and column by a [`Locate`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Loc<'a> {
    /// No better place than the whole file.
    Nowhere,
    /// The `name` key.
    Name,
    /// The `max_concurrency` key.
    MaxConcurrency,
    /// A pool declared under `[pools]`.
    Pool(&'a str),
    /// A field of `[defaults]`.
    Defaults(&'static str),
    /// A task (its `id`).
    Task(TaskIndex),
    /// A field of a task (falls back to the task's table).
    TaskField(TaskIndex, &'static str),
    /// Entry `i` of a task's `depends_on`.
    Dependency(TaskIndex, usize),
    /// A top-level key other than `name` and `max_concurrency` (`output`, `authority`).
    Top(&'static str),
}

/// Turns a [`Loc`] into `(line, column)`, when the workflow came from text.
pub(crate) trait Locate {
    fn locate(&self, loc: Loc<'_>) -> Option<(usize, usize)>;
}

/// For specs built in code: no positions.
struct NoSource;

impl Locate for NoSource {
    fn locate(&self, _: Loc<'_>) -> Option<(usize, usize)> {
        None
    }
}

struct Problems<'l> {
    list: Vec<Problem>,
    locate: &'l dyn Locate,
}

impl Problems<'_> {
    fn at(&mut self, loc: Loc<'_>, message: impl Into<String>) {
        let problem = self.problem(loc, message);
        self.list.push(problem);
    }

    /// A problem at `loc`, not listed.
    fn problem(&self, loc: Loc<'_>, message: impl Into<String>) -> Problem {
        let pos = self.locate.locate(loc);
        Problem {
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message: message.into(),
        }
    }

    fn line_of(&self, loc: Loc<'_>) -> Option<usize> {
        self.locate.locate(loc).map(|p| p.0)
    }
}

/// A workflow that passed validation: a DAG of uniquely named tasks with valid commands,
/// pools and settings. Cheap to share (`Arc<Workflow>`); immutable.
///
/// Serialises as its [`WorkflowSpec`] alone; deserialising rebuilds the index and plan and
/// fails only on structural damage (duplicate ids, unknown dependencies, cycles), so a journal
/// written under older, looser field rules still replays.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// The spec as submitted.
    spec: WorkflowSpec,
    /// The DAG and its topological order.
    plan: Plan,
    /// Task id → index, storing only the 4-byte index (ids are looked up in `spec`).
    index: HashTable<TaskIndex>,
    /// Hasher for `index`.
    hasher: DefaultHashBuilder,
    /// `(source, mapped)` for every mapped task not yet expanded (see
    /// [`Workflow::fan_outs_from`]); few, so a list.
    fan_outs: Vec<(TaskIndex, TaskIndex)>,
}

impl PartialEq for Workflow {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}

impl Workflow {
    /// Validates a spec built in code. Problems carry no positions.
    pub fn from_spec(spec: WorkflowSpec) -> Result<Self, SpecError> {
        Self::build(spec, &NoSource).map_err(|problems| SpecError {
            source_name: None,
            problems,
        })
    }

    /// Validates `spec`, locating problems with `locate`.
    pub(crate) fn build(spec: WorkflowSpec, locate: &dyn Locate) -> Result<Self, Vec<Problem>> {
        Builder::start(spec, locate, true).finish()
    }

    /// The field rules alone, without the structure checks: for a file none of whose
    /// `[[task]]` tables read, where "no tasks" would be wrong.
    pub(crate) fn field_problems(spec: &WorkflowSpec, locate: &dyn Locate) -> Vec<Problem> {
        let mut p = Problems {
            list: Vec::new(),
            locate,
        };
        check_fields(spec, &mut p);
        p.list
    }

    /// Index + plan only, for the pruned workflow of a remote order
    /// ([`crate::cluster::wire::RemoteOrder`]): its stubs obey no field rules.
    pub fn rebuild_remote(spec: WorkflowSpec) -> Result<Self, String> {
        Self::rebuild(spec)
    }

    /// Index + plan only: what a replayed spec needs.
    fn rebuild(spec: WorkflowSpec) -> Result<Self, String> {
        Builder::start(spec, &NoSource, false)
            .finish()
            .map_err(|problems| {
                problems
                    .into_iter()
                    .map(|p| p.message)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
    }

    /// The workflow once mapped task `t` is expanded into `count` instances: instance `i`
    /// (id `T[i]`, appended after every existing task, so existing indices stay) is a copy
    /// of `T` with `T`'s dependencies; `T` itself then depends on its instances too, runs
    /// nothing, and has no compensation (its instances have it). Deterministic: replay
    /// rebuilds the same workflow from the same event.
    pub fn expanded(&self, t: TaskIndex, count: u32) -> Result<Workflow, String> {
        use super::spec::Expansion;
        let mut spec = self.spec.clone();
        let base = spec.tasks[t as usize].clone();
        if base.swarm().is_some() {
            return self.expanded_swarm(spec, t, count);
        }
        spec.tasks.reserve(count as usize);
        let mut ids = Vec::with_capacity(count as usize);
        for i in 0..count {
            let mut inst = base.clone();
            inst.id = TaskId::instance(&base.id, i);
            inst.handoff.get_or_insert_with(Default::default).expansion =
                Some(Expansion::Instance { index: i });
            ids.push(inst.id.clone());
            spec.tasks.push(inst);
        }
        let mapped = &mut spec.tasks[t as usize];
        mapped.depends_on.extend(ids);
        mapped.compensate = None;
        mapped.compensate_retry = None;
        mapped
            .handoff
            .get_or_insert_with(Default::default)
            .expansion = Some(Expansion::Mapped { count });
        Workflow::rebuild(spec)
    }

    /// [`Self::expanded`] of swarm task `t`: replicas `TASK[0]` .. `TASK[count-1]`, copies of
    /// it without the swarm fields that depend on what it depends on. The swarm task does not
    /// depend on them (its quorum is decided by the node, and a failed replica must not
    /// sweep it as `upstream_failed`).
    fn expanded_swarm(
        &self,
        mut spec: WorkflowSpec,
        t: TaskIndex,
        count: u32,
    ) -> Result<Workflow, String> {
        use super::spec::Expansion;
        let base = spec.tasks[t as usize].clone();
        for i in 0..count {
            let mut replica = base.clone();
            replica.id = TaskId::instance(&base.id, i);
            if let Some(s) = replica.scheduling.as_deref_mut() {
                s.swarm = None;
            }
            replica
                .handoff
                .get_or_insert_with(Default::default)
                .expansion = Some(Expansion::Replica { index: i });
            spec.tasks.push(replica);
        }
        spec.tasks[t as usize]
            .handoff
            .get_or_insert_with(Default::default)
            .expansion = Some(Expansion::Swarm { replicas: count });
        Workflow::rebuild(spec)
    }

    /// The vote command of swarm task `index` once expanded (its attempts run the vote, not
    /// its command; D67), if it has one.
    pub fn vote(&self, index: TaskIndex) -> Option<&super::spec::Command> {
        let task = self.task(index);
        match task.expansion() {
            Some(super::spec::Expansion::Swarm { .. }) => task.swarm()?.vote.as_ref(),
            _ => None,
        }
    }

    /// Mapped tasks not yet expanded, as `(source, mapped)`: `mapped`'s `for_each` names the
    /// output of `source`. The node checks a source's output against these when it succeeds.
    pub fn fan_outs_from(&self, source: TaskIndex) -> impl Iterator<Item = TaskIndex> + '_ {
        self.fan_outs
            .iter()
            .filter(move |(s, _)| *s == source)
            .map(|&(_, m)| m)
    }

    /// The spec as submitted.
    pub fn spec(&self) -> &WorkflowSpec {
        &self.spec
    }

    /// The DAG.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.spec.tasks.len()
    }

    /// Always false: a valid workflow has at least one task.
    pub fn is_empty(&self) -> bool {
        self.spec.tasks.is_empty()
    }

    /// Index of the task with id `id`.
    pub fn task_index(&self, id: &str) -> Option<TaskIndex> {
        let tasks = &self.spec.tasks;
        self.index
            .find(self.hasher.hash_one(id), |&j| {
                tasks[j as usize].id.as_str() == id
            })
            .copied()
    }

    /// The task at `index`. Panics if out of range (indices come from this workflow).
    pub fn task(&self, index: TaskIndex) -> &TaskSpec {
        &self.spec.tasks[index as usize]
    }

    /// The id of the task at `index`.
    pub fn task_id(&self, index: TaskIndex) -> &TaskId {
        &self.task(index).id
    }

    /// Why `failure` of task `index` is not retried under its retry policy's
    /// `non_retryable_exit_codes` / `non_retryable_signals` (`None`: it may be).
    pub fn non_retryable(&self, index: TaskIndex, failure: &super::Failure) -> Option<String> {
        let choice = self.task(index).retry_choice.as_deref()?;
        choice.is_non_retryable(failure).then(|| {
            format!(
                "{failure} is non-retryable under retry policy {}",
                choice.name.as_deref().unwrap_or("-")
            )
        })
    }

    /// Effective retry policy: task fields over `[defaults].retry` over built-in defaults.
    pub fn retry_policy(&self, index: TaskIndex) -> RetryPolicy {
        let d = &self.spec.defaults.retry;
        match &self.task(index).retry {
            Some(r) => r.resolve(Some(d)),
            None => d.resolve(None),
        }
    }

    /// Retry policy of the task's compensation: its `compensate_retry` merged over
    /// `[defaults].compensate_retry`, then the built-in defaults (5 attempts, so bounded
    /// unless a file says `max_attempts = 0`).
    pub fn compensate_retry_policy(&self, index: TaskIndex) -> RetryPolicy {
        let d = &self.spec.defaults.compensate_retry;
        match &self.task(index).compensate_retry {
            Some(r) => r.resolve(Some(d)),
            None => d.resolve(None),
        }
    }

    /// Effective per-attempt timeout (`None`: no timeout).
    pub fn timeout(&self, index: TaskIndex) -> Option<Duration> {
        self.task(index).timeout.or(self.spec.defaults.timeout)
    }

    /// Effective priority (built-in default 0; higher runs first).
    pub fn priority(&self, index: TaskIndex) -> i32 {
        self.task(index)
            .priority
            .or(self.spec.defaults.priority)
            .unwrap_or(0)
    }

    /// Effective pool, if any.
    pub fn pool(&self, index: TaskIndex) -> Option<&str> {
        self.task(index)
            .pool
            .as_deref()
            .or(self.spec.defaults.pool.as_deref())
    }

    /// Effective working directory (relative to the workflow file's folder), if any.
    pub fn cwd(&self, index: TaskIndex) -> Option<&str> {
        self.task(index)
            .cwd
            .as_deref()
            .or(self.spec.defaults.cwd.as_deref())
    }

    /// Whether the task waits for an approval before its first attempt.
    pub fn requires_approval(&self, index: TaskIndex) -> bool {
        self.task(index)
            .requires_approval
            .or(self.spec.defaults.requires_approval)
            .unwrap_or(false)
    }

    /// Effective approval expiry (`None`: the node's default applies).
    pub fn approval_timeout(&self, index: TaskIndex) -> Option<Duration> {
        self.task(index)
            .approval_timeout
            .or(self.spec.defaults.approval_timeout)
    }

    /// Effective environment: `[defaults].env` overlaid by the task's `env`.
    pub fn env(&self, index: TaskIndex) -> BTreeMap<&str, &str> {
        let mut env: BTreeMap<&str, &str> = self
            .spec
            .defaults
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend(
            self.task(index)
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        env
    }

    /// Effective output cap, bytes: the task's `max_output`, else `[defaults]`, else
    /// [`DEFAULT_MAX_OUTPUT`](super::spec::DEFAULT_MAX_OUTPUT) (1 MiB).
    pub fn max_output(&self, index: TaskIndex) -> u64 {
        self.task(index)
            .handoff()
            .and_then(|h| h.max_output)
            .or(self.spec.defaults.max_output)
            .unwrap_or(super::spec::DEFAULT_MAX_OUTPUT)
    }

    /// Effective fan-out limit of mapped task `index`: its `max_fan_out`, else `[defaults]`,
    /// else [`DEFAULT_MAX_FAN_OUT`](super::spec::DEFAULT_MAX_FAN_OUT) (10,000).
    pub fn max_fan_out(&self, index: TaskIndex) -> u32 {
        self.task(index)
            .handoff()
            .and_then(|h| h.max_fan_out)
            .or(self.spec.defaults.max_fan_out)
            .unwrap_or(super::spec::DEFAULT_MAX_FAN_OUT)
    }

    /// The task's quality gate, if any.
    pub fn gate(&self, index: TaskIndex) -> Option<&super::spec::Command> {
        self.task(index).handoff()?.gate.as_ref()
    }

    /// The task whose output is the run's output: `output = "TASK"`, or else the single task
    /// no other task depends on (`None` if there are several).
    pub fn output_task(&self) -> Option<TaskIndex> {
        if let Some(out) = self.spec.delegation().and_then(|d| d.output.as_deref()) {
            return self.task_index(out);
        }
        let mut sinks =
            (0..self.len() as TaskIndex).filter(|&t| self.plan.downstream(t).next().is_none());
        let first = sinks.next()?;
        sinks.next().is_none().then_some(first)
    }

    /// What runs of this workflow ask for in `[authority]` (empty if nothing).
    pub fn authority_ask(&self) -> crate::model::authority::AuthorityAsk {
        self.spec
            .delegation()
            .map(|d| d.authority.clone())
            .unwrap_or_default()
    }

    /// Whether any task declares a compensation, which makes a failed run compensate
    /// (a saga) instead of simply failing.
    pub fn is_saga(&self) -> bool {
        self.spec.tasks.iter().any(|t| t.compensate.is_some())
    }
}

impl Serialize for Workflow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.spec.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Workflow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let schema = super::spec::decoding_schema();
        let spec = if schema < 2 {
            super::spec::v1::WorkflowSpec::deserialize(deserializer)?.into()
        } else if schema < 3 {
            super::spec::v2::WorkflowSpec::deserialize(deserializer)?.into()
        } else if schema < 4 {
            super::spec::v3::WorkflowSpec::deserialize(deserializer)?.into()
        } else if schema < 5 {
            super::spec::v4::WorkflowSpec::deserialize(deserializer)?.into()
        } else if schema < 6 {
            super::spec::v5::WorkflowSpec::deserialize(deserializer)?.into()
        } else if schema < 7 {
            super::spec::v6::WorkflowSpec::deserialize(deserializer)?.into()
        } else if schema < 8 {
            super::spec::v7::WorkflowSpec::deserialize(deserializer)?.into()
        } else {
            WorkflowSpec::deserialize(deserializer)?
        };
        Workflow::rebuild(spec).map_err(serde::de::Error::custom)
    }
}
