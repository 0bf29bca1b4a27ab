//! Saga compensations: `compensation_started`, `compensation_succeeded`,
//! `compensation_failed`, `compensation_retried`, and how the undo begins (newest completion
//! first, one step at a time).

use super::change::Change;
use super::error::ApplyError;
use super::run::Run;
use super::task::Compensation;
use crate::model::event::Event;
use crate::model::ids::TaskIndex;
use crate::model::run::RunState;
use crate::model::task::{CompensationState, TaskState};
use crate::model::time::Timestamp;

impl Run {
    /// Saga compensations: `compensation_started`, `_succeeded`, `_failed`, `_retried`.
    pub(super) fn apply_compensation(
        &mut self,
        event: &Event,
        t: Option<TaskIndex>,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        use RunState::*;
        match event {
            Event::CompensationStarted { attempt, .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Compensating])?;
                if self.count(TaskState::Running) > 0 {
                    return Err(self.not_allowed(
                        event,
                        "forward attempts are still running; compensation waits for them",
                    ));
                }
                if self.current_compensation() != Some(t) {
                    let due = self
                        .current_compensation()
                        .map(|c| format!("`{}` is next", self.workflow.task_id(c)))
                        .unwrap_or_else(|| "nothing is left to compensate".into());
                    return Err(self.not_allowed(
                        event,
                        format!("compensations run newest completion first; {due}"),
                    ));
                }
                let c = self.compensation_of(event, t)?;
                self.require_compensation(event, c.state, CompensationState::Running)?;
                self.require_attempt(event, t, c.attempts + 1, *attempt)?;
                let c = self.tasks[t as usize]
                    .compensation
                    .as_mut()
                    .expect("checked");
                c.attempts = *attempt;
                c.retry_at = None;
                self.set_compensation(t, CompensationState::Running, changes);
            }
            Event::CompensationSucceeded { attempt, .. } => {
                let t = t.expect("task event");
                let c = self.compensation_of(event, t)?;
                self.require_compensation(event, c.state, CompensationState::Succeeded)?;
                self.require_attempt(event, t, c.attempts, *attempt)?;
                self.set_compensation(t, CompensationState::Succeeded, changes);
                self.tasks[t as usize].finished_at = Some(time);
                self.set(t, TaskState::Compensated, changes);
                self.advance_compensation_cursor();
                self.check_finished(time, changes);
            }
            Event::CompensationFailed {
                attempt,
                failure,
                retry_at,
                ..
            } => {
                let t = t.expect("task event");
                let c = self.compensation_of(event, t)?;
                let to = if retry_at.is_some() {
                    CompensationState::Retrying
                } else {
                    CompensationState::Failed
                };
                self.require_compensation(event, c.state, to)?;
                self.require_attempt(event, t, c.attempts, *attempt)?;
                let used = c.attempts - c.budget_base;
                if retry_at.is_some()
                    && !self
                        .workflow
                        .compensate_retry_policy(t)
                        .allows_another(used)
                {
                    return Err(self.not_allowed(
                        event,
                        format!("the compensation's retry policy allows no attempt after {used}"),
                    ));
                }
                let c = self.tasks[t as usize]
                    .compensation
                    .as_mut()
                    .expect("checked");
                c.last_failure = Some(failure.clone());
                c.retry_at = *retry_at;
                self.set_compensation(t, to, changes);
                if to == CompensationState::Failed {
                    self.set_run(CompensationFailed, time, changes);
                }
            }
            Event::CompensationRetried { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[CompensationFailed])?;
                let c = self.compensation_of(event, t)?;
                self.require_compensation(event, c.state, CompensationState::Pending)?;
                let c = self.tasks[t as usize]
                    .compensation
                    .as_mut()
                    .expect("checked");
                c.retry_at = None;
                c.budget_base = c.attempts;
                self.set_compensation(t, CompensationState::Pending, changes);
                self.finished_at = None;
                self.set_run(Compensating, time, changes);
            }
            _ => unreachable!("routed by Run::apply"),
        }
        Ok(())
    }

    pub(super) fn compensation_of(
        &self,
        event: &Event,
        t: TaskIndex,
    ) -> Result<&Compensation, ApplyError> {
        self.tasks[t as usize]
            .compensation
            .as_deref()
            .ok_or_else(|| self.not_allowed(event, "the task has no compensation due"))
    }

    pub(super) fn require_compensation(
        &self,
        event: &Event,
        from: CompensationState,
        to: CompensationState,
    ) -> Result<(), ApplyError> {
        if from.can_become(to) {
            Ok(())
        } else {
            Err(self.not_allowed(
                event,
                format!(
                    "a {} compensation cannot become {}",
                    from.as_str(),
                    to.as_str()
                ),
            ))
        }
    }

    pub(super) fn begin_compensation(&mut self, time: Timestamp, changes: &mut Vec<Change>) {
        self.set_run(RunState::Compensating, time, changes);
        for i in 0..self.completion_order.len() {
            let t = self.completion_order[i];
            self.add_compensation(t, changes);
        }
        self.compensation_cursor = 0;
        self.advance_compensation_cursor();
    }

    pub(super) fn add_compensation(&mut self, t: TaskIndex, changes: &mut Vec<Change>) {
        let declared = self.workflow.task(t).compensate.is_some();
        let task = &mut self.tasks[t as usize];
        if declared && task.compensation.is_none() {
            task.compensation = Some(Box::new(Compensation {
                state: CompensationState::Pending,
                attempts: 0,
                budget_base: 0,
                retry_at: None,
                last_failure: None,
            }));
            changes.push(Change::Compensation {
                run: self.id,
                task: t,
                from: None,
                to: CompensationState::Pending,
            });
        }
    }

    /// Skips, from the newest completion backwards, steps with nothing (left) to undo.
    pub(super) fn advance_compensation_cursor(&mut self) {
        let len = self.completion_order.len();
        while (self.compensation_cursor as usize) < len {
            let t = self.completion_order[len - 1 - self.compensation_cursor as usize];
            match &self.tasks[t as usize].compensation {
                Some(c) if c.state != CompensationState::Succeeded => break,
                _ => self.compensation_cursor += 1,
            }
        }
    }
}
