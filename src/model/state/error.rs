//! [`ApplyError`]: why the fold refused an event.

use crate::model::event::Seq;
use crate::model::ids::{RunId, TaskId};
use crate::model::task::TaskState;

/// Why the fold refused an event. The state is unchanged. During replay this means the
/// journal holds an event the fold cannot accept (a bug or a foreign journal): replay stops
/// and names the sequence number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// The event's sequence number is not after the last applied one (applied twice, or out
    /// of order).
    #[error("event {seq} is not after the last applied event {last}")]
    OutOfOrder {
        /// The refused event's sequence number.
        seq: Seq,
        /// The last applied sequence number.
        last: Seq,
    },
    /// `run_submitted` for a run id that exists.
    #[error("run {0} already exists")]
    DuplicateRun(RunId),
    /// The event names a run the journal never created.
    #[error("no run {0}")]
    UnknownRun(RunId),
    /// The event names a task its run's workflow does not have.
    #[error("run {run} has no task `{task}`")]
    UnknownTask {
        /// The run.
        run: RunId,
        /// The unknown task id.
        task: TaskId,
    },
    /// The event would move a task along an edge the state machine does not have.
    #[error("{event} for {run}/{task}: a {from} task cannot become {to}")]
    IllegalTaskTransition {
        /// The event's type name.
        event: &'static str,
        /// The run.
        run: RunId,
        /// The task.
        task: TaskId,
        /// Its current state.
        from: TaskState,
        /// The state the event implies.
        to: TaskState,
    },
    /// The event names an attempt other than the one it must be about.
    #[error("{event} for {run}/{task}: names attempt {got}, expected attempt {expected}")]
    WrongAttempt {
        /// The event's type name.
        event: &'static str,
        /// The run.
        run: RunId,
        /// The task.
        task: TaskId,
        /// The attempt number the state requires.
        expected: u32,
        /// The attempt number in the event.
        got: u32,
    },
    /// The event is not allowed in the run's or node's current situation.
    #[error("{event}{}: {reason}", target(.run, .task))]
    NotAllowed {
        /// The event's type name.
        event: &'static str,
        /// The run, if the event has one.
        run: Option<RunId>,
        /// The task, if the event has one.
        task: Option<TaskId>,
        /// What forbids it.
        reason: String,
    },
}

fn target(run: &Option<RunId>, task: &Option<TaskId>) -> String {
    match (run, task) {
        (Some(r), Some(t)) => format!(" for {r}/{t}"),
        (Some(r), None) => format!(" for {r}"),
        _ => String::new(),
    }
}
