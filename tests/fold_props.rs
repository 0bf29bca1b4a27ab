//! Property tests of the fold.
//!
//! Random workflows (DAGs with approvals, saga steps, retry budgets, mapped and swarm tasks)
//! and random walks
//! through the events that are legal at each step, mixed with random events that may not be:
//! - every legal event is accepted, and every state `apply` reaches passes
//!   `State::check_invariants`;
//! - a refused event leaves the state exactly as it was;
//! - replay from a snapshot at any k (through the real snapshot codec) plus the tail equals
//!   the fold of all events.

use std::sync::Arc;

use proptest::prelude::*;
use troupe::model::{
    parse_workflow, Approver, CompensationState, Event, EventRecord, Expansion, Failure, Run,
    RunId, RunState, State, TaskIndex, TaskState, Timestamp, Workflow,
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
    /// A task that is not mapped is a swarm ([`SWARMS`]) when this is 1 to 3: 2 replicas with
    /// quorum 1, 3 with the default (majority) quorum, 2 with quorum 1 and a vote (it then has
    /// no approval or `compensate`).
    swarm: Vec<u8>,
}

/// The swarm fields of [`Shape::swarm`] 1 to 3.
const SWARMS: [&str; 3] = [
    "replicas = 2\nquorum = 1\n",
    "replicas = 3\n",
    "replicas = 2\nquorum = 1\nvote = [\"pick\"]\n",
];

