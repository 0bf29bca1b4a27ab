//! [`Task`] and [`Compensation`]: the runtime state of one task of a run and of its saga undo
//! (their specs live in the run's workflow).

use serde::{Deserialize, Serialize};

use crate::model::event::Failure;
use crate::model::task::{CompensationState, TaskState};
use crate::model::time::Timestamp;

/// The runtime state of one task of a run (its spec lives in the run's [`Workflow`](crate::model::Workflow)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Task state machine position.
    pub state: TaskState,
    /// Attempts started so far; attempt numbers are `1..=attempts`.
    pub attempts: u32,
    /// `attempts` when the retry budget was last restored (operator `retry`); the budget
    /// counts `attempts - budget_base`.
    pub budget_base: u32,
    /// Direct dependencies that have not succeeded yet.
    pub waiting_on: u32,
    /// Suspended by an operator (as opposed to only by its run's suspension).
    pub suspended: bool,
    /// A human approved the first attempt.
    pub approved: bool,
    /// When the next attempt is due (state `retrying`, or a suspended task that was).
    pub retry_at: Option<Timestamp>,
    /// When the task last entered `awaiting_approval` (expiry counts from here).
    pub awaiting_since: Option<Timestamp>,
    /// When the current or last attempt started.
    pub started_at: Option<Timestamp>,
    /// When the task last reached a terminal state.
    pub finished_at: Option<Timestamp>,
    /// Why the last attempt failed, if it did. Boxed: most tasks never fail, and the model
    /// keeps every task of every live run in memory (twice: write side and read model); a
    /// box is encoded like its content, so snapshots are unchanged.
    pub last_failure: Option<Box<Failure>>,
    /// Saga undo progress, once the run compensates and this step declares `compensate`.
    pub compensation: Option<Box<Compensation>>,
}

impl Task {
    /// A task that has not started, waiting for `waiting_on` dependencies.
    pub(super) fn pending(waiting_on: u32) -> Task {
        Task {
            state: TaskState::Pending,
            attempts: 0,
            budget_base: 0,
            waiting_on,
            suspended: false,
            approved: false,
            retry_at: None,
            awaiting_since: None,
            started_at: None,
            finished_at: None,
            last_failure: None,
            compensation: None,
        }
    }
}

/// The undo side of a saga step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compensation {
    /// Compensation state machine position.
    pub state: CompensationState,
    /// Compensation attempts started so far.
    pub attempts: u32,
    /// `attempts` when an operator last retried the compensation; its retry budget counts
    /// `attempts - budget_base` (snapshot schema 2; 0 in older snapshots).
    pub budget_base: u32,
    /// When the next compensation attempt is due (state `retrying`).
    pub retry_at: Option<Timestamp>,
    /// Why the last compensation attempt failed, if it did.
    pub last_failure: Option<Failure>,
}

impl<'de> Deserialize<'de> for Compensation {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Field order of snapshot schema 2 (must match the struct above).
        #[derive(Deserialize)]
        struct V2 {
            state: CompensationState,
            attempts: u32,
            budget_base: u32,
            retry_at: Option<Timestamp>,
            last_failure: Option<Failure>,
        }
        /// Snapshot schema 1: no `budget_base`.
        #[derive(Deserialize)]
        struct V1 {
            state: CompensationState,
            attempts: u32,
            retry_at: Option<Timestamp>,
            last_failure: Option<Failure>,
        }
        let v = if crate::model::spec::decoding_schema() < 2 {
            let v = V1::deserialize(deserializer)?;
            V2 {
                state: v.state,
                attempts: v.attempts,
                budget_base: 0,
                retry_at: v.retry_at,
                last_failure: v.last_failure,
            }
        } else {
            V2::deserialize(deserializer)?
        };
        Ok(Compensation {
            state: v.state,
            attempts: v.attempts,
            budget_base: v.budget_base,
            retry_at: v.retry_at,
            last_failure: v.last_failure,
        })
    }
}
