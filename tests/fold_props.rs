//! Property tests of the fold.
//!
//! Random workflows (DAGs with approvals, saga steps and retry budgets) and random walks
//! through the events that are legal at each step, mixed with random events that may not be:
//! - every legal event is accepted, and every state `apply` reaches passes
//!   `State::check_invariants`;
//! - a refused event leaves the state exactly as it was;
//! - replay from a snapshot at any k (through the real snapshot codec) plus the tail equals
//!   the fold of all events.

use std::sync::Arc;

use proptest::prelude::*;
use troupe::model::{
    parse_workflow, Approver, CompensationState, Event, EventRecord, Failure, RunId, RunState,
    State, TaskIndex, TaskState, Timestamp, Workflow,
};
use troupe::storage::codec::{decode_snapshot, encode_snapshot};

#[derive(Debug, Clone)]
struct Shape {
    deps: Vec<u8>,
    approval: Vec<bool>,
    compensate: Vec<bool>,
    attempts: Vec<u8>,
    /// A task with dependencies fans out over its first dependency's output (unless that
    /// one is mapped too).
    mapped: Vec<bool>,
}

fn shape() -> impl Strategy<Value = Shape> {
    (1usize..=6).prop_flat_map(|n| {
        (
            proptest::collection::vec(any::<u8>(), n),
            proptest::collection::vec(proptest::bool::weighted(0.25), n),
            proptest::collection::vec(proptest::bool::weighted(0.3), n),
            proptest::collection::vec(1u8..=3, n),
            proptest::collection::vec(proptest::bool::weighted(0.3), n),
        )
            .prop_map(|(deps, approval, compensate, attempts, mapped)| Shape {
                deps,
                approval,
                compensate,
                attempts,
                mapped,
            })
    })
}

fn workflow(s: &Shape) -> Arc<Workflow> {
    let mut text = String::from("name = \"prop\"\n");
    let mut mapped = vec![false; s.deps.len()];
    for i in 0..s.deps.len() {
        text.push_str(&format!(
            "[[task]]\nid = \"t{i}\"\ncommand = [\"true\"]\nretry = {{ max_attempts = {} }}\n",
            s.attempts[i]
        ));
        let deps: Vec<String> = (0..i)
            .filter(|j| s.deps[i] & (1 << (j % 8)) != 0)
            .map(|j| format!("\"t{j}\""))
            .collect();
        if !deps.is_empty() {
            text.push_str(&format!("depends_on = [{}]\n", deps.join(", ")));
        }
        let first = (0..i).find(|j| s.deps[i] & (1 << (j % 8)) != 0);
        if let Some(j) = first.filter(|&j| s.mapped[i] && !mapped[j]) {
            mapped[i] = true;
            text.push_str(&format!("for_each = \"{{{{ tasks.t{j}.output }}}}\"\n"));
        }
        if s.approval[i] {
            text.push_str("requires_approval = true\n");
        }
        if s.compensate[i] {
            text.push_str("compensate = [\"undo\"]\n");
        }
    }
    Arc::new(parse_workflow(&text).unwrap())
}

fn approver() -> Approver {
    Approver {
        name: "prop".into(),
        os_user: "root".into(),
        reason: None,
    }
}

/// The authority of spawned runs in walks: a small token budget, so usage can exceed it.
fn authority() -> troupe::model::authority::Authority {
    let mut a = troupe::model::authority::Authority::default();
    a.budget.insert("tokens".into(), 10.0);
    a
}

