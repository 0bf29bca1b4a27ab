//! Crash safety of agent trees by crashing: SIGKILL the node after a spawn is journaled and
//! before the child's first attempt, while children run, at random moments while a tree of
//! children finishes, and during a subtree cancel; restart it on the same data dir and check
//! that the tree completes (the parent task, interrupted, is retried and re-attaches to its
//! children by key), that no finished child ran again (side-effect files), and that the
//! budgets `troupe tree --json` reports balance.
//!
//! Tasks and tests share a scratch folder; workflows name it `@S@`.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Node flags: snapshots often, so restarts also boot from a snapshot plus a tail.
const ARGS: [&str; 2] = ["--snapshot-every", "50"];

/// The data dir and the scratch folder of one test.
struct Dirs {
    data: PathBuf,
    scratch: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Dirs {
        let tmp = tempfile::tempdir().unwrap();
        let scratch = tmp.path().join("s");
        std::fs::create_dir_all(&scratch).unwrap();
        Dirs {
            data: tmp.path().join("data"),
            scratch,
            _tmp: tmp,
        }
    }

    /// Writes workflow `name` into the scratch folder, `@S@` replaced by its path.
    fn workflow(&self, name: &str, text: &str) -> PathBuf {
        let text = text.replace("@S@", self.scratch.to_str().unwrap());
        workflow(&self.scratch, name, &text)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.scratch.join(name)
    }

    /// The lines of scratch file `name` (none if it does not exist).
    fn lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Polls until scratch file `name` has at least `n` lines; returns them.
    fn wait_lines(&self, name: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lines = self.lines(name);
            if lines.len() >= n {
                return lines;
            }
            assert!(Instant::now() < deadline, "{name}: {lines:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn touch(&self, name: &str) {
        std::fs::write(self.path(name), "").unwrap();
    }

    /// `list --json`.
    fn runs(&self) -> Vec<Value> {
        list_json(&self.data)
    }

    /// The nodes of `tree RUN --json`.
    fn tree(&self, run: &str) -> Vec<Value> {
        tree_nodes(&self.data, run)
    }
}

/// A node stopped with [`NodeProc::stop_attempts`] when dropped (so a failed test leaves no
/// blocked task running); SIGKILL for the crashes.
struct Node(NodeProc);

impl Node {
    fn start(data: &std::path::Path, args: &[&str]) -> Node {
        Node(NodeProc::start_agents(data, args))
    }

