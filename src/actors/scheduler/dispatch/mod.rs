//! Dispatch: which ready task starts next, on which slot, within which caps.
//!
//! # Layout
//! - [`queue`]: the ready queue and the parked heaps (per run cap, run pool, node pool).
//! - [`slots`]: worker slots: taking one, booking an attempt on it, releasing it.
//! - [`saga`]: due compensation steps of compensating runs (dispatched before new work).
//! - [`timers`]: retry timers.

use super::*;
use crate::messages::scheduler::AttemptId;
use crate::messages::scheduler::AttemptKind;
use crate::model::caps::{admit, Cap};
use crate::model::{Event, RunState, TaskState};
use crate::workers::WorkerLink;

pub(crate) mod queue;
pub(crate) mod saga;
pub(crate) mod slots;
pub(crate) mod timers;

impl SchedulerState {
    /// Whether nothing may be dispatched now (halted, a `STOP` file, shutting down).
    pub(crate) fn dispatch_blocked(&self) -> bool {
        self.state.is_halted() || self.stop_file || self.draining
    }

    /// Starts attempts of the best ready tasks while workers are free.
    pub(crate) fn fill(&mut self) {
        if self.dispatch_blocked() {
            return;
        }
        let t_now = now();
        // Undoing comes first: a compensating run holds nothing new until it is undone.
        self.fill_compensations(t_now);
        while self.workers.has_free() {
            let Some(entry) = self.queue.pop() else { break };
            if self.held_by_veto(entry.run, entry.task) {
                // A task_ready veto hook decides first (hooks.rs).
                self.reoffer(entry.run, entry.task);
                continue;
            }
            let Some(r) = self.state.run(entry.run) else {
                continue;
            };
            if r.state() != RunState::Running
                || r.is_suspended()
                || self.running.contains_key(&(entry.run, entry.task))
            {
                self.reoffer(entry.run, entry.task);
                continue;
            }
            let task = r.task(entry.task);
            match task.state {
                TaskState::Ready => {}
                TaskState::Retrying => {
                    if let Some(at) = task.retry_at.filter(|at| *at > t_now) {
                        self.timers.insert((at, entry.run, entry.task));
                        self.reoffer(entry.run, entry.task);
                        continue;
                    }
                }
                _ => {
                    self.reoffer(entry.run, entry.task);
                    continue;
                }
            }
            if !self.breakers.is_empty() || r.workflow().spec().resilience.is_some() {
                let wf = r.workflow().clone();
                if self.breaker_holds(entry, &wf, t_now) {
                    self.reoffer(entry.run, entry.task);
                    continue;
                }
            }
            let Some(r) = self.state.run(entry.run) else {
                continue;
            };
            let task = r.task(entry.task);
            let wf = r.workflow();
            let pool = wf.pool(entry.task).map(str::to_owned);
            let load = self.load_at(entry.run, pool.as_deref());
            match admit(wf, entry.task, load, &self.node_pools) {
                Ok(()) => {}
                Err(Cap::Run(_)) => {
                    self.parked
                        .entry((entry.run, None))
                        .or_default()
                        .push(entry);
                    continue;
                }
                Err(Cap::Pool(p)) => {
                    self.parked
                        .entry((entry.run, Some(p)))
                        .or_default()
                        .push(entry);
                    // This entry may have been moved here from the run-cap heap for a run
                    // slot it cannot use: offer that slot to the next task of the run.
                    self.unpark(&(entry.run, None));
                    continue;
                }
                Err(Cap::NodePool(p)) => {
                    self.node_parked.entry(p).or_default().push(entry);
                    self.unpark(&(entry.run, None));
                    continue;
                }
            }
            let attempt = task.attempts + 1;
            let task_id = wf.task_id(entry.task).clone();
            let event = Event::AttemptStarted {
                run: entry.run,
                task: task_id.clone(),
                attempt,
            };
            let id = AttemptId {
                run: entry.run,
                task: entry.task,
                kind: AttemptKind::Forward,
                attempt,
            };
            let needs = &wf.task(entry.task).node_labels;
            // Replicas of one swarm task go to different nodes where possible (D67).
            let avoid: Vec<Option<usize>> = match r.swarm_of(entry.task) {
                None => Vec::new(),
                Some(s) => r
                    .replicas(s)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|rt| self.running.get(&(entry.run, rt)))
                    .map(|running| crate::workers::RemoteNodes::of(running.slot))
                    .collect(),
            };
            let Some(slot) = self.workers.reserve_spread(id, needs, &avoid) else {
                if needs.is_empty() {
                    self.queue.push(entry);
                    break;
                }
                // No node with its labels is free: others may still start.
                self.label_parked.push(entry);
                continue;
            };
            if let Err(e) = self.decide(event) {
                tracing::error!(error = %e, "scheduler decided an attempt the fold refuses");
                self.workers.release(slot, id);
                continue;
            }
            if let Some((node, epoch)) = self.workers.placement(slot) {
                let placed = Event::AttemptPlaced {
                    run: entry.run,
                    task: task_id,
                    attempt,
                    node,
                    epoch,
                };
                if let Err(e) = self.decide(placed) {
                    tracing::error!(error = %e, "attempt_placed refused by the fold");
                }
            }
            self.book(id, slot, pool);
            self.after_persist(Effect::Dispatch { id, slot });
        }
    }
}
