//! [`Change`]: the transitions a fold step reports to the actors.

use crate::model::ids::{RunId, TaskIndex};
use crate::model::run::RunState;
use crate::model::task::{CompensationState, TaskState};

/// A transition the fold made, reported so actors can react (enqueue a ready task, notify,
/// count) without diffing states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A task changed state.
    Task {
        /// Its run.
        run: RunId,
        /// Its index in the run's workflow.
        task: TaskIndex,
        /// Previous state.
        from: TaskState,
        /// New state.
        to: TaskState,
    },
    /// A run changed state.
    Run {
        /// The run.
        run: RunId,
        /// Previous state.
        from: RunState,
        /// New state.
        to: RunState,
    },
    /// A mapped task's dependencies all succeeded: it waits (pending) until the node
    /// journals its expansion from the output its `for_each` names.
    ExpansionDue {
        /// Its run.
        run: RunId,
        /// The mapped task.
        task: TaskIndex,
    },
    /// A saga step's compensation changed state (`from` is `None` when it is first needed).
    Compensation {
        /// Its run.
        run: RunId,
        /// The saga step.
        task: TaskIndex,
        /// Previous state.
        from: Option<CompensationState>,
        /// New state.
        to: CompensationState,
    },
}
