//! Retry: a failed or cancelled task (its downstream reopens), every such task of a run, or
//! a failed compensation of a run that waits for the operator.

use std::sync::Arc;

use super::*;
use crate::messages::control::ControlError;
use crate::model::{CompensationState, Event, RunId, RunState, TaskId, TaskIndex, TaskState};

impl SchedulerState {
    /// Retries one task, or its failed compensation.
    pub(crate) fn retry_task(&mut self, run: RunId, task: TaskId) -> Result<(), ControlError> {
        let t = self.task_index(run, &task)?;
        let r = self.state.run(run).expect("checked");
        let comp = r.task(t).compensation.as_deref().map(|c| c.state);
        let event = match (r.state(), comp) {
            (_, Some(CompensationState::Succeeded)) => {
                return Err(ControlError::Refused(format!(
                    "the compensation of `{task}` already succeeded; it never runs again"
                )))
            }
            (RunState::CompensationFailed, Some(CompensationState::Failed)) => {
                Event::CompensationRetried { run, task }
            }
            (RunState::CompensationFailed, other) => {
                let what = other.map_or("none", CompensationState::as_str);
                return Err(ControlError::Refused(format!(
                    "run {run} waits for a failed compensation; `{task}`'s compensation \
                     is {what}, and only a failed one can be retried"
                )));
            }
            _ => Event::TaskRetried { run, task },
        };
        self.decide(event).map_err(to_control_error)
    }

    /// Retries every failed or cancelled task of a run (upstream first), or every failed
    /// compensation of a run that waits for one.
    pub(crate) fn retry_run(&mut self, run: RunId) -> Result<(), ControlError> {
        let r = self
            .state
            .run(run)
            .ok_or_else(|| ControlError::NotFound(format!("no run {run}")))?;
        if r.state() == RunState::CompensationFailed {
            let failed: Vec<_> = r
                .tasks()
                .iter()
                .enumerate()
                .filter(|(_, t)| {
                    t.compensation
                        .as_deref()
                        .is_some_and(|c| c.state == CompensationState::Failed)
                })
                .map(|(i, _)| r.workflow().task_id(i as TaskIndex).clone())
                .collect();
            for task in failed {
                self.decide(Event::CompensationRetried { run, task })
                    .map_err(to_control_error)?;
            }
            return Ok(());
        }
        let wf = Arc::clone(r.workflow());
        let failed: Vec<TaskIndex> = wf
            .plan()
            .topological_order()
            .iter()
            .copied()
            .filter(|&t| matches!(r.task(t).state, TaskState::Failed | TaskState::Cancelled))
            .collect();
        let mut retried = 0;
        let mut last_err = None;
        for t in failed {
            let task = wf.task_id(t).clone();
            match self.decide(Event::TaskRetried { run, task }) {
                Ok(()) => retried += 1,
                Err(e) => last_err = Some(e),
            }
        }
        if retried == 0 {
            return Err(match last_err {
                Some(e) => to_control_error(e),
                None => ControlError::Refused(format!(
                    "run {run} has no failed or cancelled task to retry"
                )),
            });
        }
        Ok(())
    }
}
