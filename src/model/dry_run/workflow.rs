//! The plan of a workflow, as `troupe run FILE --dry-run` prints it.
//!
//! # The waves
//! Wave `k` is step `k` of a schedule in which every task takes exactly one step and none
//! fails: the tasks that would start together. It is list scheduling (Graham, "Bounds for
//! certain multiprocessing anomalies", 1966) with unit times, the rule troupe's dispatcher
//! follows:
//! 1. a task is *ready* at step `k` when each of its dependencies is in a wave before `k`;
//! 2. at each step, ready tasks are taken in the order the scheduler's queue serves them —
//!    higher `priority` first, then the task that became ready at an earlier step, then file
//!    order — and admitted by [`crate::model::caps::admit`] (the scheduler's one cap check)
//!    while the wave holds fewer than `max_concurrency` tasks and the task's pool (a task in
//!    pool `P` counts against `P`) fewer than `P`'s slots; a task its pool refuses waits for
//!    a later wave, and others behind it may still be admitted;
//! 3. the wave is what was admitted; its tasks' dependents may become ready for the next.
//!
//! Without caps this gives the *levels* of the DAG (wave `k` = the tasks whose longest chain
//! of dependencies has `k - 1` tasks, Hu's level scheduling, 1961); caps split a level and
//! push its overflow into later waves, next to tasks that became ready meanwhile.
//!
//! The waves are a schedule that respects every dependency and cap, so their number is an
//! *upper* bound on the fewest unit steps the run needs; [`WorkflowPreview::min_steps`] is
//! the matching *lower* bound, `max(critical path, ⌈tasks / max_concurrency⌉, ⌈tasks in P /
//! slots of P⌉ for each pool P)`: no schedule does better. When the two are equal, the waves
//! are optimal. Not modelled (a node is not needed, so its settings are unknown): the
//! node's worker count, node-wide pools, approvals (a human's wait), retries and real
//! durations.
//!
//! # Compensations
//! A saga undoes its steps in reverse order of completion (docs/semantics.md, "Sagas"). Under
//! the same assumptions the completion order is the waves' order (within a wave, the order
//! listed), so [`WorkflowPreview::compensations`] is the saga steps in reverse of it: the
//! order of undo if the run aborted after every step had succeeded.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use crate::model::caps::{admit, Cap, Load};
use crate::model::plan::CriticalPath;
use crate::model::{TaskIndex, Workflow};

/// What `troupe run FILE --dry-run` shows: the plan of a valid workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowPreview {
    /// The waves, first to last (the module docs give the rule); each ordered by priority
    /// (higher first), then file order. Every task is in exactly one.
    pub waves: Vec<Vec<TaskIndex>>,
    /// The fewest unit steps any schedule within the file's caps needs (the lower bound in
    /// the module docs); `waves.len()` is at least this.
    pub min_steps: u64,
    /// The longest chain of dependencies, in tasks ([`crate::model::Plan::critical_path`]
    /// with unit weights).
    pub critical_path: CriticalPath,
    /// The effective settings of every task, in file order.
    pub tasks: Vec<TaskPlan>,
    /// Tasks that wait for an approval before their first attempt, in wave order.
    pub approvals: Vec<TaskIndex>,
    /// Saga steps (tasks with a compensation) in the order they would be undone.
    pub compensations: Vec<TaskIndex>,
    /// Task templates (`{{ tasks.ID.output... }}`, `{{ item }}`, `{{ index }}` in a command
    /// or env): where a task reads another's output. None can be resolved before the run
    /// (outputs exist once their task succeeded); each is resolved at dispatch.
    pub templates: Vec<TemplateUse>,
    /// Dynamic fan-outs (`for_each`): tasks expanded at run time into one task per element
    /// of an upstream output. The waves count a mapped task as one step.
    pub fan_outs: Vec<FanOut>,
}