/// Every event that is legal in `state`, given the runs submitted so far.
fn legal(state: &State, wfs: &[Arc<Workflow>], submitted: usize, time: Timestamp) -> Vec<Event> {
    let mut out = Vec::new();
    if submitted < wfs.len() {
        out.push(Event::RunSubmitted {
            run: RunId::from_u128(100 + submitted as u128),
            workflow: wfs[submitted].clone(),
        });
    }
    if state.is_halted() {
        out.push(Event::NodeUnhalted);
    } else {
        out.push(Event::NodeHalted { kill: false });
    }
    cluster_events(state, &mut out);
    resilience_events(state, &mut out);
    for run in state.runs() {
        let id = run.id();
        let wf = run.workflow();
        let rs = run.state();
        if rs == RunState::Running {
            out.push(Event::RunCancelled { run: id });
            if let Some(l) = run.lineage() {
                out.push(Event::BudgetExhausted {
                    run: id,
                    counter: "tokens".into(),
                    used: 12.0,
                    limit: 10.0,
                });
                if l.asking.is_none() {
                    out.push(Event::EscalationRequested {
                        run: id,
                        counter: "tokens".into(),
                        used: 12.0,
                        limit: 10.0,
                    });
                }
            }
            out.push(if run.is_suspended() {
                Event::RunResumed { run: id }
            } else {
                Event::RunSuspended { run: id }
            });
        }
        if run.lineage().is_some_and(|l| l.asking.is_some()) {
            for approved in [true, false] {
                out.push(Event::EscalationDecided {
                    run: id,
                    approved,
                    approver: approver(),
                    extend: [("tokens".to_owned(), 5.0)].into_iter().collect(),
                });
            }
        }
        for (i, t) in run.tasks().iter().enumerate() {
            let ti = i as TaskIndex;
            let task = wf.task_id(ti).clone();
            let running_run = rs == RunState::Running;
            match t.state {
                TaskState::Ready | TaskState::Retrying if running_run && !state.is_halted() => out
                    .push(Event::AttemptStarted {
                        run: id,
                        task: task.clone(),
                        attempt: t.attempts + 1,
                    }),
                TaskState::Running => {
                    let attempt = t.attempts;
                    // A child of this attempt (agents): its id is derived from the key, so
                    // number the keys by the children the run has.
                    let n = run.lineage().map_or(0, |l| l.children.len());
                    let key = format!("k{n}");
                    out.push(Event::RunSpawned {
                        run: troupe::model::decide::child_id(id, task.as_str(), &key),
                        workflow: wfs[n % wfs.len()].clone(),
                        spawn: Box::new(troupe::model::Spawn {
                            parent: Some((id, task.clone())),
                            attempt,
                            key: key.clone(),
                            input: (n % 2 == 0).then(|| "{\"n\":1}".to_owned()),
                            authority: authority(),
                            reserved: Default::default(),
                            on_failure: if n % 3 == 0 {
                                troupe::model::OnFailure::Ask
                            } else {
                                Default::default()
                            },
                            on_parent_exit: Default::default(),
                            parent_authority: run.lineage().is_none().then(authority),
                            routing: None,
                            on_budget_exhausted: if n % 2 == 0 {
                                troupe::model::OnBudgetExhausted::Ask
                            } else {
                                Default::default()
                            },
                        }),
                    });
                    out.push(Event::SpawnRefused {
                        parent: Some(id),
                        task: Some(task.clone()),
                        key,
                        reason: "depth".into(),
                        message: "too deep".into(),
                    });
                    out.push(Event::TaskOutput {
                        run: id,
                        task: task.clone(),
                        attempt,
                        output: "[1,2]".into(),
                    });
                    out.push(Event::AttemptUsage {
                        run: id,
                        task: task.clone(),
                        attempt,
                        counters: [("tokens".to_owned(), 2.0)].into_iter().collect(),
                    });
                    out.push(Event::TaskSucceeded {
                        run: id,
                        task: task.clone(),
                        attempt,
                        usage: None,
                    });
                    out.push(Event::TaskFailed {
                        run: id,
                        task: task.clone(),
                        attempt,
                        failure: Failure::Exit { code: 1 },
                        usage: None,
                    });
                    out.push(Event::TaskCancelled {
                        run: id,
                        task: task.clone(),
                    });
                    if running_run
                        && wf
                            .retry_policy(ti)
                            .allows_another(t.attempts - t.budget_base)
                    {
                        out.push(Event::AttemptFailed {
                            run: id,
                            task: task.clone(),
                            attempt,
                            failure: Failure::TimedOut,
                            usage: None,
                            retry_at: Timestamp(time.0 + 1_000),
                        });
                    }
                }
                TaskState::AwaitingApproval if running_run => {
                    out.push(Event::ApprovalGranted {
                        run: id,
                        task: task.clone(),
                        approver: approver(),
                    });
                    out.push(Event::ApprovalRejected {
                        run: id,
                        task: task.clone(),
                        approver: approver(),
                    });
                    out.push(Event::ApprovalExpired {
                        run: id,
                        task: task.clone(),
                    });
                }
                TaskState::Failed | TaskState::Cancelled
                    if matches!(rs, RunState::Running | RunState::Failed)
                        && !wf
                            .plan()
                            .upstream(ti)
                            .any(|u| run.task(u).state.blocks_dependents()) =>
                {
                    out.push(Event::TaskRetried {
                        run: id,
                        task: task.clone(),
                    })
                }
                _ => {}
            }
            if running_run && run.awaits_expansion(ti) {
                // Offered often: an expansion is due only briefly in a random walk.
                for count in [0, 2, 2, 2, 1, 3] {
                    out.push(Event::TaskExpanded {
                        run: id,
                        task: task.clone(),
                        count,
                    });
                }
            }
            if running_run && t.state.is_waiting() {
                out.push(Event::TaskCancelled {
                    run: id,
                    task: task.clone(),
                });
                if t.state != TaskState::Suspended {
                    out.push(Event::TaskSuspended {
                        run: id,
                        task: task.clone(),
                    });
                }
            }
            if running_run && t.suspended && !run.is_suspended() {
                out.push(Event::TaskResumed {
                    run: id,
                    task: task.clone(),
                });
            }
        }
        if let Some(c) = run.current_compensation() {
            let task = wf.task_id(c).clone();
            let comp = run.task(c).compensation.as_ref().unwrap();
            match comp.state {
                CompensationState::Pending | CompensationState::Retrying
                    if rs == RunState::Compensating && run.count(TaskState::Running) == 0 =>
                {
                    out.push(Event::CompensationStarted {
                        run: id,
                        task,
                        attempt: comp.attempts + 1,
                    })
                }
                CompensationState::Running => {
                    out.push(Event::CompensationSucceeded {
                        run: id,
                        task: task.clone(),
                        attempt: comp.attempts,
                        usage: None,
                    });
                    // A retry is legal only while the compensation's retry budget lasts.
                    let mut ends = Vec::new();
                    if wf
                        .compensate_retry_policy(c)
                        .allows_another(comp.attempts - comp.budget_base)
                    {
                        ends.push(Some(Timestamp(time.0 + 500)));
                    }
                    ends.push(None);
                    for retry_at in ends {
                        out.push(Event::CompensationFailed {
                            run: id,
                            task: task.clone(),
                            attempt: comp.attempts,
                            failure: Failure::Exit { code: 3 },
                            usage: None,
                            retry_at,
                        });
                    }
                }
                CompensationState::Failed => out.push(Event::CompensationRetried { run: id, task }),
                _ => {}
            }
        }
    }
    out
}

