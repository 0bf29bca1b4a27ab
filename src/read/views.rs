//! The views a client reads, computed from the projection and the write side's facts:
//! `list`, `status`, `tasks`, `queue`, `dashboard`, the node, pending approvals, dead letters
//! (`failed`).

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::time::Duration;

use crate::messages::control::{
    CompensationView, DashboardView, FailedFilter, FailedTask, NodeView, PendingApproval,
    QueueEntry, QueueView, RunSummary, RunView, RunningAttempt, TaskView,
};
use crate::messages::scheduler::AttemptKind;
use crate::model::caps::{admit, Load};
use crate::model::rollup::schedulable_since;
use crate::model::score::{self, Inputs};
use crate::model::{Counters, Run, RunId, RunState, State, TaskIndex, TaskState, Timestamp};
use crate::read::facts::WriteFacts;
use crate::read::projection::{queue_order, Projection, QueueOrder};

/// What the views need besides the projection and the facts.
#[derive(Debug, Clone, Default)]
pub struct ViewContext {
    /// Worker slots of the node.
    pub workers: u32,
    /// Node-wide pool capacities (`[pools]` in `troupe.toml`).
    pub node_pools: BTreeMap<String, u32>,
    /// Expiry of approval requests whose task sets none.
    pub approval_timeout: Duration,
    /// The node's id.
    pub node_id: String,
    /// The agent registry (`[[agent]]`).
    pub agents: std::sync::Arc<Vec<crate::model::routing::AgentSpec>>,
    /// The node's circuit breakers (`[[breakers]]`); a workflow's come with its runs.
    pub breakers: std::sync::Arc<Vec<crate::model::resilience::BreakerSpec>>,
    /// The node's scoring weights (`[scheduling]`): the queue's order and scores.
    pub scheduling: std::sync::Arc<crate::model::score::Weights>,
}

/// The run as `list` shows it.
pub fn run_summary(r: &Run) -> RunSummary {
    RunSummary {
        id: r.id(),
        name: r.workflow().spec().name.clone(),
        state: r.state(),
        submitted_at: r.submitted_at(),
        finished_at: r.finished_at(),
        tasks: r.tasks().len() as u32,
        succeeded: r.count(TaskState::Succeeded),
        failed: r.count(TaskState::Failed)
            + r.count(TaskState::Cancelled)
            + r.count(TaskState::UpstreamFailed),
        running: r.count(TaskState::Running),
        awaiting_approval: r.count(TaskState::AwaitingApproval),
        parent: r
            .lineage()
            .and_then(|l| Some((l.parent?.0, l.parent_task.clone()?))),
        key: r
            .lineage()
            .filter(|l| !l.key.is_empty())
            .map(|l| l.key.clone()),
        children: r
            .lineage()
            .map_or((0, 0), |l| (l.children.len() as u32, l.live_children)),
        asking: r
            .lineage()
            .and_then(|l| l.asking.as_ref())
            .map(|a| a.reason.to_string()),
    }
}

/// Names the worker node of each task whose latest attempt was placed on one (the rest
/// keep `local`).
pub fn with_nodes(view: &mut RunView, run: crate::model::RunId, cluster: &crate::model::Cluster) {
    for (i, t) in view.tasks.iter_mut().enumerate() {
        if let Some((attempt, node, _)) = cluster.placement(run, i as TaskIndex) {
            if attempt == t.attempts {
                t.node = Some(node.to_owned());
            }
        }
    }
}

