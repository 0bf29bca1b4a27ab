//! Hooks: which hooks a trigger makes due ([`due_hooks`]), what a hook reads on stdin
//! ([`payload`]), and how one attempt of a hook call ends ([`hook_end`]).
//!
//! A hook call is retried under [`hook_retry_policy`] (the hook's `max_attempts`, 1 s
//! initial interval, Temporal's default backoff). An attempt interrupted by a node stop does
//! not use up the budget: it is always tried again. A `veto` hook that exits non-zero has
//! *decided* (no retry): its task fails for good with [`Failure::Vetoed`]. A veto hook that
//! cannot decide (killed by a signal, timed out, could not start) is retried, and when its
//! budget is spent it fails its task the same way (fail closed).

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::model::event::{Event, Failure, HookCall};
use crate::model::ids::{RunId, TaskIndex};
use crate::model::resilience::{HookOn, HookSpec};
use crate::model::retry::{RetryPolicy, RetrySpec};
use crate::model::state::{HookRecord, HookState, Run, State};
use crate::model::task::TaskState;
use crate::model::time::Timestamp;

/// How one attempt of a hook call ended (what the runner saw).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookEnd {
    /// Exit status 0.
    Succeeded,
    /// It ended without success: the failure, and the last line of its output (for a
    /// veto's message).
    Failed {
        /// Why.
        failure: Failure,
        /// The last non-empty line the hook printed, if any.
        last_line: Option<String>,
    },
}

/// The retry policy of a hook: its `max_attempts`, 1 s initial interval, backoff 2.0, at
/// most 1 min between attempts, jitter 0.2.
pub fn hook_retry_policy(hook: &HookSpec) -> RetryPolicy {
    RetrySpec {
        max_attempts: Some(hook.max_attempts),
        initial_interval: Some(Duration::from_secs(1)),
        max_interval: Some(Duration::from_secs(60)),
        ..RetrySpec::default()
    }
    .resolve(None)
}

/// The events that close attempt `attempt` of hook call `id` (`record`, running): the
/// hook's own end, then — for a veto hook that failed for good — the `task_failed` of its
/// task (if that task is still ready and never started). `sample ∈ [0, 1)` is the jitter.
pub fn hook_end(
    state: &State,
    id: u64,
    record: &HookRecord,
    attempt: u32,
    end: HookEnd,
    now: Timestamp,
    sample: f64,
) -> Vec<Event> {
    if record.state != HookState::Running || record.attempts != attempt {
        return Vec::new();
    }
    let hook = &record.call.hook;
    let (failure, last_line) = match end {
        HookEnd::Succeeded => return vec![Event::HookSucceeded { id, attempt }],
        HookEnd::Failed { failure, last_line } => (failure, last_line),
    };
    let decided = hook.veto && matches!(failure, Failure::Exit { .. });
    let retry_at = if decided {
        None
    } else if failure == Failure::Interrupted {
        Some(now)
    } else {
        hook_retry_policy(hook).next_retry(attempt, now, sample)
    };
    let failure = if decided {
        veto_failure(hook, &failure, last_line.as_deref())
    } else {
        failure
    };
    let mut events = vec![Event::HookFailed {
        id,
        attempt,
        failure: failure.clone(),
        retry_at,
    }];
    if hook.veto && retry_at.is_none() {
        if let Some(e) = veto_task(state, &record.call, &failure, last_line.as_deref()) {
            events.push(e);
        }
    }
    events
}

fn veto_failure(hook: &HookSpec, failure: &Failure, last_line: Option<&str>) -> Failure {
    if let Failure::Vetoed { .. } = failure {
        return failure.clone();
    }
    let how = match failure {
        Failure::Exit { code } => format!("hook exited with status {code}"),
        other => format!("hook {other}"),
    };
    Failure::Vetoed {
        hook: hook.name.clone(),
        message: match last_line {
            Some(line) => format!("{how}: {line}"),
            None => how,
        },
    }
}

/// The `task_failed` (attempt 0) that a veto hook's final failure decides, if its task is
/// still ready and never started.
fn veto_task(
    state: &State,
    call: &HookCall,
    failure: &Failure,
    last_line: Option<&str>,
) -> Option<Event> {
    let run = state.run(call.run?)?;
    let task = call.task.as_ref()?;
    let i = run.workflow().task_index(task.as_str())?;
    let t = run.task(i);
    (t.state == TaskState::Ready && t.attempts == 0).then(|| Event::TaskFailed {
        run: run.id(),
        task: task.clone(),
        attempt: 0,
        failure: veto_failure(&call.hook, failure, last_line),
        usage: None,
    })
}

/// Whether task-level hook `hook` applies to task `task` of `run`.
pub fn hook_matches_task(hook: &HookSpec, run: &Run, task: TaskIndex) -> bool {
    hook.scope.matches(run.workflow().spec(), task as usize)
}