/// The cluster's legal events: a node without a lease joins under the next epoch; a live one
/// is lost, leaves or drains; a running task's attempt is placed on a live node; refusals and
/// rejected results are always legal (audit records).
fn cluster_events(state: &State, out: &mut Vec<Event>) {
    let c = state.cluster();
    let mut live = None;
    for name in ["n0", "n1"] {
        match c.node(name).filter(|n| n.state.is_live()) {
            None => out.push(Event::NodeJoined {
                node: name.into(),
                epoch: c.last_epoch() + 1,
                addr: "10.0.0.9".into(),
                slots: 2,
                labels: vec!["gpu".into()],
            }),
            Some(n) => {
                out.push(Event::NodeLost {
                    node: name.into(),
                    epoch: n.epoch,
                    reason: "silent".into(),
                });
                out.push(Event::NodeLeft {
                    node: name.into(),
                    epoch: n.epoch,
                });
                out.push(Event::NodeDraining { node: name.into() });
                live = Some((name, n.epoch));
            }
        }
    }
    out.push(Event::JoinRefused {
        node: "intruder".into(),
        addr: "10.0.0.66".into(),
        reason: "unknown join token".into(),
    });
    for run in state.runs() {
        for (i, t) in run.tasks().iter().enumerate() {
            if t.state != TaskState::Running {
                continue;
            }
            let task = run.workflow().task_id(i as u32).clone();
            if let Some((node, epoch)) = live {
                out.push(Event::AttemptPlaced {
                    run: run.id(),
                    task: task.clone(),
                    attempt: t.attempts,
                    node: node.into(),
                    epoch,
                });
            }
            out.push(Event::ResultRejected {
                run: run.id(),
                task,
                attempt: t.attempts,
                node: "n0".into(),
                epoch: 0,
                outcome: "succeeded".into(),
                reason: "lease 0 is over".into(),
            });
        }
    }
}