fn shape() -> impl Strategy<Value = Shape> {
    (1usize..=6).prop_flat_map(|n| {
        (
            proptest::collection::vec(any::<u8>(), n),
            proptest::collection::vec(proptest::bool::weighted(0.25), n),
            proptest::collection::vec(proptest::bool::weighted(0.3), n),
            proptest::collection::vec(1u8..=3, n),
            proptest::collection::vec(proptest::bool::weighted(0.3), n),
            proptest::collection::vec(0u8..12, n),
        )
            .prop_map(
                |(deps, approval, compensate, attempts, mapped, swarm)| Shape {
                    deps,
                    approval,
                    compensate,
                    attempts,
                    mapped,
                    swarm,
                },
            )
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
        let swarm = (!mapped[i])
            .then(|| SWARMS.get(s.swarm[i].wrapping_sub(1) as usize))
            .flatten();
        if let Some(fields) = swarm {
            text.push_str(fields);
            continue;
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
            // Swarm tasks and their replicas are never retried one by one.
            let in_swarm = matches!(
                wf.task(ti).expansion(),
                Some(Expansion::Swarm { .. } | Expansion::Replica { .. })
            );
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
                        && !in_swarm
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
                // Offered often: an expansion is due only briefly in a random walk. A swarm
                // task expands into its replicas.
                let counts = match wf.task(ti).swarm() {
                    Some(s) => [s.replicas; 6],
                    None => [0, 2, 2, 2, 1, 3],
                };
                for count in counts {
                    out.push(Event::TaskExpanded {
                        run: id,
                        task: task.clone(),
                        count,
                    });
                }
            }
            if running_run && run.swarm_waiting(ti) {
                swarm_events(run, ti, &mut out);
            }
            // A swarm task waiting for its quorum is cancelled and suspended through its
            // replicas ([`swarm_events`]).
            if running_run && t.state.is_waiting() && !run.swarm_waiting(ti) {
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

/// The ends of swarm task `t`, waiting for its quorum, that the node would journal:
/// `quorum_reached` once enough replicas succeeded (naming the first `quorum` of them, and all
/// of them; offered twice each, as a quorum is due only briefly), then without a vote the
/// agreed output and success at attempt 0; `no_quorum` once the open replicas cannot make up
/// the quorum (the walks' outputs are all equal), and then a cancel too (the node cancels the
/// replicas first). Offered at any time, these would end nearly every swarm before its
/// replicas do; the fold would accept them (the noise tries them).
fn swarm_events(run: &Run, t: TaskIndex, out: &mut Vec<Event>) {
    let wf = run.workflow();
    let swarm = wf.task(t).swarm().expect("a swarm task");
    let task = wf.task_id(t).clone();
    let replicas = run.replicas(t).expect("expanded");
    let open = replicas
        .iter()
        .filter(|&&r| !run.task(r).state.is_terminal())
        .count();
    let ok: Vec<u32> = replicas
        .iter()
        .enumerate()
        .filter(|&(_, &r)| run.task(r).state == TaskState::Succeeded)
        .map(|(i, _)| i as u32)
        .collect();
    let quorum = swarm.quorum as usize;
    if ok.len() >= quorum {
        for replicas in [&ok[..quorum], &ok[..], &ok[..quorum], &ok[..]] {
            out.push(Event::QuorumReached {
                run: run.id(),
                task: task.clone(),
                replicas: replicas.to_vec(),
            });
        }
        if swarm.vote.is_none() {
            out.push(Event::TaskOutput {
                run: run.id(),
                task: task.clone(),
                attempt: 0,
                output: "[1,2]".into(),
            });
            out.push(Event::TaskSucceeded {
                run: run.id(),
                task: task.clone(),
                attempt: 0,
                usage: None,
            });
        }
    }
    if ok.len() + open < quorum {
        out.push(Event::TaskFailed {
            run: run.id(),
            task: task.clone(),
            attempt: 0,
            failure: Failure::NoQuorum {
                message: "at most 1 replicas agreed, 2 needed".into(),
            },
            usage: None,
        });
    }
    if open == 0 {
        out.push(Event::TaskCancelled {
            run: run.id(),
            task,
        });
    }
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

/// The hook the walks' hook calls run: notified when a run finishes, three attempts.
fn hook() -> troupe::model::resilience::HookSpec {
    troupe::model::resilience::HookSpec {
        name: "notify".into(),
        on: troupe::model::resilience::HookOn::RunFinished,
        scope: Default::default(),
        command: troupe::model::Command::Argv(vec!["true".into()]),
        timeout: std::time::Duration::from_secs(5),
        max_attempts: 3,
        veto: false,
    }
}

/// Breakers' and hook calls' legal events (they name no run): breaker `b` opens while closed
/// (a trip) or half-open (a failed probe), half-opens or is reset while open, closes while
/// half-open; a hook call is queued while fewer than two are pending, a pending call starts
/// its next attempt, a running one succeeds or fails (with a retry while attempts remain).
fn resilience_events(state: &State, time: Timestamp, out: &mut Vec<Event>) {
    use troupe::model::state::{BreakerState, HookState};
    let breaker = || "b".to_owned();
    let opened = Event::BreakerOpened {
        breaker: breaker(),
        until: Timestamp(time.0 + 60_000),
        reason: "3 failures in a row".into(),
    };
    match state.breakers().get("b").map(|b| b.state) {
        None | Some(BreakerState::Closed) => out.push(opened),
        Some(BreakerState::Open { .. }) => {
            out.push(Event::BreakerHalfOpened { breaker: breaker() });
            out.push(Event::BreakerClosed {
                breaker: breaker(),
                reason: "reset by prop".into(),
            });
        }
        Some(BreakerState::HalfOpen) => {
            out.push(opened);
            out.push(Event::BreakerClosed {
                breaker: breaker(),
                reason: "probes succeeded".into(),
            });
        }
    }
    let hooks = state.hooks();
    if hooks.pending().count() < 2 {
        out.push(Event::HookQueued {
            call: Box::new(troupe::model::HookCall {
                hook: hook(),
                run: state.runs().next().map(|r| r.id()),
                task: None,
                payload: "{}".into(),
            }),
        });
    }
    for (id, c) in hooks.pending() {
        if c.state != HookState::Running {
            out.push(Event::HookStarted {
                id,
                attempt: c.attempts + 1,
            });
            continue;
        }
        out.push(Event::HookSucceeded {
            id,
            attempt: c.attempts,
        });
        let mut ends = vec![None];
        if c.attempts < c.call.hook.max_attempts {
            ends.push(Some(Timestamp(time.0 + 500)));
        }
        for retry_at in ends {
            out.push(Event::HookFailed {
                id,
                attempt: c.attempts,
                failure: Failure::Exit { code: 1 },
                retry_at,
            });
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
    match (choice / 512) % 18 {
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
        15 => Event::QuorumReached {
            run,
            task,
            replicas: (0..attempt).collect(),
        },
        16 => Event::TaskFailed {
            run,
            task,
            attempt: 0,
            failure: Failure::NoQuorum {
                message: "noise".into(),
            },
            usage: None,
        },
        _ => Event::RunSubmitted {
            run,
            workflow: wf.clone(),
        },
    }
}

/// Walks `choices` through the legal events (and, for choices with the top bit set, noise),
/// checking the per-step properties. Returns the applied records.
///
/// A legal step whose choice has the top nibble 7 (one in eight) is followed by a legal
/// breaker or hook event ([`resilience_events`]). Those name no run and are not offered by
/// [`legal`]: among the run events they would crowd out the rare ones (an expansion is due
/// only briefly), and this way the run events a walk reaches are the same with or without
/// them.
fn walk(
    wfs: &[Arc<Workflow>],
    choices: &[u32],
) -> Result<(State, Vec<EventRecord>), TestCaseError> {
    let mut state = State::new();
    let mut log = Vec::new();
    let mut submitted = 0usize;
    for (step, &choice) in choices.iter().enumerate() {
        let time = Timestamp(step as u64 * 1_000);
        for resilience in [false, true] {
            let (event, must_accept) = if resilience {
                if choice & 0xf000_0000 != 0x7000_0000 {
                    break;
                }
                let mut legal = Vec::new();
                resilience_events(&state, time, &mut legal);
                (legal[(choice >> 8) as usize % legal.len()].clone(), true)
            } else if choice & 0x8000_0000 != 0 {
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
    // How often the walks ended a swarm task each way (attempt 0: agreed or no quorum).
    let mut swarm_ends = std::collections::BTreeMap::new();
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
                    swarm: (0..n).map(|_| rng.random_range(0..8)).collect(),
                }
            })
            .collect();
        let wfs: Vec<_> = shapes.iter().map(workflow).collect();
        let choices: Vec<u32> = (0..rng.random_range(20..200))
            .map(|_| rng.random::<u32>() & 0x7fff_ffff)
            .collect();
        let (_, log) = walk(&wfs, &choices).unwrap();
        types.extend(log.iter().map(|r| r.event.type_name()));
        for r in &log {
            let end = match &r.event {
                Event::TaskSucceeded { attempt: 0, .. } => "agreed",
                Event::TaskFailed {
                    attempt: 0,
                    failure: Failure::NoQuorum { .. },
                    ..
                } => "no_quorum",
                Event::QuorumReached { .. } => "quorum_reached",
                _ => continue,
            };
            *swarm_ends.entry(end).or_insert(0) += 1;
        }
        let mut state = State::new();
        for (i, rec) in log.iter().enumerate() {
            state.apply(i as u64 + 1, rec).unwrap();
            run_states.extend(state.runs().map(|r| r.state()));
        }
    }
    eprintln!("swarm ends: {swarm_ends:?}");
    assert_eq!(
        swarm_ends.len(),
        3,
        "swarm tasks ended only so: {swarm_ends:?}"
    );
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
