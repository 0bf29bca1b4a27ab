//! Retry: a failed or cancelled task (its downstream reopens), every such task of a run, or
//! a failed compensation of a run that waits for the operator. Which events is decided by
//! [`crate::model::decide::retry_task`] and [`crate::model::decide::retry_run`], the same
//! functions a dry run uses.

use super::*;
use crate::messages::control::ControlError;
use crate::model::decide;
use crate::model::{RunId, TaskId};

impl SchedulerState {
    /// Retries one task, or its failed compensation.
    pub(crate) fn retry_task(&mut self, run: RunId, task: TaskId) -> Result<(), ControlError> {
        let event = decide::retry_task(&self.state, run, &task)?;
        self.decide(event).map_err(to_control_error)
    }

    /// Retries every failed or cancelled task of a run (upstream first), or every failed
    /// compensation of a run that waits for one.
    pub(crate) fn retry_run(&mut self, run: RunId) -> Result<(), ControlError> {
        let decision = decide::retry_run(&self.state, run)?;
        Ok(decision.decide_with(&format!("run {run}"), |e| self.decide(e))?)
    }
}
