//! `run_submitted`: a new run, its tasks pending, those with no dependencies settled at once.

use std::sync::Arc;

use super::change::Change;
use super::error::ApplyError;
use super::run::Run;
use super::task::Task;
use super::State;
use crate::model::ids::{RunId, TaskIndex};
use crate::model::run::RunState;
use crate::model::task::TaskState;
use crate::model::time::Timestamp;
use crate::model::workflow::Workflow;

impl State {
    /// `run_submitted`: adds run `run`; refused if the id exists.
    pub(super) fn submit(
        &mut self,
        run: RunId,
        workflow: &Arc<Workflow>,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Result<(), ApplyError> {
        if self.runs.contains_key(&run) {
            return Err(ApplyError::DuplicateRun(run));
        }
        let r = Run::new(run, Arc::clone(workflow), time, changes);
        self.runs.insert(run, r);
        self.index_origin(run, workflow);
        Ok(())
    }

    /// Records a new run's workflow `origin` (if it has one) in the origin index.
    pub(super) fn index_origin(&mut self, run: RunId, workflow: &Workflow) {
        if let Some(origin) = &workflow.spec().origin {
            self.origins.entry(origin.clone()).or_insert(run);
        }
    }
}

impl Run {
    pub(super) fn new(
        id: RunId,
        workflow: Arc<Workflow>,
        time: Timestamp,
        changes: &mut Vec<Change>,
    ) -> Run {
        let n = workflow.len();
        let plan = workflow.plan();
        let tasks = (0..n as TaskIndex)
            .map(|t| Task::pending(plan.upstream_count(t)))
            .collect();
        let mut counts = [0u32; 11];
        counts[TaskState::Pending as usize] = n as u32;
        let saga = workflow.is_saga();
        let mut run = Run {
            id,
            workflow,
            state: RunState::Running,
            submitted_at: time,
            finished_at: None,
            suspended: false,
            cancel_requested: false,
            saga,
            tasks,
            completion_order: Vec::new(),
            compensation_cursor: 0,
            counts,
            usage: Default::default(),
            lineage: None,
        };
        for t in 0..n as TaskIndex {
            if run.tasks[t as usize].waiting_on == 0 {
                run.settle(t, time, changes);
            }
        }
        run
    }
}
