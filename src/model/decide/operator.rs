//! Operator commands on a run or a task (`cancel`, `suspend`, `resume`, `retry`): which
//! events they decide, shared by the scheduler and dry runs.

use crate::model::event::Event;
use crate::model::ids::{RunId, TaskId, TaskIndex};
use crate::model::run::RunState;
use crate::model::state::{ApplyError, State};
use crate::model::task::{CompensationState, TaskState};

/// An operator command on a run or one of its tasks (`troupe cancel|suspend|resume|retry
/// TARGET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// `run_cancelled` / `task_cancelled`.
    Cancel,
    /// `run_suspended` / `task_suspended`.
    Suspend,
    /// `run_resumed` / `task_resumed`.
    Resume,
    /// `task_retried` (or `compensation_retried` in a run that waits for a failed
    /// compensation); for a run, every failed or cancelled task (see [`retry_run`]).
    Retry,
}

impl Verb {
    /// The command's name on the command line: `cancel`, `suspend`, `resume`, `retry`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Cancel => "cancel",
            Verb::Suspend => "suspend",
            Verb::Resume => "resume",
            Verb::Retry => "retry",
        }
    }
}

/// Why an operator command decides nothing. Nothing was journaled.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// The fold refused an event (an unknown run or task is "not found"; anything else is
    /// not allowed in the current state). The control protocol maps it to `NotFound` or
    /// `Refused`.
    #[error(transparent)]
    Fold(#[from] ApplyError),
    /// Refused before any event was tried, with the reason (control protocol: `Refused`).
    #[error("{0}")]
    Refused(String),
}

/// The events an operator command decides, and the rule that applies them.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Every event must be accepted, in order; the first refusal refuses the command (events
    /// accepted before it are kept by the scheduler, as each is one command of its own).
    All(Vec<Event>),
    /// Each event is tried in order and a refused one is skipped; the command is refused
    /// only if every one is (with the last refusal), or if there are none. `retry RUN`: a
    /// task whose upstream is still failed is refused until that upstream was retried first.
    Each(Vec<Event>),
}

impl Decision {
    /// Applies the decision's events through `decide` (the scheduler's pipeline, or a fold on
    /// a copy of the state for a dry run) under its rule. `what` names the target for the
    /// message of an empty [`Decision::Each`].
    pub fn decide_with(
        self,
        what: &str,
        mut decide: impl FnMut(Event) -> Result<(), ApplyError>,
    ) -> Result<(), Refusal> {
        match self {
            Decision::All(events) => {
                for event in events {
                    decide(event)?;
                }
                Ok(())
            }
            Decision::Each(events) => {
                let mut accepted = 0;
                let mut last = None;
                for event in events {
                    match decide(event) {
                        Ok(()) => accepted += 1,
                        Err(e) => last = Some(e),
                    }
                }
                match (accepted, last) {
                    (0, Some(e)) => Err(Refusal::Fold(e)),
                    (0, None) => Err(Refusal::Refused(format!(
                        "{what} has no failed or cancelled task to retry"
                    ))),
                    _ => Ok(()),
                }
            }
        }
    }
}

/// What `troupe VERB RUN` (`task: None`) or `troupe VERB RUN/TASK` decides. Cancel, suspend
/// and resume are one event each, checked by the fold; retry is [`retry_task`] or
/// [`retry_run`].
pub fn operator(
    state: &State,
    verb: Verb,
    run: RunId,
    task: Option<&TaskId>,
) -> Result<Decision, Refusal> {
    let one = |e: Event| Ok(Decision::All(vec![e]));
    if let Some(instances) = task.and_then(|t| instances_of(state, run, t)) {
        if instances.is_empty() {
            return Err(Refusal::Refused(format!(
                "`{}` was expanded into no instances: there is nothing to {}",
                task.expect("a task"),
                verb.as_str()
            )));
        }
        // A mapped task once expanded: the command addresses each of its instances (a swarm
        // task: each of its replicas, and a cancel the swarm task itself last).
        let task = task.expect("a task");
        let swarm_cancel = verb == Verb::Cancel
            && state.run(run).is_some_and(|r| {
                r.workflow()
                    .task_index(task.as_str())
                    .is_some_and(|t| r.swarm_waiting(t))
            });
        let events = instances
            .into_iter()
            .chain(swarm_cancel.then(|| task.clone()))
            .filter_map(|task| match verb {
                Verb::Cancel => Some(Event::TaskCancelled { run, task }),
                Verb::Suspend => Some(Event::TaskSuspended { run, task }),
                Verb::Resume => Some(Event::TaskResumed { run, task }),
                Verb::Retry => retry_task(state, run, &task).ok(),
            })
            .collect();
        return Ok(Decision::Each(events));
    }
    match (verb, task.cloned()) {
        (Verb::Cancel, None) => one(Event::RunCancelled { run }),
        (Verb::Cancel, Some(task)) => one(Event::TaskCancelled { run, task }),
        (Verb::Suspend, None) => one(Event::RunSuspended { run }),
        (Verb::Suspend, Some(task)) => one(Event::TaskSuspended { run, task }),
        (Verb::Resume, None) => one(Event::RunResumed { run }),
        (Verb::Resume, Some(task)) => one(Event::TaskResumed { run, task }),
        (Verb::Retry, None) => retry_run(state, run),
        (Verb::Retry, Some(task)) => retry_task(state, run, &task).map(|e| Decision::All(vec![e])),
    }
}