/// Whether run-level hook `hook` applies to `run`.
pub fn hook_matches_run(hook: &HookSpec, run: &Run) -> bool {
    hook.scope
        .workflow
        .as_deref()
        .is_none_or(|w| w == run.workflow().spec().name)
}

/// The hooks of `on` that apply (node hooks first, then the run's workflow's own), for a run
/// event (`task: None`) or a task event.
pub fn due_hooks<'a>(
    node: &'a [HookSpec],
    run: &'a Run,
    task: Option<TaskIndex>,
    on: HookOn,
) -> impl Iterator<Item = &'a HookSpec> + 'a {
    let own = run
        .workflow()
        .spec()
        .resilience
        .as_deref()
        .map(|r| r.hooks.as_slice())
        .unwrap_or(&[]);
    node.iter()
        .chain(own.iter())
        .filter(move |h| h.on == on)
        .filter(move |h| match task {
            Some(t) => hook_matches_task(h, run, t),
            None => hook_matches_run(h, run),
        })
}

/// What hook `hook` reads on stdin for an event about `run` (and `task`), as one JSON object:
/// `event`, `hook`, `time` (RFC 3339), `run`, `workflow`, and for task events `task`,
/// `state`, `attempts`, `labels`, `pool`, `failure` (`{kind, message}`, when it failed); for
/// `run_finished` the run's final `state`.
pub fn payload(hook: &HookSpec, run: &Run, task: Option<TaskIndex>, time: Timestamp) -> String {
    let wf = run.workflow();
    let mut m = Map::new();
    m.insert("event".into(), json!(hook.on.as_str()));
    m.insert("hook".into(), json!(hook.name));
    m.insert("time".into(), json!(time.to_string()));
    m.insert("run".into(), json!(run.id().to_string()));
    m.insert("workflow".into(), json!(wf.spec().name));
    if let Some((parent, _)) = run.parent() {
        m.insert("parent".into(), json!(parent.to_string()));
    }
    match task {
        Some(i) => {
            let t = run.task(i);
            m.insert("task".into(), json!(wf.task_id(i).as_str()));
            m.insert("state".into(), json!(t.state.as_str()));
            m.insert("attempts".into(), json!(t.attempts));
            m.insert("labels".into(), json!(wf.task(i).labels));
            m.insert("pool".into(), json!(wf.pool(i)));
            if let Some(f) = &t.last_failure {
                m.insert(
                    "failure".into(),
                    json!({"kind": f.kind(), "message": f.to_string()}),
                );
            }
        }
        None => {
            m.insert("state".into(), json!(run.state().as_str()));
            m.insert("tasks".into(), json!(run.tasks().len()));
        }
    }
    Value::Object(m).to_string()
}

/// What a session hook (`node_started`, `node_stopping`) reads on stdin: `event`, `hook`,
/// `time`, `node` (the node's id).
pub fn session_payload(hook: &HookSpec, node: &str, time: Timestamp) -> String {
    json!({
        "event": hook.on.as_str(),
        "hook": hook.name,
        "time": time.to_string(),
        "node": node,
    })
    .to_string()
}