/// One task's effective settings (task value, else `[defaults]`, else the built-in default)
/// and its wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPlan {
    /// The task.
    pub task: TaskIndex,
    /// Its wave, counted from 1.
    pub wave: u32,
    /// Its pool, if any.
    pub pool: Option<String>,
    /// Its priority (higher runs first among ready tasks).
    pub priority: i32,
    /// Per-attempt timeout (`None`: none).
    pub timeout: Option<Duration>,
    /// Attempts allowed, the first included (0: unlimited).
    pub max_attempts: u32,
    /// Whether its first attempt waits for an approval.
    pub requires_approval: bool,
    /// Expiry of its approval request (`None`: the node's default), with `requires_approval`.
    pub approval_timeout: Option<Duration>,
    /// Whether it is a saga step (has a compensation).
    pub compensates: bool,
}

/// A template in a task, resolved at dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateUse {
    /// The task whose command or env holds the template.
    pub task: TaskIndex,
    /// `command` or `env`.
    pub field: &'static str,
    /// The task whose output it reads (for `{{ item }}` and `{{ index }}`: the one the
    /// task's `for_each` names).
    pub source: TaskIndex,
    /// The expression, normalised (`{{ tasks.a.output.x[0] }}`).
    pub text: String,
}

/// A task expanded at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOut {
    /// The task with `for_each`.
    pub task: TaskIndex,
    /// What it iterates over, as written.
    pub over: String,
    /// The upstream task whose output holds the array.
    pub source: TaskIndex,
}

/// Order in which ready tasks are admitted (greater first): priority, then the earlier step
/// it became ready at, then file order.
type ReadyKey = (i32, Reverse<u32>, Reverse<TaskIndex>);

/// The plan of `wf` (see the module docs). O((tasks + edges) · log tasks + waves · pools).
pub fn preview_workflow(wf: &Workflow) -> WorkflowPreview {
    let plan = wf.plan();
    let n = wf.len();
    let waves = waves(wf);
    let mut wave_of = vec![0u32; n];
    for (k, wave) in waves.iter().enumerate() {
        for &t in wave {
            wave_of[t as usize] = k as u32 + 1;
        }
    }
    let critical_path = plan.critical_path(|_| 1);
    let min_steps = lower_bound(wf, critical_path.length);
    let tasks = (0..n as TaskIndex)
        .map(|t| TaskPlan {
            task: t,
            wave: wave_of[t as usize],
            pool: wf.pool(t).map(str::to_owned),
            priority: wf.priority(t),
            timeout: wf.timeout(t),
            max_attempts: wf.retry_policy(t).max_attempts,
            requires_approval: wf.requires_approval(t),
            approval_timeout: wf
                .requires_approval(t)
                .then(|| wf.approval_timeout(t))
                .flatten(),
            compensates: wf.task(t).compensate.is_some(),
        })
        .collect();
    let in_order = || waves.iter().flatten().copied();
    let approvals = in_order().filter(|&t| wf.requires_approval(t)).collect();
    let mut compensations: Vec<TaskIndex> = in_order()
        .filter(|&t| wf.task(t).compensate.is_some())
        .collect();
    compensations.reverse();
    WorkflowPreview {
        waves,
        min_steps,
        critical_path,
        tasks,
        approvals,
        compensations,
        templates: templates(wf),
        fan_outs: fan_outs(wf),
    }
}

/// Every template of every task, in file order.
fn templates(wf: &Workflow) -> Vec<TemplateUse> {
    use crate::model::template::{parse_for_each, Root};
    let mut out = Vec::new();
    for t in 0..wf.len() as TaskIndex {
        let spec = wf.task(t);
        let mapped_source = spec
            .for_each()
            .and_then(|f| parse_for_each(f).ok())
            .and_then(|e| match e.root {
                Root::Output(id) => wf.task_index(id.as_str()),
                _ => None,
            });
        for (field, e) in crate::model::workflow::task_templates(spec) {
            let source = match &e.root {
                Root::Output(id) => wf.task_index(id.as_str()),
                Root::Item | Root::Index => mapped_source,
                Root::Input => None,
            };
            if let Some(source) = source {
                out.push(TemplateUse {
                    task: t,
                    field,
                    source,
                    text: e.to_string(),
                });
            }
        }
    }
    out
}