/// Breakers and hooks: a breaker opens, half-opens, closes; a veto hook call is queued for
/// a ready task that never started (and a session hook call), each unfinished call starts,
/// succeeds or fails (retrying or for good), and a running veto call may fail its task.
fn resilience_events(state: &State, out: &mut Vec<Event>) {
    use troupe::model::resilience::{HookOn, HookSpec, Scope};
    use troupe::model::state::{BreakerState, HookState};
    let b = state.breakers().get("b");
    out.push(Event::BreakerOpened {
        breaker: "b".into(),
        until: Timestamp(5_000),
        reason: "2 of the last 2 attempts failed".into(),
    });
    if b.is_some_and(|b| matches!(b.state, BreakerState::Open { .. })) {
        out.push(Event::BreakerHalfOpened {
            breaker: "b".into(),
        });
    }
    if b.is_some_and(|b| b.state != BreakerState::Closed) {
        out.push(Event::BreakerClosed {
            breaker: "b".into(),
            reason: "reset".into(),
        });
    }
    let hook = |on, veto| HookSpec {
        name: "h".into(),
        on,
        scope: Scope::default(),
        command: troupe::model::Command::Shell("true".into()),
        timeout: std::time::Duration::from_secs(1),
        max_attempts: 2,
        veto,
    };
    let queued = |hook: HookSpec, run, task| Event::HookQueued {
        call: Box::new(troupe::model::HookCall {
            hook,
            run,
            task,
            payload: "{}".into(),
        }),
    };
    out.push(queued(hook(HookOn::NodeStarted, false), None, None));
    for run in state.runs().filter(|r| r.state() == RunState::Running) {
        for (i, t) in run.tasks().iter().enumerate() {
            if t.state == TaskState::Ready && t.attempts == 0 {
                let task = run.workflow().task_id(i as TaskIndex).clone();
                out.push(queued(
                    hook(HookOn::TaskReady, true),
                    Some(run.id()),
                    Some(task),
                ));
            }
        }
    }
    for (id, c) in state.hooks().pending() {
        match c.state {
            HookState::Queued | HookState::Retrying { .. } => out.push(Event::HookStarted {
                id,
                attempt: c.attempts + 1,
            }),
            HookState::Running => {
                let attempt = c.attempts;
                out.push(Event::HookSucceeded { id, attempt });
                for retry_at in [Some(Timestamp(9_000)), None] {
                    out.push(Event::HookFailed {
                        id,
                        attempt,
                        failure: Failure::TimedOut,
                        retry_at,
                    });
                }
                let (Some(run), Some(task)) = (c.call.run, c.call.task.clone()) else {
                    continue;
                };
                let ready = state.run(run).is_some_and(|r| {
                    r.state() == RunState::Running
                        && r.workflow().task_index(task.as_str()).is_some_and(|i| {
                            let t = r.task(i);
                            t.state == TaskState::Ready && t.attempts == 0
                        })
                });
                if c.call.hook.veto && ready {
                    out.push(Event::TaskFailed {
                        run,
                        task,
                        attempt: 0,
                        failure: Failure::Vetoed {
                            hook: "h".into(),
                            message: "hook exited with status 1".into(),
                        },
                        usage: None,
                    });
                }
            }
            _ => {}
        }
    }
}

