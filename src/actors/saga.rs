//! The saga coordinator: which compensation runs next, and when.
//!
//! A run whose workflow declares any `compensate` is a saga. When one of its tasks fails for
//! good (retries spent, approval rejected or expired, cancelled), the fold
//! ([`crate::model::state`]) switches the run to `compensating`, cancels every task that has
//! not started and lists the compensations due: one per succeeded step that declares
//! `compensate`, undone newest completion first (completion order is a topological order, so
//! its reverse undoes a step only after everything that depended on it). Attempts already
//! running are let finish (not cancelled): their effect is then known, and a step that
//! succeeds late is undone first.
//!
//! The coordinator decides nothing the fold would not accept; it only tracks which
//! compensating runs may have a compensation to start and when retries come due. It runs
//! inside the scheduler actor (see docs/decisions.md D29): a compensation needs a worker slot,
//! which the scheduler owns, and the single writer of events stays the scheduler. Per run:
//! - nothing starts while a forward attempt of the run is running;
//! - one compensation runs at a time, the one [`Run::current_compensation`] names;
//! - a compensation attempt that fails is retried under the task's `compensate_retry` policy
//!   (5 attempts by default); when the budget is spent or the failure cannot be helped by a
//!   retry (the program does not exist), the run becomes `compensation_failed` and waits for
//!   `troupe retry RUN/TASK`.
//!
//! Compensations take a worker slot ahead of forward work but are not limited by the run's
//! `max_concurrency` or the task's pool (one runs per run at a time anyway).
//!
//! [`Run::current_compensation`]: crate::model::Run::current_compensation

use std::collections::{BTreeSet, HashSet, VecDeque};

use crate::model::{CompensationState, RunId, RunState, State, TaskIndex, TaskState, Timestamp};

/// A compensation attempt to start: run, step, compensation attempt number.
pub type DueCompensation = (RunId, TaskIndex, u32);

/// The coordinator's bookkeeping (rebuilt from the folded state whenever the scheduler
/// starts).
#[derive(Debug, Default)]
pub struct SagaCoordinator {
    /// Runs that may have a compensation to start, oldest notice first.
    ready: VecDeque<RunId>,
    /// The runs in `ready` (no duplicates).
    queued: HashSet<RunId>,
    /// Compensations waiting for their retry, by due time.
    timers: BTreeSet<(Timestamp, RunId)>,
}

impl SagaCoordinator {
    /// An empty coordinator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes that `run` changed in a way that may make a compensation startable (it began
    /// compensating, an attempt of it ended, a compensation ended or was retried).
    pub fn touch(&mut self, run: RunId) {
        if self.queued.insert(run) {
            self.ready.push_back(run);
        }
    }

    /// Notes every run of `state` that compensates (after a replay).
    pub fn touch_all(&mut self, state: &State) {
        for r in state.runs() {
            if r.state() == RunState::Compensating {
                self.touch(r.id());
            }
        }
    }

    /// Whether a noted run waits to be looked at.
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// The next compensation attempt to start, if any is due at `now`. Runs looked at and
    /// found with nothing to start leave the queue (a retry not yet due goes among the
    /// timers).
    pub fn next_due(&mut self, state: &State, now: Timestamp) -> Option<DueCompensation> {
        while let Some(run) = self.ready.pop_front() {
            self.queued.remove(&run);
            let Some(r) = state.run(run) else { continue };
            if r.state() != RunState::Compensating || r.count(TaskState::Running) > 0 {
                continue;
            }
            let Some(t) = r.current_compensation() else {
                continue;
            };
            let Some(c) = r.task(t).compensation.as_deref() else {
                continue;
            };
            match c.state {
                CompensationState::Pending => return Some((run, t, c.attempts + 1)),
                CompensationState::Retrying => match c.retry_at {
                    Some(at) if at > now => {
                        self.timers.insert((at, run));
                    }
                    _ => return Some((run, t, c.attempts + 1)),
                },
                // Running: its end touches the run again. Failed: waits for an operator.
                _ => {}
            }
        }
        None
    }

    /// Puts `run` back at the front (its compensation was due but no worker could take it).
    pub fn put_back(&mut self, run: RunId) {
        if self.queued.insert(run) {
            self.ready.push_front(run);
        }
    }

    /// Moves runs whose compensation retry is due at `now` to the queue.
    pub fn due_timers(&mut self, now: Timestamp) {
        while let Some(&(at, run)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.touch(run);
        }
    }

    /// When the earliest compensation retry comes due.
    pub fn next_timer(&self) -> Option<Timestamp> {
        self.timers.first().map(|&(at, _)| at)
    }
}
