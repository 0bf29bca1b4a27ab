//! Attempts: `attempt_started`, `task_succeeded`, `attempt_failed` (a retry is due) and
//! `task_failed` (for good), with what success and failure do to dependents and to a saga.
//! A `task_failed` with attempt 0 and failure `vetoed` fails a ready task that never started
//! (a `task_ready` veto hook said no).

use std::sync::Arc;

use super::change::Change;
use super::error::ApplyError;
use super::run::Run;
use crate::model::event::{Event, Failure};
use crate::model::ids::TaskIndex;
use crate::model::run::RunState;
use crate::model::task::TaskState;
use crate::model::time::Timestamp;

impl Run {
    /// Attempts of a task: `attempt_started`, `task_succeeded`, `attempt_failed`, `task_failed`.
    pub(super) fn apply_attempt(
        &mut self,
        event: &Event,
        t: Option<TaskIndex>,
        time: Timestamp,
        halted: bool,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        use RunState::*;
        match event {
            Event::AttemptStarted { attempt, .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                if halted {
                    return Err(self.not_allowed(event, "the node is halted"));
                }
                let task = &self.tasks[t as usize];
                if !matches!(task.state, TaskState::Ready | TaskState::Retrying) {
                    return Err(self.illegal(event, t, TaskState::Running));
                }
                self.require_attempt(event, t, task.attempts + 1, *attempt)?;
                let task = &mut self.tasks[t as usize];
                task.attempts = *attempt;
                task.retry_at = None;
                task.started_at = Some(time);
                self.set(t, TaskState::Running, changes);
            }
            Event::TaskSucceeded { attempt: 0, .. } => {
                // A swarm task whose replicas agreed (event schema 8).
                let t = t.expect("task event");
                self.require_swarm_end(event, t, true)?;
                self.succeed(t, time, changes);
            }
            Event::TaskSucceeded { attempt, .. } => {
                let t = t.expect("task event");
                self.require_running_attempt(event, t, *attempt, TaskState::Succeeded)?;
                self.succeed(t, time, changes);
            }
            Event::AttemptFailed {
                attempt,
                failure,
                retry_at,
                ..
            } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                self.require_running_attempt(event, t, *attempt, TaskState::Retrying)?;
                let task = &self.tasks[t as usize];
                let used = task.attempts - task.budget_base;
                if !self.workflow.retry_policy(t).allows_another(used) {
                    return Err(self.not_allowed(
                        event,
                        format!("the retry policy allows no attempt after {used}"),
                    ));
                }
                let task = &mut self.tasks[t as usize];
                task.last_failure = Some(Box::new(failure.clone()));
                task.retry_at = Some(*retry_at);
                self.settle(t, time, changes);
            }
            Event::TaskFailed {
                attempt: 0,
                failure: failure @ Failure::Vetoed { .. },
                ..
            } => {
                // A `task_ready` veto hook did not let the task run: it fails for good
                // before its first attempt (event schema 7).
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                let task = &self.tasks[t as usize];
                if task.state != TaskState::Ready || task.attempts != 0 {
                    return Err(self.not_allowed(
                        event,
                        format!(
                            "a veto fails only a ready task that never started (it is {})",
                            task.state
                        ),
                    ));
                }
                self.tasks[t as usize].last_failure = Some(Box::new(failure.clone()));
                self.fail_for_good(t, TaskState::Failed, time, changes);
            }
            Event::TaskFailed {
                attempt: 0,
                failure: failure @ Failure::NoQuorum { .. },
                ..
            } => {
                // A swarm task whose replicas can no longer agree (event schema 8).
                let t = t.expect("task event");
                self.require_swarm_end(event, t, false)?;
                self.tasks[t as usize].last_failure = Some(Box::new(failure.clone()));
                self.fail_for_good(t, TaskState::Failed, time, changes);
            }
            Event::TaskFailed {
                attempt, failure, ..
            } => {
                let t = t.expect("task event");
                self.require_running_attempt(event, t, *attempt, TaskState::Failed)?;
                self.tasks[t as usize].last_failure = Some(Box::new(failure.clone()));
                self.fail_for_good(t, TaskState::Failed, time, changes);
            }
            _ => unreachable!("routed by Run::apply"),
        }
        Ok(())
    }

    pub(super) fn succeed(&mut self, t: TaskIndex, time: Timestamp, changes: &mut Vec<Change>) {
        self.tasks[t as usize].finished_at = Some(time);
        self.tasks[t as usize].last_failure = None;
        self.set(t, TaskState::Succeeded, changes);
        self.completion_order.push(t);
        let workflow = Arc::clone(&self.workflow);
        for d in workflow.plan().downstream(t) {
            let task = &mut self.tasks[d as usize];
            task.waiting_on -= 1;
            if task.waiting_on == 0 && task.state == TaskState::Pending {
                self.settle(d, time, changes);
            }
        }
        if self.state == RunState::Compensating {
            // A forward attempt that was in flight when the saga aborted: undo it first.
            self.add_compensation(t, changes);
            self.compensation_cursor = 0;
            self.advance_compensation_cursor();
        }
        self.check_finished(time, changes);
    }

    pub(super) fn fail_for_good(
        &mut self,
        t: TaskIndex,
        to: TaskState,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) {
        let task = &mut self.tasks[t as usize];
        task.finished_at = Some(time);
        task.retry_at = None;
        task.suspended = false;
        self.set(t, to, changes);
        // Dependents that have not started cannot run now. A dependent already
        // upstream_failed or cancelled has had its own dependents swept, so stop there.
        let workflow = Arc::clone(&self.workflow);
        let mut stack = vec![t];
        while let Some(u) = stack.pop() {
            for d in workflow.plan().downstream(u) {
                if matches!(
                    self.tasks[d as usize].state,
                    TaskState::Pending | TaskState::Suspended
                ) {
                    self.tasks[d as usize].finished_at = Some(time);
                    self.set(d, TaskState::UpstreamFailed, changes);
                    stack.push(d);
                }
            }
        }
        // A replica's failure is its swarm task's to judge (no quorum fails the swarm task,
        // which aborts a saga then).
        let replica = self.swarm_of(t).is_some();
        if self.saga && self.state == RunState::Running && !replica {
            for w in 0..self.tasks.len() as TaskIndex {
                if self.tasks[w as usize].state.is_waiting() {
                    self.tasks[w as usize].finished_at = Some(time);
                    self.set(w, TaskState::Cancelled, changes);
                }
            }
            self.begin_compensation(time, changes);
        }
        self.check_finished(time, changes);
    }
}