/// The `hook_queued` of `hook` for an event about `run` (and `task`).
pub fn hook_queued(
    hook: &HookSpec,
    run: RunId,
    task: Option<(TaskIndex, &Run)>,
    payload: String,
) -> Event {
    Event::HookQueued {
        call: Box::new(HookCall {
            hook: hook.clone(),
            run: Some(run),
            task: task.map(|(i, r)| r.workflow().task_id(i).clone()),
            payload,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::resilience::HookFile;
    use crate::model::{parse_workflow, EventRecord};

    fn hook(text: &str) -> HookSpec {
        toml::from_str::<HookFile>(text)
            .unwrap()
            .resolve(0)
            .unwrap()
    }

    /// A run of `a` → `b` with `a` ready, and call 0 of `spec` about `a`, attempt 1 running.
    fn setup(spec: &HookSpec) -> (State, RunId, u64) {
        let wf = parse_workflow(
            "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n\
             [[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n",
        )
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
        let r = s.run(run).unwrap();
        let body = payload(spec, r, Some(0), Timestamp(1000));
        let queued = hook_queued(spec, run, Some((0, r)), body);
        s.apply(2, &rec(queued)).unwrap();
        s.apply(3, &rec(Event::HookStarted { id: 0, attempt: 1 }))
            .unwrap();
        (s, run, 0)
    }

    fn end(code: Option<i32>) -> HookEnd {
        HookEnd::Failed {
            failure: match code {
                Some(code) => Failure::Exit { code },
                None => Failure::Signal { signal: 9 },
            },
            last_line: Some("no deploys on Friday".into()),
        }
    }

    #[test]
    fn a_veto_that_says_no_fails_the_task_before_its_first_attempt() {
        let spec = hook("on = \"task_ready\"\nveto = true\nname = \"gate\"\nshell = \"exit 1\"");
        let (mut s, run, id) = setup(&spec);
        let record = s.hooks().calls[&id].clone();
        let events = hook_end(&s, id, &record, 1, end(Some(1)), Timestamp(2000), 0.0);
        let vetoed = Failure::Vetoed {
            hook: "gate".into(),
            message: "hook exited with status 1: no deploys on Friday".into(),
        };
        assert_eq!(
            events,
            vec![
                Event::HookFailed {
                    id,
                    attempt: 1,
                    failure: vetoed.clone(),
                    retry_at: None
                },
                Event::TaskFailed {
                    run,
                    task: "a".parse().unwrap(),
                    attempt: 0,
                    failure: vetoed,
                    usage: None
                }
            ]
        );
        for (i, e) in events.into_iter().enumerate() {
            let rec = EventRecord {
                time: Timestamp(2000),
                event: e,
            };
            s.apply(4 + i as u64, &rec).unwrap();
        }
        let r = s.run(run).unwrap();
        assert_eq!(r.task(0).state, TaskState::Failed);
        assert_eq!(r.task(0).attempts, 0);
        assert_eq!(r.task(1).state, TaskState::UpstreamFailed);
        assert_eq!(r.state(), crate::model::RunState::Failed);
        s.check_invariants().unwrap();
    }

    #[test]
    fn a_veto_that_crashes_is_retried_then_fails_closed() {
        let spec = hook(
            "on = \"task_ready\"\nveto = true\nname = \"gate\"\nshell = \"x\"\nmax_attempts = 2",
        );
        let (s, _, id) = setup(&spec);
        let record = s.hooks().calls[&id].clone();
        match &hook_end(&s, id, &record, 1, end(None), Timestamp(2000), 0.0)[..] {
            [Event::HookFailed {
                retry_at: Some(at),
                failure: Failure::Signal { signal: 9 },
                ..
            }] => assert_eq!(*at, Timestamp(3000), "1 s initial interval"),
            other => panic!("{other:?}"),
        }
        let mut last = record.clone();
        last.attempts = 2;
        let events = hook_end(&s, id, &last, 2, end(None), Timestamp(2000), 0.0);
        assert!(
            matches!(
                &events[..],
                [
                    Event::HookFailed { retry_at: None, .. },
                    Event::TaskFailed {
                        attempt: 0,
                        failure: Failure::Vetoed { .. },
                        ..
                    }
                ]
            ),
            "{events:?}"
        );
    }

    #[test]
    fn an_interrupted_call_always_runs_again_and_a_post_hook_never_fails_a_task() {
        let spec = hook("on = \"task_ready\"\nname = \"note\"\nshell = \"x\"\nmax_attempts = 1");
        let (s, _, id) = setup(&spec);
        let record = s.hooks().calls[&id].clone();
        let interrupted = HookEnd::Failed {
            failure: Failure::Interrupted,
            last_line: None,
        };
        assert_eq!(
            hook_end(&s, id, &record, 1, interrupted, Timestamp(2000), 0.0),
            vec![Event::HookFailed {
                id,
                attempt: 1,
                failure: Failure::Interrupted,
                retry_at: Some(Timestamp(2000))
            }]
        );
        // Not a veto: an exit is a failure of the hook only, final with max_attempts = 1.
        assert_eq!(
            hook_end(&s, id, &record, 1, end(Some(3)), Timestamp(2000), 0.0),
            vec![Event::HookFailed {
                id,
                attempt: 1,
                failure: Failure::Exit { code: 3 },
                retry_at: None
            }]
        );
        assert_eq!(
            hook_end(&s, id, &record, 1, HookEnd::Succeeded, Timestamp(2000), 0.0),
            vec![Event::HookSucceeded { id, attempt: 1 }]
        );
        // A stale end (another attempt) decides nothing.
        assert!(hook_end(&s, id, &record, 2, HookEnd::Succeeded, Timestamp(2000), 0.0).is_empty());
    }

    #[test]
    fn the_fold_refuses_a_veto_of_a_task_that_started() {
        let spec = hook("on = \"task_ready\"\nveto = true\nname = \"gate\"\nshell = \"x\"");
        let (mut s, run, _) = setup(&spec);
        let rec = |event| EventRecord {
            time: Timestamp(3000),
            event,
        };
        s.apply(
            4,
            &rec(Event::AttemptStarted {
                run,
                task: "a".parse().unwrap(),
                attempt: 1,
            }),
        )
        .unwrap();
        let veto = Event::TaskFailed {
            run,
            task: "a".parse().unwrap(),
            attempt: 0,
            failure: Failure::Vetoed {
                hook: "gate".into(),
                message: "no".into(),
            },
            usage: None,
        };
        assert!(s.apply(5, &rec(veto)).is_err());
    }
}