/// Every mapped task, in file order.
fn fan_outs(wf: &Workflow) -> Vec<FanOut> {
    let mut out: Vec<FanOut> = (0..wf.len() as TaskIndex)
        .flat_map(|s| wf.fan_outs_from(s).map(move |m| (s, m)))
        .map(|(source, task)| FanOut {
            task,
            over: wf.task(task).for_each().unwrap_or_default().to_owned(),
            source,
        })
        .collect();
    out.sort_by_key(|f| f.task);
    out
}

/// List scheduling with unit times under the run's caps (module docs, steps 1–3).
fn waves(wf: &Workflow) -> Vec<Vec<TaskIndex>> {
    let plan = wf.plan();
    let n = wf.len();
    let no_node_pools = BTreeMap::new();
    let mut waiting_for: Vec<u32> = (0..n as TaskIndex)
        .map(|t| plan.upstream_count(t))
        .collect();
    // Ready tasks by pool (`None`: no pool), so a full pool costs one look per wave, not one
    // per task in it.
    let mut ready: BTreeMap<Option<&str>, BinaryHeap<ReadyKey>> = BTreeMap::new();
    let key = |t: TaskIndex, step: u32| (wf.priority(t), Reverse(step), Reverse(t));
    for t in 0..n as TaskIndex {
        if waiting_for[t as usize] == 0 {
            ready.entry(wf.pool(t)).or_default().push(key(t, 0));
        }
    }
    let mut waves = Vec::new();
    let mut placed = 0;
    while placed < n {
        let step = waves.len() as u32;
        // The best ready task of each pool, best first.
        let mut heads: BinaryHeap<(ReadyKey, Option<&str>)> = ready
            .iter()
            .filter_map(|(&pool, heap)| heap.peek().map(|&k| (k, pool)))
            .collect();
        let mut wave = Vec::new();
        let mut in_pool: BTreeMap<&str, u32> = BTreeMap::new();
        while let Some((k, pool)) = heads.pop() {
            let t = k.2 .0;
            let load = Load {
                run: wave.len() as u32,
                pool: pool.map_or(0, |p| in_pool.get(p).copied().unwrap_or(0)),
                node_pool: 0,
            };
            match admit(wf, t, load, &no_node_pools) {
                Ok(()) => {}
                Err(Cap::Run(_)) if !wave.is_empty() => break,
                // A full pool: its tasks wait for a later wave.
                Err(_) if !wave.is_empty() => continue,
                // Caps are at least 1 in a validated workflow; never stall on one that is not.
                Err(_) => {}
            }
            let heap = ready.get_mut(&pool).expect("a head's pool has a heap");
            heap.pop();
            if let Some(&next) = heap.peek() {
                heads.push((next, pool));
            }
            if let Some(p) = pool {
                *in_pool.entry(p).or_default() += 1;
            }
            wave.push(t);
        }
        assert!(!wave.is_empty(), "a DAG always has a ready task");
        placed += wave.len();
        for &t in &wave {
            for d in plan.downstream(t) {
                waiting_for[d as usize] -= 1;
                if waiting_for[d as usize] == 0 {
                    ready.entry(wf.pool(d)).or_default().push(key(d, step + 1));
                }
            }
        }
        wave.sort_by_key(|&t| (Reverse(wf.priority(t)), t));
        waves.push(wave);
    }
    waves
}

