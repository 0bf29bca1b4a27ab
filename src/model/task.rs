//! The task state machine.
//!
//! ```text
//!            ┌──────────────► awaiting_approval ──granted──┐
//! pending ───┤ (deps done)                                  ▼
//!            └──────────────────────────────────────────► ready ──► running ──► succeeded ──► compensated
//!                                                           ▲          │  │                     (saga undo)
//!                                            retry_at due   │          │  └──► failed (for good)
//!                                               retrying ◄──┴──────────┘ (attempt failed, budget left)
//! any waiting state ──► suspended ──► (back to where it belongs) ; cancelled ; upstream_failed
//! ```
//! The table in [`TaskState::can_become`] is the whole truth; the fold refuses anything else
//! with an [`super::state::ApplyError`].

use serde::{Deserialize, Serialize};

/// Where a task is in its life. JSON/CLI spelling is the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum TaskState {
    /// Waiting for dependencies to succeed.
    Pending,
    /// Dependencies done; waiting for a human to approve the first attempt.
    AwaitingApproval,
    /// May be dispatched now.
    Ready,
    /// An attempt is running.
    Running,
    /// An attempt failed; another will start at the recorded `retry_at`.
    Retrying,
    /// An attempt succeeded.
    Succeeded,
    /// Failed for good: retries exhausted, not retryable, or approval rejected/expired.
    Failed,
    /// Cancelled by an operator (or by the run's cancellation or saga abort).
    Cancelled,
    /// Held by an operator; nothing is dispatched until resumed.
    Suspended,
    /// A task it depends on (directly or not) failed for good or was cancelled.
    UpstreamFailed,
    /// Succeeded, then undone by its compensation when the saga failed.
    Compensated,
}

impl TaskState {
    /// Every state, in declaration order (also the order of per-state counters).
    pub const ALL: [TaskState; 11] = [
        TaskState::Pending,
        TaskState::AwaitingApproval,
        TaskState::Ready,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::Succeeded,
        TaskState::Failed,
        TaskState::Cancelled,
        TaskState::Suspended,
        TaskState::UpstreamFailed,
        TaskState::Compensated,
    ];

    /// The snake_case name used in JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::AwaitingApproval => "awaiting_approval",
            TaskState::Ready => "ready",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
            TaskState::Suspended => "suspended",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Compensated => "compensated",
        }
    }

    /// Nothing more will happen to the task unless an operator acts (`retry`). A run ends
    /// when all its tasks are terminal.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded
                | TaskState::Failed
                | TaskState::Cancelled
                | TaskState::UpstreamFailed
                | TaskState::Compensated
        )
    }

    /// Failed for good in a way that blocks dependents (they become `upstream_failed`).
    pub fn blocks_dependents(self) -> bool {
        matches!(
            self,
            TaskState::Failed | TaskState::Cancelled | TaskState::UpstreamFailed
        )
    }

    /// Not started and not finished: the states a cancellation, suspension or saga abort
    /// sweeps up.
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            TaskState::Pending
                | TaskState::AwaitingApproval
                | TaskState::Ready
                | TaskState::Retrying
                | TaskState::Suspended
        )
    }

    /// The legal transitions; everything else is refused.
    pub fn can_become(self, to: TaskState) -> bool {
        use TaskState::*;
        matches!(
            (self, to),
            (
                Pending,
                // Succeeded: a mapped task, with its last instance; a swarm task, with its
                // quorum. Failed: a swarm task whose replicas cannot reach it.
                Ready | AwaitingApproval | UpstreamFailed | Cancelled | Suspended | Succeeded
                    | Failed
            ) | (AwaitingApproval, Ready | Failed | Cancelled | Suspended)
                // Failed: a veto hook said no before the first attempt.
                | (Ready, Running | Cancelled | Suspended | Failed)
                | (
                    Running,
                    Succeeded | Retrying | Failed | Cancelled | Suspended
                )
                | (Retrying, Running | Cancelled | Suspended)
                | (
                    Suspended,
                    Pending | Ready | AwaitingApproval | Retrying | Cancelled | UpstreamFailed
                )
                | (
                    Failed | Cancelled,
                    Ready | Pending | AwaitingApproval | Suspended
                )
                | (UpstreamFailed, Pending | Suspended)
                | (Succeeded, Compensated)
        )
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a succeeded saga step's compensation is. JSON spelling is snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompensationState {
    /// Will run when its turn comes (reverse order of completion).
    Pending,
    /// A compensation attempt is running.
    Running,
    /// A compensation attempt failed; another starts at the recorded `retry_at`.
    Retrying,
    /// Undone. Never run again.
    Succeeded,
    /// Failed for good; the run waits in `compensation_failed` for an operator's `retry`.
    Failed,
}

impl CompensationState {
    /// The snake_case name used in JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            CompensationState::Pending => "pending",
            CompensationState::Running => "running",
            CompensationState::Retrying => "retrying",
            CompensationState::Succeeded => "succeeded",
            CompensationState::Failed => "failed",
        }
    }

    /// The legal transitions of a compensation.
    pub fn can_become(self, to: CompensationState) -> bool {
        use CompensationState::*;
        matches!(
            (self, to),
            (Pending | Retrying, Running)
                | (Running, Succeeded | Retrying | Failed)
                | (Failed, Pending)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_states_only_leave_by_operator_retry_or_compensation() {
        for from in TaskState::ALL {
            for to in TaskState::ALL {
                if from.is_terminal() && from.can_become(to) {
                    assert!(
                        matches!(
                            (from, to),
                            (TaskState::Succeeded, TaskState::Compensated)
                                | (TaskState::Failed | TaskState::Cancelled, _)
                                | (TaskState::UpstreamFailed, _)
                        ),
                        "{from} -> {to}"
                    );
                }
            }
            assert!(!from.can_become(from), "{from} -> itself");
        }
        assert!(!TaskState::Compensated.can_become(TaskState::Ready));
        assert!(!TaskState::Succeeded.can_become(TaskState::Running));
        assert!(!TaskState::Pending.can_become(TaskState::Running));
    }

    #[test]
    fn json_names_are_snake_case() {
        for s in TaskState::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}
