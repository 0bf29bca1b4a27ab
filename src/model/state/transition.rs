//! The moves every event family makes: a task, a run or a compensation changes state (keeping
//! the per-state counts and reporting a [`Change`]), a task that has not started settles where
//! it belongs, and a run ends when nothing is left to do.

use super::change::Change;
use super::run::Run;
use crate::model::ids::TaskIndex;
use crate::model::run::RunState;
use crate::model::task::{CompensationState, TaskState};
use crate::model::time::Timestamp;

impl Run {
    /// Moves task `t` to `to`, keeping the per-state counts. Callers have checked legality.
    pub(super) fn set(&mut self, t: TaskIndex, to: TaskState, changes: &mut Vec<Change>) {
        let task = &mut self.tasks[t as usize];
        let from = task.state;
        if from == to {
            return;
        }
        debug_assert!(from.can_become(to), "fold bug: {from} -> {to}");
        task.state = to;
        self.counts[from as usize] -= 1;
        self.counts[to as usize] += 1;
        changes.push(Change::Task {
            run: self.id,
            task: t,
            from,
            to,
        });
    }

    pub(super) fn set_run(&mut self, to: RunState, time: Timestamp, changes: &mut Vec<Change>) {
        let from = self.state;
        if from == to {
            return;
        }
        debug_assert!(from.can_become(to), "fold bug: run {from} -> {to}");
        self.state = to;
        if to.is_finished() {
            self.finished_at = Some(time);
        }
        changes.push(Change::Run {
            run: self.id,
            from,
            to,
        });
    }

    pub(super) fn set_compensation(
        &mut self,
        t: TaskIndex,
        to: CompensationState,
        changes: &mut Vec<Change>,
    ) {
        let c = self.tasks[t as usize]
            .compensation
            .as_mut()
            .expect("compensation exists");
        let from = c.state;
        c.state = to;
        changes.push(Change::Compensation {
            run: self.id,
            task: t,
            from: Some(from),
            to,
        });
    }

    /// The state a task that has not started belongs in now.
    pub(super) fn settled_state(&self, t: TaskIndex) -> TaskState {
        let task = &self.tasks[t as usize];
        if task.suspended || self.suspended {
            TaskState::Suspended
        } else if task.waiting_on > 0 {
            TaskState::Pending
        } else if self.workflow.requires_approval(t) && !task.approved {
            TaskState::AwaitingApproval
        } else if task.retry_at.is_some() {
            TaskState::Retrying
        } else {
            TaskState::Ready
        }
    }

    pub(super) fn settle(&mut self, t: TaskIndex, time: Timestamp, changes: &mut Vec<Change>) {
        let to = self.settled_state(t);
        if to != TaskState::Suspended && self.tasks[t as usize].waiting_on == 0 {
            if self.is_expanded(t) {
                // A mapped task runs nothing: it succeeds with its last instance.
                self.set(t, TaskState::Pending, changes);
                self.succeed(t, time, changes);
                return;
            }
            let spec = self.workflow.task(t);
            if (spec.for_each().is_some() || spec.swarm().is_some()) && spec.expansion().is_none() {
                self.set(t, TaskState::Pending, changes);
                changes.push(Change::ExpansionDue {
                    run: self.id,
                    task: t,
                });
                return;
            }
        }
        let task = &mut self.tasks[t as usize];
        // The request is made once: suspending and resuming does not restart its expiry.
        if to == TaskState::AwaitingApproval && task.awaiting_since.is_none() {
            task.awaiting_since = Some(time);
        }
        self.set(t, to, changes);
    }

    /// Ends the run if nothing is left to do.
    pub(super) fn check_finished(&mut self, time: Timestamp, changes: &mut Vec<Change>) {
        match self.state {
            RunState::Running => {
                let open: u32 = TaskState::ALL
                    .iter()
                    .filter(|s| !s.is_terminal())
                    .map(|&s| self.counts[s as usize])
                    .sum();
                if open == 0 {
                    let ok = self.count(TaskState::Succeeded) as usize;
                    let spare = if ok == self.tasks.len() {
                        0
                    } else {
                        (0..self.tasks.len() as TaskIndex)
                            .filter(|&t| {
                                self.tasks[t as usize].state != TaskState::Succeeded
                                    && self.spare_replica(t)
                            })
                            .count()
                    };
                    let to = if ok + spare == self.tasks.len() {
                        RunState::Succeeded
                    } else {
                        RunState::Failed
                    };
                    self.set_run(to, time, changes);
                }
            }
            RunState::Compensating
                if self.count(TaskState::Running) == 0 && self.current_compensation().is_none() =>
            {
                self.set_run(RunState::Compensated, time, changes);
            }
            _ => {}
        }
    }
}