/// `max(critical path, ⌈tasks / max_concurrency⌉, ⌈tasks in P / slots of P⌉)`.
fn lower_bound(wf: &Workflow, critical: u64) -> u64 {
    let spec = wf.spec();
    let n = wf.len() as u64;
    let mut bound = critical;
    if let Some(cap) = spec.max_concurrency.filter(|&c| c > 0) {
        bound = bound.max(n.div_ceil(cap as u64));
    }
    let mut per_pool: BTreeMap<&str, u64> = BTreeMap::new();
    for t in 0..wf.len() as TaskIndex {
        if let Some(p) = wf.pool(t) {
            *per_pool.entry(p).or_default() += 1;
        }
    }
    for (pool, count) in per_pool {
        if let Some(&slots) = spec.pools.get(pool).filter(|&&s| s > 0) {
            bound = bound.max(count.div_ceil(slots as u64));
        }
    }
    bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_workflow;

    /// A workflow from a header and `(id, depends_on, extra TOML)` tasks.
    fn wf(header: &str, tasks: &[(&str, &[&str], &str)]) -> Workflow {
        let mut text = format!("name = \"w\"\n{header}\n");
        for (id, deps, extra) in tasks {
            let deps: Vec<String> = deps.iter().map(|d| format!("\"{d}\"")).collect();
            text.push_str(&format!(
                "[[task]]\nid = \"{id}\"\ncommand = [\"true\"]\ndepends_on = [{}]\n{extra}\n",
                deps.join(", ")
            ));
        }
        parse_workflow(&text).unwrap()
    }

    /// The waves as task ids.
    fn ids(wf: &Workflow, p: &WorkflowPreview) -> Vec<Vec<String>> {
        p.waves
            .iter()
            .map(|w| w.iter().map(|&t| wf.task_id(t).to_string()).collect())
            .collect()
    }

    #[test]
    fn without_caps_the_waves_are_the_levels() {
        // a → c, b → c → d; e alone.
        let w = wf(
            "",
            &[
                ("a", &[], ""),
                ("b", &[], ""),
                ("c", &["a", "b"], ""),
                ("d", &["c"], ""),
                ("e", &[], ""),
            ],
        );
        let p = preview_workflow(&w);
        assert_eq!(ids(&w, &p), [vec!["a", "b", "e"], vec!["c"], vec!["d"]]);
        assert_eq!(p.critical_path.length, 3);
        assert_eq!(p.min_steps, 3);
        assert_eq!(p.tasks[3].wave, 3);
        assert!(p.templates.is_empty() && p.fan_outs.is_empty());
    }

    #[test]
    fn max_concurrency_splits_a_wave_by_priority_then_file_order() {
        let w = wf(
            "max_concurrency = 2",
            &[
                ("a", &[], ""),
                ("b", &[], "priority = 5"),
                ("c", &[], ""),
                ("d", &[], "priority = 5"),
                ("e", &["a"], "priority = 9"),
            ],
        );
        let p = preview_workflow(&w);
        // b and d (priority 5) first; then a and c; e becomes ready after a.
        assert_eq!(ids(&w, &p), [vec!["b", "d"], vec!["a", "c"], vec!["e"]]);
        assert!(p.waves.iter().all(|w| w.len() <= 2));
        assert_eq!(p.min_steps, 3); // ⌈5 / 2⌉
    }

    #[test]
    fn overflow_waits_beside_tasks_that_became_ready_and_older_goes_first() {
        // a, b, c ready at once with a cap of 2; d depends on a. c overflowed, so it was
        // ready before d and is served first among equal priorities.
        let w = wf(
            "max_concurrency = 2",
            &[
                ("a", &[], ""),
                ("b", &[], ""),
                ("c", &[], ""),
                ("d", &["a"], ""),
                ("e", &["a"], ""),
            ],
        );
        let p = preview_workflow(&w);
        assert_eq!(ids(&w, &p), [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
    }

    #[test]
    fn a_full_pool_waits_while_other_tasks_fill_the_wave() {
        let w = wf(
            "max_concurrency = 3\n[pools]\ngpu = 1",
            &[
                ("g1", &[], "pool = \"gpu\"\npriority = 2"),
                ("g2", &[], "pool = \"gpu\"\npriority = 2"),
                ("g3", &[], "pool = \"gpu\"\npriority = 2"),
                ("x", &[], ""),
                ("y", &[], ""),
                ("z", &["g1"], ""),
            ],
        );
        let p = preview_workflow(&w);
        // One gpu task per wave; the rest of each wave is filled by others.
        assert_eq!(
            ids(&w, &p),
            [vec!["g1", "x", "y"], vec!["g2", "z"], vec!["g3"]]
        );
        for wave in &p.waves {
            let gpu = wave.iter().filter(|&&t| w.pool(t) == Some("gpu")).count();
            assert!(gpu <= 1, "{wave:?}");
        }
        assert_eq!(p.min_steps, 3); // ⌈3 gpu tasks / 1 slot⌉
        assert_eq!(p.tasks[0].pool.as_deref(), Some("gpu"));
    }

    #[test]
    fn approvals_settings_and_undo_order() {
        let w = wf(
            "[defaults]\ntimeout = \"5m\"\nretry = { max_attempts = 4 }",
            &[
                ("book", &[], "compensate = [\"cancel-book\"]"),
                (
                    "pay",
                    &["book"],
                    "compensate = [\"refund\"]\nrequires_approval = true\napproval_timeout = \"1h\"",
                ),
                ("mail", &["pay"], "retry = { max_attempts = 1 }\ntimeout = \"1s\""),
                ("ship", &["pay"], "compensate = [\"unship\"]"),
            ],
        );
        let p = preview_workflow(&w);
        let id = |t: TaskIndex| w.task_id(t).to_string();
        assert_eq!(
            p.approvals.iter().map(|&t| id(t)).collect::<Vec<_>>(),
            ["pay"]
        );
        // Completion order book, pay, (mail, ship): undone ship, pay, book.
        assert_eq!(
            p.compensations.iter().map(|&t| id(t)).collect::<Vec<_>>(),
            ["ship", "pay", "book"]
        );
        let pay = &p.tasks[1];
        assert!(pay.requires_approval && pay.compensates);
        assert_eq!(pay.approval_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(pay.timeout, Some(Duration::from_secs(300)));
        assert_eq!(pay.max_attempts, 4);
        let mail = &p.tasks[2];
        assert_eq!(
            (mail.max_attempts, mail.timeout),
            (1, Some(Duration::from_secs(1)))
        );
        assert_eq!(p.tasks[0].approval_timeout, None);
    }

    #[test]
    fn the_waves_never_beat_the_lower_bound() {
        // A long chain beside many independent tasks under a cap: neither bound is loose.
        let mut tasks: Vec<(String, Vec<String>, &str)> = Vec::new();
        for i in 0..6 {
            let deps = if i == 0 {
                vec![]
            } else {
                vec![format!("c{}", i - 1)]
            };
            tasks.push((format!("c{i}"), deps, "priority = 1"));
        }
        for i in 0..10 {
            tasks.push((format!("x{i}"), vec![], ""));
        }
        let owned: Vec<(&str, Vec<&str>, &str)> = tasks
            .iter()
            .map(|(id, d, e)| (id.as_str(), d.iter().map(String::as_str).collect(), *e))
            .collect();
        let refs: Vec<(&str, &[&str], &str)> = owned
            .iter()
            .map(|(id, d, e)| (*id, d.as_slice(), *e))
            .collect();
        let w = wf("max_concurrency = 3", &refs);
        let p = preview_workflow(&w);
        assert!(p.waves.len() as u64 >= p.min_steps);
        assert_eq!(p.min_steps, 6); // max(chain 6, ⌈16 / 3⌉ = 6)
        assert_eq!(p.waves.len(), 6); // the chain first, by priority: optimal here
        assert_eq!(p.waves.iter().map(Vec::len).sum::<usize>(), 16);
    }
}