/// An event chosen with no regard for legality (it may still happen to be legal): an
/// existing run or an unknown one, any task of any workflow, any attempt number.
fn noise(choice: u32, state: &State, wfs: &[Arc<Workflow>], time: Timestamp) -> Event {
    let runs: Vec<RunId> = state.runs().map(|r| r.id()).collect();
    let run = runs
        .get((choice % 4) as usize)
        .copied()
        .unwrap_or(RunId::from_u128(999));
    let wf = &wfs[(choice as usize / 4) % wfs.len()];
    let task = wf.task_id((choice / 16) % wf.len() as u32).clone();
    let attempt = (choice / 128) % 4;
    match (choice / 512) % 16 {
        0 => Event::AttemptStarted { run, task, attempt },
        1 => Event::TaskSucceeded {
            run,
            task,
            attempt,
            usage: None,
        },
        2 => Event::AttemptFailed {
            run,
            task,
            attempt,
            failure: Failure::Interrupted,
            usage: None,
            retry_at: time,
        },
        3 => Event::TaskFailed {
            run,
            task,
            attempt,
            failure: Failure::TimedOut,
            usage: None,
        },
        4 => Event::TaskCancelled { run, task },
        5 => Event::TaskSuspended { run, task },
        6 => Event::TaskResumed { run, task },
        7 => Event::TaskRetried { run, task },
        8 => Event::ApprovalGranted {
            run,
            task,
            approver: approver(),
        },
        9 => Event::CompensationStarted { run, task, attempt },
        10 => Event::CompensationSucceeded {
            run,
            task,
            attempt,
            usage: None,
        },
        11 => Event::CompensationRetried { run, task },
        12 => Event::RunResumed { run },
        13 => Event::TaskExpanded {
            run,
            task,
            count: attempt,
        },
        14 => Event::TaskOutput {
            run,
            task,
            attempt,
            output: "null".into(),
        },
        _ => Event::RunSubmitted {
            run,
            workflow: wf.clone(),
        },
    }
}

/// Walks `choices` through the legal events (and, for choices with the top bit set, noise),
/// checking the per-step properties. Returns the applied records.
fn walk(
    wfs: &[Arc<Workflow>],
    choices: &[u32],
) -> Result<(State, Vec<EventRecord>), TestCaseError> {
    let mut state = State::new();
    let mut log = Vec::new();
    let mut submitted = 0usize;
    for (step, &choice) in choices.iter().enumerate() {
        let time = Timestamp(step as u64 * 1_000);
        let (event, must_accept) = if choice & 0x8000_0000 != 0 {
            (noise(choice & 0x7fff_ffff, &state, wfs, time), false)
        } else {
            let legal = legal(&state, wfs, submitted, time);
            (legal[choice as usize % legal.len()].clone(), true)
        };
        let record = EventRecord { time, event };
        let before = state.clone();
        let seq = log.len() as u64 + 1;
        match state.apply(seq, &record) {
            Ok(()) => {
                if let Event::RunSubmitted { .. } = record.event {
                    submitted += 1;
                }
                log.push(record);
                if let Err(e) = state.check_invariants() {
                    return Err(TestCaseError::fail(format!(
                        "after {} (step {step}): {e}",
                        log.last().unwrap().event.type_name()
                    )));
                }
            }
            Err(e) => {
                prop_assert!(
                    !must_accept,
                    "legal {} refused: {e}",
                    record.event.type_name()
                );
                prop_assert_eq!(&state, &before, "a refused event changed the state");
            }
        }
    }
    Ok((state, log))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn reachable_states_are_legal_and_snapshots_replay_exactly(
        shapes in proptest::collection::vec(shape(), 1..=3),
        choices in proptest::collection::vec(any::<u32>(), 0..160),
        cut in any::<prop::sample::Index>(),
    ) {
        let wfs: Vec<_> = shapes.iter().map(workflow).collect();
        let (full, log) = walk(&wfs, &choices)?;
        // Replay everything from scratch gives the same state.
        let mut again = State::new();
        for (i, rec) in log.iter().enumerate() {
            again.apply(i as u64 + 1, rec).unwrap();
        }
        prop_assert_eq!(&again, &full);
        // Snapshot at k (through the real codec) + the tail gives the same state.
        let k = if log.is_empty() { 0 } else { cut.index(log.len() + 1) };
        let mut at_k = State::new();
        for (i, rec) in log[..k].iter().enumerate() {
            at_k.apply(i as u64 + 1, rec).unwrap();
        }
        let bytes = encode_snapshot(&at_k).unwrap();
        let mut restored = decode_snapshot(k as u64, &bytes).unwrap();
        prop_assert_eq!(&restored, &at_k);
        for (i, rec) in log[k..].iter().enumerate() {
            restored.apply((k + i) as u64 + 1, rec).unwrap();
        }
        prop_assert_eq!(&restored, &full);
        // Applying an event twice (same seq) is refused: nothing is applied twice.
        if let Some(last) = log.last() {
            let mut twice = full.clone();
            prop_assert!(twice.apply(log.len() as u64, last).is_err());
            prop_assert_eq!(&twice, &full);
        }
    }
}

