//! Approvals: the gate's view of pending requests, and their expiry.

use super::*;
use crate::actors::approval::pending_approval;
use crate::messages::control::ControlError;
use crate::messages::control::PendingApproval;
use crate::model::Approver;
use crate::model::{Event, RunId, TaskId, TaskIndex, TaskState, Timestamp};

impl SchedulerState {
    /// Sends the approval changes decided so far to the gate once they are durable.
    pub(crate) fn flush_approval_changes(&mut self) {
        if !self.approval_changes.is_empty() {
            let changes = std::mem::take(&mut self.approval_changes);
            self.after_persist(Effect::Approvals(changes));
        }
    }

    /// Every pending approval request (for a gate that just started).
    pub(crate) fn pending_approvals(&self) -> Vec<PendingApproval> {
        let mut out = Vec::new();
        for r in self.state.runs() {
            if r.count(TaskState::AwaitingApproval) == 0 {
                continue;
            }
            for t in 0..r.tasks().len() as TaskIndex {
                out.extend(pending_approval(r, t, self.approval_timeout));
            }
        }
        out
    }

    /// Journals `approval_expired` if `task` still awaits the request made at
    /// `requested_at`.
    pub(crate) fn expire_approval(&mut self, run: RunId, task: TaskId, requested_at: Timestamp) {
        let Some(r) = self.state.run(run) else { return };
        let Some(t) = r.workflow().task_index(task.as_str()) else {
            return;
        };
        let current = pending_approval(r, t, self.approval_timeout);
        if current.is_some_and(|p| p.requested_at == requested_at) {
            tracing::info!(run_id = %run, task_id = %task, "approval request expired");
            if let Err(e) = self.decide(Event::ApprovalExpired { run, task }) {
                tracing::error!(error = %e, "approval expiry refused by the fold");
            }
        }
    }

    /// Grants (`granted`) or rejects an approval request, in the approver's name.
    pub(crate) fn approve(
        &mut self,
        run: RunId,
        task: TaskId,
        approver: Approver,
        granted: bool,
    ) -> Result<(), ControlError> {
        approver.check().map_err(ControlError::BadRequest)?;
        let event = if granted {
            Event::ApprovalGranted {
                run,
                task,
                approver,
            }
        } else {
            Event::ApprovalRejected {
                run,
                task,
                approver,
            }
        };
        self.decide(event).map_err(to_control_error)
    }
}
