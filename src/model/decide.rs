//! Pure decisions: which event the scheduler appends in a given situation.
//!
//! Each function reads the folded [`State`] and returns events; none reads a clock or draws
//! randomness itself (time and the jitter sample are arguments), so the same inputs always
//! give the same events. Whether an event is legal is the fold's call: the scheduler applies
//! every decided event to its state before journaling it, and a refused event is never
//! journaled.
//!
//! The operator commands on a run or a task ([`operator`]) are decided here too, so that the
//! scheduler (which journals them) and a dry run (which folds them into a copy of the state,
//! [`super::dry_run::command`]) choose the same events by the same rule.

use std::cmp::Ordering;
use std::time::Duration;

use super::event::{Event, Failure, ResourceUsage};
use super::ids::{RunId, TaskId, TaskIndex};
use super::run::RunState;
use super::state::{ApplyError, State};
use super::task::{CompensationState, TaskState};
use super::time::Timestamp;

/// How an attempt ended, reduced to what the decision needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnd {
    /// It succeeded.
    Succeeded {
        /// What its process used, if it was one.
        usage: Option<ResourceUsage>,
    },
    /// It failed; `retryable` is false when another attempt cannot help.
    Failed {
        /// Why.
        failure: Failure,
        /// Whether the retry policy applies at all.
        retryable: bool,
        /// What its process used, if it was one.
        usage: Option<ResourceUsage>,
    },
}

/// The event that closes attempt `attempt` of `task`, or `None` if the task is no longer
/// running that attempt (cancelled meanwhile, or already closed).
///
/// A failure becomes `attempt_failed` (with `retry_at = now + backoff`, see
/// [`super::retry::RetryPolicy::delay`]) when the failure is retryable, the run is still
/// `running` and the policy allows another attempt; otherwise `task_failed`.
/// `jitter_sample` is a uniform sample in `[0, 1)`.
pub fn attempt_end(
    state: &State,
    run: RunId,
    task: TaskIndex,
    attempt: u32,
    end: AttemptEnd,
    now: Timestamp,
    jitter_sample: f64,
) -> Option<Event> {
    let r = state.run(run)?;
    let t = r.task(task);
    if t.state != TaskState::Running || t.attempts != attempt {
        return None;
    }
    let id = r.workflow().task_id(task).clone();
    Some(match end {
        AttemptEnd::Succeeded { usage } => Event::TaskSucceeded {
            run,
            task: id,
            attempt,
            usage,
        },
        AttemptEnd::Failed {
            failure,
            retryable,
            usage,
        } => {
            let policy = r.workflow().retry_policy(task);
            let used = t.attempts - t.budget_base;
            if retryable && r.state() == RunState::Running && policy.allows_another(used) {
                let delay: Duration = policy.delay(used, jitter_sample);
                Event::AttemptFailed {
                    run,
                    task: id,
                    attempt,
                    failure,
                    usage,
                    retry_at: now.saturating_add(delay),
                }
            } else {
                Event::TaskFailed {
                    run,
                    task: id,
                    attempt,
                    failure,
                    usage,
                }
            }
        }
    })
}

/// What a forward attempt hands on besides how it ended (see [`attempt_close`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Handed {
    /// Its output as compact JSON text (already checked: one JSON value within
    /// `max_output`); `None`: it wrote none (`null`).
    pub output: Option<String>,
    /// Its final usage counters (empty: none reported).
    pub counters: super::event::Counters,
}

