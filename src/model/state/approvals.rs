//! Approvals: `approval_granted` settles the task; `approval_rejected` and `approval_expired`
//! fail it for good.

use super::change::Change;
use super::error::ApplyError;
use super::run::Run;
use crate::model::event::{Event, Failure};
use crate::model::ids::TaskIndex;
use crate::model::run::RunState;
use crate::model::task::TaskState;
use crate::model::time::Timestamp;

impl Run {
    /// Approvals: `approval_granted`, `approval_rejected`, `approval_expired`.
    pub(super) fn apply_approval(
        &mut self,
        event: &Event,
        t: Option<TaskIndex>,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        use RunState::*;
        match event {
            Event::ApprovalGranted { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                self.require_awaiting(event, t)?;
                self.tasks[t as usize].approved = true;
                self.settle(t, time, changes);
            }
            Event::ApprovalRejected { .. } | Event::ApprovalExpired { .. } => {
                let t = t.expect("task event");
                self.require_run_state(event, &[Running])?;
                self.require_awaiting(event, t)?;
                self.tasks[t as usize].last_failure = Some(Box::new(
                    if matches!(event, Event::ApprovalRejected { .. }) {
                        Failure::ApprovalRejected
                    } else {
                        Failure::ApprovalExpired
                    },
                ));
                self.fail_for_good(t, TaskState::Failed, time, changes);
            }
            _ => unreachable!("routed by Run::apply"),
        }
        Ok(())
    }

    fn require_awaiting(&self, event: &Event, t: TaskIndex) -> Result<(), ApplyError> {
        let s = self.tasks[t as usize].state;
        if s == TaskState::AwaitingApproval {
            Ok(())
        } else {
            Err(self.not_allowed(
                event,
                format!("the task is not awaiting approval (it is {s})"),
            ))
        }
    }
}
