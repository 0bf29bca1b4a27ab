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
        // The same origin (the inbox's content hash of a file) returns the run it started,
        // whatever that run's state: resubmitting a file after a crash never runs it twice.
        if let Some(run) =
            (workflow.spec().origin.as_deref()).and_then(|o| self.state.run_by_origin(o))
        {
            return Ok((run, true));
        }
        // A decoded workflow has its structure checked but not every field: validate it
        // fully, as a file would be, before it can enter the journal. The node's approval
        // rules go into the spec first (so resubmitting the same file compares equal).
        let spec = self.node_settings(apply_rules(workflow.spec().clone(), rules))?;
        let workflow = Workflow::from_spec(spec)
            .map_err(|e| ControlError::Refused(format!("invalid workflow: {e}")))?;
        self.check_secrets(&workflow)?;
        // An unfinished run of an equal workflow is reused. Equality includes the origin, and
        // an origin the index does not hold belongs to no run: skip the scan of every run.
        if workflow.spec().origin.is_none() {
            if let Some(r) = self
                .state
                .runs()
                .find(|r| !r.state().is_finished() && **r.workflow() == workflow)
            {
                return Ok((r.id(), true));
            }
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

    /// Writes the node's retry policies into a spec about to be journaled (the approval rules
    /// go in through `apply_rules`, which its callers already hold).
    pub(crate) fn node_settings(
        &self,
        spec: crate::model::WorkflowSpec,
    ) -> Result<crate::model::WorkflowSpec, ControlError> {
        let policies = &self.shared.config.retry_policies;
        if policies.is_empty() && spec.tasks.iter().all(|t| t.retry_choice.is_none()) {
            return Ok(spec);
        }
        crate::config::apply_retry_policies(spec, policies)
            .map_err(|e| ControlError::Refused(format!("invalid workflow: {e}")))
    }

    /// Refuses a workflow naming a secret this node has no value for, if the task may run
    /// here: nothing is journaled, nothing starts. A task that only a remote worker node
    /// can run (it has `node_labels`, or `[cluster] run_local = false`) is checked by that
    /// worker when its attempt starts instead (the attempt then fails without retries).
    pub(crate) fn check_secrets(&self, workflow: &Workflow) -> Result<(), ControlError> {
        let config = &self.shared.config;
        let runs_here = config.cluster.as_ref().is_none_or(|c| c.run_local);
        for t in workflow.spec().tasks.iter() {
            if t.secret_env.is_empty() || !runs_here || !t.node_labels.is_empty() {
                continue;
            }
            if let Some(name) = config.secrets.missing(&t.secret_env).first() {
                return Err(ControlError::Refused(format!(
                    "task `{}`: secret `{name}` is not set on this node (give it in a \
                     [secrets] file of troupe.toml or in the node's environment)",
                    t.id
                )));
            }
        }
        Ok(())
    }
}
