//! Submitting a run.

use std::sync::Arc;

use super::*;
use crate::actors::approval::{apply_rules, ApprovalRule};
use crate::messages::control::ControlError;
use crate::model::{Event, RunId, Workflow};

impl SchedulerState {
    pub(crate) fn submit(
        &mut self,
        workflow: Workflow,
        rules: &[ApprovalRule],
    ) -> Result<(RunId, bool), ControlError> {
        // A decoded workflow has its structure checked but not every field: validate it
        // fully, as a file would be, before it can enter the journal. The node's approval
        // rules go into the spec first (so resubmitting the same file compares equal).
        let spec = apply_rules(workflow.spec().clone(), rules);
        let workflow = Workflow::from_spec(spec)
            .map_err(|e| ControlError::Refused(format!("invalid workflow: {e}")))?;
        if let Some(r) = self
            .state
            .runs()
            .find(|r| !r.state().is_finished() && **r.workflow() == workflow)
        {
            return Ok((r.id(), true));
        }
        let run = RunId::from_ulid(ulid::Ulid::new());
        let ask = workflow.authority_ask();
        let event = if ask.is_empty() {
            Event::RunSubmitted {
                run,
                workflow: Arc::new(workflow),
            }
        } else {
            // A workflow with its own `[authority]` is the root of an agent tree from the
            // start: its authority (budgets included) is journaled with it, so its own
            // usage counts from its first attempt, not from its first spawn.
            Event::RunSpawned {
                run,
                workflow: Arc::new(workflow),
                spawn: Box::new(crate::model::Spawn {
                    parent: None,
                    attempt: 0,
                    key: String::new(),
                    input: None,
                    authority: self.shared.config.agents.narrow(&ask, &Default::default()),
                    reserved: Default::default(),
                    on_failure: Default::default(),
                    on_parent_exit: Default::default(),
                    parent_authority: None,
                    routing: None,
                    on_budget_exhausted: Default::default(),
                }),
            }
        };
        self.decide(event).map_err(to_control_error)?;
        Ok((run, false))
    }
}