/// Applies `event` as the next one: sequence number and time one past the last.
fn step(state: &mut State, event: Event) -> Result<(), troupe::model::ApplyError> {
    let seq = state.last_seq() + 1;
    state.apply(
        seq,
        &EventRecord {
            time: Timestamp(seq),
            event,
        },
    )
}

#[test]
fn saga_compensates_in_reverse_completion_order() {
    let wf = Arc::new(
        parse_workflow(
            "name = \"s\"\n\
             [[task]]\nid = \"a\"\ncommand = [\"x\"]\ncompensate = [\"undo-a\"]\n\
             [[task]]\nid = \"b\"\ncommand = [\"x\"]\ndepends_on = [\"a\"]\n\
             [[task]]\nid = \"c\"\ncommand = [\"x\"]\ndepends_on = [\"b\"]\ncompensate = [\"undo-c\"]\n\
             [[task]]\nid = \"d\"\ncommand = [\"x\"]\ndepends_on = [\"c\"]\nretry = { max_attempts = 1 }\n",
        )
        .unwrap(),
    );
    let run = RunId::from_u128(9);
    let mut s = State::new();
    let apply = |s: &mut State, event: Event| step(s, event).unwrap();
    apply(
        &mut s,
        Event::RunSubmitted {
            run,
            workflow: wf.clone(),
        },
    );
    for t in ["a", "b", "c", "d"] {
        let task = troupe::model::TaskId::new(t).unwrap();
        apply(
            &mut s,
            Event::AttemptStarted {
                run,
                task: task.clone(),
                attempt: 1,
            },
        );
        if t == "d" {
            apply(
                &mut s,
                Event::TaskFailed {
                    run,
                    task,
                    attempt: 1,
                    failure: Failure::Exit { code: 1 },
                    usage: None,
                },
            );
        } else {
            apply(
                &mut s,
                Event::TaskSucceeded {
                    run,
                    task,
                    attempt: 1,
                    usage: None,
                },
            );
        }
    }
    let r = s.run(run).unwrap();
    assert_eq!(r.state(), RunState::Compensating);
    assert_eq!(
        r.current_compensation(),
        Some(2),
        "c (newest completion with compensate) first"
    );
    let c = troupe::model::TaskId::new("c").unwrap();
    apply(
        &mut s,
        Event::CompensationStarted {
            run,
            task: c.clone(),
            attempt: 1,
        },
    );
    apply(
        &mut s,
        Event::CompensationSucceeded {
            run,
            task: c,
            attempt: 1,
            usage: None,
        },
    );
    let r = s.run(run).unwrap();
    assert_eq!(
        r.current_compensation(),
        Some(0),
        "b has no compensation: a is next"
    );
    let a = troupe::model::TaskId::new("a").unwrap();
    // Out of order is refused.
    let err = step(
        &mut s.clone(),
        Event::CompensationStarted {
            run,
            task: troupe::model::TaskId::new("b").unwrap(),
            attempt: 1,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("`a` is next"), "{err}");
    apply(
        &mut s,
        Event::CompensationStarted {
            run,
            task: a.clone(),
            attempt: 1,
        },
    );
    apply(
        &mut s,
        Event::CompensationSucceeded {
            run,
            task: a,
            attempt: 1,
            usage: None,
        },
    );
    let r = s.run(run).unwrap();
    assert_eq!(r.state(), RunState::Compensated);
    let states: Vec<TaskState> = r.tasks().iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        [
            TaskState::Compensated,
            TaskState::Succeeded,
            TaskState::Compensated,
            TaskState::Failed
        ]
    );
    s.check_invariants().unwrap();
}

