//! Preconditions shared by the event families: each check either passes or returns the
//! [`ApplyError`] that names what forbids the event.

use super::error::ApplyError;
use super::run::Run;
use crate::model::event::Event;
use crate::model::ids::TaskIndex;
use crate::model::run::RunState;
use crate::model::task::TaskState;

impl Run {
    /// The `NotAllowed` error for `event` on this run, with `reason`.
    pub(super) fn not_allowed(&self, event: &Event, reason: impl Into<String>) -> ApplyError {
        ApplyError::NotAllowed {
            event: event.type_name(),
            run: Some(self.id),
            task: event.task().cloned(),
            reason: reason.into(),
        }
    }

    pub(super) fn require_run_state(
        &self,
        event: &Event,
        allowed: &[RunState],
    ) -> Result<(), ApplyError> {
        if allowed.contains(&self.state) {
            Ok(())
        } else {
            Err(self.not_allowed(event, format!("the run is {}", self.state)))
        }
    }

    /// The error for moving task `t` to `to`, which its state does not allow.
    pub(super) fn illegal(&self, event: &Event, t: TaskIndex, to: TaskState) -> ApplyError {
        ApplyError::IllegalTaskTransition {
            event: event.type_name(),
            run: self.id,
            task: self.workflow.task_id(t).clone(),
            from: self.tasks[t as usize].state,
            to,
        }
    }

    /// Fails with `IllegalTaskTransition` unless task `t` may move to `to`.
    pub(super) fn require_transition(
        &self,
        event: &Event,
        t: TaskIndex,
        to: TaskState,
    ) -> Result<(), ApplyError> {
        if self.tasks[t as usize].state.can_become(to) {
            Ok(())
        } else {
            Err(self.illegal(event, t, to))
        }
    }

    /// The event ends attempt `attempt` of task `t`, moving it to `to`: the task must be
    /// running that very attempt.
    pub(super) fn require_running_attempt(
        &self,
        event: &Event,
        t: TaskIndex,
        attempt: u32,
        to: TaskState,
    ) -> Result<(), ApplyError> {
        let task = &self.tasks[t as usize];
        if task.state != TaskState::Running {
            return Err(self.illegal(event, t, to));
        }
        self.require_attempt(event, t, task.attempts, attempt)
    }

    pub(super) fn require_attempt(
        &self,
        event: &Event,
        t: TaskIndex,
        expected: u32,
        got: u32,
    ) -> Result<(), ApplyError> {
        if expected == got {
            Ok(())
        } else {
            Err(ApplyError::WrongAttempt {
                event: event.type_name(),
                run: self.id,
                task: self.workflow.task_id(t).clone(),
                expected,
                got,
            })
        }
    }
}