/// The run with every task, as `status RUN` and `tasks RUN` show it.
/// `facts` (the live node's) adds what running attempts reported so far to their usage.
pub fn run_view(r: &Run, facts: Option<&WriteFacts>) -> RunView {
    let wf = r.workflow();
    let tasks: Vec<TaskView> = r
        .tasks()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let i = i as TaskIndex;
            let spec = wf.task(i);
            TaskView {
                id: spec.id.clone(),
                state: t.state,
                attempts: t.attempts,
                depends_on: spec.depends_on.clone(),
                priority: wf.priority(i),
                pool: wf.pool(i).map(str::to_owned),
                command: spec.command.to_string(),
                started_at: t.started_at,
                finished_at: t.finished_at,
                retry_at: t.retry_at,
                last_failure: t.last_failure.as_ref().map(|f| f.to_string()),
                last_failure_kind: t.last_failure.as_ref().map(|f| f.kind().to_owned()),
                usage: {
                    let mut u = r.task_usage(i).cloned().unwrap_or_default();
                    if t.state == TaskState::Running {
                        for (k, v) in facts
                            .and_then(|f| f.live_usage(r.id(), i))
                            .unwrap_or_default()
                        {
                            *u.entry(k).or_insert(0.0) += v;
                        }
                    }
                    u
                },
                for_each: spec.for_each().map(str::to_owned),
                instances: match spec.expansion() {
                    Some(crate::model::Expansion::Mapped { count }) => Some(count),
                    _ => None,
                },
                compensate: spec.compensate.as_ref().map(|c| c.to_string()),
                compensation: t.compensation.as_deref().map(|c| CompensationView {
                    state: c.state,
                    attempts: c.attempts,
                    retry_at: c.retry_at,
                    last_failure: c.last_failure.as_ref().map(|f| f.to_string()),
                }),
                node: (t.attempts > 0).then(|| "local".to_owned()),
            }
        })
        .collect();
    let mut usage = Counters::new();
    for t in tasks.iter() {
        let t: &TaskView = t;
        for (k, v) in &t.usage {
            *usage.entry(k.clone()).or_insert(0.0) += v;
        }
    }
    RunView {
        summary: run_summary(r),
        suspended: r.is_suspended(),
        tasks,
        usage,
    }
}

/// The pending request of task `t` of `r`, if it awaits approval.
pub fn pending_approval(
    r: &Run,
    t: TaskIndex,
    default_timeout: Duration,
) -> Option<PendingApproval> {
    let task = r.task(t);
    if task.state != TaskState::AwaitingApproval {
        return None;
    }
    let wf = r.workflow();
    let requested_at = task.awaiting_since.unwrap_or(r.submitted_at());
    let timeout = wf.approval_timeout(t).unwrap_or(default_timeout);
    Some(PendingApproval {
        run: r.id(),
        task: wf.task_id(t).clone(),
        workflow: wf.spec().name.clone(),
        command: wf.task(t).command.to_string(),
        requested_at,
        expires_at: requested_at.saturating_add(timeout),
    })
}

/// Every pending approval request, oldest first (ties by run, then task id).
pub fn pending_approvals(state: &State, default_timeout: Duration) -> Vec<PendingApproval> {
    let mut out = Vec::new();
    for r in state.runs() {
        if r.count(TaskState::AwaitingApproval) == 0 {
            continue;
        }
        for t in 0..r.tasks().len() as TaskIndex {
            out.extend(pending_approval(r, t, default_timeout));
        }
    }
    out.sort_by(|a, b| (a.requested_at, a.run, &a.task).cmp(&(b.requested_at, b.run, &b.task)));
    out
}

/// Dead letters: every task of `state` that failed for good (state `failed`) and matches
/// `filter` (`since` counts back from `t_now`), oldest failure first (ties by run, then task
/// id). O(runs) for runs with no failed task (per-state counters), O(tasks) for the others.
pub fn failed_tasks(state: &State, filter: &FailedFilter, t_now: Timestamp) -> Vec<FailedTask> {
    let mut out = Vec::new();
    let runs: Box<dyn Iterator<Item = &Run>> = match filter.run {
        Some(run) => Box::new(state.run(run).into_iter()),
        None => Box::new(state.runs()),
    };
    for r in runs {
        if r.count(TaskState::Failed) == 0 {
            continue;
        }
        let wf = r.workflow();
        for (i, t) in r.tasks().iter().enumerate() {
            // A swarm's replicas are not dead letters: the swarm task is the unit of work
            // (it fails as `no_quorum` if they cannot agree, and replicas are not retried).
            if t.state != TaskState::Failed || r.swarm_of(i as TaskIndex).is_some() {
                continue;
            }
            let spec = wf.task(i as TaskIndex);
            // A failed task always has an end; the run's submission stands in for a state
            // that lacks one.
            let failed_at = t.finished_at.unwrap_or(r.submitted_at());
            if filter
                .since
                .is_some_and(|since| t_now.saturating_since(failed_at) > since)
            {
                continue;
            }
            if !filter.labels.iter().all(|l| spec.labels.contains(l)) {
                continue;
            }
            let failure = t.last_failure.as_deref();
            out.push(FailedTask {
                run: r.id(),
                workflow: wf.spec().name.clone(),
                run_state: r.state(),
                task: spec.id.clone(),
                kind: failure.map_or("unknown", |f| f.kind()).to_owned(),
                exit_code: match failure {
                    Some(crate::model::Failure::Exit { code }) => Some(*code),
                    _ => None,
                },
                signal: match failure {
                    Some(crate::model::Failure::Signal { signal }) => Some(*signal),
                    _ => None,
                },
                message: failure.map_or_else(|| "failed".to_owned(), |f| f.to_string()),
                attempts: t.attempts,
                failed_at,
                labels: spec.labels.clone(),
            });
        }
    }
    out.sort_by(|a, b| (a.failed_at, a.run, &a.task).cmp(&(b.failed_at, b.run, &b.task)));
    out
}

