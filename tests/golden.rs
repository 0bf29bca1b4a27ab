//! Codec round trip of every event type, and a golden file of encoded events.
//!
//! `tests/golden/events-v8.bin` holds the envelopes of [`events`] as written by event schema
//! version 8: for each, a u32 little-endian length, then the envelope. The test decodes the
//! file and expects exactly these events back, so a change that breaks reading journals
//! written today fails CI. To add a new event type, append it to [`events`] and regenerate
//! with `TROUPE_BLESS=1 cargo test --test golden` (existing bytes must not change; the test
//! checks the old prefix still matches). `events-v1.bin` was written by schema 1 (no task
//! `labels` or `compensate_retry`) and `events-v2.bin` by schema 2 (no `max_output`, `gate`,
//! `for_each`, and none of the events schema 3 added), `events-v3.bin` by schema 3 (no
//! workflow `output` or `[authority]`, none of the agent events), `events-v4.bin` by schema 4
//! (none of the cluster events), `events-v5.bin` by schema 5 (no task `secret_env`),
//! `events-v6.bin` by schema 6 (no task `retry_choice`, no workflow `[[breakers]]` or
//! `[[hooks]]`, none of the breaker and hook events, no `vetoed` failure), `events-v7.bin`
//! by schema 7 (no task `deadline`, `replicas`, `quorum` or `vote`, no workflow `origin`, no
//! swarm expansion, no `quorum_reached`, no `no_quorum` failure); all must keep decoding to
//! the same events. Old files are never rewritten: a new schema gets a new file.
//!
//! Snapshots are pinned the same way: `snapshot-v8.bin` holds [`swarm_state`] (swarm tasks
//! mid-run and deadlines, on top of breakers, hook calls, a cluster and a compensating run),
//! `snapshot-v7.bin` decodes to the same state without the swarm run, `snapshot-v6.bin` and
//! `snapshot-v5.bin` without breakers or hook calls either, the older ones to the same state
//! without a cluster either.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use troupe::model::{
    parse_workflow, Approver, Event, EventRecord, Failure, HookCall, ResourceUsage, RunId, TaskId,
    Timestamp, Workflow,
};
use troupe::storage::codec::{decode_event, encode_event};

const GOLDEN: &str = "tests/golden/events-v8.bin";
const GOLDEN_V7: &str = "tests/golden/events-v7.bin";
/// Events the schema-7 golden file holds (the rest were added by schema 8).
const V7_EVENTS: usize = 61;
const GOLDEN_V6: &str = "tests/golden/events-v6.bin";
/// Events the schema-6 golden file holds (the rest were added by schema 7).
const V6_EVENTS: usize = 49;
const GOLDEN_V5: &str = "tests/golden/events-v5.bin";
/// Events the schema-5 golden file holds (all of today's types; schema 6 changed the spec).
const V5_EVENTS: usize = 48;
const GOLDEN_V4: &str = "tests/golden/events-v4.bin";
/// Events the schema-4 golden file holds (the rest were added by schema 5).
const V4_EVENTS: usize = 40;
const GOLDEN_V3: &str = "tests/golden/events-v3.bin";
/// Events the schema-3 golden file holds (the rest were added by schema 4).
const V3_EVENTS: usize = 34;
const GOLDEN_V2: &str = "tests/golden/events-v2.bin";
/// Events the schema-2 golden file holds (the rest were added by schema 3).
const V2_EVENTS: usize = 26;
const GOLDEN_V1: &str = "tests/golden/events-v1.bin";

/// Spec fields added by schema 2, set on the first task of the golden workflow.
const V2_FIELDS: &str = "labels = [\"build\", \"linux\"]\ncompensate_retry = { max_attempts = 2, initial_interval = \"5s\" }\n";

/// Spec fields added by schema 3, set on the first task of the golden workflow too.
const V3_FIELDS: &str = "max_output = 2048\ngate = [\"./check.sh\", \"--strict\"]\n";

/// Spec fields added by schema 5, set on the first task of the golden workflow too.
const V5_FIELDS: &str = "node_labels = [\"gpu\", \"big\"]\n";

/// Spec fields added by schema 6 (secret names, never values), on the first task too.
const V6_FIELDS: &str = "secret_env = [\"API_KEY\", \"DB_PASSWORD\"]\n";

/// Spec fields added by schema 7 (a retry policy choice), on the first task too; the node
/// adds the policy's non-retryable exit codes and signals at submission ([`events`] does).
const V7_FIELDS: &str = "retry_policy = \"net\"\n";

/// Workflow fields added by schema 7: a breaker on the workflow's pool, a veto hook and an
/// unnamed one (named `hooks[1]`), at the end of the golden workflow.
const V7_WORKFLOW: &str = r#"[[breakers]]
name = "cc"
pool = "cc"
label = "build"
command = "make*"
failure_rate = 0.5
window = 20
min_attempts = 10
consecutive_failures = 5
open_for = "30s"
half_open_probes = 2
[[hooks]]
name = "allowed"
on = "task_ready"
match = { workflow = "golden", label = "build", pool = "cc" }
shell = "./allowed.sh"
timeout = "10s"
max_attempts = 2
veto = true
[[hooks]]
on = "run_finished"
command = ["./notify.sh", "--channel", "ops"]
"#;

/// Spec fields added by schema 8 on the first task too: a deadline (an instant; the swarm
/// workflow of [`swarm_events`] sets both forms). The first task has `compensate`, so it
/// cannot be a swarm.
const V8_FIELDS: &str = "deadline = \"2026-12-01T09:00:00Z\"\n";

fn events() -> Vec<EventRecord> {
    let mut events = events_v7_with(V8_FIELDS);
    events.extend(swarm_events());
    events
}

/// The events of the schema-7 golden file: schema 7's types, the spec without `scheduling`
/// and `origin`.
fn events_v7() -> Vec<EventRecord> {
    events_v7_with("")
}

/// Schema 7's list, with `first_task_extra` added to the first task of the golden workflow.
fn events_v7_with(first_task_extra: &str) -> Vec<EventRecord> {
    let mut events = events_with_workflow(
        &format!("{V2_FIELDS}{V3_FIELDS}{V5_FIELDS}{V6_FIELDS}{V7_FIELDS}{first_task_extra}"),
        V7_WORKFLOW,
    );
    // What the node writes into the spec from its `[retry_policies.net]` at submission.
    let Event::RunSubmitted { workflow, .. } = &mut events[0].event else {
        unreachable!()
    };
    let mut spec = workflow.spec().clone();
    let choice = spec.tasks[0].retry_choice.as_mut().unwrap();
    choice.non_retryable_exit_codes = vec![2, 78];
    choice.non_retryable_signals = vec![9];
    *workflow = Arc::new(Workflow::from_spec(spec).unwrap());
    events.extend(agent_events());
    events.extend(cluster_events());
    events.push(runs_removed());
    events.extend(resilience_events());
    events
}

/// The run of [`swarm_events`] and [`swarm_state`].
fn swarm_run() -> RunId {
    RunId::from_u128(0x0193_5a7e_1c00_4000_8000_0000_0000_0043)
}

/// The swarm workflow of schema 8: a swarm agreeing by JSON equality (`agree`, majority
/// quorum), one with a vote (`pick`), one that cannot reach its quorum (`split`), and a task
/// after two of them; deadlines in both forms; the origin the inbox sets at submission.
fn swarm_workflow() -> Arc<Workflow> {
    let wf = parse_workflow(
        r#"
name = "swarm"
[[task]]
id = "agree"
command = ["./answer.sh"]
replicas = 3
deadline = "30m"
[[task]]
id = "pick"
command = ["./draft.sh"]
replicas = 3
quorum = 2
vote = ["./vote.sh", "--best"]
deadline = "2026-12-01T09:00:00Z"
[[task]]
id = "split"
command = ["./guess.sh"]
replicas = 2
quorum = 2
[[task]]
id = "report"
command = ["./report.sh"]
depends_on = ["agree", "pick"]
deadline = "1h 30m"
"#,
    )
    .unwrap();
    let mut spec = wf.spec().clone();
    spec.origin = Some(
        "inbox:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
    );
    Arc::new(Workflow::from_spec(spec).unwrap())
}

