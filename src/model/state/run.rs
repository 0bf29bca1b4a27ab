//! [`Run`]: one run's workflow, its position in the run state machine and its tasks' states,
//! with the read-only accessors the rest of the crate uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::ApplyError;
use super::task::Task;
use crate::model::event::Counters;
use crate::model::ids::{RunId, TaskId, TaskIndex};
use crate::model::run::RunState;
use crate::model::task::TaskState;
use crate::model::time::Timestamp;
use crate::model::workflow::Workflow;

/// One run: its workflow and the state of each task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// The run's id.
    pub(super) id: RunId,
    /// The workflow as submitted (immutable for the life of the run).
    pub(super) workflow: Arc<Workflow>,
    /// Run state machine position.
    pub(super) state: RunState,
    /// When `run_submitted` was decided.
    pub(super) submitted_at: Timestamp,
    /// When the run last reached a finished state (cleared if reopened).
    pub(super) finished_at: Option<Timestamp>,
    /// Set by `run_suspended`: no task of the run is dispatchable.
    pub(super) suspended: bool,
    /// Set by `run_cancelled` (kept so a compensated saga still shows it was cancelled).
    pub(super) cancel_requested: bool,
    /// Cached `workflow.is_saga()`.
    pub(super) saga: bool,
    /// Per-task state, by task index.
    pub(super) tasks: Vec<Task>,
    /// Tasks in the order they succeeded: compensations run in reverse of this order, which
    /// is also a reverse topological order (a task succeeds only after its dependencies).
    pub(super) completion_order: Vec<TaskIndex>,
    /// How many entries at the end of `completion_order` need no (more) compensation.
    pub(super) compensation_cursor: u32,
    /// Number of tasks in each [`TaskState`] (indexed by `state as usize`).
    pub(super) counts: [u32; 11],
    /// Usage counters per task, summed over its attempts (`attempt_usage`); only tasks that
    /// reported any (snapshot schema 3).
    pub(super) usage: BTreeMap<TaskIndex, Counters>,
    /// Where the run sits in an agent tree: set for spawned runs and for runs whose tasks
    /// spawned (snapshot schema 4). Boxed: most runs have none.
    pub(super) lineage: Option<Box<super::Lineage>>,
}

impl Run {
    /// The run's id.
    pub fn id(&self) -> RunId {
        self.id
    }

    /// The workflow the run was submitted with.
    pub fn workflow(&self) -> &Arc<Workflow> {
        &self.workflow
    }

    /// The run's state.
    pub fn state(&self) -> RunState {
        self.state
    }

    /// When the run was submitted.
    pub fn submitted_at(&self) -> Timestamp {
        self.submitted_at
    }

    /// When the run last finished, if it is finished.
    pub fn finished_at(&self) -> Option<Timestamp> {
        self.finished_at
    }

    /// Whether the run is suspended.
    pub fn is_suspended(&self) -> bool {
        self.suspended
    }

    /// Whether an operator cancelled the run.
    pub fn cancel_requested(&self) -> bool {
        self.cancel_requested
    }

    /// Per-task state, by index.
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// The task at `index`.
    pub fn task(&self, index: TaskIndex) -> &Task {
        &self.tasks[index as usize]
    }

    /// Number of tasks in `state`.
    pub fn count(&self, state: TaskState) -> u32 {
        self.counts[state as usize]
    }

    /// Usage counters of task `t`, summed over its attempts (empty if it reported none).
    pub fn task_usage(&self, t: TaskIndex) -> Option<&Counters> {
        self.usage.get(&t)
    }

    /// Usage counters of every task that reported any.
    pub fn usage(&self) -> &BTreeMap<TaskIndex, Counters> {
        &self.usage
    }

    /// Usage counters summed over the run's tasks.
    pub fn usage_total(&self) -> Counters {
        let mut total = Counters::new();
        for counters in self.usage.values() {
            for (name, v) in counters {
                *total.entry(name.clone()).or_insert(0.0) += v;
            }
        }
        total
    }

    /// Tasks in the order they succeeded.
    pub fn completion_order(&self) -> &[TaskIndex] {
        &self.completion_order
    }