/// Attempts holding worker slots, per run, per (run, pool) and per node-wide pool: the
/// journal's running attempts and compensations plus the write side's lingering ones.
struct Loads {
    run: HashMap<RunId, u32>,
    pool: HashMap<(RunId, String), u32>,
    node_pool: HashMap<String, u32>,
}

impl Loads {
    fn of(p: &Projection, facts: &WriteFacts) -> Loads {
        let state = &p.state;
        let mut loads = Loads {
            run: HashMap::new(),
            pool: HashMap::new(),
            node_pool: HashMap::new(),
        };
        let forward = p
            .running
            .iter()
            .filter(|(_, _, compensation)| !compensation)
            .map(|&(run, task, _)| (run, task, AttemptKind::Forward));
        let lingering = facts
            .lingering()
            .into_iter()
            .map(|l| (l.run, l.task, l.kind));
        for (run, task, kind) in forward.chain(lingering) {
            // Compensations hold a worker slot but count against no cap (as in dispatch).
            if kind == AttemptKind::Compensation {
                continue;
            }
            *loads.run.entry(run).or_default() += 1;
            let Some(pool) = state.run(run).and_then(|r| r.workflow().pool(task)) else {
                continue;
            };
            *loads.pool.entry((run, pool.to_owned())).or_default() += 1;
            *loads.node_pool.entry(pool.to_owned()).or_default() += 1;
        }
        loads
    }
}

impl Loads {
    /// The load where a task of `run` in `pool` would start.
    fn at(&self, run: RunId, pool: Option<&str>) -> Load {
        let get = |m: Option<u32>| m.unwrap_or(0);
        Load {
            run: get(self.run.get(&run).copied()),
            pool: pool.map_or(0, |p| get(self.pool.get(&(run, p.to_owned())).copied())),
            node_pool: pool.map_or(0, |p| get(self.node_pool.get(p).copied())),
        }
    }
}

/// Why a task with `node_labels` cannot start: no ready worker node has them all.
fn no_node_for(needs: &[String], nodes: &[crate::messages::control::NodeInfo]) -> Option<String> {
    if needs.is_empty() {
        return None;
    }
    let fits = nodes.iter().any(|n| {
        n.id != "local"
            && matches!(n.state.as_str(), "ready" | "suspect")
            && needs.iter().all(|l| n.labels.contains(l))
    });
    (!fits).then(|| format!("no ready worker node has node_labels {}", needs.join(",")))
}

/// Whether dispatch is blocked node-wide (halted, `STOP` file, shutting down).
fn dispatch_blocked(state: &State, facts: &WriteFacts) -> bool {
    state.is_halted() || facts.stop_file() || facts.draining() || facts.fault().is_some()
}