/// The instances of `task` of `run` if it is a mapped task that was expanded (`TASK[0]`,
/// `TASK[1]`, ...): what an operator command naming the mapped task addresses.
pub fn instances_of(state: &State, run: RunId, task: &TaskId) -> Option<Vec<TaskId>> {
    let wf = state.run(run)?.workflow();
    let t = wf.task_index(task.as_str())?;
    match wf.task(t).expansion()? {
        crate::model::spec::Expansion::Mapped { count } => {
            Some((0..count).map(|i| TaskId::instance(task, i)).collect())
        }
        crate::model::spec::Expansion::Swarm { replicas } => {
            Some((0..replicas).map(|i| TaskId::instance(task, i)).collect())
        }
        crate::model::spec::Expansion::Instance { .. }
        | crate::model::spec::Expansion::Replica { .. } => None,
    }
}

/// The event `troupe retry RUN/TASK` decides: `compensation_retried` of the task's failed
/// compensation when the run waits for one (`compensation_failed`), else `task_retried`
/// (which the fold checks: only a failed or cancelled task whose upstream is not failed).
/// A compensation that already succeeded never runs again: refused.
pub fn retry_task(state: &State, run: RunId, task: &TaskId) -> Result<Event, Refusal> {
    let r = state.run(run).ok_or(ApplyError::UnknownRun(run))?;
    let t = r
        .workflow()
        .task_index(task.as_str())
        .ok_or_else(|| ApplyError::UnknownTask {
            run,
            task: task.clone(),
        })?;
    let comp = r.task(t).compensation.as_deref().map(|c| c.state);
    let task = task.clone();
    match (r.state(), comp) {
        (_, Some(CompensationState::Succeeded)) => Err(Refusal::Refused(format!(
            "the compensation of `{task}` already succeeded; it never runs again"
        ))),
        (RunState::CompensationFailed, Some(CompensationState::Failed)) => {
            Ok(Event::CompensationRetried { run, task })
        }
        (RunState::CompensationFailed, other) => {
            let what = other.map_or("none", CompensationState::as_str);
            Err(Refusal::Refused(format!(
                "run {run} waits for a failed compensation; `{task}`'s compensation is \
                 {what}, and only a failed one can be retried"
            )))
        }
        _ => Ok(Event::TaskRetried { run, task }),
    }
}

/// What `troupe retry RUN` decides: in a run that waits for failed compensations
/// (`compensation_failed`), `compensation_retried` of each ([`Decision::All`]); otherwise
/// `task_retried` of every failed or cancelled task, upstream first ([`Decision::Each`]: a
/// task the fold refuses is skipped).
pub fn retry_run(state: &State, run: RunId) -> Result<Decision, Refusal> {
    let r = state.run(run).ok_or(ApplyError::UnknownRun(run))?;
    let wf = r.workflow();
    if r.state() == RunState::CompensationFailed {
        let events = r
            .tasks()
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.compensation
                    .as_deref()
                    .is_some_and(|c| c.state == CompensationState::Failed)
            })
            .map(|(i, _)| Event::CompensationRetried {
                run,
                task: wf.task_id(i as TaskIndex).clone(),
            })
            .collect();
        return Ok(Decision::All(events));
    }
    let events = wf
        .plan()
        .topological_order()
        .iter()
        .copied()
        .filter(|&t| matches!(r.task(t).state, TaskState::Failed | TaskState::Cancelled))
        .map(|t| Event::TaskRetried {
            run,
            task: wf.task_id(t).clone(),
        })
        .collect();
    Ok(Decision::Each(events))
}