    /// The saga step whose compensation is due next (or running), if the run is compensating
    /// or waiting after a failed compensation.
    pub fn current_compensation(&self) -> Option<TaskIndex> {
        let len = self.completion_order.len();
        let done = self.compensation_cursor as usize;
        (done < len && self.saga && self.compensation_began())
            .then(|| self.completion_order[len - 1 - done])
    }

    /// Whether the saga's undo has begun (the run is compensating or past it).
    pub(super) fn compensation_began(&self) -> bool {
        matches!(
            self.state,
            RunState::Compensating | RunState::Compensated | RunState::CompensationFailed
        )
    }

    /// The index of task `task` in the run's workflow.
    pub(super) fn index_of(&self, task: &TaskId) -> Result<TaskIndex, ApplyError> {
        self.workflow
            .task_index(task.as_str())
            .ok_or_else(|| ApplyError::UnknownTask {
                run: self.id,
                task: task.clone(),
            })
    }
}

impl<'de> Deserialize<'de> for Run {
    /// Reads the layout of the snapshot's schema: before schema 3 a run had no `usage`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Field order of snapshot schema 4 (must match the struct above).
        #[derive(Deserialize)]
        struct V4 {
            id: RunId,
            workflow: Arc<Workflow>,
            state: RunState,
            submitted_at: Timestamp,
            finished_at: Option<Timestamp>,
            suspended: bool,
            cancel_requested: bool,
            saga: bool,
            tasks: Vec<Task>,
            completion_order: Vec<TaskIndex>,
            compensation_cursor: u32,
            counts: [u32; 11],
            usage: BTreeMap<TaskIndex, Counters>,
            lineage: Option<Box<super::Lineage>>,
        }
        /// Snapshot schema 3: no `lineage`.
        #[derive(Deserialize)]
        struct V3 {
            id: RunId,
            workflow: Arc<Workflow>,
            state: RunState,
            submitted_at: Timestamp,
            finished_at: Option<Timestamp>,
            suspended: bool,
            cancel_requested: bool,
            saga: bool,
            tasks: Vec<Task>,
            completion_order: Vec<TaskIndex>,
            compensation_cursor: u32,
            counts: [u32; 11],
            usage: BTreeMap<TaskIndex, Counters>,
        }
        /// Snapshot schemas 1 and 2: no `usage`.
        #[derive(Deserialize)]
        struct V2 {
            id: RunId,
            workflow: Arc<Workflow>,
            state: RunState,
            submitted_at: Timestamp,
            finished_at: Option<Timestamp>,
            suspended: bool,
            cancel_requested: bool,
            saga: bool,
            tasks: Vec<Task>,
            completion_order: Vec<TaskIndex>,
            compensation_cursor: u32,
            counts: [u32; 11],
        }
        let schema = crate::model::spec::decoding_schema();
        let v = if schema < 3 {
            let v = V2::deserialize(deserializer)?;
            V4 {
                id: v.id,
                workflow: v.workflow,
                state: v.state,
                submitted_at: v.submitted_at,
                finished_at: v.finished_at,
                suspended: v.suspended,
                cancel_requested: v.cancel_requested,
                saga: v.saga,
                tasks: v.tasks,
                completion_order: v.completion_order,
                compensation_cursor: v.compensation_cursor,
                counts: v.counts,
                usage: BTreeMap::new(),
                lineage: None,
            }
        } else if schema < 4 {
            let v = V3::deserialize(deserializer)?;
            V4 {
                id: v.id,
                workflow: v.workflow,
                state: v.state,
                submitted_at: v.submitted_at,
                finished_at: v.finished_at,
                suspended: v.suspended,
                cancel_requested: v.cancel_requested,
                saga: v.saga,
                tasks: v.tasks,
                completion_order: v.completion_order,
                compensation_cursor: v.compensation_cursor,
                counts: v.counts,
                usage: v.usage,
                lineage: None,
            }
        } else {
            V4::deserialize(deserializer)?
        };
        Ok(Run {
            id: v.id,
            workflow: v.workflow,
            state: v.state,
            submitted_at: v.submitted_at,
            finished_at: v.finished_at,
            suspended: v.suspended,
            cancel_requested: v.cancel_requested,
            saga: v.saga,
            tasks: v.tasks,
            completion_order: v.completion_order,
            compensation_cursor: v.compensation_cursor,
            counts: v.counts,
            usage: v.usage,
            lineage: v.lineage,
        })
    }
}
