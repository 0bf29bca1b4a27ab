//! The run state machine.
//!
//! ```text
//! running ──► succeeded                      (every task succeeded)
//!    │  ├───► failed ──(operator retry)──► running
//!    │  ├───► cancelled                      (operator cancelled a run that is not a saga)
//!    │  └───► budget_exhausted               (its subtree used more than its budget)
//!    └──────► compensating ──► compensated   (saga: a step failed for good, or was cancelled)
//!                   ▲    └───► compensation_failed ──(operator retry)──┘
//! ```

use serde::{Deserialize, Serialize};

/// Where a run is in its life. JSON/CLI spelling is the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Tasks are waiting or running.
    Running,
    /// Every task succeeded.
    Succeeded,
    /// Every task is terminal and at least one did not succeed (not a saga).
    Failed,
    /// Cancelled by an operator (not a saga).
    Cancelled,
    /// A saga step failed for good; succeeded steps are being undone in reverse order.
    Compensating,
    /// Every succeeded saga step was undone.
    Compensated,
    /// A compensation failed for good; waiting for an operator's `retry`.
    CompensationFailed,
    /// The run's subtree used more than its budget; it was stopped like a cancelled run
    /// (event schema 4).
    BudgetExhausted,
}

impl RunState {
    /// Every state, in declaration order.
    pub const ALL: [RunState; 8] = [
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
        RunState::Compensating,
        RunState::Compensated,
        RunState::CompensationFailed,
        RunState::BudgetExhausted,
    ];

    /// The snake_case name used in JSON and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
            RunState::Compensating => "compensating",
            RunState::Compensated => "compensated",
            RunState::CompensationFailed => "compensation_failed",
            RunState::BudgetExhausted => "budget_exhausted",
        }
    }

    /// The run has ended (an operator may still reopen `failed` and `compensation_failed`).
    pub fn is_finished(self) -> bool {
        !matches!(self, RunState::Running | RunState::Compensating)
    }

    /// The legal transitions; everything else is refused.
    pub fn can_become(self, to: RunState) -> bool {
        use RunState::*;
        matches!(
            (self, to),
            (
                Running,
                Succeeded | Failed | Cancelled | Compensating | BudgetExhausted
            ) | (Failed, Running)
                | (Compensating, Compensated | CompensationFailed)
                | (CompensationFailed, Compensating)
        )
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states_have_no_way_out() {
        for to in RunState::ALL {
            for from in [
                RunState::Succeeded,
                RunState::Cancelled,
                RunState::Compensated,
                RunState::BudgetExhausted,
            ] {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
        assert!(RunState::Failed.can_become(RunState::Running));
        assert!(!RunState::Running.is_finished());
        assert!(RunState::CompensationFailed.is_finished());
    }
}