/// The events that close attempt `attempt` of `task`: its usage (`attempt_usage`), its output
/// (`task_output`, only on success) and the end ([`attempt_end`]), in that order, to be
/// journaled in one commit. Empty if the task no longer runs that attempt.
///
/// A success whose output does not fit a downstream `for_each` (not an array at that path, or
/// more elements than the mapped task's `max_fan_out`) fails the task for good
/// instead, with [`Failure::FanOutInvalid`] naming the downstream task: the same output
/// would fail again, and nothing downstream may see it.
#[allow(clippy::too_many_arguments)]
pub fn attempt_close(
    state: &State,
    run: RunId,
    task: TaskIndex,
    attempt: u32,
    mut end: AttemptEnd,
    handed: Handed,
    now: Timestamp,
    jitter_sample: f64,
) -> Vec<Event> {
    let Some(r) = state.run(run) else {
        return Vec::new();
    };
    let t = r.task(task);
    if t.state != TaskState::Running || t.attempts != attempt {
        return Vec::new();
    }
    let wf = r.workflow();
    let id = wf.task_id(task).clone();
    let mut events = Vec::new();
    if !handed.counters.is_empty() {
        events.push(Event::AttemptUsage {
            run,
            task: id.clone(),
            attempt,
            counters: handed.counters,
        });
    }
    if let AttemptEnd::Succeeded { usage } = end {
        if let Err(message) = fits_fan_outs(wf, task, handed.output.as_deref()) {
            end = AttemptEnd::Failed {
                failure: Failure::FanOutInvalid { message },
                retryable: false,
                usage,
            };
        } else if let Some(output) = handed.output {
            events.push(Event::TaskOutput {
                run,
                task: id,
                attempt,
                output,
            });
        }
    }
    events.extend(attempt_end(
        state,
        run,
        task,
        attempt,
        end,
        now,
        jitter_sample,
    ));
    events
}

/// Whether `output` (compact JSON; `None` = `null`) of task `source` fits every `for_each`
/// that names it; the message names the mapped task otherwise.
fn fits_fan_outs(
    wf: &super::workflow::Workflow,
    source: TaskIndex,
    output: Option<&str>,
) -> Result<(), String> {
    let mut parsed: Option<serde_json::Value> = None;
    for m in wf.fan_outs_from(source) {
        let Some(expr) = wf
            .task(m)
            .for_each()
            .and_then(|f| super::template::parse_for_each(f).ok())
        else {
            continue;
        };
        let value = parsed.get_or_insert_with(|| {
            output
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or(serde_json::Value::Null)
        });
        super::template::fan_out_count(&expr, value, wf.max_fan_out(m))
            .map_err(|e| format!("for_each of task `{}`: {e}", wf.task_id(m)))?;
    }
    Ok(())
}

/// The event that closes compensation attempt `attempt` of saga step `task`, or `None` if
/// that compensation attempt is not running (already closed).
///
/// A failure becomes `compensation_failed` with `retry_at = now + backoff` under the task's
/// compensation retry policy ([`super::workflow::Workflow::compensate_retry_policy`]) when it
/// is retryable and the budget allows; otherwise `compensation_failed` without `retry_at`
/// (the run becomes `compensation_failed` and waits for an operator).
pub fn compensation_end(
    state: &State,
    run: RunId,
    task: TaskIndex,
    attempt: u32,
    end: AttemptEnd,
    now: Timestamp,
    jitter_sample: f64,
) -> Option<Event> {
    let r = state.run(run)?;
    let c = r.task(task).compensation.as_deref()?;
    if c.state != CompensationState::Running || c.attempts != attempt {
        return None;
    }
    let id = r.workflow().task_id(task).clone();
    Some(match end {
        AttemptEnd::Succeeded { usage } => Event::CompensationSucceeded {
            run,
            task: id,
            attempt,
            usage,
        },
        AttemptEnd::Failed {
            failure,
            retryable,
            usage,
        } => {
            let policy = r.workflow().compensate_retry_policy(task);
            let used = c.attempts - c.budget_base;
            let retry_at = (retryable && policy.allows_another(used))
                .then(|| now.saturating_add(policy.delay(used, jitter_sample)));
            Event::CompensationFailed {
                run,
                task: id,
                attempt,
                failure,
                usage,
                retry_at,
            }
        }
    })
}

/// The compensation attempts the journal says are running (closed at boot like
/// [`running_attempts`]).
pub fn running_compensations(state: &State) -> Vec<(RunId, TaskIndex, u32)> {
    let mut out = Vec::new();
    for r in state.runs() {
        if !matches!(
            r.state(),
            RunState::Compensating | RunState::CompensationFailed
        ) {
            continue;
        }
        for (i, t) in r.tasks().iter().enumerate() {
            if let Some(c) = t.compensation.as_deref() {
                if c.state == CompensationState::Running {
                    out.push((r.id(), i as TaskIndex, c.attempts));
                }
            }
        }
    }
    out
}