#[test]
fn failure_propagates_upstream_failed_and_retry_reopens() {
    let wf = Arc::new(
        parse_workflow(
            "name = \"p\"\n\
             [[task]]\nid = \"a\"\ncommand = [\"x\"]\nretry = { max_attempts = 1 }\n\
             [[task]]\nid = \"b\"\ncommand = [\"x\"]\ndepends_on = [\"a\"]\n\
             [[task]]\nid = \"c\"\ncommand = [\"x\"]\ndepends_on = [\"b\", \"a\"]\n\
             [[task]]\nid = \"z\"\ncommand = [\"x\"]\n",
        )
        .unwrap(),
    );
    let run = RunId::from_u128(1);
    let a = troupe::model::TaskId::new("a").unwrap();
    let z = troupe::model::TaskId::new("z").unwrap();
    let mut s = State::new();
    let events = vec![
        Event::RunSubmitted { run, workflow: wf },
        Event::AttemptStarted {
            run,
            task: a.clone(),
            attempt: 1,
        },
        Event::TaskFailed {
            run,
            task: a.clone(),
            attempt: 1,
            failure: Failure::Exit { code: 2 },
            usage: None,
        },
        Event::AttemptStarted {
            run,
            task: z.clone(),
            attempt: 1,
        },
        Event::TaskSucceeded {
            run,
            task: z,
            attempt: 1,
            usage: None,
        },
    ];
    for (i, e) in events.into_iter().enumerate() {
        s.apply(
            i as u64 + 1,
            &EventRecord {
                time: Timestamp(i as u64),
                event: e,
            },
        )
        .unwrap();
    }
    let r = s.run(run).unwrap();
    assert_eq!(r.state(), RunState::Failed);
    assert_eq!(r.task(1).state, TaskState::UpstreamFailed);
    assert_eq!(r.task(2).state, TaskState::UpstreamFailed);
    // A retry of the budget-exhausted task reopens it and its dependents, with a fresh budget.
    s.apply(
        6,
        &EventRecord {
            time: Timestamp(6),
            event: Event::TaskRetried {
                run,
                task: a.clone(),
            },
        },
    )
    .unwrap();
    let r = s.run(run).unwrap();
    assert_eq!(r.state(), RunState::Running);
    assert_eq!(r.task(0).state, TaskState::Ready);
    assert_eq!(r.task(1).state, TaskState::Pending);
    assert_eq!(r.task(2).state, TaskState::Pending);
    s.apply(
        7,
        &EventRecord {
            time: Timestamp(7),
            event: Event::AttemptStarted {
                run,
                task: a,
                attempt: 2,
            },
        },
    )
    .unwrap();
    s.check_invariants().unwrap();
}

/// The walks above are only as good as what they reach: over a few hundred seeded walks, every
/// event type is applied and every run state is reached (so the properties were checked on
/// compensating, compensation_failed, ... states, not just on happy paths).
#[test]
fn walks_reach_every_event_type_and_run_state() {
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut types = BTreeSet::new();
    let mut run_states = BTreeSet::new();
    for _ in 0..400 {
        let shapes: Vec<Shape> = (0..rng.random_range(1..=3))
            .map(|_| {
                let n = rng.random_range(1..=6);
                Shape {
                    deps: (0..n).map(|_| rng.random()).collect(),
                    approval: (0..n).map(|_| rng.random_bool(0.25)).collect(),
                    compensate: (0..n).map(|_| rng.random_bool(0.4)).collect(),
                    attempts: (0..n).map(|_| rng.random_range(1..=3)).collect(),
                    mapped: (0..n).map(|_| rng.random_bool(0.4)).collect(),
                }
            })
            .collect();
        let wfs: Vec<_> = shapes.iter().map(workflow).collect();
        let choices: Vec<u32> = (0..rng.random_range(20..200))
            .map(|_| rng.random::<u32>() & 0x7fff_ffff)
            .collect();
        let (_, log) = walk(&wfs, &choices).unwrap();
        types.extend(log.iter().map(|r| r.event.type_name()));
        let mut state = State::new();
        for (i, rec) in log.iter().enumerate() {
            state.apply(i as u64 + 1, rec).unwrap();
            run_states.extend(state.runs().map(|r| r.state()));
        }
    }
    // `runs_removed` (retention) is not part of the walks: tests/retention.rs drives it
    // through a real node, and the golden file pins its encoding.
    let all: BTreeSet<&str> = Event::TYPE_NAMES
        .into_iter()
        .filter(|t| *t != "runs_removed")
        .collect();
    assert_eq!(
        types,
        all,
        "event types never applied: {:?}",
        all.difference(&types)
    );
    assert_eq!(
        run_states.len(),
        RunState::ALL.len(),
        "run states reached: {run_states:?}"
    );
}

