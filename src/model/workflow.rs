//! A validated workflow: the spec plus its plan (DAG) and a task-id index, with the effective
//! per-task settings (task value, else `[defaults]`, else built-in default).

use std::collections::{BTreeMap, HashSet};
use std::hash::BuildHasher;
use std::time::Duration;

use hashbrown::{DefaultHashBuilder, HashTable};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ids::{TaskId, TaskIndex};
use super::plan::Plan;
use super::quote::{quoted, MAX_QUOTED_CHARS};
use super::retry::RetryPolicy;
use super::spec::{too_long, Command, Problem, SpecError, TaskSpec, WorkflowSpec};

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
        let pos = self.locate.locate(loc);
        self.list.push(Problem {
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            message: message.into(),
        });
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
        let mut p = Problems {
            list: Vec::new(),
            locate,
        };
        check_fields(&spec, &mut p);
        let structure = Self::structure(spec, &mut p);
        match structure {
            Some(wf) if p.list.is_empty() => Ok(wf),
            _ => Err(p.list),
        }
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

    /// Index + plan only: what a replayed spec needs.
    fn rebuild(spec: WorkflowSpec) -> Result<Self, String> {
        let mut p = Problems {
            list: Vec::new(),
            locate: &NoSource,
        };
        match Self::structure(spec, &mut p) {
            Some(wf) if p.list.is_empty() => Ok(wf),
            _ => Err(p
                .list
                .into_iter()
                .map(|p| p.message)
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }

    /// Builds the id index, resolves dependencies and plans the DAG, reporting duplicate ids,
    /// unknown or repeated dependencies and cycles.
    fn structure(spec: WorkflowSpec, p: &mut Problems<'_>) -> Option<Self> {
        // Field problems found before do not stop planning: a cycle is reported with them.
        let before = p.list.len();
        if spec.tasks.is_empty() {
            p.at(
                Loc::Nowhere,
                "workflow has no tasks; add at least one [[task]]",
            );
            return None;
        }
        if spec.tasks.len() > TaskIndex::MAX as usize {
            p.at(Loc::Nowhere, "workflow has more than 2^32-1 tasks");
            return None;
        }
        let hasher = DefaultHashBuilder::default();
        let mut index: HashTable<TaskIndex> = HashTable::with_capacity(spec.tasks.len());
        let tasks = &spec.tasks;
        let hash_of = |id: &str| hasher.hash_one(id);
        for (i, task) in tasks.iter().enumerate() {
            let id = task.id.as_str();
            let h = hash_of(id);
            match index.find(h, |&j| tasks[j as usize].id.as_str() == id) {
                Some(&first) => {
                    let first_line = p
                        .line_of(Loc::Task(first))
                        .map(|l| format!(" (first defined on line {l})"))
                        .unwrap_or_default();
                    p.at(
                        Loc::Task(i as TaskIndex),
                        format!("duplicate task id `{id}`{first_line}"),
                    );
                }
                None => {
                    index.insert_unique(h, i as TaskIndex, |&j| {
                        hash_of(tasks[j as usize].id.as_str())
                    });
                }
            }
        }
        let lookup = |id: &str| {
            index
                .find(hash_of(id), |&j| tasks[j as usize].id.as_str() == id)
                .copied()
        };
        let mut edges: Vec<(TaskIndex, TaskIndex)> = Vec::new();
        let mut deps_ok = true;
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, task) in tasks.iter().enumerate() {
            let i = i as TaskIndex;
            // Short lists are checked for repeats by scanning; long ones with a set, so a
            // task with a million dependencies is not quadratic.
            let long = task.depends_on.len() > 16;
            seen.clear();
            for (k, dep) in task.depends_on.iter().enumerate() {
                let repeated = if long {
                    !seen.insert(dep.as_str())
                } else {
                    task.depends_on[..k].contains(dep)
                };
                if repeated {
                    p.at(
                        Loc::Dependency(i, k),
                        format!("task `{}` lists `{dep}` twice in depends_on", task.id),
                    );
                    continue;
                }
                match lookup(dep.as_str()) {
                    Some(j) if j == i => {
                        p.at(
                            Loc::Dependency(i, k),
                            format!("task `{dep}` depends on itself (cycle: {dep} → {dep})"),
                        );
                        deps_ok = false;
                    }
                    Some(j) => edges.push((j, i)),
                    None => {
                        p.at(
                            Loc::Dependency(i, k),
                            format!(
                                "task `{}` depends on `{dep}`, which is not a task in this workflow",
                                task.id
                            ),
                        );
                        deps_ok = false;
                    }
                }
            }
        }
        if !deps_ok || p.list.len() > before {
            return None;
        }
        match Plan::build(tasks.len(), &edges) {
            Ok(plan) => Some(Workflow {
                spec,
                plan,
                index,
                hasher,
            }),
            Err(cycle) => {
                let path: Vec<&str> = cycle
                    .iter()
                    .map(|&t| tasks[t as usize].id.as_str())
                    .collect();
                p.at(
                    Loc::Task(cycle[0]),
                    format!("dependency cycle: {}", path.join(" → ")),
                );
                None
            }
        }
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
        let spec = if super::spec::decoding_schema() < 2 {
            super::spec::v1::WorkflowSpec::deserialize(deserializer)?.into()
        } else {
            WorkflowSpec::deserialize(deserializer)?
        };
        Workflow::rebuild(spec).map_err(serde::de::Error::custom)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn check_command(
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

fn check_env(p: &mut Problems<'_>, at: Loc<'_>, owner: &str, env: &BTreeMap<String, String>) {
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

/// Field-level rules (everything but the graph structure).
fn check_fields(spec: &WorkflowSpec, p: &mut Problems<'_>) {
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
    let declared = || {
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
    };
    let d = &spec.defaults;
    if let Some(pool) = &d.pool {
        if !spec.pools.contains_key(pool) {
            p.at(
                Loc::Defaults("pool"),
                format!(
                    "[defaults] pool {} is not declared under [pools] ({})",
                    quoted(pool),
                    declared()
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
    if d.cwd.as_deref().is_some_and(|c| c.contains('\0')) {
        p.at(Loc::Defaults("cwd"), "[defaults] cwd contains a NUL byte");
    }

    for (i, task) in spec.tasks.iter().enumerate() {
        let i = i as TaskIndex;
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
                        declared()
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
        for label in &task.labels {
            if !valid_name(label) {
                p.at(
                    Loc::TaskField(i, "labels"),
                    format!(
                        "task `{id}`: label {} may only use letters, digits, `_`, `.` and `-`",
                        quoted(label)
                    ),
                );
            }
        }
        check_env(p, Loc::Task(i), &format!("task `{id}`"), &task.env);
        if task.cwd.as_deref().is_some_and(|c| c.contains('\0')) {
            p.at(
                Loc::Task(i),
                format!("task `{id}`: cwd contains a NUL byte"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse::parse_workflow;

    fn errors(text: &str) -> Vec<String> {
        parse_workflow(text)
            .unwrap_err()
            .to_string()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn tasks(body: &str) -> String {
        format!("name = \"wf\"\n{body}")
    }

    #[test]
    fn cycle_shows_its_path() {
        let e = errors(&tasks(
            "[[task]]\nid = \"a\"\ncommand = [\"true\"]\ndepends_on = [\"b\"]\n\
             [[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].ends_with("dependency cycle: a → b → a")
                || e[0].ends_with("dependency cycle: b → a → b"),
            "{e:?}"
        );
        assert!(
            e[0].starts_with("3:6:") || e[0].starts_with("7:6:"),
            "{e:?}"
        );
    }

    #[test]
    fn self_dependency_is_a_cycle() {
        let e = errors(&tasks(
            "[[task]]\nid = \"a\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n",
        ));
        assert_eq!(e, ["5:15: task `a` depends on itself (cycle: a → a)"]);
    }

    #[test]
    fn missing_dependency_names_it_and_the_task() {
        let e = errors(&tasks(
            "[[task]]\nid = \"deploy\"\ncommand = [\"true\"]\ndepends_on = [\"biuld\"]\n",
        ));
        assert_eq!(
            e,
            ["5:15: task `deploy` depends on `biuld`, which is not a task in this workflow"]
        );
    }

    #[test]
    fn duplicate_id_points_at_both() {
        let e = errors(&tasks(
            "[[task]]\nid = \"a\"\ncommand = [\"true\"]\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n",
        ));
        assert_eq!(e, ["6:6: duplicate task id `a` (first defined on line 3)"]);
    }

    #[test]
    fn invalid_id_characters() {
        let e = errors(&tasks("[[task]]\nid = \"a b\"\ncommand = [\"true\"]\n"));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("3:6: task id `a b` contains ' '"), "{e:?}");
    }

    #[test]
    fn unknown_pool_lists_declared_pools() {
        let e = errors(&tasks(
            "[pools]\ncc = 2\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\npool = \"gpu\"\n",
        ));
        assert_eq!(
            e,
            ["7:8: task `a` uses pool `gpu`, which is not declared under [pools] (declared: cc)"]
        );
    }

    #[test]
    fn every_problem_is_reported_in_file_order() {
        let e = errors(&tasks(
            "max_concurrency = 0\n[pools]\ncc = 0\n[[task]]\nid = \"a\"\ncommand = [\"\"]\n\
             retry = { jitter = 3.0 }\n[[task]]\nid = \"b\"\nshell = \" \"\ntimeout = \"0s\"\n",
        ));
        assert_eq!(e.len(), 6, "{e:?}");
        assert!(
            e[0].starts_with("2:19: `max_concurrency` must be at least 1"),
            "{e:?}"
        );
        assert!(e[1].starts_with("4:1: pool `cc` has 0 slots"));
        assert!(e[2].contains("program name (`command[0]`) is empty"));
        assert!(e[3].contains("retry: jitter must be between"));
        assert!(e[4].contains("task `b`: the shell line is empty"));
        assert!(e[5].contains("task `b`: timeout must be longer than 0s"));
    }

    #[test]
    fn a_cycle_is_reported_alongside_field_problems() {
        let e = errors(&tasks(
            "[[task]]\nid = \"a\"\ncommand = [\"true\"]\npool = \"nope\"\ndepends_on = [\"b\"]\n\
             [[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n",
        ));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e.iter().any(|l| l.contains("pool `nope`")), "{e:?}");
        assert!(e.iter().any(|l| l.contains("dependency cycle")), "{e:?}");
    }

    #[test]
    fn retry_tables_are_checked_merged() {
        let e = errors(&tasks(
            "[defaults]\nretry = { max_interval = \"1m\" }\n\
             [[task]]\nid = \"a\"\ncommand = [\"true\"]\nretry = { initial_interval = \"10m\" }\n",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("max_interval (1m) is shorter than initial_interval (10m) once merged"),
            "{e:?}"
        );
    }

    #[test]
    fn a_repeat_in_a_long_dependency_list_is_found() {
        let mut text = String::from("name = \"wf\"\n");
        for i in 0..3000 {
            text.push_str(&format!("[[task]]\nid = \"t{i}\"\ncommand = [\"true\"]\n"));
        }
        let deps: Vec<String> = (0..3000).map(|i| format!("\"t{i}\"")).collect();
        text.push_str(&format!(
            "[[task]]\nid = \"all\"\ncommand = [\"true\"]\ndepends_on = [{}, \"t7\"]\n",
            deps.join(", ")
        ));
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("lists `t7` twice"), "{e:?}");
    }

    #[test]
    fn no_tasks() {
        assert_eq!(
            errors("name = \"wf\"\n"),
            ["workflow has no tasks; add at least one [[task]]"]
        );
    }

    #[test]
    fn specs_built_in_code_are_checked_too() {
        let wf = parse_workflow(&tasks("[[task]]\nid = \"a\"\ncommand = [\"true\"]\n")).unwrap();
        let mut spec = wf.spec().clone();
        spec.tasks[0].command = Command::Argv(vec![]);
        let e = Workflow::from_spec(spec).unwrap_err().to_string();
        assert_eq!(
            e,
            "task `a`: `command` is empty; give at least the program to run"
        );
    }

    #[test]
    fn env_merges_task_over_defaults() {
        let wf = parse_workflow(&tasks(
            "[defaults]\nenv = { A = \"1\", B = \"2\" }\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nenv = { B = \"3\" }\n",
        ))
        .unwrap();
        let env = wf.env(0);
        assert_eq!(env.get("A"), Some(&"1"));
        assert_eq!(env.get("B"), Some(&"3"));
    }
}