/// The events schema 8 added, as one run of [`swarm_workflow`] that replays through the fold
/// (checked by `swarm_events_replay_through_the_fold`): `agree` expands, two of its three
/// replicas agree (`quorum_reached`, then its output and success at attempt 0) and the third
/// is cancelled; `pick`'s quorum makes it run its vote as attempt 1; `split` ends `no_quorum`.
fn swarm_events() -> Vec<EventRecord> {
    let run = swarm_run();
    let id = |t: &str| TaskId::new(t).unwrap();
    let r = |t: &str, i: u32| TaskId::instance(&id(t), i);
    let usage = Some(ResourceUsage {
        user_cpu_us: 20_000,
        system_cpu_us: 3_000,
        max_rss_kib: 4_096,
    });
    let started = |task: TaskId, attempt: u32| Event::AttemptStarted { run, task, attempt };
    let output = |task: TaskId, attempt: u32, output: &str| Event::TaskOutput {
        run,
        task,
        attempt,
        output: output.into(),
    };
    let succeeded = |task: TaskId, attempt: u32| Event::TaskSucceeded {
        run,
        task,
        attempt,
        usage: if attempt == 0 { None } else { usage },
    };
    let expanded = |task: &str, count: u32| Event::TaskExpanded {
        run,
        task: id(task),
        count,
    };
    let events = vec![
        Event::RunSubmitted {
            run,
            workflow: swarm_workflow(),
        },
        expanded("agree", 3),
        started(r("agree", 0), 1),
        started(r("agree", 1), 1),
        started(r("agree", 2), 1),
        output(r("agree", 0), 1, r#"{"answer":42}"#),
        succeeded(r("agree", 0), 1),
        output(r("agree", 2), 1, r#"{ "answer": 42 }"#),
        succeeded(r("agree", 2), 1),
        Event::QuorumReached {
            run,
            task: id("agree"),
            replicas: vec![0, 2],
        },
        output(id("agree"), 0, r#"{"answer":42}"#),
        succeeded(id("agree"), 0),
        Event::TaskCancelled {
            run,
            task: r("agree", 1),
        },
        expanded("pick", 3),
        started(r("pick", 0), 1),
        started(r("pick", 1), 1),
        started(r("pick", 2), 1),
        output(r("pick", 0), 1, r#""draft A""#),
        succeeded(r("pick", 0), 1),
        output(r("pick", 1), 1, r#""draft B""#),
        succeeded(r("pick", 1), 1),
        Event::QuorumReached {
            run,
            task: id("pick"),
            replicas: vec![0, 1],
        },
        Event::TaskCancelled {
            run,
            task: r("pick", 2),
        },
        started(id("pick"), 1),
        output(id("pick"), 1, r#""draft B""#),
        succeeded(id("pick"), 1),
        expanded("split", 2),
        started(r("split", 0), 1),
        started(r("split", 1), 1),
        output(r("split", 0), 1, "1"),
        succeeded(r("split", 0), 1),
        Event::TaskFailed {
            run,
            task: r("split", 1),
            attempt: 1,
            failure: Failure::Exit { code: 3 },
            usage,
        },
        Event::TaskFailed {
            run,
            task: id("split"),
            attempt: 0,
            failure: Failure::NoQuorum {
                message: "at most 1 replicas agreed, 2 needed; outputs seen: 1 (×1)".into(),
            },
            usage: None,
        },
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| EventRecord {
            time: Timestamp(1_763_700_500_000 + i as u64 * 10),
            event,
        })
        .collect()
}

/// The events of the schema-6 golden file: schema 6's types, the spec without `retry_choice`
/// and `resilience`.
fn events_v6() -> Vec<EventRecord> {
    let mut events = events_with(&format!("{V2_FIELDS}{V3_FIELDS}{V5_FIELDS}{V6_FIELDS}"));
    events.extend(agent_events());
    events.extend(cluster_events());
    events.push(runs_removed());
    events
}

/// The event schema 6 added: retention's `runs_removed`.
fn runs_removed() -> EventRecord {
    EventRecord {
        time: Timestamp(1_700_000_000_900),
        event: Event::RunsRemoved {
            runs: vec![RunId::from_u128(77), RunId::from_u128(78)],
            older_than_ms: 30 * 86_400_000,
        },
    }
}

/// The golden workflow's hooks (schema 7), as [`V7_WORKFLOW`] resolves them.
fn golden_hooks() -> Vec<troupe::model::resilience::HookSpec> {
    let wf = golden_workflow("", V7_WORKFLOW);
    wf.spec().resilience.as_ref().unwrap().hooks.clone()
}

/// The events schema 7 added: a breaker's round (opened, half-open, closed), two hook calls
/// (the veto hook failing twice, so the task it guards fails `vetoed`; the run hook
/// succeeding). The breaker and hook events replay through the fold on their own (checked
/// by `resilience_events_replay_through_the_fold`); the veto pins `Failure::Vetoed`.
fn resilience_events() -> Vec<EventRecord> {
    let run = RunId::from_u128(0x0193_5a7e_1c00_4000_8000_0000_0000_0042);
    let task = TaskId::new("build.x86_64-linux").unwrap();
    let [veto, notify] = <[_; 2]>::try_from(golden_hooks()).unwrap();
    let e = |ms: u64, event: Event| EventRecord {
        time: Timestamp(1_763_700_300_000 + ms),
        event,
    };
    let breaker = || "golden/cc".to_owned();
    vec![
        e(
            0,
            Event::BreakerOpened {
                breaker: breaker(),
                until: Timestamp(1_763_700_330_000),
                reason: "10 of the last 20 attempts failed (failure_rate 0.5)".into(),
            },
        ),
        e(1, Event::BreakerHalfOpened { breaker: breaker() }),
        e(
            2,
            Event::BreakerClosed {
                breaker: breaker(),
                reason: "2 probes succeeded".into(),
            },
        ),
        e(
            3,
            Event::HookQueued {
                call: Box::new(HookCall {
                    hook: veto,
                    run: Some(run),
                    task: Some(task.clone()),
                    payload: r#"{"event":"task_ready","task":"build.x86_64-linux"}"#.into(),
                }),
            },
        ),
        e(4, Event::HookStarted { id: 0, attempt: 1 }),
        e(
            5,
            Event::HookFailed {
                id: 0,
                attempt: 1,
                failure: Failure::TimedOut,
                retry_at: Some(Timestamp(1_763_700_301_000)),
            },
        ),
        e(6, Event::HookStarted { id: 0, attempt: 2 }),
        e(
            7,
            Event::HookFailed {
                id: 0,
                attempt: 2,
                failure: Failure::Exit { code: 1 },
                retry_at: None,
            },
        ),
        e(
            8,
            Event::TaskFailed {
                run,
                task,
                attempt: 16,
                failure: Failure::Vetoed {
                    hook: "allowed".into(),
                    message: "exited with status 1: not on a Friday".into(),
                },
                usage: None,
            },
        ),
        e(
            9,
            Event::HookQueued {
                call: Box::new(HookCall {
                    hook: notify,
                    run: Some(run),
                    task: None,
                    payload: r#"{"event":"run_finished","state":"failed"}"#.into(),
                }),
            },
        ),
        e(10, Event::HookStarted { id: 1, attempt: 1 }),
        e(11, Event::HookSucceeded { id: 1, attempt: 1 }),
    ]
}

/// The events of the schema-5 golden file: today's types, the spec without `secret_env`.
fn events_v5() -> Vec<EventRecord> {
    let mut events = events_with(&format!("{V2_FIELDS}{V3_FIELDS}{V5_FIELDS}"));
    events.extend(agent_events());
    events.extend(cluster_events());
    events
}

/// The events schema 5 added (worker nodes), about the first task of [`events_with`]'s run:
/// after its `run_submitted` and `attempt_started` they replay through the fold (checked by
/// `cluster_events_replay_through_the_fold`). Two joins, since a lease ends either lost or
/// left.
fn cluster_events() -> Vec<EventRecord> {
    let run = RunId::from_u128(0x0193_5a7e_1c00_4000_8000_0000_0000_0042);
    let task = TaskId::new("build.x86_64-linux").unwrap();
    let e = |ms: u64, event: Event| EventRecord {
        time: Timestamp(1_763_700_200_000 + ms),
        event,
    };
    vec![
        e(
            0,
            Event::NodeJoined {
                node: "w1".into(),
                epoch: 1,
                addr: "10.0.0.7:46123".into(),
                slots: 4,
                labels: vec!["gpu".into(), "linux".into()],
            },
        ),
        e(
            1,
            Event::AttemptPlaced {
                run,
                task: task.clone(),
                attempt: 1,
                node: "w1".into(),
                epoch: 1,
            },
        ),
        e(
            2,
            Event::NodeLost {
                node: "w1".into(),
                epoch: 1,
                reason: "no heartbeat for 10s".into(),
            },
        ),
        e(
            3,
            Event::ResultRejected {
                run,
                task,
                attempt: 1,
                node: "w1".into(),
                epoch: 1,
                outcome: "succeeded".into(),
                reason: "lease 1 ended".into(),
            },
        ),
        e(
            4,
            Event::JoinRefused {
                node: "w9".into(),
                addr: "10.0.0.9:50000".into(),
                reason: "unknown join token".into(),
            },
        ),
        e(
            5,
            Event::NodeJoined {
                node: "w1".into(),
                epoch: 2,
                addr: "10.0.0.7:46200".into(),
                slots: 4,
                labels: vec![],
            },
        ),
        e(6, Event::NodeDraining { node: "w1".into() }),
        e(
            7,
            Event::NodeLeft {
                node: "w1".into(),
                epoch: 2,
            },
        ),
    ]
}

/// The events schema 4 added (agents), with a workflow that sets `output` and `[authority]`.
fn agent_events() -> Vec<EventRecord> {
    use troupe::model::authority::Authority;
    let parent = RunId::from_u128(0x0193_5a7e_1c00_4000_8000_0000_0000_0042);
    let task = TaskId::new("build.x86_64-linux").unwrap();
    let child = troupe::model::decide::child_id(parent, task.as_str(), "shard-1");
    let wf = Arc::new(
        parse_workflow(
            r#"
name = "child"
output = "sum"
[authority]
max_depth = 3
max_children = 4
budget = { tokens = 5000, usd = 2.5, wall_clock = "10m" }
allowed_commands = ["python3", "/usr/bin/*"]
pools = ["cc"]
may_request_approval = false
[pools]
cc = 1
[[task]]
id = "sum"
command = ["python3", "sum.py", "{{ input.path }}"]
"#,
        )
        .unwrap(),
    );
    let authority = Authority {
        max_depth: 3,
        budget: [("tokens".to_owned(), 5000.0)].into_iter().collect(),
        allowed_commands: vec![vec!["python3".into()]],
        pools: Some(vec!["cc".into()]),
        wall_clock: Some(std::time::Duration::from_secs(600)),
        ..Authority::default()
    };
    let e = |ms: u64, event: Event| EventRecord {
        time: Timestamp(1_763_700_100_000 + ms),
        event,
    };
    vec![
        e(
            0,
            Event::RunSpawned {
                run: child,
                workflow: wf,
                spawn: Box::new(troupe::model::Spawn {
                    parent: Some((parent, task.clone())),
                    attempt: 2,
                    key: "shard-1".into(),
                    input: Some(r#"{"path":"a/b"}"#.into()),
                    authority: authority.clone(),
                    reserved: [("tokens".to_owned(), 5000.0)].into_iter().collect(),
                    on_failure: troupe::model::OnFailure::FailParent,
                    on_parent_exit: troupe::model::OnParentExit::Abandon,
                    parent_authority: Some(Authority::default()),
                    routing: Some(Box::new(troupe::model::Routing {
                        agent: "summariser".into(),
                        capability: "summarise".into(),
                        reason: "only candidate".into(),
                    })),
                    on_budget_exhausted: Default::default(),
                }),
            },
        ),
        e(
            1,
            Event::SpawnRefused {
                parent: Some(parent),
                task: Some(task.clone()),
                key: "shard-2".into(),
                reason: "depth".into(),
                message: "the child would be at depth 5, past max_depth 4".into(),
            },
        ),
        e(
            2,
            Event::BudgetExhausted {
                run: child,
                counter: "tokens".into(),
                used: 5001.5,
                limit: 5000.0,
            },
        ),
        e(
            4,
            Event::EscalationRequested {
                run: child,
                counter: "usd".into(),
                used: 3.25,
                limit: 2.5,
            },
        ),
        e(
            5,
            Event::EscalationDecided {
                run: child,
                approved: true,
                approver: Approver {
                    name: "carol".into(),
                    os_user: "ops".into(),
                    reason: Some("worth it".into()),
                },
                extend: [("usd".to_owned(), 1.0)].into_iter().collect(),
            },
        ),
        e(
            3,
            Event::TaskFailed {
                run: parent,
                task,
                attempt: 15,
                failure: Failure::ChildFailed {
                    message: "child run ended failed".into(),
                },
                usage: None,
            },
        ),
    ]
}

fn events_with(first_task_extra: &str) -> Vec<EventRecord> {
    events_with_workflow(first_task_extra, "")
}

/// The golden workflow: `first_task_extra` on its first task, `workflow_extra` at the end
/// (after the last task: `[[breakers]]`, `[[hooks]]`).
fn golden_workflow(first_task_extra: &str, workflow_extra: &str) -> Arc<Workflow> {
    Arc::new(
        parse_workflow(
            &r#"
name = "golden"
max_concurrency = 3
[pools]
cc = 2
[defaults]
timeout = "10m"
retry = { max_attempts = 3, initial_interval = "1s", backoff_coefficient = 1.5, max_interval = "1m", jitter = 0.1 }
env = { LC_ALL = "C" }
cwd = "src"
[[task]]
id = "build.x86_64-linux"
command = ["make", "-j2"]
pool = "cc"
priority = -3
compensate = ["make", "clean"]
EXTRA
[[task]]
id = "publish"
shell = "./publish.sh && echo ok"
depends_on = ["build.x86_64-linux"]
requires_approval = true
approval_timeout = "1h"
compensate_shell = "./unpublish.sh"
retry = { max_attempts = 1 }
env = { TOKEN = "x" }
timeout = "30s"
WORKFLOW
"#
            .replace("EXTRA\n", first_task_extra)
            .replace("WORKFLOW\n", workflow_extra),
        )
        .unwrap(),
    )
}

fn events_with_workflow(first_task_extra: &str, workflow_extra: &str) -> Vec<EventRecord> {
    let run = RunId::from_u128(0x0193_5a7e_1c00_4000_8000_0000_0000_0042);
    let task = TaskId::new("build.x86_64-linux").unwrap();
    let usage = Some(ResourceUsage {
        user_cpu_us: 1_234_567,
        system_cpu_us: 89_000,
        max_rss_kib: 65_536,
    });
    let approver = Approver {
        name: "alice".into(),
        os_user: "deploy".into(),
        reason: Some("LGTM — ship it".into()),
    };
    let wf = golden_workflow(first_task_extra, workflow_extra);
    let e = |ms: u64, event: Event| EventRecord {
        time: Timestamp(1_763_700_000_000 + ms),
        event,
    };
    vec![
        e(0, Event::RunSubmitted { run, workflow: wf }),
        e(
            1,
            Event::AttemptStarted {
                run,
                task: task.clone(),
                attempt: 1,
            },
        ),
        e(
            2,
            Event::TaskSucceeded {
                run,
                task: task.clone(),
                attempt: 1,
                usage,
            },
        ),
        e(
            3,
            Event::AttemptFailed {
                run,
                task: task.clone(),
                attempt: 2,
                failure: Failure::Exit { code: 2 },
                usage,
                retry_at: Timestamp(1_763_700_005_000),
            },
        ),
        e(
            4,
            Event::TaskFailed {
                run,
                task: task.clone(),
                attempt: 3,
                failure: Failure::Signal { signal: 9 },
                usage: None,
            },
        ),
        e(
            5,
            Event::TaskCancelled {
                run,
                task: task.clone(),
            },
        ),
        e(
            6,
            Event::TaskSuspended {
                run,
                task: task.clone(),
            },
        ),
        e(
            7,
            Event::TaskResumed {
                run,
                task: task.clone(),
            },
        ),
        e(
            8,
            Event::TaskRetried {
                run,
                task: task.clone(),
            },
        ),
        e(9, Event::RunCancelled { run }),
        e(10, Event::RunSuspended { run }),
        e(11, Event::RunResumed { run }),
        e(
            12,
            Event::ApprovalGranted {
                run,
                task: task.clone(),
                approver: approver.clone(),
            },
        ),
        e(
            13,
            Event::ApprovalRejected {
                run,
                task: task.clone(),
                approver: Approver {
                    reason: None,
                    ..approver
                },
            },
        ),
        e(
            14,
            Event::ApprovalExpired {
                run,
                task: task.clone(),
            },
        ),
        e(
            15,
            Event::CompensationStarted {
                run,
                task: task.clone(),
                attempt: 1,
            },
        ),
        e(
            16,
            Event::CompensationSucceeded {
                run,
                task: task.clone(),
                attempt: 1,
                usage,
            },
        ),
        e(
            17,
            Event::CompensationFailed {
                run,
                task: task.clone(),
                attempt: 2,
                failure: Failure::SpawnFailed {
                    message: "No such file or directory (os error 2)".into(),
                },
                usage: None,
                retry_at: Some(Timestamp(1_763_700_009_000)),
            },
        ),
        e(
            18,
            Event::CompensationRetried {
                run,
                task: task.clone(),
            },
        ),
        e(19, Event::NodeHalted { kill: true }),
        e(20, Event::NodeUnhalted),
        // Every Failure variant, so none of them can change shape unnoticed.
        e(
            21,
            Event::AttemptFailed {
                run,
                task: task.clone(),
                attempt: 4,
                failure: Failure::TimedOut,
                usage: None,
                retry_at: Timestamp(7),
            },
        ),
        e(
            22,
            Event::AttemptFailed {
                run,
                task: task.clone(),
                attempt: 5,
                failure: Failure::Interrupted,
                usage: None,
                retry_at: Timestamp(8),
            },
        ),
        e(
            23,
            Event::TaskFailed {
                run,
                task: task.clone(),
                attempt: 6,
                failure: Failure::ApprovalRejected,
                usage: None,
            },
        ),
        e(
            24,
            Event::TaskFailed {
                run,
                task: task.clone(),
                attempt: 7,
                failure: Failure::ApprovalExpired,
                usage: None,
            },
        ),
        e(
            25,
            Event::TaskFailed {
                run,
                task: task.clone(),
                attempt: 8,
                failure: Failure::Error {
                    message: "boom".into(),
                },
                usage: None,
            },
        ),
        // Schema 3: handoff events and failure kinds.
        e(
            26,
            Event::TaskOutput {
                run,
                task: task.clone(),
                attempt: 9,
                output: r#"{"files":["a.rs","b.rs"],"n":2}"#.into(),
            },
        ),
        e(
            27,
            Event::AttemptUsage {
                run,
                task: task.clone(),
                attempt: 9,
                counters: [
                    ("cost_usd".to_owned(), 0.125),
                    ("tokens".to_owned(), 1200.0),
                ]
                .into_iter()
                .collect(),
            },
        ),
        e(
            28,
            Event::TaskExpanded {
                run,
                task: task.clone(),
                count: 500,
            },
        ),
        e(
            29,
            Event::AttemptFailed {
                run,
                task: task.clone(),
                attempt: 10,
                failure: Failure::OutputInvalid {
                    message: "not JSON".into(),
                },
                usage: None,
                retry_at: Timestamp(9),
            },
        ),
        e(
            30,
            Event::AttemptFailed {
                run,
                task: task.clone(),
                attempt: 11,
                failure: Failure::GateFailed {
                    message: "the gate exited with status 1".into(),
                },
                usage: None,
                retry_at: Timestamp(10),
            },
        ),
        e(
            31,
            Event::TaskFailed {
                run,
                task: task.clone(),
                attempt: 12,
                failure: Failure::TemplateFailed {
                    message: "{{ tasks.a.output.x }}: no field".into(),
                },
                usage: None,
            },
        ),
        e(
            32,
            Event::AttemptFailed {
                run,
                task: task.clone(),
                attempt: 13,
                failure: Failure::UsageInvalid {
                    message: "not a number".into(),
                },
                usage: None,
                retry_at: Timestamp(11),
            },
        ),
        e(
            33,
            Event::TaskFailed {
                run,
                task,
                attempt: 14,
                failure: Failure::FanOutInvalid {
                    message: "must be an array".into(),
                },
                usage: None,
            },
        ),
    ]
}

fn encode_all(events: &[EventRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, rec) in events.iter().enumerate() {
        let bytes = encode_event(i as u64 + 1, rec).unwrap();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out
}

fn split(file: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = file;
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(&rest[4..4 + len]);
        rest = &rest[4 + len..];
    }
    out
}

#[test]
fn every_event_type_round_trips() {
    let events = events();
    let names: BTreeSet<&str> = events.iter().map(|e| e.event.type_name()).collect();
    let all: BTreeSet<&str> = Event::TYPE_NAMES.into_iter().collect();
    assert_eq!(names, all, "the golden list must hold every event type");
    for (i, rec) in events.iter().enumerate() {
        let seq = i as u64 + 1;
        let bytes = encode_event(seq, rec).unwrap();
        assert_eq!(
            &decode_event(seq, &bytes).unwrap(),
            rec,
            "{}",
            rec.event.type_name()
        );
    }
}

#[test]
fn golden_file_still_decodes() {
    let events = events();
    let fresh = encode_all(&events);
    let path = Path::new(GOLDEN);
    if std::env::var_os("TROUPE_BLESS").is_some() {
        if let Ok(old) = std::fs::read(path) {
            assert!(
                fresh.starts_with(&old),
                "blessing would change existing golden bytes: old journals would misread"
            );
        }
        std::fs::write(path, &fresh).unwrap();
    }
    let golden = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{GOLDEN}: {e}; generate it with TROUPE_BLESS=1"));
    let records = split(&golden);
    assert_eq!(
        records.len(),
        events.len(),
        "golden file holds a different number of events"
    );
    for (i, (bytes, expected)) in records.iter().zip(&events).enumerate() {
        let seq = i as u64 + 1;
        let decoded = decode_event(seq, bytes)
            .unwrap_or_else(|e| panic!("golden event {seq} no longer decodes: {e}"));
        assert_eq!(&decoded, expected, "golden event {seq} decodes differently");
    }
    assert_eq!(golden, fresh, "the encoding of existing events changed");
}

const GOLDEN_SNAPSHOT: &str = "tests/golden/snapshot-v8.bin";
/// Written by snapshot schema 7 (breakers and hook calls, no swarm or deadline); decodes to
/// the same state without the swarm run.
const GOLDEN_SNAPSHOT_V7: &str = "tests/golden/snapshot-v7.bin";
/// Written by snapshot schema 6 (the cluster, no breakers or hook calls); decodes to the same
/// state with none.
const GOLDEN_SNAPSHOT_V6: &str = "tests/golden/snapshot-v6.bin";
/// Written by snapshot schema 5 (the cluster, no `secret_env`); decodes to the same state.
const GOLDEN_SNAPSHOT_V5: &str = "tests/golden/snapshot-v5.bin";
/// Written by snapshot schema 4 (no cluster); must keep decoding to the same state.
const GOLDEN_SNAPSHOT_V4: &str = "tests/golden/snapshot-v4.bin";
/// Written by snapshot schema 3; must keep decoding to the same state.
const GOLDEN_SNAPSHOT_V3: &str = "tests/golden/snapshot-v3.bin";
/// Written by snapshot schema 2; must keep decoding to the same state.
const GOLDEN_SNAPSHOT_V2: &str = "tests/golden/snapshot-v2.bin";
/// Written by snapshot schema 1; must keep decoding to the same state.
const GOLDEN_SNAPSHOT_V1: &str = "tests/golden/snapshot-v1.bin";

/// A state reached by legal events and touching every part of `State`: a halted node, a run
/// compensating with one step undone, one compensation retrying, an approval granted.
fn snapshot_state() -> troupe::model::State {
    use troupe::model::State;
    let wf = Arc::new(
        parse_workflow(
            "name = \"snap\"\n\
             [[task]]\nid = \"a\"\ncommand = [\"x\"]\ncompensate = [\"undo-a\"]\n\
             [[task]]\nid = \"b\"\ncommand = [\"x\"]\ncompensate_shell = \"undo b\"\nrequires_approval = true\n\
             [[task]]\nid = \"c\"\ncommand = [\"x\"]\ndepends_on = [\"a\", \"b\"]\ncompensate = [\"undo-c\"]\n\
             [[task]]\nid = \"d\"\ncommand = [\"x\"]\ndepends_on = [\"c\"]\nretry = { max_attempts = 2 }\n",
        )
        .unwrap(),
    );
    let run = RunId::from_u128(0x0193_5a7e_1c00_4000_8000_0000_0000_0077);
    let id = |t: &str| TaskId::new(t).unwrap();
    let approver = Approver {
        name: "bob".into(),
        os_user: "ops".into(),
        reason: None,
    };
    let events = vec![
        Event::RunSubmitted { run, workflow: wf },
        Event::ApprovalGranted {
            run,
            task: id("b"),
            approver,
        },
        Event::AttemptStarted {
            run,
            task: id("a"),
            attempt: 1,
        },
        Event::AttemptStarted {
            run,
            task: id("b"),
            attempt: 1,
        },
        Event::TaskSucceeded {
            run,
            task: id("b"),
            attempt: 1,
            usage: None,
        },
        Event::TaskSucceeded {
            run,
            task: id("a"),
            attempt: 1,
            usage: None,
        },
        Event::AttemptStarted {
            run,
            task: id("c"),
            attempt: 1,
        },
        Event::TaskSucceeded {
            run,
            task: id("c"),
            attempt: 1,
            usage: None,
        },
        Event::AttemptStarted {
            run,
            task: id("d"),
            attempt: 1,
        },
        Event::AttemptFailed {
            run,
            task: id("d"),
            attempt: 1,
            failure: Failure::Exit { code: 1 },
            usage: None,
            retry_at: Timestamp(1_763_700_100_000),
        },
        Event::AttemptStarted {
            run,
            task: id("d"),
            attempt: 2,
        },
        Event::TaskFailed {
            run,
            task: id("d"),
            attempt: 2,
            failure: Failure::Exit { code: 1 },
            usage: None,
        },
        Event::CompensationStarted {
            run,
            task: id("c"),
            attempt: 1,
        },
        Event::CompensationSucceeded {
            run,
            task: id("c"),
            attempt: 1,
            usage: None,
        },
        Event::CompensationStarted {
            run,
            task: id("a"),
            attempt: 1,
        },
        Event::CompensationFailed {
            run,
            task: id("a"),
            attempt: 1,
            failure: Failure::TimedOut,
            usage: None,
            retry_at: Some(Timestamp(1_763_700_200_000)),
        },
        Event::NodeHalted { kill: false },
    ];
    let mut state = State::new();
    for (i, event) in events.into_iter().enumerate() {
        let record = EventRecord {
            time: Timestamp(1_763_700_000_000 + i as u64),
            event,
        };
        state.apply(i as u64 + 1, &record).unwrap();
    }
    state.check_invariants().unwrap();
    state
}

/// A state with a cluster, on top of [`snapshot_state`]: a node ready with an attempt placed
/// on it, a node lost, a node that drained and left (snapshot schema 5).
fn cluster_state() -> troupe::model::State {
    let mut state = snapshot_state();
    let run = RunId::from_u128(0x0193_5a7e_1c00_4000_8000_0000_0000_0099);
    let task = TaskId::new("remote").unwrap();
    let wf = Arc::new(
        parse_workflow("name = \"r\"\n[[task]]\nid = \"remote\"\ncommand = [\"x\"]\n").unwrap(),
    );
    let joined = |node: &str, epoch: u64, labels: &[&str]| Event::NodeJoined {
        node: node.into(),
        epoch,
        addr: format!("127.0.0.1:{}", 40_000 + epoch),
        slots: 2,
        labels: labels.iter().map(|l| l.to_string()).collect(),
    };
    let mut seq = state.last_seq();
    for event in [
        Event::NodeUnhalted,
        Event::RunSubmitted { run, workflow: wf },
        joined("w1", 1, &["linux"]),
        joined("w2", 2, &[]),
        joined("w3", 3, &["gpu"]),
        Event::AttemptStarted {
            run,
            task: task.clone(),
            attempt: 1,
        },
        Event::AttemptPlaced {
            run,
            task,
            attempt: 1,
            node: "w1".into(),
            epoch: 1,
        },
        Event::NodeLost {
            node: "w2".into(),
            epoch: 2,
            reason: "no heartbeat for 10s".into(),
        },
        Event::NodeDraining { node: "w3".into() },
        Event::NodeLeft {
            node: "w3".into(),
            epoch: 3,
        },
    ] {
        seq += 1;
        let record = EventRecord {
            time: Timestamp(1_763_700_400_000 + seq),
            event,
        };
        state.apply(seq, &record).unwrap();
    }
    state.check_invariants().unwrap();
    state
}

/// A state with breakers and hook calls, on top of [`cluster_state`] (snapshot schema 7): a
/// breaker open, one closed after a round; hook calls succeeded, retrying, queued and running.
fn resilience_state() -> troupe::model::State {
    let mut state = cluster_state();
    let run = RunId::from_u128(0x0193_5a7e_1c00_4000_8000_0000_0000_0099);
    let [veto, notify] = <[_; 2]>::try_from(golden_hooks()).unwrap();
    let call = |hook: &troupe::model::resilience::HookSpec, task: Option<&str>| Event::HookQueued {
        call: Box::new(HookCall {
            hook: hook.clone(),
            run: Some(run),
            task: task.map(|t| TaskId::new(t).unwrap()),
            payload: format!("{{\"event\":\"{}\"}}", hook.on.as_str()),
        }),
    };
    let mut seq = state.last_seq();
    for event in [
        Event::BreakerOpened {
            breaker: "api".into(),
            until: Timestamp(1_763_700_460_000),
            reason: "5 failures in a row".into(),
        },
        Event::BreakerHalfOpened {
            breaker: "api".into(),
        },
        Event::BreakerClosed {
            breaker: "api".into(),
            reason: "reset by carol".into(),
        },
        Event::BreakerOpened {
            breaker: "r/cc".into(),
            until: Timestamp(1_763_700_490_000),
            reason: "10 of the last 20 attempts failed (failure_rate 0.5)".into(),
        },
        // Call 0 succeeds at its second attempt.
        call(&veto, Some("remote")),
        Event::HookStarted { id: 0, attempt: 1 },
        Event::HookFailed {
            id: 0,
            attempt: 1,
            failure: Failure::Exit { code: 3 },
            retry_at: Some(Timestamp(1_763_700_450_000)),
        },
        Event::HookStarted { id: 0, attempt: 2 },
        Event::HookSucceeded { id: 0, attempt: 2 },
        // Call 1 waits for its second attempt, call 2 for its first, call 3 runs.
        call(&notify, None),
        Event::HookStarted { id: 1, attempt: 1 },
        Event::HookFailed {
            id: 1,
            attempt: 1,
            failure: Failure::TimedOut,
            retry_at: Some(Timestamp(1_763_700_470_000)),
        },
        call(&notify, None),
        call(&veto, Some("remote")),
        Event::HookStarted { id: 3, attempt: 1 },
    ] {
        seq += 1;
        let record = EventRecord {
            time: Timestamp(1_763_700_440_000 + seq),
            event,
        };
        state
            .apply(seq, &record)
            .unwrap_or_else(|e| panic!("{}: {e}", record.event.type_name()));
    }
    state.check_invariants().unwrap();
    state
}

/// A state with swarm tasks mid-run, on top of [`resilience_state`] (snapshot schema 8): the
/// run of [`swarm_workflow`] with `agree` expanded and waiting for its quorum (one replica
/// succeeded, one running, one ready), `pick` ready to run its vote after its quorum (its
/// third replica cancelled), `split` due for expansion and `report` waiting with a deadline.
fn swarm_state() -> troupe::model::State {
    let mut state = resilience_state();
    let run = swarm_run();
    let id = |t: &str| TaskId::new(t).unwrap();
    let r = |t: &str, i: u32| TaskId::instance(&id(t), i);
    let started = |task: TaskId| Event::AttemptStarted {
        run,
        task,
        attempt: 1,
    };
    let succeeded = |task: TaskId| Event::TaskSucceeded {
        run,
        task,
        attempt: 1,
        usage: None,
    };
    let mut seq = state.last_seq();
    for event in [
        Event::RunSubmitted {
            run,
            workflow: swarm_workflow(),
        },
        Event::TaskExpanded {
            run,
            task: id("agree"),
            count: 3,
        },
        started(r("agree", 0)),
        started(r("agree", 1)),
        Event::TaskOutput {
            run,
            task: r("agree", 0),
            attempt: 1,
            output: r#"{"answer":42}"#.into(),
        },
        succeeded(r("agree", 0)),
        Event::TaskExpanded {
            run,
            task: id("pick"),
            count: 3,
        },
        started(r("pick", 0)),
        started(r("pick", 1)),
        started(r("pick", 2)),
        succeeded(r("pick", 1)),
        succeeded(r("pick", 0)),
        Event::QuorumReached {
            run,
            task: id("pick"),
            replicas: vec![0, 1],
        },
        Event::TaskCancelled {
            run,
            task: r("pick", 2),
        },
    ] {
        seq += 1;
        let record = EventRecord {
            time: Timestamp(1_763_700_600_000 + seq),
            event,
        };
        state
            .apply(seq, &record)
            .unwrap_or_else(|e| panic!("{}: {e}", record.event.type_name()));
        state.check_invariants().unwrap();
    }
    state
}

/// The task states of run `run` in `state`, by task id.
fn task_states(state: &troupe::model::State, run: RunId) -> Vec<(String, &'static str)> {
    let r = state.run(run).unwrap();
    (0..r.tasks().len() as u32)
        .map(|t| {
            (
                r.workflow().task_id(t).to_string(),
                r.task(t).state.as_str(),
            )
        })
        .collect()
}

/// Snapshots are what a compacted journal boots from: their encoding is pinned like events'.
/// Schema 7's holds breakers and hook calls, and a cluster; the older files must keep
/// decoding to the same state (schemas 5 and 6 with no breakers or hook calls, the older ones
/// with an empty cluster too).
#[test]
fn golden_snapshot_still_decodes() {
    use troupe::model::state::{BreakerState, HookState};
    use troupe::model::Membership;
    use troupe::storage::codec::{decode_snapshot, encode_snapshot};
    let state = swarm_state();
    assert_eq!(
        task_states(&state, swarm_run()),
        [
            ("agree", "pending"),
            ("pick", "ready"),
            ("split", "pending"),
            ("report", "pending"),
            ("agree[0]", "succeeded"),
            ("agree[1]", "running"),
            ("agree[2]", "ready"),
            ("pick[0]", "succeeded"),
            ("pick[1]", "succeeded"),
            ("pick[2]", "cancelled"),
        ]
        .map(|(t, s)| (t.to_owned(), s)),
        "the golden snapshot holds a swarm waiting, a vote due and a swarm to expand"
    );
    let swarm = state.run(swarm_run()).unwrap();
    assert!(swarm.swarm_waiting(0) && !swarm.swarm_waiting(1));
    assert_eq!(swarm.replicas(0), Some(vec![4, 5, 6]));
    assert!(swarm.awaits_expansion(2));
    assert!(swarm.workflow().task(3).deadline().is_some());
    assert!(swarm.workflow().spec().origin.is_some());
    let breakers: Vec<_> = state
        .breakers()
        .iter()
        .map(|(name, b)| (name.as_str(), b.state.as_str(), b.opened))
        .collect();
    assert_eq!(
        breakers,
        [("api", "closed", 1), ("r/cc", "open", 1)],
        "the golden snapshot holds an open breaker and a closed one"
    );
    assert!(matches!(
        state.breakers()["r/cc"].state,
        BreakerState::Open { .. }
    ));
    let hooks: Vec<_> = state
        .hooks()
        .calls
        .values()
        .map(|c| (c.state, c.attempts))
        .collect();
    assert_eq!(
        hooks,
        [
            (HookState::Succeeded, 2),
            (
                HookState::Retrying {
                    at: Timestamp(1_763_700_470_000)
                },
                1
            ),
            (HookState::Queued, 0),
            (HookState::Running, 1),
        ],
        "the golden snapshot holds hook calls in every unfinished state and a finished one"
    );
    assert_eq!(state.hooks().next_id, 4);
    let cluster = state.cluster();
    let states: Vec<_> = cluster.nodes().values().map(|n| n.state).collect();
    assert_eq!(
        states,
        [Membership::Ready, Membership::Lost, Membership::Left],
        "the golden cluster holds a node of each kind"
    );
    assert_eq!(cluster.placements().count(), 1);
    let fresh = encode_snapshot(&state).unwrap();
    let path = Path::new(GOLDEN_SNAPSHOT);
    if std::env::var_os("TROUPE_BLESS").is_some() && !path.exists() {
        std::fs::write(path, &fresh).unwrap();
    }
    let golden = std::fs::read(path)
        .unwrap_or_else(|e| panic!("{GOLDEN_SNAPSHOT}: {e}; generate it with TROUPE_BLESS=1"));
    assert_eq!(golden[1..3], [8, 0], "a schema-8 snapshot");
    let decoded = decode_snapshot(state.last_seq(), &golden)
        .unwrap_or_else(|e| panic!("the golden snapshot no longer decodes: {e}"));
    assert_eq!(
        decoded, state,
        "the golden snapshot decodes to a different state"
    );
    assert_eq!(golden, fresh, "the snapshot encoding changed");
    let state = resilience_state();
    let v7 =
        std::fs::read(GOLDEN_SNAPSHOT_V7).unwrap_or_else(|e| panic!("{GOLDEN_SNAPSHOT_V7}: {e}"));
    assert_eq!(v7[1..3], [7, 0], "a schema-7 snapshot");
    let decoded = decode_snapshot(state.last_seq(), &v7)
        .unwrap_or_else(|e| panic!("the schema-7 snapshot no longer decodes: {e}"));
    assert_eq!(decoded, state, "the schema-7 snapshot decodes differently");
    let state = cluster_state();
    let v6 =
        std::fs::read(GOLDEN_SNAPSHOT_V6).unwrap_or_else(|e| panic!("{GOLDEN_SNAPSHOT_V6}: {e}"));
    assert_eq!(v6[1..3], [6, 0], "a schema-6 snapshot");
    let decoded = decode_snapshot(state.last_seq(), &v6)
        .unwrap_or_else(|e| panic!("the schema-6 snapshot no longer decodes: {e}"));
    assert_eq!(decoded, state, "the schema-6 snapshot decodes differently");
    let v5 =
        std::fs::read(GOLDEN_SNAPSHOT_V5).unwrap_or_else(|e| panic!("{GOLDEN_SNAPSHOT_V5}: {e}"));
    assert_eq!(v5[1..3], [5, 0], "a schema-5 snapshot");
    let decoded = decode_snapshot(state.last_seq(), &v5)
        .unwrap_or_else(|e| panic!("the schema-5 snapshot no longer decodes: {e}"));
    assert_eq!(decoded, state, "the schema-5 snapshot decodes differently");
    let state = snapshot_state();
    for (file, schema) in [
        (GOLDEN_SNAPSHOT_V4, 4),
        (GOLDEN_SNAPSHOT_V3, 3),
        (GOLDEN_SNAPSHOT_V2, 2),
        (GOLDEN_SNAPSHOT_V1, 1),
    ] {
        let old = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(old[1..3], [schema, 0], "a schema-{schema} snapshot");
        let decoded = decode_snapshot(state.last_seq(), &old)
            .unwrap_or_else(|e| panic!("the schema-{schema} snapshot no longer decodes: {e}"));
        assert_eq!(
            decoded, state,
            "the schema-{schema} snapshot decodes differently"
        );
    }
}

/// A schema-4 snapshot has no cluster: it decodes with no nodes, no epochs given and no
/// placements, and the fold goes on from there (the first join gets epoch 1).
#[test]
fn schema_4_snapshot_decodes_with_an_empty_cluster() {
    use troupe::storage::codec::decode_snapshot;
    let v4 = std::fs::read(GOLDEN_SNAPSHOT_V4).unwrap();
    let seq = snapshot_state().last_seq();
    let mut state = decode_snapshot(seq, &v4).unwrap();
    let cluster = state.cluster();
    assert!(cluster.nodes().is_empty(), "{cluster:?}");
    assert_eq!(cluster.last_epoch(), 0);
    assert_eq!(cluster.placements().count(), 0);
    assert_eq!(*cluster, troupe::model::Cluster::default());
    let join = |epoch| EventRecord {
        time: Timestamp(1_763_700_500_000),
        event: Event::NodeJoined {
            node: "w1".into(),
            epoch,
            addr: "127.0.0.1:40001".into(),
            slots: 1,
            labels: vec![],
        },
    };
    assert!(
        state.apply(seq + 1, &join(0)).is_err(),
        "epoch 0 is not after the last one"
    );
    state.apply(seq + 1, &join(1)).unwrap();
    assert_eq!(state.cluster().last_epoch(), 1);
}

/// A schema-6 snapshot has no breakers or hook calls: it decodes with none (every breaker
/// closed, no hook call queued) to the state schema 6 held, and the fold goes on from there
/// (the first `hook_queued` gets id 0, a breaker that never opened cannot half-open).
#[test]
fn schema_6_snapshot_decodes_with_no_breakers_or_hook_calls() {
    use troupe::storage::codec::decode_snapshot;
    let v6 = std::fs::read(GOLDEN_SNAPSHOT_V6).unwrap();
    let expected = cluster_state();
    let seq = expected.last_seq();
    let mut state = decode_snapshot(seq, &v6).unwrap();
    assert_eq!(state, expected);
    assert!(state.breakers().is_empty(), "{:?}", state.breakers());
    assert_eq!(*state.hooks(), troupe::model::state::Hooks::default());
    assert_eq!(state.hooks().pending().count(), 0);
    let at = |event| EventRecord {
        time: Timestamp(1_763_700_500_000),
        event,
    };
    assert!(
        state
            .apply(
                seq + 1,
                &at(Event::BreakerHalfOpened {
                    breaker: "r/cc".into()
                })
            )
            .is_err(),
        "no breaker is open"
    );
    let queued = resilience_events()
        .into_iter()
        .find(|r| matches!(r.event, Event::HookQueued { .. }))
        .unwrap();
    state.apply(seq + 1, &queued).unwrap();
    state
        .apply(seq + 2, &at(Event::HookStarted { id: 0, attempt: 1 }))
        .unwrap();
    assert_eq!(state.hooks().next_id, 1);
    state.check_invariants().unwrap();
}

/// The breaker and hook events of the golden list are legal: they replay through
/// `State::apply` on their own (the veto's `task_failed` is about a run that is not there).
#[test]
fn resilience_events_replay_through_the_fold() {
    use troupe::model::state::{BreakerState, HookState};
    let mut state = troupe::model::State::new();
    let mut seq = 0;
    for record in resilience_events() {
        if matches!(record.event, Event::TaskFailed { .. }) {
            continue;
        }
        seq += 1;
        state
            .apply(seq, &record)
            .unwrap_or_else(|e| panic!("{}: {e}", record.event.type_name()));
    }
    state.check_invariants().unwrap();
    let b = &state.breakers()["golden/cc"];
    assert_eq!((b.state, b.opened), (BreakerState::Closed, 1));
    let calls: Vec<_> = state
        .hooks()
        .calls
        .values()
        .map(|c| (c.state, c.attempts))
        .collect();
    assert_eq!(calls, [(HookState::Failed, 2), (HookState::Succeeded, 1)]);
}

/// The cluster events of the golden list are legal: after their run's submission and first
/// attempt they replay through `State::apply` (the rest of the list pins encodings only).
#[test]
fn cluster_events_replay_through_the_fold() {
    use troupe::model::Membership;
    let all = events();
    let cluster = cluster_events();
    assert!(matches!(all[0].event, Event::RunSubmitted { .. }));
    assert!(matches!(
        all[1].event,
        Event::AttemptStarted { attempt: 1, .. }
    ));
    // After the cluster events come retention's `runs_removed`, schema 7's and schema 8's
    // events.
    let end = all.len() - 1 - resilience_events().len() - swarm_events().len();
    assert_eq!(all[end - cluster.len()..end], cluster[..]);
    let mut state = troupe::model::State::new();
    for (i, record) in all[..2].iter().chain(&cluster).enumerate() {
        state
            .apply(i as u64 + 1, record)
            .unwrap_or_else(|e| panic!("{}: {e}", record.event.type_name()));
    }
    state.check_invariants().unwrap();
    let w1 = state.cluster().node("w1").unwrap();
    assert_eq!((w1.epoch, w1.state), (2, Membership::Left));
    assert_eq!(state.cluster().node_of(1), Some("w1"));
    let run = RunId::from_u128(0x0193_5a7e_1c00_4000_8000_0000_0000_0042);
    let placed: Vec<_> = state.cluster().placements().collect();
    assert_eq!(placed.len(), 1);
    assert_eq!(placed[0].0 .0, run);
    assert_eq!(placed[0].1, (1, 1), "attempt 1 under lease 1");
}

#[test]
fn schema_1_golden_file_still_decodes() {
    let events = events_with("");
    let golden = std::fs::read(GOLDEN_V1).unwrap_or_else(|e| panic!("{GOLDEN_V1}: {e}"));
    let records = split(&golden);
    assert_eq!(records.len(), V2_EVENTS);
    for (i, (bytes, expected)) in records.iter().zip(&events).enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(bytes[1..3], [1, 0], "event {seq} is a schema-1 record");
        let decoded = decode_event(seq, bytes)
            .unwrap_or_else(|e| panic!("schema-1 event {seq} no longer decodes: {e}"));
        assert_eq!(
            &decoded, expected,
            "schema-1 event {seq} decodes differently"
        );
    }
}

/// Schema 4 added agents: a snapshot holding a run with a lineage (a spawned child), written by
/// schema 4; it must keep decoding to the same state.
#[test]
fn golden_snapshot_with_an_agent_tree_still_decodes() {
    use troupe::storage::codec::{decode_snapshot, encode_snapshot};
    let mut state = snapshot_state();
    let parent = RunId::from_u128(0x0193_5a7e_1c00_4000_8000_0000_0000_0088);
    let task = TaskId::new("d").unwrap();
    let wf = Arc::new(
        parse_workflow("name = \"p\"\n[[task]]\nid = \"d\"\ncommand = [\"x\"]\n").unwrap(),
    );
    let mut seq = state.last_seq();
    let mut apply = |event: Event| {
        seq += 1;
        let record = EventRecord {
            time: Timestamp(1_763_700_300_000 + seq),
            event,
        };
        state.apply(seq, &record).unwrap();
    };
    apply(Event::NodeUnhalted);
    apply(Event::RunSubmitted {
        run: parent,
        workflow: wf,
    });
    apply(Event::AttemptStarted {
        run: parent,
        task: task.clone(),
        attempt: 1,
    });
    for spawned in agent_events().into_iter().take(1) {
        let Event::RunSpawned {
            workflow,
            mut spawn,
            ..
        } = spawned.event
        else {
            unreachable!()
        };
        spawn.parent = Some((parent, task.clone()));
        spawn.attempt = 1;
        apply(Event::RunSpawned {
            run: troupe::model::decide::child_id(parent, "d", &spawn.key),
            workflow,
            spawn,
        });
    }
    state.check_invariants().unwrap();
    let path = Path::new("tests/golden/snapshot-v4-agents.bin");
    let golden = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(golden[1..3], [4, 0], "a schema-4 snapshot");
    let decoded = decode_snapshot(state.last_seq(), &golden)
        .unwrap_or_else(|e| panic!("the agents snapshot no longer decodes: {e}"));
    assert_eq!(
        decoded, state,
        "the agents snapshot decodes to a different state"
    );
    let fresh = encode_snapshot(&state).unwrap();
    assert_eq!(
        decode_snapshot(state.last_seq(), &fresh).unwrap(),
        state,
        "the agents snapshot round trips under today's schema"
    );
}

/// A schema-7 snapshot has no swarm and no deadline: it decodes to the state schema 7 held
/// (every spec without `scheduling` or `origin`), and the fold goes on from there with the
/// swarm events of schema 8.
#[test]
fn schema_7_snapshot_decodes_without_scheduling_and_the_fold_goes_on() {
    use troupe::storage::codec::decode_snapshot;
    let v7 = std::fs::read(GOLDEN_SNAPSHOT_V7).unwrap();
    let expected = resilience_state();
    let seq = expected.last_seq();
    let mut state = decode_snapshot(seq, &v7).unwrap();
    assert_eq!(state, expected);
    for run in state.runs() {
        let spec = run.workflow().spec();
        assert_eq!(spec.origin, None, "{}", run.id());
        assert!(spec.tasks.iter().all(|t| t.scheduling.is_none()));
    }
    for (i, record) in swarm_events().iter().enumerate() {
        state
            .apply(seq + 1 + i as u64, record)
            .unwrap_or_else(|e| panic!("{}: {e}", record.event.type_name()));
        state.check_invariants().unwrap();
    }
    assert_eq!(state.runs().count(), expected.runs().count() + 1);
    assert_eq!(
        state.run(swarm_run()).unwrap().state(),
        troupe::model::RunState::Running
    );
}

/// The swarm events of the golden list are legal: they replay through `State::apply` on
/// their own, passing the invariants after each, and end where [`swarm_events`] says.
#[test]
fn swarm_events_replay_through_the_fold() {
    let mut state = troupe::model::State::new();
    for (i, record) in swarm_events().iter().enumerate() {
        state
            .apply(i as u64 + 1, record)
            .unwrap_or_else(|e| panic!("{}: {e}", record.event.type_name()));
        state
            .check_invariants()
            .unwrap_or_else(|e| panic!("after {}: {e}", record.event.type_name()));
    }
    assert_eq!(
        task_states(&state, swarm_run()),
        [
            ("agree", "succeeded"),
            ("pick", "succeeded"),
            ("split", "failed"),
            ("report", "ready"),
            ("agree[0]", "succeeded"),
            ("agree[1]", "cancelled"),
            ("agree[2]", "succeeded"),
            ("pick[0]", "succeeded"),
            ("pick[1]", "succeeded"),
            ("pick[2]", "cancelled"),
            ("split[0]", "succeeded"),
            ("split[1]", "failed"),
        ]
        .map(|(t, s)| (t.to_owned(), s)),
    );
    let r = state.run(swarm_run()).unwrap();
    assert_eq!(r.state(), troupe::model::RunState::Running);
    assert_eq!(r.task(1).attempts, 1, "pick's vote ran as its attempt 1");
    let failure = r.task(2).last_failure.as_deref().unwrap();
    assert_eq!(failure.kind(), "no_quorum");
}

#[test]
fn schema_7_golden_file_still_decodes() {
    use std::time::Duration;
    use troupe::model::spec::{Deadline, Swarm};
    let events = events_v7();
    let golden = std::fs::read(GOLDEN_V7).unwrap_or_else(|e| panic!("{GOLDEN_V7}: {e}"));
    let records = split(&golden);
    assert_eq!(records.len(), V7_EVENTS);
    assert_eq!(events.len(), V7_EVENTS);
    for (i, (bytes, expected)) in records.iter().zip(&events).enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(bytes[1..3], [7, 0], "event {seq} is a schema-7 record");
        let decoded = decode_event(seq, bytes)
            .unwrap_or_else(|e| panic!("schema-7 event {seq} no longer decodes: {e}"));
        assert_eq!(
            &decoded, expected,
            "schema-7 event {seq} decodes differently"
        );
    }
    let Event::RunSubmitted { workflow, .. } = &events[0].event else {
        unreachable!()
    };
    assert_eq!(workflow.spec().tasks[0].scheduling, None);
    assert_eq!(workflow.spec().origin, None);
    // Today's golden list holds what schema 8 added to the spec.
    let all = crate::events();
    let Event::RunSubmitted { workflow, .. } = &all[0].event else {
        unreachable!()
    };
    assert_eq!(
        workflow.spec().tasks[0].deadline(),
        Some(Deadline::At(Timestamp(1_796_115_600_000)))
    );
    let swarm = swarm_workflow();
    let spec = swarm.spec();
    assert!(spec.origin.as_deref().unwrap().starts_with("inbox:sha256:"));
    let task = |t: &str| swarm.task(swarm.task_index(t).unwrap());
    assert_eq!(
        task("agree").swarm(),
        Some(&Swarm {
            replicas: 3,
            quorum: 2,
            vote: None
        })
    );
    assert_eq!(
        task("agree").deadline(),
        Some(Deadline::After(Duration::from_secs(1800)))
    );
    assert_eq!(
        task("pick").swarm().map(|s| (s.quorum, s.vote.is_some())),
        Some((2, true))
    );
    assert!(matches!(task("pick").deadline(), Some(Deadline::At(_))));
    assert_eq!(
        task("report").deadline(),
        Some(Deadline::After(Duration::from_secs(5400)))
    );
    assert_eq!(task("report").swarm(), None);
}

#[test]
fn schema_6_golden_file_still_decodes() {
    let events = events_v6();
    let golden = std::fs::read(GOLDEN_V6).unwrap_or_else(|e| panic!("{GOLDEN_V6}: {e}"));
    let records = split(&golden);
    assert_eq!(records.len(), V6_EVENTS);
    assert_eq!(events.len(), V6_EVENTS);
    for (i, (bytes, expected)) in records.iter().zip(&events).enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(bytes[1..3], [6, 0], "event {seq} is a schema-6 record");
        let decoded = decode_event(seq, bytes)
            .unwrap_or_else(|e| panic!("schema-6 event {seq} no longer decodes: {e}"));
        assert_eq!(
            &decoded, expected,
            "schema-6 event {seq} decodes differently"
        );
    }
    // Today's golden list holds what schema 7 added to the spec.
    let Event::RunSubmitted { workflow, .. } = &crate::events()[0].event else {
        unreachable!()
    };
    let spec = workflow.spec();
    let choice = spec.tasks[0].retry_choice.as_deref().unwrap();
    assert_eq!(choice.name.as_deref(), Some("net"));
    assert_eq!(choice.non_retryable_exit_codes, [2, 78]);
    assert_eq!(choice.non_retryable_signals, [9]);
    let resilience = spec.resilience.as_deref().unwrap();
    assert_eq!(resilience.breakers.len(), 1);
    let names: Vec<_> = resilience.hooks.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["allowed", "hooks[1]"]);
}

#[test]
fn schema_5_golden_file_still_decodes() {
    let events = events_v5();
    let golden = std::fs::read(GOLDEN_V5).unwrap_or_else(|e| panic!("{GOLDEN_V5}: {e}"));
    let records = split(&golden);
    assert_eq!(records.len(), V5_EVENTS);
    assert_eq!(events.len(), V5_EVENTS);
    for (i, (bytes, expected)) in records.iter().zip(&events).enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(bytes[1..3], [5, 0], "event {seq} is a schema-5 record");
        let decoded = decode_event(seq, bytes)
            .unwrap_or_else(|e| panic!("schema-5 event {seq} no longer decodes: {e}"));
        assert_eq!(
            &decoded, expected,
            "schema-5 event {seq} decodes differently"
        );
    }
    let Event::RunSubmitted { workflow, .. } = &crate::events()[0].event else {
        unreachable!()
    };
    assert_eq!(
        workflow.spec().tasks[0].secret_env,
        ["API_KEY", "DB_PASSWORD"]
    );
}

#[test]
fn schema_4_golden_file_still_decodes() {
    let mut events = events_with(&format!("{V2_FIELDS}{V3_FIELDS}"));
    events.extend(agent_events());
    let golden = std::fs::read(GOLDEN_V4).unwrap_or_else(|e| panic!("{GOLDEN_V4}: {e}"));
    let records = split(&golden);
    assert_eq!(records.len(), V4_EVENTS);
    for (i, (bytes, expected)) in records.iter().zip(&events).enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(bytes[1..3], [4, 0], "event {seq} is a schema-4 record");
        let decoded = decode_event(seq, bytes)
            .unwrap_or_else(|e| panic!("schema-4 event {seq} no longer decodes: {e}"));
        assert_eq!(
            &decoded, expected,
            "schema-4 event {seq} decodes differently"
        );
    }
}

#[test]
fn schema_3_golden_file_still_decodes() {
    let events = events_with(&format!("{V2_FIELDS}{V3_FIELDS}"));
    let golden = std::fs::read(GOLDEN_V3).unwrap_or_else(|e| panic!("{GOLDEN_V3}: {e}"));
    let records = split(&golden);
    assert_eq!(records.len(), V3_EVENTS);
    for (i, (bytes, expected)) in records.iter().zip(&events).enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(bytes[1..3], [3, 0], "event {seq} is a schema-3 record");
        let decoded = decode_event(seq, bytes)
            .unwrap_or_else(|e| panic!("schema-3 event {seq} no longer decodes: {e}"));
        assert_eq!(
            &decoded, expected,
            "schema-3 event {seq} decodes differently"
        );
    }
}

#[test]
fn schema_2_golden_file_still_decodes() {
    let events = events_with(V2_FIELDS);
    let golden = std::fs::read(GOLDEN_V2).unwrap_or_else(|e| panic!("{GOLDEN_V2}: {e}"));
    let records = split(&golden);
    assert_eq!(records.len(), V2_EVENTS);
    for (i, (bytes, expected)) in records.iter().zip(&events).enumerate() {
        let seq = i as u64 + 1;
        assert_eq!(bytes[1..3], [2, 0], "event {seq} is a schema-2 record");
        let decoded = decode_event(seq, bytes)
            .unwrap_or_else(|e| panic!("schema-2 event {seq} no longer decodes: {e}"));
        assert_eq!(
            &decoded, expected,
            "schema-2 event {seq} decodes differently"
        );
    }
}
