//! Recovery: what a scheduler does on every start (first boot or restart after a failure).
//!
//! It waits until every append a previous incarnation left queued at the journal is durable,
//! replays the journal, rebuilds the ready queue and timers from the fold, terminates the
//! process groups of attempts the journal says are running (pid + start time, see
//! [`crate::process::terminate_orphan`]) and closes those attempts as `interrupted`, retried
//! under their policy. Succeeded tasks are terminal in the fold, so recovery never runs them
//! again.

use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use ractor::{ActorProcessingErr, ActorRef};

use crate::actors::saga::SagaCoordinator;
use crate::context::NodeContext;
use crate::messages::scheduler::{AttemptKind, SchedulerMsg};
use crate::model::decide::{
    attempt_end, compensation_end, running_attempts, running_compensations, AttemptEnd,
};
use crate::model::rollup::RollupDelta;
use crate::model::{Event, Failure, RunId, RunState, TaskIndex, TaskState};

use super::*;
use crate::workers::{LocalPool, RemoteNodes, Workers};

impl SchedulerState {
    /// Builds the state of a starting scheduler (see the module docs).
    pub(crate) async fn recover(
        shared: &Arc<NodeContext>,
        myself: &ActorRef<SchedulerMsg>,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        let journal = shared
            .journal_ref()
            .ok_or("scheduler started without a journal")?;
        // Appends a previous incarnation left in flight are durable (or failed) before we
        // read: `resume` is answered after everything queued ahead of it, and lifts the fence
        // a failed write put up (we are about to re-read the journal).
        journal.resume().await?;
        let replayed = crate::storage::replay(&shared.journal)?;
        let durable = replayed.state.last_seq();
        let replayed_snapshot = replayed.snapshot_seq;
        let n = shared.config.workers as usize;
        let mut s = SchedulerState {
            state: replayed.state,
            journal,
            outbox: Vec::new(),
            durable,
            effects: VecDeque::new(),
            queue: BinaryHeap::new(),
            parked: HashMap::new(),
            timers: BTreeSet::new(),
            sagas: SagaCoordinator::new(),
            gate: None,
            approval_changes: Vec::new(),
            approval_timeout: shared.config.approval_timeout,
            armed: None,
            running: HashMap::new(),
            run_load: HashMap::new(),
            pool_load: HashMap::new(),
            node_pools: shared.config.pools.clone(),
            node_pool_load: HashMap::new(),
            node_parked: HashMap::new(),
            label_parked: Vec::new(),
            workers: Workers {
                local: LocalPool::new(n),
                remote: RemoteNodes::new(shared.outputs.clone()),
                run_local: shared.config.cluster.as_ref().is_none_or(|c| c.run_local),
            },
            next_age: 0,
            stop_file: shared.stop_file().exists(),
            draining: false,
            drained: Vec::new(),
            abandon: false,
            flush_scheduled: false,
            frozen: None,
            snapshot_seq: replayed_snapshot.unwrap_or(0),
            snapshot_every: shared.config.snapshot_every,
            rollup: RollupDelta::default(),
            metrics: Arc::clone(&shared.metrics),
            pool_metrics: HashMap::new(),
            notices: Vec::new(),
            shared: Arc::clone(shared),
            lingering_dirty: false,
            lingering: 0,
            outputs: shared.outputs.clone(),
            agent_due: Default::default(),
            deadlines: BTreeSet::new(),
            breakers: super::breakers::Breakers::new(&shared.config.breakers),
            hooks: Default::default(),
            replica_outputs: HashMap::new(),
        };
        s.count_gauges();
        // Rebuild the queue and timers from the replayed state.
        let waiting: Vec<(RunId, TaskIndex)> = s
            .state
            .runs()
            .filter(|r| r.state() == RunState::Running)
            .flat_map(|r| {
                r.tasks()
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| matches!(t.state, TaskState::Ready | TaskState::Retrying))
                    .map(move |(i, _)| (r.id(), i as TaskIndex))
            })
            .collect();
        for (run, task) in waiting {
            s.track(run, task);
        }
        // Decisions a crash interrupted, made now from durable inputs: expansions (the
        // upstream succeeded, the expansion was not journaled yet) and swarm verdicts (the
        // replicas ended, the verdict was not journaled yet).
        let due: Vec<(RunId, TaskIndex, bool)> = s
            .state
            .runs()
            .filter(|r| r.state() == RunState::Running)
            .flat_map(|r| {
                (0..r.tasks().len() as TaskIndex).filter_map(move |t| {
                    if r.awaits_expansion(t) {
                        Some((r.id(), t, true))
                    } else {
                        r.swarm_waiting(t).then_some((r.id(), t, false))
                    }
                })
            })
            .collect();
        for (run, task, expand) in due {
            if expand {
                s.expand_mapped(run, task);
            } else {
                s.judge_swarm(run, task);
            }
        }
        // Attempts on worker nodes that still hold their lease stay theirs: the nodes
        // reconnect and report them (or are lost).
        let kept = s.restore_nodes();
        // Close attempts a previous node (or incarnation) left running, after terminating
        // whatever is left of their process groups (all at once: each may take the grace
        // period).
        let interrupted: Vec<_> = running_attempts(&s.state)
            .into_iter()
            .filter(|a| !kept.contains(a))
            .map(|(run, task, attempt)| (run, task, attempt, AttemptKind::Forward))
            .chain(
                running_compensations(&s.state)
                    .into_iter()
                    .map(|(run, task, attempt)| (run, task, attempt, AttemptKind::Compensation)),
            )
            .collect();
        // Attempts the journal closed (a cancel, a `fail_parent`, a budget, a swarm's
        // verdict) whose processes are terminated only once that is durable: a crash in
        // between leaves the process running with its pid file in place.
        let closed: Vec<_> = s
            .state
            .runs()
            .flat_map(|r| {
                r.tasks()
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| {
                        matches!(t.state, TaskState::Cancelled | TaskState::Failed)
                            && t.attempts > 0
                    })
                    .map(move |(i, t)| (r.id(), i as TaskIndex, t.attempts, AttemptKind::Forward))
            })
            .collect();
        let layout = shared.config.layout();
        let pid_of = |run: RunId, task: TaskIndex, kind, attempt| {
            let r = s.state.run(run).expect("listed from state");
            let task_id = r.workflow().task_id(task).clone();
            let path = layout.attempt_pid(run, &task_id, kind, attempt);
            (task_id, path)
        };
        let checks: Vec<_> = interrupted
            .iter()
            .map(|&(run, task, attempt, kind)| {
                (
                    run,
                    attempt,
                    kind,
                    pid_of(run, task, kind, attempt),
                    "interrupted",
                )
            })
            .chain(closed.iter().filter_map(|&(run, task, attempt, kind)| {
                let found = pid_of(run, task, kind, attempt);
                found
                    .1
                    .exists()
                    .then_some((run, attempt, kind, found, "closed"))
            }))
            .collect();
        let mut orphans = tokio::task::JoinSet::new();
        for (run, attempt, kind, (task_id, pid_path), what) in checks {
            let grace = shared.config.grace;
            orphans.spawn(async move {
                match crate::process::terminate_orphan(&pid_path, grace).await {
                    Ok(outcome) => {
                        tracing::info!(run_id = %run, task_id = %task_id, attempt, ?kind, ?outcome, "ending the process of an attempt ({what})")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, path = %pid_path.display(), "could not check the process of an attempt ({what})")
                    }
                }
            });
        }
        while orphans.join_next().await.is_some() {}
        for (run, task, attempt, kind) in interrupted {
            let end = AttemptEnd::Failed {
                failure: Failure::Interrupted,
                retryable: true,
                usage: None,
            };
            let close = match kind {
                AttemptKind::Forward => attempt_end,
                AttemptKind::Compensation => compensation_end,
            };
            if let Some(event) = close(
                &s.state,
                run,
                task,
                attempt,
                end,
                now(),
                rand::random::<f64>(),
            ) {
                s.decide(event)?;
            }
        }
        s.recover_agents();
        // The node's first scheduler (not a restart after a failure) runs node_started hooks.
        s.recover_hooks(shared.facts.started_at().0 == 0).await?;
        s.sagas.touch_all(&s.state);
        if s.stop_file && !s.state.is_halted() {
            s.decide(Event::NodeHalted { kill: false })?;
        }
        // The gate starts after us and asks for the full list; changes before that are moot.
        s.approval_changes.clear();
        s.flush(myself);
        s.due_timers();
        s.arm(myself);
        myself.send_interval(STOP_FILE_POLL, || SchedulerMsg::Tick);
        shared.facts.set_stop_file(s.stop_file);
        shared.facts.set_draining(false);
        s.lingering_dirty = true;
        s.publish_breakers();
        s.publish_facts();
        shared.facts.scheduler_started(s.state.last_seq(), now());
        tracing::info!(
            last_seq = s.state.last_seq(),
            runs = s.state.runs().count(),
            "scheduler started"
        );
        Ok(s)
    }
}