    fn kill9(&mut self) {
        self.0.kill9();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.0.stop_attempts();
    }
}

fn seeded_rng() -> rand::rngs::StdRng {
    let seed: u64 = std::env::var("TROUPE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (TROUPE_TEST_SEED reproduces the kill schedule)");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Polls until the node recorded attempt `attempt` of `task` of `run` in its pid file (how a
/// restarted node finds the process to end). A node killed between spawning an attempt and
/// writing that file leaves the process running for good: these tests kill only after it.
fn wait_recorded(data: &std::path::Path, run: &str, task: &str, attempt: u32) {
    let pid_file = data
        .join("logs")
        .join(run)
        .join(task)
        .join(format!("{attempt}.pid"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            pid_file.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every task of every run succeeded exactly once, and no attempt of a task started after
/// its success; returns (run, task) → the attempt that succeeded.
fn check_exactly_once(events: &[Value]) -> HashMap<(String, String), u64> {
    let mut succeeded: HashMap<(String, String), (u64, u64)> = HashMap::new();
    for e in events.iter().filter(|e| e["type"] == "task_succeeded") {
        let key = (
            e["run"].as_str().unwrap().to_owned(),
            e["task"].as_str().unwrap().to_owned(),
        );
        let at = (e["seq"].as_u64().unwrap(), e["attempt"].as_u64().unwrap());
        assert!(
            succeeded.insert(key.clone(), at).is_none(),
            "{key:?} succeeded twice"
        );
    }
    for e in events.iter().filter(|e| e["type"] == "attempt_started") {
        let key = (
            e["run"].as_str().unwrap().to_owned(),
            e["task"].as_str().unwrap().to_owned(),
        );
        if let Some((seq, _)) = succeeded.get(&key) {
            assert!(
                e["seq"].as_u64().unwrap() < *seq,
                "{key:?} started again after it succeeded"
            );
        }
    }
    succeeded.into_iter().map(|(k, (_, a))| (k, a)).collect()
}

/// Side-effect lines `RUN TASK ATTEMPT` (one per attempt that did its work): no attempt
/// wrote twice, and none wrote after the attempt that succeeded (a finished task never ran
/// again). Returns the (run, task) pairs that wrote.
fn check_side_effects(
    lines: &[String],
    succeeded: &HashMap<(String, String), u64>,
) -> HashSet<(String, String)> {
    let mut seen = HashSet::new();
    let mut wrote = HashSet::new();
    for l in lines {
        assert!(seen.insert(l.clone()), "{l:?} ran twice");
        let parts: Vec<&str> = l.split(' ').collect();
        assert_eq!(parts.len(), 3, "{l:?}");
        let key = (parts[0].to_owned(), parts[1].to_owned());
        let attempt: u64 = parts[2].parse().unwrap();
        let ok = succeeded
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} did its work but never succeeded"));
        assert!(
            attempt <= *ok,
            "{key:?}: attempt {attempt} ran after attempt {ok} succeeded"
        );
        wrote.insert(key);
    }
    for (key, ok) in succeeded {
        if wrote.contains(key) {
            assert!(
                seen.contains(&format!("{} {} {ok}", key.0, key.1)),
                "{key:?}: the attempt that succeeded ({ok}) left no side effect"
            );
        }
    }
    wrote
}

/// For every node of a tree that has a budget: what is left is the budget less the
/// subtree's usage (nothing is held in reserve once the tree finished), and a child's
/// budget is what it reserved.
fn check_budgets(nodes: &[Value]) {
    for n in nodes {
        for (counter, limit) in n["budget"].as_object().unwrap() {
            let limit = limit.as_f64().unwrap();
            let used = n["usage"][counter].as_f64().unwrap_or(0.0);
            let left = n["left"][counter].as_f64().unwrap();
            assert_eq!(left, limit - used, "{n}");
            if n["parent"].is_string() {
                assert_eq!(n["reserved"][counter].as_f64(), Some(limit), "{n}");
            }
        }
    }
}

/// The `run_spawned` events of children (a workflow with its own `[authority]` is
/// journaled as a root `run_spawned` with no parent).
fn spawned(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["type"] == "run_spawned" && !e["parent"].is_null())
        .collect()
}

/// Failure kinds of `run`'s attempts of `task`, in order.
fn failure_kinds(events: &[Value], run: &str, task: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["run"] == run && e["task"] == task && e.get("failure_kind").is_some())
        .map(|e| e["failure_kind"].as_str().unwrap().to_owned())
        .collect()
}

/// A parent task that spawns (or re-attaches to) child `key` running `child.toml`, notes
/// `ATTEMPT CHILD` in `spawned`, and outputs what `troupe wait` says. Retries forever.
const LEAD: &str = r#"name = "lead"
[[task]]
id = "lead"
retry = { max_attempts = 0, initial_interval = "10ms" }
shell = '''c=$(troupe spawn --key gated --input '{"env": "prod"}' --detach @S@/child.toml) || exit 9
echo "$TROUPE_ATTEMPT $c" >> @S@/spawned
troupe wait --json $c > "$TROUPE_OUTPUT"'''
"#;

#[test]
fn a_child_spawned_but_not_started_survives_a_crash_and_runs_once() {
    let d = Dirs::new();
    d.workflow(
        "child.toml",
        r#"name = "gated"
[[task]]
id = "deploy"
requires_approval = true
shell = '''echo "$TROUPE_RUN_ID $TROUPE_TASK_ID $TROUPE_ATTEMPT" >> @S@/ran; echo '"deployed"' > "$TROUPE_OUTPUT"'''
"#,
    );
    let lead = d.workflow("lead.toml", LEAD);
    let mut node = Node::start(&d.data, &ARGS);
    let root = submit(&d.data, &lead);
    let first = d.wait_lines("spawned", 1);
    let child = first[0].split(' ').nth(1).unwrap().to_owned();
    // Journaled, waiting for a human: no attempt has started.
    wait_until(&d.data, &child, 30, |v| {
        task_state(v, "deploy") == "awaiting_approval"
    });
    node.kill9();
    let _node = Node::start(&d.data, &ARGS);
    // The parent's attempt 1 was interrupted; attempt 2 re-attaches by key.
    let lines = d.wait_lines("spawned", 2);
    assert_eq!(lines[1], format!("2 {child}"));
    let v = run_status(&d.data, &child);
    assert_eq!(task_state(&v, "deploy"), "awaiting_approval", "{v}");
    run_cmd_ok(
        &d.data,
        &["approve", &format!("{child}/deploy"), "--as", "tester"],
    );
    let v = wait_finished(&d.data, &root, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let events = events(&d.data);
    assert_eq!(spawned(&events).len(), 1);
    assert_eq!(failure_kinds(&events, &root, "lead"), ["interrupted"]);
    let succeeded = check_exactly_once(&events);
    check_side_effects(&d.lines("ran"), &succeeded);
    assert_eq!(d.lines("ran"), [format!("{child} deploy 1")]);
    let o = run_cmd_ok(&d.data, &["output", &format!("{root}/lead"), "--json"]);
    let out: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        out["output"],
        json!({"run": child, "key": "gated", "state": "succeeded", "output": "deployed"})
    );
}

#[test]
fn children_running_at_a_crash_are_retried_and_their_parent_reattaches() {
    let d = Dirs::new();
    // Each child notes its pid and blocks until released, then does its work once.
    d.workflow(
        "child.toml",
        r#"name = "blocked"
[[task]]
id = "work"
retry = { max_attempts = 0, initial_interval = "10ms" }
shell = '''echo "$TROUPE_RUN_ID $$" >> @S@/pids; while [ ! -f @S@/release ]; do sleep 0.02; done; echo "$TROUPE_RUN_ID $TROUPE_TASK_ID $TROUPE_ATTEMPT" >> @S@/ran'''
"#,
    );
    let lead = d.workflow(
        "lead.toml",
        r#"name = "lead"
[[task]]
id = "lead"
retry = { max_attempts = 0, initial_interval = "10ms" }
shell = '''for i in 1 2 3; do troupe spawn --key c$i --input "{\"i\": $i}" --detach @S@/child.toml >> @S@/ids.$TROUPE_ATTEMPT || exit 9; done
troupe wait $(cat @S@/ids.$TROUPE_ATTEMPT)'''
"#,
    );
    let mut node = Node::start(&d.data, &ARGS);
    let root = submit(&d.data, &lead);
    let lines = d.wait_lines("pids", 3);
    let before: Vec<i32> = lines
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    for l in &lines {
        wait_recorded(&d.data, l.split(' ').next().unwrap(), "work", 1);
    }
    node.kill9();
    let _node = Node::start(&d.data, &ARGS);
    // The old attempts' processes are ended at the restart; new attempts block again.
    for pid in &before {
        wait_gone(*pid);
    }
    d.wait_lines("pids", 6);
    let ids = d.wait_lines("ids.2", 3);
    assert_eq!(
        ids,
        d.lines("ids.1"),
        "attempt 2 re-attached to the same children"
    );
    d.touch("release");
    let v = wait_finished(&d.data, &root, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let events = events(&d.data);
    assert_eq!(spawned(&events).len(), 3);
    let succeeded = check_exactly_once(&events);
    let wrote = check_side_effects(&d.lines("ran"), &succeeded);
    assert_eq!(wrote.len(), 3);
    for id in &ids {
        assert_eq!(failure_kinds(&events, id, "work"), ["interrupted"]);
    }
    assert_eq!(failure_kinds(&events, &root, "lead"), ["interrupted"]);
}

/// Children of three steps, each step reporting 10 tokens and noting its work.
const STEPS: &str = r#"name = "steps"
[defaults]
retry = { max_attempts = 0, initial_interval = "10ms" }
[[task]]
id = "s1"
shell = '''sleep 0.$((RANDOM % 2 + 1)); echo "$TROUPE_RUN_ID $TROUPE_TASK_ID $TROUPE_ATTEMPT" >> @S@/ran; echo '{"tokens": 10}' > "$TROUPE_USAGE"'''
[[task]]
id = "s2"
depends_on = ["s1"]
shell = '''sleep 0.$((RANDOM % 2 + 1)); echo "$TROUPE_RUN_ID $TROUPE_TASK_ID $TROUPE_ATTEMPT" >> @S@/ran; echo '{"tokens": 10}' > "$TROUPE_USAGE"'''
[[task]]
id = "s3"
depends_on = ["s2"]
shell = '''sleep 0.$((RANDOM % 2 + 1)); echo "$TROUPE_RUN_ID $TROUPE_TASK_ID $TROUPE_ATTEMPT" >> @S@/ran; echo '{"tokens": 10}' > "$TROUPE_USAGE"; cat "$TROUPE_INPUT" > "$TROUPE_OUTPUT"'''
"#;

/// Children in the kill loop.
const N: usize = 12;

fn tasks_succeeded(d: &Dirs) -> u64 {
    d.runs()
        .iter()
        .map(|r| r["tasks_succeeded"].as_u64().unwrap())
        .sum()
}

#[test]
fn sigkill_at_random_moments_of_a_tree_loses_and_repeats_nothing() {
    let mut rng = seeded_rng();
    let d = Dirs::new();
    d.workflow("steps.toml", STEPS);
    let lead = d.workflow(
        "lead.toml",
        &format!(
            r#"name = "lead"
[authority]
budget = {{ tokens = 1000 }}
[[task]]
id = "lead"
retry = {{ max_attempts = 0, initial_interval = "10ms" }}
shell = '''rm -f @S@/ids.$TROUPE_ATTEMPT
for i in $(seq 1 {N}); do troupe spawn --key c$i --input "{{\"i\": $i}}" --budget tokens=50 --detach @S@/steps.toml >> @S@/ids.$TROUPE_ATTEMPT || exit 9; done
troupe wait --json $(cat @S@/ids.$TROUPE_ATTEMPT) > @S@/waited.$TROUPE_ATTEMPT'''
"#
        ),
    );
    // Few workers, so the children's steps finish one after another: many moments to crash.
    let args = ["--workers", "4", "--snapshot-every", "50"];
    let mut node = Node::start(&d.data, &args);
    let root = submit(&d.data, &lead);
    let total = (3 * N + 1) as u64;
    let mut kills = 0;
    while kills < 16 {
        let deadline = Instant::now() + Duration::from_secs(60);
        let before = tasks_succeeded(&d);
        if before >= total {
            break;
        }
        // The first kill lands right after the first spawn returned; later ones after a
        // few more tasks finish, plus 0-40 ms.
        if kills == 0 {
            d.wait_lines("ids.1", 1);
        } else {
            let step = rng.random_range(0..=2);
            while tasks_succeeded(&d) < (before + step).min(total) {
                assert!(Instant::now() < deadline, "no progress after kill {kills}");
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
        }
        let at = tasks_succeeded(&d);
        node.kill9();
        eprintln!("kill {kills} at about {at} tasks succeeded");
        kills += 1;
        node = Node::start(&d.data, &args);
    }
    eprintln!("{kills} kills");
    assert!(kills >= 8, "the tree finished after only {kills} kills");
    let v = wait_finished(&d.data, &root, 180);
    assert_eq!(v["state"], "succeeded", "{v}");
    let events = events(&d.data);
    let spawned = spawned(&events);
    let keys: HashSet<&str> = spawned.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert_eq!((spawned.len(), keys.len()), (N, N), "one child per key");
    let succeeded = check_exactly_once(&events);
    assert_eq!(succeeded.len(), 3 * N + 1);
    let wrote = check_side_effects(&d.lines("ran"), &succeeded);
    assert_eq!(wrote.len(), 3 * N);
    // The attempt of the parent that succeeded saw every child succeed, with its input as
    // its output (the order of its spawns).
    let last = succeeded[&(root.clone(), "lead".to_owned())];
    let waited: Vec<Value> = d
        .lines(&format!("waited.{last}"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(waited.len(), N);
    for (i, w) in waited.iter().enumerate() {
        assert_eq!(w["key"], format!("c{}", i + 1));
        assert_eq!(w["state"], "succeeded");
        assert_eq!(w["output"], json!({ "i": i + 1 }));
    }
    let nodes = d.tree(&root);
    assert_eq!(nodes.len(), N + 1);
    check_budgets(&nodes);
    let usage: f64 = events
        .iter()
        .filter(|e| e["type"] == "attempt_usage")
        .map(|e| e["counters"]["tokens"].as_f64().unwrap_or(0.0))
        .sum();
    // Usage is journaled when an attempt ends, so interrupted attempts add none: 3 steps of
    // 10 tokens per child.
    assert_eq!(usage, (30 * N) as f64);
    assert_eq!(nodes[0]["usage"]["tokens"].as_f64(), Some(usage));
    assert_eq!(nodes[0]["left"]["tokens"].as_f64(), Some(1000.0 - usage));
    for n in &nodes[1..] {
        assert_eq!(n["state"], "succeeded", "{n}");
        assert_eq!(n["usage"]["tokens"], 30.0, "{n}");
        assert_eq!(n["left"]["tokens"], 20.0, "{n}");
    }
}

#[test]
fn a_subtree_cancel_interrupted_by_a_crash_finishes_at_restart() {
    let mut rng = seeded_rng();
    for round in 0..3 {
        let d = Dirs::new();
        // root → 3 children → one grandchild each, every leaf blocking.
        d.workflow(
            "mid.toml",
            r#"name = "mid"
[[task]]
id = "mid"
shell = '''troupe spawn --key leaf --input "{\"leaf\": $TROUPE_DEPTH}" --command sh -c 'echo "$TROUPE_RUN_ID $$" >> "$1"; exec sleep 300' sh @S@/pids'''
"#,
        );
        let lead = d.workflow(
            "lead.toml",
            r#"name = "lead"
[[task]]
id = "lead"
shell = '''for i in 1 2 3; do troupe spawn --key m$i --input "{\"m\": $i}" --detach @S@/mid.toml >> @S@/ids || exit 9; done; exec sleep 300'''
"#,
        );
        let mut node = Node::start(&d.data, &ARGS);
        let root = submit(&d.data, &lead);
        let lines = d.wait_lines("pids", 3);
        let pids: Vec<i32> = lines
            .iter()
            .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
            .collect();
        for l in &lines {
            wait_recorded(&d.data, l.split(' ').next().unwrap(), "main", 1);
        }
        run_cmd_ok(&d.data, &["cancel", &root]);
        std::thread::sleep(Duration::from_millis(rng.random_range(0..10) * round));
        node.kill9();
        let _node = Node::start(&d.data, &ARGS);
        let deadline = Instant::now() + Duration::from_secs(60);
        let nodes = loop {
            let nodes = d.tree(&root);
            if nodes.iter().all(|n| n["state"] == "cancelled") {
                break nodes;
            }
            assert!(Instant::now() < deadline, "round {round}: {nodes:#?}");
            std::thread::sleep(Duration::from_millis(25));
        };
        assert_eq!(
            nodes.len(),
            7,
            "round {round}: root, 3 children, 3 grandchildren"
        );
        for pid in pids {
            wait_gone(pid);
        }
        let events = events(&d.data);
        let cancelled: Vec<&str> = events
            .iter()
            .filter(|e| e["type"] == "run_cancelled")
            .map(|e| e["run"].as_str().unwrap())
            .collect();
        let distinct: HashSet<&str> = cancelled.iter().copied().collect();
        assert_eq!(
            (cancelled.len(), distinct.len()),
            (7, 7),
            "round {round}: each run cancelled once"
        );
    }
}

/// A check of [`check_side_effects`] itself: a line from after the success is caught.
#[test]
fn the_side_effect_check_catches_a_rerun() {
    let succeeded: HashMap<(String, String), u64> = [(("R".to_owned(), "t".to_owned()), 2)]
        .into_iter()
        .collect();
    check_side_effects(&["R t 1".into(), "R t 2".into()], &succeeded);
    let rerun = std::panic::catch_unwind(|| {
        check_side_effects(&["R t 2".into(), "R t 3".into()], &succeeded)
    });
    assert!(rerun.is_err());
    let twice = std::panic::catch_unwind(|| {
        check_side_effects(&["R t 2".into(), "R t 2".into()], &succeeded)
    });
    assert!(twice.is_err());
}

/// Writes `events` (stamped now) as the journal of data dir `dir`, as a node that crashed
/// right after them would have left it.
fn write_journal(dir: &std::path::Path, events: Vec<troupe::model::Event>) {
    use troupe::model::{EventRecord, Timestamp};
    use troupe::storage::{Journal, JournalOptions};
    std::fs::create_dir_all(dir).unwrap();
    let journal = Journal::open(&dir.join("journal")).unwrap();
    let mut w = journal.writer(&JournalOptions::default()).unwrap();
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let records: Vec<EventRecord> = events
        .into_iter()
        .map(|event| EventRecord { time: now, event })
        .collect();
    w.stage(&records).unwrap();
    w.commit().unwrap();
}

/// `run_spawned` of child `run` with key "k" of task `task` (attempt 1) of `parent` (the
/// event carries the default authority for a parent that never spawned before).
fn spawned_event(
    parent: troupe::model::RunId,
    task: &str,
    run: troupe::model::RunId,
    workflow: troupe::model::Workflow,
    budget: troupe::model::Counters,
    on_parent_exit: troupe::model::OnParentExit,
) -> troupe::model::Event {
    use troupe::model::authority::Authority;
    use troupe::model::event::Spawn;
    use troupe::model::{Event, TaskId};
    Event::RunSpawned {
        run,
        workflow: std::sync::Arc::new(workflow),
        spawn: Box::new(Spawn {
            parent: Some((parent, TaskId::new(task).unwrap())),
            attempt: 1,
            key: "k".into(),
            input: Some("{\"n\":1}".into()),
            authority: Authority {
                budget: budget.clone(),
                ..Authority::default()
            },
            reserved: budget,
            on_failure: Default::default(),
            on_parent_exit,
            parent_authority: Some(Authority::default()),
            routing: None,
            on_budget_exhausted: Default::default(),
        }),
    }
}

/// The crash window between a parent task's end and the cancel of its children (an
/// `on_parent_exit = "cancel"` child still running): a journal that stops right after the
/// parent task's success boots and cancels the child.
#[test]
fn a_child_whose_parent_task_ended_just_before_a_crash_is_cancelled_at_boot() {
    use troupe::model::decide::child_id;
    use troupe::model::{Event, RunId, TaskId};
    let d = Dirs::new();
    let lead = d.workflow(
        "lead.toml",
        "name = \"lead\"\n[[task]]\nid = \"lead\"\ncommand = [\"true\"]\n",
    );
    let child = d.workflow(
        "child.toml",
        "name = \"child\"\n[[task]]\nid = \"work\"\nretry = { max_attempts = 0, initial_interval = \"10ms\" }\n\
         shell = '''echo \"$TROUPE_ATTEMPT\" >> @S@/ran; exec sleep 300'''\n",
    );
    let root = RunId::from_ulid(ulid::Ulid::new());
    let kid = child_id(root, "lead", "k");
    let (lead_t, work) = (TaskId::new("lead").unwrap(), TaskId::new("work").unwrap());
    write_journal(
        &d.data,
        vec![
            Event::RunSubmitted {
                run: root,
                workflow: std::sync::Arc::new(
                    troupe::workflow_file::load_for_submit(&lead).unwrap(),
                ),
            },
            Event::AttemptStarted {
                run: root,
                task: lead_t.clone(),
                attempt: 1,
            },
            spawned_event(
                root,
                "lead",
                kid,
                troupe::workflow_file::load_for_submit(&child).unwrap(),
                Default::default(),
                Default::default(),
            ),
            Event::AttemptStarted {
                run: kid,
                task: work,
                attempt: 1,
            },
            Event::TaskSucceeded {
                run: root,
                task: lead_t,
                attempt: 1,
                usage: None,
            },
        ],
    );
    let _node = Node::start(&d.data, &ARGS);
    let kid = kid.to_string();
    let v = wait_finished(&d.data, &kid, 60);
    assert_eq!(v["state"], "cancelled", "{v}");
    assert_eq!(
        wait_finished(&d.data, &root.to_string(), 60)["state"],
        "succeeded"
    );
    let events = events(&d.data);
    let cancelled: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "run_cancelled")
        .collect();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["run"], kid.as_str());
    // The interrupted attempt is not run again for a run being cancelled.
    assert!(d.lines("ran").is_empty(), "{:?}", d.lines("ran"));
}

/// The crash window between usage over a budget and `budget_exhausted`: a journal that
/// stops right after the attempt that overspent boots and stops the child.
#[test]
fn usage_over_budget_just_before_a_crash_exhausts_the_child_at_boot() {
    use troupe::model::decide::child_id;
    use troupe::model::{Event, RunId, TaskId};
    let d = Dirs::new();
    let lead = d.workflow(
        "lead.toml",
        "name = \"lead\"\n[[task]]\nid = \"lead\"\nretry = { max_attempts = 0, initial_interval = \"10ms\" }\ncommand = [\"true\"]\n",
    );
    let child = d.workflow(
        "child.toml",
        "name = \"spender\"\n[[task]]\nid = \"spend\"\ncommand = [\"true\"]\n\
         [[task]]\nid = \"hold\"\nretry = { max_attempts = 0, initial_interval = \"10ms\" }\n\
         shell = '''echo \"$TROUPE_ATTEMPT\" >> @S@/ran; exec sleep 300'''\n",
    );
    let root = RunId::from_ulid(ulid::Ulid::new());
    let kid = child_id(root, "lead", "k");
    let spend = TaskId::new("spend").unwrap();
    let tokens = |n: f64| [("tokens".to_owned(), n)].into_iter().collect();
    write_journal(
        &d.data,
        vec![
            Event::RunSubmitted {
                run: root,
                workflow: std::sync::Arc::new(
                    troupe::workflow_file::load_for_submit(&lead).unwrap(),
                ),
            },
            Event::AttemptStarted {
                run: root,
                task: TaskId::new("lead").unwrap(),
                attempt: 1,
            },
            spawned_event(
                root,
                "lead",
                kid,
                troupe::workflow_file::load_for_submit(&child).unwrap(),
                tokens(100.0),
                Default::default(),
            ),
            Event::AttemptStarted {
                run: kid,
                task: spend.clone(),
                attempt: 1,
            },
            Event::AttemptStarted {
                run: kid,
                task: TaskId::new("hold").unwrap(),
                attempt: 1,
            },
            Event::AttemptUsage {
                run: kid,
                task: spend.clone(),
                attempt: 1,
                counters: tokens(300.0),
            },
            Event::TaskSucceeded {
                run: kid,
                task: spend,
                attempt: 1,
                usage: None,
            },
        ],
    );
    let _node = Node::start(&d.data, &ARGS);
    let kid = kid.to_string();
    let v = wait_finished(&d.data, &kid, 60);
    assert_eq!(v["state"], "budget_exhausted", "{v}");
    assert_eq!(task_state(&v, "hold"), "cancelled");
    let root = root.to_string();
    assert_eq!(wait_finished(&d.data, &root, 60)["state"], "succeeded");
    let events = events(&d.data);
    let exhausted: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "budget_exhausted")
        .collect();
    assert_eq!(exhausted.len(), 1);
    assert_eq!(exhausted[0]["run"], kid.as_str());
    assert_eq!(exhausted[0]["used"], 300.0);
    let nodes = d.tree(&root);
    assert_eq!(nodes[1]["exhausted"], "tokens");
    assert_eq!(nodes[1]["usage"]["tokens"], 300.0);
    assert_eq!(nodes[0]["usage"]["tokens"], 300.0);
    check_budgets(&nodes);
    assert!(d.lines("ran").is_empty(), "{:?}", d.lines("ran"));
}

/// The crash window between `budget_exhausted` and the cancel of the subtree below the
/// exhausted run: an abandoned grandchild (`on_parent_exit = "abandon"`, so its parent
/// task's end does not close it) still running is cancelled at boot.
#[test]
fn an_abandoned_grandchild_of_an_exhausted_run_is_cancelled_at_boot() {
    use troupe::model::decide::child_id;
    use troupe::model::{Event, OnParentExit, RunId, TaskId};
    let d = Dirs::new();
    let lead = d.workflow(
        "lead.toml",
        "name = \"lead\"\n[[task]]\nid = \"lead\"\nretry = { max_attempts = 0, initial_interval = \"10ms\" }\ncommand = [\"true\"]\n",
    );
    let child = d.workflow(
        "child.toml",
        "name = \"spender\"\n[[task]]\nid = \"spend\"\ncommand = [\"true\"]\n\
         [[task]]\nid = \"hold\"\ncommand = [\"sleep\", \"300\"]\n",
    );
    let grandchild = d.workflow(
        "grandchild.toml",
        "name = \"idle\"\n[[task]]\nid = \"idle\"\nretry = { max_attempts = 0, initial_interval = \"10ms\" }\n\
         shell = '''echo \"$TROUPE_ATTEMPT\" >> @S@/ran; exec sleep 300'''\n",
    );
    let root = RunId::from_ulid(ulid::Ulid::new());
    let kid = child_id(root, "lead", "k");
    let grandkid = child_id(kid, "hold", "k");
    let spend = TaskId::new("spend").unwrap();
    let tokens = |n: f64| [("tokens".to_owned(), n)].into_iter().collect();
    write_journal(
        &d.data,
        vec![
            Event::RunSubmitted {
                run: root,
                workflow: std::sync::Arc::new(
                    troupe::workflow_file::load_for_submit(&lead).unwrap(),
                ),
            },
            Event::AttemptStarted {
                run: root,
                task: TaskId::new("lead").unwrap(),
                attempt: 1,
            },
            spawned_event(
                root,
                "lead",
                kid,
                troupe::workflow_file::load_for_submit(&child).unwrap(),
                tokens(100.0),
                OnParentExit::Cancel,
            ),
            Event::AttemptStarted {
                run: kid,
                task: TaskId::new("hold").unwrap(),
                attempt: 1,
            },
            spawned_event(
                kid,
                "hold",
                grandkid,
                troupe::workflow_file::load_for_submit(&grandchild).unwrap(),
                Default::default(),
                OnParentExit::Abandon,
            ),
            Event::AttemptStarted {
                run: grandkid,
                task: TaskId::new("idle").unwrap(),
                attempt: 1,
            },
            Event::AttemptStarted {
                run: kid,
                task: spend.clone(),
                attempt: 1,
            },
            Event::AttemptUsage {
                run: kid,
                task: spend.clone(),
                attempt: 1,
                counters: tokens(300.0),
            },
            Event::TaskSucceeded {
                run: kid,
                task: spend,
                attempt: 1,
                usage: None,
            },
            Event::BudgetExhausted {
                run: kid,
                counter: "tokens".into(),
                used: 300.0,
                limit: 100.0,
            },
        ],
    );
    let _node = Node::start(&d.data, &ARGS);
    let grandkid = grandkid.to_string();
    let v = wait_finished(&d.data, &grandkid, 60);
    assert_eq!(v["state"], "cancelled", "{v}");
    assert_eq!(
        run_status(&d.data, &kid.to_string())["state"],
        "budget_exhausted"
    );
    assert!(d.lines("ran").is_empty(), "{:?}", d.lines("ran"));
}

/// SIGKILL while escalations wait for a human: a failed `--on-failure ask` child and a
/// `--on-budget-exhausted ask` child over its budget. After restart both still ask (the
/// asking is folded from the journal), and deciding them then finishes the work: the failed
/// child is retried once and succeeds, the other resumes with its budget extended; no task
/// that succeeded ran again.
#[test]
fn escalations_waiting_for_a_human_survive_a_crash() {
    let d = Dirs::new();
    let flaky = d.workflow(
        "flaky.toml",
        "name = \"flaky\"\n[defaults]\nretry = { max_attempts = 1 }\n[[task]]\nid = \"try\"\nshell = '''echo try >> @S@/ran-flaky; test -f @S@/fixed || exit 3'''\n",
    );
    let spender = d.workflow(
        "spender.toml",
        "name = \"spender\"\n[[task]]\nid = \"spend\"\nshell = '''echo spend >> @S@/ran-spender; echo '{\"tokens\": 15}' > \"$TROUPE_USAGE\"'''\n[[task]]\nid = \"after\"\ndepends_on = [\"spend\"]\nshell = '''echo after >> @S@/ran-spender'''\n",
    );
    let mut node = Node::start(&d.data, &ARGS);
    let spawn = |key: &str, extra: &[&str], file: &std::path::Path| {
        let mut args = vec!["spawn", "--key", key, "--detach"];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        let o = run_cmd_ok(&d.data, &args);
        stdout(&o).trim().to_owned()
    };
    let a = spawn("flaky", &["--on-failure", "ask"], &flaky);
    let b = spawn(
        "spender",
        &["--budget", "tokens=10", "--on-budget-exhausted", "ask"],
        &spender,
    );
    let asking = |run: &str| d.tree(run)[0]["asking"].is_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(asking(&a) && asking(&b)) {
        assert!(Instant::now() < deadline, "no escalation");
        std::thread::sleep(Duration::from_millis(20));
    }
    node.kill9();
    let _node = Node::start(&d.data, &ARGS);
    assert!(
        asking(&a) && asking(&b),
        "the escalations survive the crash"
    );
    d.touch("fixed");
    run_cmd_ok(&d.data, &["approve", &a, "--as", "tester"]);
    run_cmd_ok(
        &d.data,
        &["approve", &b, "--as", "tester", "--extend", "tokens=10"],
    );
    for run in [&a, &b] {
        let v = wait_finished(&d.data, run, 60);
        assert_eq!(v["state"], "succeeded", "{v}");
    }
    assert_eq!(
        d.lines("ran-flaky"),
        ["try", "try"],
        "failed once, retried once"
    );
    assert_eq!(
        d.lines("ran-spender"),
        ["spend", "after"],
        "nothing ran twice"
    );
    let events = events(&d.data);
    check_exactly_once(&events);
}