#[test]
fn cancelling_a_saga_lets_running_steps_finish_then_undoes_them_first() {
    let wf = Arc::new(
        parse_workflow(
            "name = \"s\"\n\
             [[task]]\nid = \"a\"\ncommand = [\"x\"]\ncompensate = [\"undo-a\"]\n\
             [[task]]\nid = \"b\"\ncommand = [\"x\"]\ndepends_on = [\"a\"]\ncompensate = [\"undo-b\"]\n\
             [[task]]\nid = \"c\"\ncommand = [\"x\"]\ndepends_on = [\"b\"]\n",
        )
        .unwrap(),
    );
    let run = RunId::from_u128(5);
    let id = |t: &str| troupe::model::TaskId::new(t).unwrap();
    let mut s = State::new();
    let apply = step;
    apply(&mut s, Event::RunSubmitted { run, workflow: wf }).unwrap();
    apply(
        &mut s,
        Event::AttemptStarted {
            run,
            task: id("a"),
            attempt: 1,
        },
    )
    .unwrap();
    apply(
        &mut s,
        Event::TaskSucceeded {
            run,
            task: id("a"),
            attempt: 1,
            usage: None,
        },
    )
    .unwrap();
    apply(
        &mut s,
        Event::AttemptStarted {
            run,
            task: id("b"),
            attempt: 1,
        },
    )
    .unwrap();
    apply(&mut s, Event::RunCancelled { run }).unwrap();
    let r = s.run(run).unwrap();
    assert_eq!(r.state(), RunState::Compensating);
    assert_eq!(
        r.task(1).state,
        TaskState::Running,
        "the running step is not killed"
    );
    assert_eq!(r.task(2).state, TaskState::Cancelled);
    // No compensation starts while a forward attempt runs.
    let err = step(
        &mut s.clone(),
        Event::CompensationStarted {
            run,
            task: id("a"),
            attempt: 1,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("still running"), "{err}");
    // A failing in-flight attempt is not retried in a compensating run.
    let retry = Event::AttemptFailed {
        run,
        task: id("b"),
        attempt: 1,
        failure: Failure::TimedOut,
        usage: None,
        retry_at: Timestamp(200),
    };
    assert!(step(&mut s.clone(), retry).is_err());
    apply(
        &mut s,
        Event::TaskSucceeded {
            run,
            task: id("b"),
            attempt: 1,
            usage: None,
        },
    )
    .unwrap();
    assert_eq!(
        s.run(run).unwrap().current_compensation(),
        Some(1),
        "b, the newest, first"
    );
    for t in ["b", "a"] {
        apply(
            &mut s,
            Event::CompensationStarted {
                run,
                task: id(t),
                attempt: 1,
            },
        )
        .unwrap();
        apply(
            &mut s,
            Event::CompensationSucceeded {
                run,
                task: id(t),
                attempt: 1,
                usage: None,
            },
        )
        .unwrap();
    }
    let r = s.run(run).unwrap();
    assert_eq!(r.state(), RunState::Compensated);
    assert!(r.cancel_requested());
    s.check_invariants().unwrap();
}
