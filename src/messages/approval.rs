//! Messages of the approval gate ([`crate::actors::approval`]).

use super::control::PendingApproval;
use crate::model::{RunId, TaskId};

/// A change to the set of pending approvals, sent by the scheduler once the event behind it
/// is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalChange {
    /// A task entered `awaiting_approval`.
    Requested(PendingApproval),
    /// A task left `awaiting_approval` (granted, rejected, expired, cancelled).
    Closed {
        /// The run.
        run: RunId,
        /// The task.
        task: TaskId,
    },
}

/// What the approval gate accepts.
pub enum ApprovalMsg {
    /// From the scheduler, in order: changes to the pending set.
    Changed(Vec<ApprovalChange>),
    /// From the scheduler, answering the gate's registration: everything pending now
    /// (replaces what the gate held).
    Reset(Vec<PendingApproval>),
    /// Timer: requests that reached their expiry.
    Tick,
}