/// The attempts the journal says are running: at boot these were interrupted by the node's
/// stop and must be closed (see [`attempt_end`] with [`Failure::Interrupted`]).
pub fn running_attempts(state: &State) -> Vec<(RunId, TaskIndex, u32)> {
    let mut out = Vec::new();
    for r in state.runs() {
        if r.count(TaskState::Running) == 0 {
            continue;
        }
        for (i, t) in r.tasks().iter().enumerate() {
            if t.state == TaskState::Running {
                out.push((r.id(), i as TaskIndex, t.attempts));
            }
        }
    }
    out
}

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
        // A mapped task once expanded: the command addresses each of its instances.
        let events = instances
            .into_iter()
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
        super::spec::Expansion::Mapped { count } => {
            Some((0..count).map(|i| TaskId::instance(task, i)).collect())
        }
        super::spec::Expansion::Instance { .. } => None,
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

/// Order of the ready queue: higher `priority` first, then the task that became ready
/// earlier (`age`, a counter the scheduler increments per enqueue), so equal priorities are
/// served first-in, first-out. There is no age boost: a steady stream of high-priority work
/// can starve lower priorities, as with Airflow's `priority_weight`; priorities are the
/// operator's statement of what matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueKey {
    /// Effective task priority.
    pub priority: i32,
    /// Enqueue counter (lower = earlier).
    pub age: u64,
}

impl Ord for QueueKey {
    /// "Greater" is served first (for a max-heap).
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.age.cmp(&self.age))
    }
}

impl PartialOrd for QueueKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{parse_workflow, EventRecord};

    fn setup(retry: &str) -> (State, RunId) {
        let wf = parse_workflow(&format!(
            "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nretry = {retry}\n"
        ))
        .unwrap();
        let run = RunId::from_u128(7);
        let mut s = State::new();
        let rec = |event| EventRecord {
            time: Timestamp(1000),
            event,
        };
        s.apply(
            1,
            &rec(Event::RunSubmitted {
                run,
                workflow: Arc::new(wf),
            }),
        )
        .unwrap();
        s.apply(
            2,
            &rec(Event::AttemptStarted {
                run,
                task: "a".parse().unwrap(),
                attempt: 1,
            }),
        )
        .unwrap();
        (s, run)
    }

    #[test]
    fn failure_with_budget_retries_after_backoff() {
        let (s, run) = setup("{ max_attempts = 3, initial_interval = \"2s\", jitter = 0.0 }");
        let fail = AttemptEnd::Failed {
            failure: Failure::Exit { code: 1 },
            retryable: true,
            usage: None,
        };
        match attempt_end(&s, run, 0, 1, fail, Timestamp(5000), 0.5) {
            Some(Event::AttemptFailed { retry_at, .. }) => assert_eq!(retry_at, Timestamp(7000)),
            other => panic!("expected attempt_failed, got {other:?}"),
        }
    }

    #[test]
    fn non_retryable_or_exhausted_fails_for_good() {
        let (s, run) = setup("{ max_attempts = 3 }");
        let spawn = AttemptEnd::Failed {
            failure: Failure::SpawnFailed {
                message: "x".into(),
            },
            retryable: false,
            usage: None,
        };
        assert!(matches!(
            attempt_end(&s, run, 0, 1, spawn, Timestamp(0), 0.0),
            Some(Event::TaskFailed { .. })
        ));
        let (s, run) = setup("{ max_attempts = 1 }");
        let fail = AttemptEnd::Failed {
            failure: Failure::TimedOut,
            retryable: true,
            usage: None,
        };
        assert!(matches!(
            attempt_end(&s, run, 0, 1, fail, Timestamp(0), 0.0),
            Some(Event::TaskFailed { .. })
        ));
    }

    #[test]
    fn stale_attempt_decides_nothing() {
        let (s, run) = setup("{ max_attempts = 3 }");
        assert_eq!(
            attempt_end(
                &s,
                run,
                0,
                2,
                AttemptEnd::Succeeded { usage: None },
                Timestamp(0),
                0.0
            ),
            None
        );
        assert_eq!(running_attempts(&s), vec![(run, 0, 1)]);
    }

    #[test]
    fn queue_key_orders_priority_then_age() {
        let hi = QueueKey {
            priority: 5,
            age: 9,
        };
        let lo_old = QueueKey {
            priority: 0,
            age: 1,
        };
        let lo_new = QueueKey {
            priority: 0,
            age: 2,
        };
        assert!(hi > lo_old);
        assert!(lo_old > lo_new);
    }
}
