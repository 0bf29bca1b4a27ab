//! Operator commands and submissions: one file per family; this file routes.
//!
//! # Layout
//! - [`run_control`]: cancel, suspend, resume, retry.
//! - [`node_control`]: halt, unhalt.
//! - [`approval`]: approve, reject, expiry, and feeding the approval gate.
//! - [`submit`]: a new run (or the unfinished run of the same workflow).

use std::sync::Arc;

use super::*;
use crate::messages::control::{Command as AdminCommand, ControlError, Target};
use crate::model::{ApplyError, CompensationState, Event, RunId, RunState, TaskIndex, TaskState};

pub(crate) mod approval;

pub(crate) mod submit;

pub(crate) fn to_control_error(e: ApplyError) -> ControlError {
    match e {
        ApplyError::UnknownRun(r) => ControlError::NotFound(format!("no run {r}")),
        ApplyError::UnknownTask { run, task } => {
            ControlError::NotFound(format!("run {run} has no task `{task}`"))
        }
        other => ControlError::Refused(other.to_string()),
    }
}

impl SchedulerState {
    pub(crate) fn command(
        &mut self,
        cmd: AdminCommand,
        stop_file: &std::path::Path,
    ) -> Result<(), ControlError> {
        if let AdminCommand::Approve { approver, .. } | AdminCommand::Reject { approver, .. } = &cmd
        {
            approver.check().map_err(ControlError::BadRequest)?;
        }
        let task_id =
            |s: &Self, run: RunId, t: &crate::model::TaskId| -> Result<TaskIndex, ControlError> {
                let r = s
                    .state
                    .run(run)
                    .ok_or_else(|| ControlError::NotFound(format!("no run {run}")))?;
                r.workflow()
                    .task_index(t.as_str())
                    .ok_or_else(|| ControlError::NotFound(format!("run {run} has no task `{t}`")))
            };
        match cmd {
            AdminCommand::Cancel(Target::Run(run)) => {
                self.decide(Event::RunCancelled { run })
                    .map_err(to_control_error)?;
                let r = self.state.run(run).expect("just applied");
                let kill =
                    self.running_where(|rr, t| rr == run && r.task(t).state != TaskState::Running);
                self.after_persist(Effect::Terminate(kill));
            }
            AdminCommand::Cancel(Target::Task(run, task)) => {
                let t = task_id(self, run, &task)?;
                self.decide(Event::TaskCancelled { run, task })
                    .map_err(to_control_error)?;
                let kill = self.running_where(|rr, tt| rr == run && tt == t);
                self.after_persist(Effect::Terminate(kill));
            }
            AdminCommand::Suspend(Target::Run(run)) => self
                .decide(Event::RunSuspended { run })
                .map_err(to_control_error)?,
            AdminCommand::Suspend(Target::Task(run, task)) => self
                .decide(Event::TaskSuspended { run, task })
                .map_err(to_control_error)?,
            AdminCommand::Resume(Target::Run(run)) => self
                .decide(Event::RunResumed { run })
                .map_err(to_control_error)?,
            AdminCommand::Resume(Target::Task(run, task)) => self
                .decide(Event::TaskResumed { run, task })
                .map_err(to_control_error)?,
            AdminCommand::Retry(Target::Task(run, task)) => {
                let t = task_id(self, run, &task)?;
                let r = self.state.run(run).expect("checked");
                let comp = r.task(t).compensation.as_deref().map(|c| c.state);
                let event = match (r.state(), comp) {
                    (_, Some(CompensationState::Succeeded)) => {
                        return Err(ControlError::Refused(format!(
                            "the compensation of `{task}` already succeeded; it never runs again"
                        )))
                    }
                    (RunState::CompensationFailed, Some(CompensationState::Failed)) => {
                        Event::CompensationRetried { run, task }
                    }
                    (RunState::CompensationFailed, other) => {
                        let what = other.map_or("none", CompensationState::as_str);
                        return Err(ControlError::Refused(format!(
                            "run {run} waits for a failed compensation; `{task}`'s compensation \
                             is {what}, and only a failed one can be retried"
                        )));
                    }
                    _ => Event::TaskRetried { run, task },
                };
                self.decide(event).map_err(to_control_error)?
            }
            AdminCommand::Retry(Target::Run(run)) => {
                let r = self
                    .state
                    .run(run)
                    .ok_or_else(|| ControlError::NotFound(format!("no run {run}")))?;
                if r.state() == RunState::CompensationFailed {
                    let failed: Vec<_> = r
                        .tasks()
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| {
                            t.compensation
                                .as_deref()
                                .is_some_and(|c| c.state == CompensationState::Failed)
                        })
                        .map(|(i, _)| r.workflow().task_id(i as TaskIndex).clone())
                        .collect();
                    for task in failed {
                        self.decide(Event::CompensationRetried { run, task })
                            .map_err(to_control_error)?;
                    }
                    return Ok(());
                }
                let wf = Arc::clone(r.workflow());
                let failed: Vec<TaskIndex> = wf
                    .plan()
                    .topological_order()
                    .iter()
                    .copied()
                    .filter(|&t| {
                        matches!(r.task(t).state, TaskState::Failed | TaskState::Cancelled)
                    })
                    .collect();
                let mut retried = 0;
                let mut last_err = None;
                for t in failed {
                    let task = wf.task_id(t).clone();
                    match self.decide(Event::TaskRetried { run, task }) {
                        Ok(()) => retried += 1,
                        Err(e) => last_err = Some(e),
                    }
                }
                if retried == 0 {
                    return Err(match last_err {
                        Some(e) => to_control_error(e),
                        None => ControlError::Refused(format!(
                            "run {run} has no failed or cancelled task to retry"
                        )),
                    });
                }
            }
            AdminCommand::Halt { kill } => {
                self.decide(Event::NodeHalted { kill })
                    .map_err(to_control_error)?;
                if kill {
                    let all = self.running_where(|_, _| true);
                    self.after_persist(Effect::Terminate(all));
                }
            }
            AdminCommand::Approve {
                run,
                task,
                approver,
            } => self
                .decide(Event::ApprovalGranted {
                    run,
                    task,
                    approver,
                })
                .map_err(to_control_error)?,
            AdminCommand::Reject {
                run,
                task,
                approver,
            } => self
                .decide(Event::ApprovalRejected {
                    run,
                    task,
                    approver,
                })
                .map_err(to_control_error)?,
            AdminCommand::Unhalt => {
                if stop_file.exists() {
                    return Err(ControlError::Refused(format!(
                        "{} exists; remove it first (it halts the node while present)",
                        stop_file.display()
                    )));
                }
                self.decide(Event::NodeUnhalted).map_err(to_control_error)?
            }
        }
        Ok(())
    }
}