/// `troupe queue`: ready tasks best first (by score, [`crate::model::score`], then longest
/// wait), then retries, then (with `waiting`) tasks that cannot run yet; each with its score
/// at `t_now` and the score's parts. Only the best `limit` are
/// built (a bounded heap over the candidates, O(n log limit)); `total` counts them all.
pub fn queue_view(
    p: &Projection,
    facts: &WriteFacts,
    cx: &ViewContext,
    waiting: bool,
    limit: u32,
    t_now: Timestamp,
) -> QueueView {
    let state = &p.state;
    let throughput = p.throughput(t_now);
    let halted = dispatch_blocked(state, facts);
    let nodes = facts.nodes();
    // Without `waiting`, the projection's index holds exactly the listed tasks, best first;
    // with it, every task of every running run is looked at (a bounded heap keeps the best).
    let (mut kept, total) = if waiting {
        let mut best: BinaryHeap<QueueOrder> = BinaryHeap::with_capacity(limit as usize + 1);
        let mut total = 0u64;
        for r in state.runs() {
            if r.state() != RunState::Running {
                continue;
            }
            for t in 0..r.tasks().len() as TaskIndex {
                let Some(order) = queue_order(r, t, true, &p.weights) else {
                    continue;
                };
                total += 1;
                if best.len() < limit as usize {
                    best.push(order);
                } else if best.peek().is_some_and(|worst| order < *worst) {
                    best.pop();
                    best.push(order);
                }
            }
        }
        (best.into_vec(), total)
    } else {
        let kept: Vec<QueueOrder> = p.queue.iter().take(limit as usize).copied().collect();
        (kept, p.queue.len() as u64)
    };
    kept.sort_unstable();
    let loads = Loads::of(p, facts);
    let in_flight = facts.in_flight();
    let free = cx.workers.saturating_sub(in_flight) as f64;
    let entries = kept
        .into_iter()
        .enumerate()
        .filter_map(|(place, (class, _, _, run, t))| {
            let r = state.run(run)?;
            let wf = r.workflow();
            let task = r.task(t);
            let since = match task.state {
                TaskState::Retrying => task.started_at.unwrap_or(r.submitted_at()),
                _ => schedulable_since(r, t),
            };
            let pool = wf.pool(t).map(str::to_owned);
            let runnable = matches!(task.state, TaskState::Ready | TaskState::Retrying);
            let blocked = if !runnable {
                None
            } else if halted {
                Some("dispatch is halted".to_owned())
            } else if let Some(why) = no_node_for(&wf.task(t).node_labels, &nodes) {
                Some(why)
            } else if let Some(why) = super::breakers::breaker_holding(state, cx, wf, t, t_now) {
                Some(why)
            } else if let Some(why) = veto_holding(state, run, wf.task_id(t), task.attempts) {
                Some(why)
            } else {
                admit(wf, t, loads.at(run, pool.as_deref()), &cx.node_pools)
                    .err()
                    .map(|cap| cap.to_string())
            };
            let estimated_start = if class < 2 && !halted {
                let ahead = place as f64;
                let wait = if ahead < free {
                    Some(Duration::ZERO)
                } else if throughput > 0.0 {
                    Duration::try_from_secs_f64((ahead - free + 1.0) / throughput).ok()
                } else {
                    None
                };
                wait.map(|w| t_now.saturating_add(w))
                    .map(|at| task.retry_at.map_or(at, |r| r.max(at)))
            } else {
                None
            };
            let inputs = Inputs::of(r, t);
            Some(QueueEntry {
                score: score::parts(&p.weights, &inputs, t_now),
                deadline: inputs.deadline,
                labels: wf.task(t).labels.clone(),
                run,
                task: wf.task_id(t).clone(),
                workflow: wf.spec().name.clone(),
                state: task.state,
                priority: wf.priority(t),
                pool,
                waiting_since: since,
                retry_at: task.retry_at,
                estimated_start,
                blocked,
            })
        })
        .collect();
    QueueView {
        now: t_now,
        halted,
        running: in_flight,
        workers: cx.workers,
        throughput,
        total,
        entries,
    }
}

/// The node as `status` shows it.
pub fn node_view(p: &Projection, facts: &WriteFacts, cx: &ViewContext) -> NodeView {
    let mut active = 0;
    let mut total = 0;
    let mut queued = 0u64;
    let mut waiting = 0u64;
    let mut children = 0u32;
    for r in p.state.runs() {
        total += 1;
        if !r.state().is_finished() {
            active += 1;
            children += u32::from(r.parent().is_some());
            queued += r.count(TaskState::Ready) as u64;
            waiting += TaskState::ALL
                .iter()
                .filter(|s| s.is_waiting())
                .map(|&s| u64::from(r.count(s)))
                .sum::<u64>();
        }
    }
    NodeView {
        node_id: cx.node_id.clone(),
        pid: std::process::id(),
        halted: p.state.is_halted() || facts.fault().is_some(),
        stop_file: facts.stop_file(),
        fault: facts.fault(),
        active_runs: active,
        total_runs: total,
        running_attempts: facts.in_flight(),
        queued_tasks: queued,
        workers: cx.workers,
        last_seq: p.state.last_seq(),
        waiting_tasks: waiting,
        last_progress: p.last_progress.max(facts.started_at()),
        active_child_runs: children,
    }
}

