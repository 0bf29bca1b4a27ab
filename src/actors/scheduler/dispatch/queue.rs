//! The ready queue (rank, then age: [`QueueKey`]) and the heaps of parked tasks.

use std::collections::BinaryHeap;

use super::*;
use crate::model::caps::{node_pool_has_room, pool_has_room, run_has_room};
use crate::model::decide::QueueKey;
use crate::model::score::{rank, Inputs};
use crate::model::{RunId, RunState, TaskIndex, TaskState};

/// A ready task in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Rank and age.
    pub(crate) key: QueueKey,
    /// Its run.
    pub(crate) run: RunId,
    /// Its index.
    pub(crate) task: TaskIndex,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl SchedulerState {
    /// Puts a task where its state says it waits: a ready task in the queue, a retrying one
    /// among the timers (duplicates are harmless: `fill` skips stale entries, timers are a
    /// set).
    pub(crate) fn track(&mut self, run: RunId, task: TaskIndex) {
        let Some(t) = self.state.run(run).map(|r| r.task(task)) else {
            return;
        };
        match t.state {
            TaskState::Ready => self.enqueue(run, task),
            TaskState::Retrying => {
                if let Some(at) = t.retry_at {
                    self.timers.insert((at, run, task));
                }
            }
            _ => {}
        }
    }

    /// Pushes a ready (or due retrying) task into the queue, ranked by the node's
    /// `[scheduling]` weights from journaled times only ([`crate::model::score`]).
    pub(crate) fn enqueue(&mut self, run: RunId, task: TaskIndex) {
        let Some(r) = self.state.run(run) else { return };
        let key = QueueKey {
            rank: rank(&self.shared.config.scheduling, &Inputs::of(r, task)),
            age: self.next_age,
        };
        self.next_age += 1;
        self.queue.push(Entry { key, run, task });
    }

    /// Whether a queue entry can still be dispatched (its run is running and not suspended,
    /// the task is ready or retrying, and no attempt of it is out).
    pub(crate) fn dispatchable(&self, e: &Entry) -> bool {
        let t_now = now();
        self.state.run(e.run).is_some_and(|r| {
            let t = r.task(e.task);
            r.state() == RunState::Running
                && !r.is_suspended()
                && (t.state == TaskState::Ready
                    // A retry that is not due has its timer; its entry would only park a slot.
                    || (t.state == TaskState::Retrying
                        && t.retry_at.is_none_or(|at| at <= t_now)))
        }) && !self.running.contains_key(&(e.run, e.task))
    }

    /// An entry of `run` left the queue without using a slot (it went stale, or its retry is
    /// not due): a slot that `release` handed to it would be lost, so hand the run's free run
    /// slot and the task's pool slot, if any, to the next parked entries. Each hand-off uses up
    /// a parked entry, so this terminates.
    pub(crate) fn reoffer(&mut self, run: RunId, task: TaskIndex) {
        let Some(r) = self.state.run(run) else { return };
        let wf = r.workflow();
        let pool = wf.pool(task).map(str::to_owned);
        let load = self.load_at(run, pool.as_deref());
        let run_free = run_has_room(wf, load.run);
        let pool_free = pool
            .as_deref()
            .is_some_and(|p| pool_has_room(wf, p, load.pool));
        if run_free {
            self.unpark(&(run, None));
        }
        if let Some(p) = pool.as_ref().filter(|p| self.node_pool_free(p)) {
            let p = p.clone();
            self.unpark_node(&p);
        }
        if pool_free {
            self.unpark(&(run, pool));
        }
    }

    /// Whether node-wide pool `pool` (if it is one) has a free slot.
    pub(crate) fn node_pool_free(&self, pool: &str) -> bool {
        let load = self.node_pool_load.get(pool).copied().unwrap_or(0);
        node_pool_has_room(&self.node_pools, pool, load)
    }

    /// Moves the best still-dispatchable task blocked by node-wide pool `pool` back into the
    /// queue.
    pub(crate) fn unpark_node(&mut self, pool: &str) {
        let Some(mut heap) = self.node_parked.remove(pool) else {
            return;
        };
        self.requeue_best(&mut heap);
        if !heap.is_empty() {
            self.node_parked.insert(pool.to_owned(), heap);
        }
    }

    /// Moves the best dispatchable entry of `heap` into the queue, dropping stale ones
    /// (cancelled, suspended, already running) on the way.
    pub(crate) fn requeue_best(&mut self, heap: &mut BinaryHeap<Entry>) {
        while let Some(e) = heap.pop() {
            if self.dispatchable(&e) {
                self.queue.push(e);
                break;
            }
        }
    }

    /// Moves the best still-dispatchable parked task of `key` back into the queue; parked
    /// entries that went stale (cancelled, suspended, already running) are dropped on the way.
    pub(crate) fn unpark(&mut self, key: &(RunId, Option<String>)) {
        let Some(mut heap) = self.parked.remove(key) else {
            return;
        };
        self.requeue_best(&mut heap);
        if !heap.is_empty() {
            self.parked.insert(key.clone(), heap);
        }
    }
}
