//! How attempts end: the events that close a forward attempt (usage, output, end) or a
//! compensation attempt, and the attempts a replayed state says are running.

use std::time::Duration;

use crate::model::event::{Event, Failure, ResourceUsage};
use crate::model::ids::{RunId, TaskIndex};
use crate::model::run::RunState;
use crate::model::state::State;
use crate::model::task::{CompensationState, TaskState};
use crate::model::time::Timestamp;

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
/// [`crate::model::retry::RetryPolicy::delay`]) when the failure is retryable, the run is still
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
            let retryable = retryable && r.workflow().non_retryable(task, &failure).is_none();
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
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Handed {
    /// Its output as compact JSON text (already checked: one JSON value within
    /// `max_output`); `None`: it wrote none (`null`).
    pub output: Option<String>,
    /// Its final usage counters (empty: none reported).
    pub counters: crate::model::event::Counters,
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
    // Usage only grows (an in-process executor's negative figure would refund budgets).
    let mut handed = handed;
    handed.counters.retain(|_, v| v.is_finite() && *v >= 0.0);
    if !handed.counters.is_empty() {
        events.push(Event::AttemptUsage {
            run,
            task: id.clone(),
            attempt,
            counters: handed.counters,
        });
    }
    if let AttemptEnd::Succeeded { usage } = end {
        // Whatever executor produced it (an embedder's in-process one too), an output is one
        // JSON value within `max_output` before it is journaled.
        if let Some(message) = handed
            .output
            .as_deref()
            .and_then(|o| output_problem(o, wf.max_output(task)))
        {
            end = AttemptEnd::Failed {
                failure: Failure::OutputInvalid { message },
                retryable: true,
                usage,
            };
        } else if let Err(message) = fits_fan_outs(wf, task, handed.output.as_deref()) {
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

/// What is wrong with an output an executor handed back, if anything: more than `max`
/// bytes, or not one JSON value.
fn output_problem(output: &str, max: u64) -> Option<String> {
    if output.len() as u64 > max {
        return Some(format!(
            "the output is {} bytes, more than max_output ({max} bytes)",
            output.len()
        ));
    }
    serde_json::from_str::<serde::de::IgnoredAny>(output)
        .err()
        .map(|e| format!("the output is not one JSON value: {e}"))
}

/// Whether `output` (compact JSON; `None` = `null`) of task `source` fits every `for_each`
/// that names it; the message names the mapped task otherwise.
fn fits_fan_outs(
    wf: &crate::model::workflow::Workflow,
    source: TaskIndex,
    output: Option<&str>,
) -> Result<(), String> {
    let mut parsed: Option<serde_json::Value> = None;
    for m in wf.fan_outs_from(source) {
        let Some(expr) = wf
            .task(m)
            .for_each()
            .and_then(|f| crate::model::template::parse_for_each(f).ok())
        else {
            continue;
        };
        let value = parsed.get_or_insert_with(|| {
            output
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or(serde_json::Value::Null)
        });
        crate::model::template::fan_out_count(&expr, value, wf.max_fan_out(m))
            .map_err(|e| format!("for_each of task `{}`: {e}", wf.task_id(m)))?;
    }
    Ok(())
}

/// The event that closes compensation attempt `attempt` of saga step `task`, or `None` if
/// that compensation attempt is not running (already closed).
///
/// A failure becomes `compensation_failed` with `retry_at = now + backoff` under the task's
/// compensation retry policy ([`crate::model::workflow::Workflow::compensate_retry_policy`]) when it
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