/// The running attempt (or compensation) of task `task` of `run`, as views list it;
/// `or_time` stands in for a start time the state lacks.
pub fn running_attempt(
    state: &State,
    run: RunId,
    task: TaskIndex,
    compensation: bool,
    or_time: Timestamp,
) -> Option<RunningAttempt> {
    let r = state.run(run)?;
    let t = r.task(task);
    let attempt = if compensation {
        t.compensation.as_deref().map_or(0, |c| c.attempts)
    } else {
        t.attempts
    };
    Some(RunningAttempt {
        run,
        task: r.workflow().task_id(task).clone(),
        workflow: r.workflow().spec().name.clone(),
        attempt,
        compensation,
        started_at: t.started_at.unwrap_or(or_time),
        usage: Counters::new(),
    })
}

/// Every attempt and compensation the journal says is running, oldest first. O(running).
pub fn running_attempts(p: &Projection, or_time: Timestamp) -> Vec<RunningAttempt> {
    let mut running: Vec<RunningAttempt> = p
        .running
        .iter()
        .filter_map(|&(run, task, compensation)| {
            running_attempt(&p.state, run, task, compensation, or_time)
        })
        .collect();
    running.sort_by_key(|a| a.started_at);
    running
}

/// What `troupe dashboard` draws (the error rate is filled in from the rollups by the
/// caller).
pub fn dashboard_view(
    p: &Projection,
    facts: &WriteFacts,
    cx: &ViewContext,
    limit: u32,
    t_now: Timestamp,
) -> DashboardView {
    let queue = queue_view(p, facts, cx, false, limit, t_now);
    let mut running = running_attempts(p, queue.now);
    for a in running.iter_mut().filter(|a| !a.compensation) {
        let task = p
            .state
            .run(a.run)
            .and_then(|r| r.workflow().task_index(a.task.as_str()));
        if let Some(t) = task {
            a.usage = facts.live_usage(a.run, t).unwrap_or_default();
        }
    }
    DashboardView {
        node: node_view(p, facts, cx),
        throughput: p.throughput_series(queue.now),
        queue,
        running,
        completions: p.completions.iter().cloned().collect(),
        error_rate: 0.0,
    }
}

