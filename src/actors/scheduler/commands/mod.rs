//! Operator commands and submissions: one file per family; this file routes.
//!
//! # Layout
//! - [`run_control`]: cancel, suspend, resume.
//! - [`retry`]: retry a task, a run, or a failed compensation.
//! - [`node_control`]: halt, unhalt.
//! - [`approval`]: approve, reject, expiry, and feeding the approval gate.
//! - [`submit`]: a new run (or the unfinished run of the same workflow).
//! - [`retention`]: `gc`: finished runs older than a cutoff removed, events and logs.

use super::*;
use crate::messages::control::{Command as AdminCommand, ControlError, Target};
use crate::model::decide;
use crate::model::{ApplyError, RunId, TaskId, TaskIndex};

pub(crate) mod approval;
pub(crate) mod node_control;
pub(crate) mod retention;
pub(crate) mod retry;
pub(crate) mod run_control;
pub(crate) mod submit;

/// A refusal of the fold as the control protocol's error (unknown run or task: not found).
pub(crate) fn to_control_error(e: ApplyError) -> ControlError {
    e.into()
}

/// The verb, run and task of a task command whose task is an expanded mapped task.
fn mapped_target(
    state: &crate::model::State,
    cmd: &AdminCommand,
) -> Option<(decide::Verb, RunId, TaskId)> {
    let (verb, target) = match cmd {
        AdminCommand::Cancel(t) => (decide::Verb::Cancel, t),
        AdminCommand::Suspend(t) => (decide::Verb::Suspend, t),
        AdminCommand::Resume(t) => (decide::Verb::Resume, t),
        AdminCommand::Retry(t) => (decide::Verb::Retry, t),
        _ => return None,
    };
    let Target::Task(run, task) = target else {
        return None;
    };
    decide::instances_of(state, *run, task)?;
    Some((verb, *run, task.clone()))
}

impl SchedulerState {
    /// Decides an operator command (its effects run once it is durable).
    pub(crate) fn command(
        &mut self,
        cmd: AdminCommand,
        stop_file: &std::path::Path,
    ) -> Result<(), ControlError> {
        if let Some((verb, run, task)) = mapped_target(&self.state, &cmd) {
            return self.command_instances(verb, run, task);
        }
        match cmd {
            AdminCommand::Cancel(Target::Run(run)) => self.cancel_run(run),
            AdminCommand::Cancel(Target::Task(run, task)) => self.cancel_task(run, task),
            AdminCommand::Suspend(target) => self.suspend(target),
            AdminCommand::Resume(target) => self.resume(target),
            AdminCommand::Retry(Target::Task(run, task)) => self.retry_task(run, task),
            AdminCommand::Retry(Target::Run(run)) => self.retry_run(run),
            AdminCommand::Halt { kill } => self.halt(kill),
            AdminCommand::Unhalt => self.unhalt(stop_file),
            AdminCommand::Drain { node } => self.drain_node(&node),
            AdminCommand::Escalation {
                run,
                approved,
                approver,
                extend,
            } => self.decide_escalation(run, approved, approver, extend),
            AdminCommand::Approve {
                run,
                task,
                approver,
            } => self.approve(run, task, approver, true),
            AdminCommand::Reject {
                run,
                task,
                approver,
            } => self.approve(run, task, approver, false),
            AdminCommand::ResetBreaker { breaker, os_user } => {
                self.reset_breaker(&breaker, &os_user)
            }
        }
    }

    /// `cancel|suspend|resume|retry RUN/TASK` of an expanded mapped task: each of its
    /// instances (one refused, e.g. already finished, is skipped); cancelled running
    /// instances are terminated once that is durable.
    fn command_instances(
        &mut self,
        verb: decide::Verb,
        run: RunId,
        task: TaskId,
    ) -> Result<(), ControlError> {
        let decision = decide::operator(&self.state, verb, run, Some(&task))?;
        decision.decide_with(&format!("the instances of `{task}`"), |e| self.decide(e))?;
        if verb == decide::Verb::Cancel {
            let r = self.state.run(run).expect("just applied");
            let kill = self.running_where(|rr, t| {
                rr == run
                    && r.task(t).state != crate::model::TaskState::Running
                    && r.workflow()
                        .task_id(t)
                        .split_instance()
                        .is_some_and(|(base, _)| base == task.as_str())
            });
            self.after_persist(Effect::Terminate(kill));
        }
        Ok(())
    }

    /// The index of task `task` of run `run`, or not found.
    pub(crate) fn task_index(&self, run: RunId, task: &TaskId) -> Result<TaskIndex, ControlError> {
        let r = self
            .state
            .run(run)
            .ok_or_else(|| ControlError::NotFound(format!("no run {run}")))?;
        r.workflow()
            .task_index(task.as_str())
            .ok_or_else(|| ControlError::NotFound(format!("run {run} has no task `{task}`")))
    }
}
