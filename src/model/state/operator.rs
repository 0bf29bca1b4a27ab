//! Operator commands: `task_cancelled`, `task_suspended`, `task_resumed`, `task_retried`,
//! `run_cancelled`, `run_suspended`, `run_resumed`.

use super::change::Change;
use super::error::ApplyError;
use super::run::Run;
use crate::model::event::{Event, Failure};
use crate::model::ids::TaskIndex;
use crate::model::run::RunState;
use crate::model::task::TaskState;
use crate::model::time::Timestamp;

impl Run {
    /// Operator commands: cancel, suspend, resume and retry of a task or a run.
    pub(super) fn apply_operator(
        &mut self,
        event: &Event,
        t: Option<TaskIndex>,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        use RunState::*;
        match event {
            Event::TaskCancelled { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running, Compensating])?;
                self.require_transition(event, t, TaskState::Cancelled)?;
                self.fail_for_good(t, TaskState::Cancelled, time, changes);
            }
            Event::TaskSuspended { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                let from = self.tasks[t as usize].state;
                if from == TaskState::Suspended {
                    return Err(self.not_allowed(event, "the task is already suspended"));
                }
                if !from.is_waiting() {
                    return Err(self.not_allowed(
                        event,
                        format!("only tasks that have not started can be suspended (it is {from})"),
                    ));
                }
                if self.swarm_waiting(t) {
                    // It runs nothing until its quorum: resuming would make it ready.
                    return Err(self.not_allowed(
                        event,
                        "a swarm task waiting for its quorum is suspended through its replicas",
                    ));
                }
                self.tasks[t as usize].suspended = true;
                self.set(t, TaskState::Suspended, changes);
            }
            Event::TaskResumed { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                if !self.tasks[t as usize].suspended {
                    return Err(self.not_allowed(event, "the task is not suspended"));
                }
                if self.suspended {
                    return Err(self
                        .not_allowed(event, "the whole run is suspended; resume the run instead"));
                }
                self.tasks[t as usize].suspended = false;
                if self.tasks[t as usize].state == TaskState::Suspended {
                    self.settle(t, time, changes);
                }
            }
            Event::TaskRetried { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running, Failed])?;
                if self.swarm_of(t).is_some()
                    || matches!(
                        self.workflow.task(t).expansion(),
                        Some(crate::model::spec::Expansion::Swarm { .. })
                    )
                {
                    return Err(self.not_allowed(
                        event,
                        "a swarm task and its replicas are not retried one by one; submit \
                         the workflow again",
                    ));
                }
                let from = self.tasks[t as usize].state;
                if !matches!(from, TaskState::Failed | TaskState::Cancelled) {
                    let reason = if from == TaskState::UpstreamFailed {
                        "the task did not fail itself; retry the upstream task that failed"
                            .to_owned()
                    } else {
                        format!("only failed or cancelled tasks can be retried (it is {from})")
                    };
                    return Err(self.not_allowed(event, reason));
                }
                if let Some(u) = self
                    .workflow
                    .plan()
                    .upstream(t)
                    .find(|&u| self.tasks[u as usize].state.blocks_dependents())
                {
                    return Err(self.not_allowed(
                        event,
                        format!(
                            "its upstream task `{}` is {}; retry that first",
                            self.workflow.task_id(u),
                            self.tasks[u as usize].state
                        ),
                    ));
                }
                let task = &mut self.tasks[t as usize];
                task.budget_base = task.attempts;
                task.retry_at = None;
                task.finished_at = None;
                // A retried task that needs approval asks anew.
                task.awaiting_since = None;
                if matches!(
                    task.last_failure.as_deref(),
                    Some(Failure::ApprovalRejected | Failure::ApprovalExpired)
                ) {
                    task.approved = false;
                }
                self.reopen_run(time, changes);
                self.settle(t, time, changes);
                for d in self.workflow.clone().plan().transitive_downstream(t) {
                    let blocked = self
                        .workflow
                        .plan()
                        .upstream(d)
                        .any(|u| self.tasks[u as usize].state.blocks_dependents());
                    if self.tasks[d as usize].state == TaskState::UpstreamFailed && !blocked {
                        self.settle(d, time, changes);
                    }
                }
            }
            Event::RunCancelled { .. } => {
                self.require_run_state(event, &[Running])?;
                self.stop(time, Cancelled, changes);
            }
            Event::RunSuspended { .. } => {
                self.require_run_state(event, &[Running])?;
                if self.suspended {
                    return Err(self.not_allowed(event, "the run is already suspended"));
                }
                self.suspend_run(changes);
            }
            Event::RunResumed { .. } => {
                self.require_run_state(event, &[Running])?;
                if !self.suspended {
                    return Err(self.not_allowed(event, "the run is not suspended"));
                }
                self.resume_run(time, changes);
            }
            _ => unreachable!("routed by Run::apply"),
        }
        Ok(())
    }

    pub(super) fn reopen_run(&mut self, time: Timestamp, changes: &mut Vec<Change>) {
        if self.state == RunState::Failed {
            self.finished_at = None;
            self.set_run(RunState::Running, time, changes);
        }
    }
}

impl Run {
    /// Stops a running run: every waiting task (and, unless it is a saga, every running one)
    /// is cancelled; a saga then compensates, any other run ends in `to` (`cancelled`,
    /// `budget_exhausted`).
    pub(super) fn stop(&mut self, time: Timestamp, to: RunState, changes: &mut Vec<Change>) {
        self.cancel_requested = true;
        // A saga lets running steps finish (their effects can then be compensated); any
        // other run has its running attempts cancelled too.
        let cancel_running = !self.saga;
        for t in 0..self.tasks.len() as TaskIndex {
            let s = self.tasks[t as usize].state;
            if s.is_waiting() || (cancel_running && s == TaskState::Running) {
                self.tasks[t as usize].finished_at = Some(time);
                self.set(t, TaskState::Cancelled, changes);
            }
        }
        if self.saga {
            self.begin_compensation(time, changes);
        } else {
            self.set_run(to, time, changes);
        }
        self.check_finished(time, changes);
    }
}

impl Run {
    /// Suspends the run: no task of it is dispatched until resumed.
    pub(super) fn suspend_run(&mut self, changes: &mut Vec<Change>) {
        self.suspended = true;
        for t in 0..self.tasks.len() as TaskIndex {
            let s = self.tasks[t as usize].state;
            // A swarm task waiting for its quorum stays pending: it runs nothing, and its
            // replicas' ends may still decide it (a vote then waits, suspended).
            if s.is_waiting() && s != TaskState::Suspended && !self.swarm_waiting(t) {
                self.set(t, TaskState::Suspended, changes);
            }
        }
    }

    /// Resumes a suspended run: its tasks settle where they belong.
    pub(super) fn resume_run(&mut self, time: Timestamp, changes: &mut Vec<Change>) {
        self.suspended = false;
        for t in 0..self.tasks.len() as TaskIndex {
            let task = &self.tasks[t as usize];
            if task.state == TaskState::Suspended && !task.suspended {
                self.settle(t, time, changes);
            }
        }
    }
}