/// Why a task that never started waits for a `task_ready` veto hook ("hook NAME deciding
/// (veto)"), if one is still deciding.
fn veto_holding(
    state: &State,
    run: RunId,
    task: &crate::model::TaskId,
    attempts: u32,
) -> Option<String> {
    if attempts > 0 {
        return None;
    }
    state
        .hooks()
        .pending()
        .find(|(_, c)| {
            c.call.hook.veto && c.call.run == Some(run) && c.call.task.as_ref() == Some(task)
        })
        .map(|(id, c)| format!("hook {} deciding (veto, call {id})", c.call.hook.name))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{parse_workflow, Event, EventRecord, Failure, TaskId};

    fn apply(s: &mut State, time: u64, event: Event) {
        let seq = s.last_seq() + 1;
        s.apply(
            seq,
            &EventRecord {
                time: Timestamp(time),
                event,
            },
        )
        .unwrap();
    }

    fn id(t: &str) -> TaskId {
        t.parse().unwrap()
    }

    /// Runs `run`: `a` (label `etl`) fails for good at `t_fail` with `failure`, `b` after it
    /// is upstream_failed, `ok` succeeds.
    fn failing_run(s: &mut State, run: RunId, t_fail: u64, failure: Failure) {
        let wf = parse_workflow(
            "name = \"nightly\"\n[[task]]\nid = \"a\"\ncommand = [\"false\"]\nlabels = [\"etl\", \"db\"]\n\
             retry = { max_attempts = 1 }\n[[task]]\nid = \"b\"\ncommand = [\"true\"]\n\
             depends_on = [\"a\"]\n[[task]]\nid = \"ok\"\ncommand = [\"true\"]\n",
        )
        .unwrap();
        apply(
            s,
            t_fail - 10,
            Event::RunSubmitted {
                run,
                workflow: Arc::new(wf),
            },
        );
        for task in ["a", "ok"] {
            apply(
                s,
                t_fail - 5,
                Event::AttemptStarted {
                    run,
                    task: id(task),
                    attempt: 1,
                },
            );
        }
        apply(
            s,
            t_fail - 1,
            Event::TaskSucceeded {
                run,
                task: id("ok"),
                attempt: 1,
                usage: None,
            },
        );
        apply(
            s,
            t_fail,
            Event::TaskFailed {
                run,
                task: id("a"),
                attempt: 1,
                failure,
                usage: None,
            },
        );
    }

    #[test]
    fn only_tasks_failed_for_good_are_listed_with_their_failure_oldest_first() {
        let mut s = State::new();
        let (r1, r2) = (RunId::from_u128(1), RunId::from_u128(2));
        failing_run(&mut s, r2, 2_000, Failure::Signal { signal: 9 });
        failing_run(&mut s, r1, 5_000, Failure::Exit { code: 3 });
        let all = failed_tasks(&s, &FailedFilter::default(), Timestamp(10_000));
        assert_eq!(
            all.iter()
                .map(|f| (f.run, f.task.as_str()))
                .collect::<Vec<_>>(),
            [(r2, "a"), (r1, "a")],
            "upstream_failed and succeeded tasks are not dead letters"
        );
        let f = &all[1];
        assert_eq!(f.kind, "exit");
        assert_eq!((f.exit_code, f.signal), (Some(3), None));
        assert_eq!(f.message, "exited with status 3");
        assert_eq!(f.attempts, 1);
        assert_eq!(f.failed_at, Timestamp(5_000));
        assert_eq!(f.workflow, "nightly");
        assert_eq!(f.run_state, RunState::Failed);
        assert_eq!(f.labels, ["etl", "db"]);
        assert_eq!(
            (all[0].kind.as_str(), all[0].exit_code, all[0].signal),
            ("signal", None, Some(9))
        );
    }

    #[test]
    fn filters_by_time_run_and_every_label() {
        let mut s = State::new();
        let (r1, r2) = (RunId::from_u128(1), RunId::from_u128(2));
        failing_run(&mut s, r1, 2_000, Failure::Exit { code: 1 });
        failing_run(&mut s, r2, 9_000, Failure::Exit { code: 1 });
        let now = Timestamp(10_000);
        let runs = |filter: FailedFilter| {
            failed_tasks(&s, &filter, now)
                .into_iter()
                .map(|f| f.run)
                .collect::<Vec<_>>()
        };
        let since = |ms| FailedFilter {
            since: Some(Duration::from_millis(ms)),
            ..Default::default()
        };
        assert_eq!(runs(since(1_000)), [r2]);
        assert_eq!(runs(since(8_000)), [r1, r2], "the bound is inclusive");
        assert_eq!(runs(since(7_999)), [r2]);
        let of_run = FailedFilter {
            run: Some(r1),
            ..Default::default()
        };
        assert_eq!(runs(of_run), [r1]);
        let unknown = FailedFilter {
            run: Some(RunId::from_u128(3)),
            ..Default::default()
        };
        assert!(runs(unknown).is_empty());
        let labels = |l: &[&str]| FailedFilter {
            labels: l.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        assert_eq!(runs(labels(&["etl"])), [r1, r2]);
        assert_eq!(runs(labels(&["db", "etl"])), [r1, r2]);
        assert!(runs(labels(&["etl", "web"])).is_empty());
    }

    #[test]
    fn a_rejected_approval_is_a_dead_letter_without_attempts() {
        let wf = parse_workflow(
            "name = \"gate\"\n[[task]]\nid = \"deploy\"\ncommand = [\"true\"]\n\
             requires_approval = true\n",
        )
        .unwrap();
        let run = RunId::from_u128(7);
        let mut s = State::new();
        apply(
            &mut s,
            1,
            Event::RunSubmitted {
                run,
                workflow: Arc::new(wf),
            },
        );
        apply(
            &mut s,
            2,
            Event::ApprovalRejected {
                run,
                task: id("deploy"),
                approver: crate::model::Approver {
                    name: "ann".into(),
                    os_user: "ann".into(),
                    reason: None,
                },
            },
        );
        let all = failed_tasks(&s, &FailedFilter::default(), Timestamp(3));
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].kind, "approval_rejected");
        assert_eq!(all[0].attempts, 0);
        assert_eq!(all[0].failed_at, Timestamp(2));
    }
}
