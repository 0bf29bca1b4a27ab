//! Dry runs driven as a user would (real binary, real files, a real node): `run FILE
//! --dry-run` prints the plan and touches no node or data dir; `cancel|suspend|resume|retry|
//! halt --dry-run` list what would change and journal nothing.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::*;
use serde_json::Value;

/// Three caps at work: `max_concurrency = 3`, a one-slot pool, a priority; an approval and
/// two saga steps.
const PLAN: &str = r#"
name = "plan"
max_concurrency = 3
[pools]
gpu = 1
[defaults]
timeout = "2m"
[[task]]
id = "fetch"
command = ["true"]
[[task]]
id = "g1"
command = ["true"]
depends_on = ["fetch"]
pool = "gpu"
[[task]]
id = "g2"
command = ["true"]
depends_on = ["fetch"]
pool = "gpu"
[[task]]
id = "cpu1"
command = ["true"]
depends_on = ["fetch"]
[[task]]
id = "cpu2"
command = ["true"]
depends_on = ["fetch"]
[[task]]
id = "cpu3"
command = ["true"]
depends_on = ["fetch"]
priority = 5
[[task]]
id = "merge"
command = ["true"]
depends_on = ["g1", "g2", "cpu1", "cpu2", "cpu3"]
requires_approval = true
approval_timeout = "30m"
compensate = ["true"]
retry = { max_attempts = 1 }
[[task]]
id = "deploy"
command = ["true"]
depends_on = ["merge"]
compensate = ["true"]
"#;

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// `troupe --data-dir DIR ARGS` expected to exit 2 (unknown run, invalid file).
fn exits_2(dir: &Path, args: &[&str]) -> String {
    let o = run(dir, args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    stderr(&o)
}

#[test]
fn run_dry_run_prints_waves_within_the_caps_and_touches_no_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let file = workflow(tmp.path(), "plan.toml", PLAN);
    // A data dir that does not exist stays so: no node, no journal, no socket.
    let dir = tmp.path().join("never-created");
    let o = run_cmd_ok(
        &dir,
        &["run", file.to_str().unwrap(), "--dry-run", "--json"],
    );
    assert!(!dir.exists(), "the dry run created the data dir");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    let waves: Vec<Vec<&str>> = v["waves"].as_array().unwrap().iter().map(strings).collect();
    // cpu3 first (priority 5), one gpu task per wave, at most 3 per wave; the overflow (g2,
    // cpu2) takes the next wave.
    assert_eq!(
        waves,
        [
            vec!["fetch"],
            vec!["cpu3", "g1", "cpu1"],
            vec!["g2", "cpu2"],
            vec!["merge"],
            vec!["deploy"]
        ]
    );
    let deps: Vec<(&str, Vec<&str>)> = vec![
        ("g1", vec!["fetch"]),
        ("merge", vec!["g1", "g2", "cpu1", "cpu2", "cpu3"]),
        ("deploy", vec!["merge"]),
    ];
    let mut done: HashSet<&str> = HashSet::new();
    for wave in &waves {
        assert!(wave.len() <= 3, "{wave:?} exceeds max_concurrency");
        assert!(
            wave.iter().filter(|t| t.starts_with('g')).count() <= 1,
            "{wave:?} exceeds the gpu pool"
        );
        for t in wave {
            for (task, needs) in &deps {
                if task == t {
                    assert!(
                        needs.iter().all(|d| done.contains(d)),
                        "{t} before its deps"
                    );
                }
            }
        }
        done.extend(wave.iter().copied());
    }
    assert_eq!(v["steps"], 5);
    assert_eq!(v["min_steps"], 4); // the critical path; ⌈8 / 3⌉ = 3, ⌈2 / 1⌉ = 2
    assert_eq!(v["critical_path"]["length"], 4);
    assert_eq!(strings(&v["critical_path"]["tasks"]).len(), 4);
    assert_eq!(v["approvals"][0]["task"], "merge");
    assert_eq!(v["approvals"][0]["approval_timeout_s"], 1800.0);
    assert_eq!(strings(&v["compensations"]), ["deploy", "merge"]);
    let merge = &v["tasks"][6];
    assert_eq!(merge["id"], "merge");
    assert_eq!(
        (&merge["wave"], &merge["max_attempts"], &merge["timeout_s"]),
        (&Value::from(4), &Value::from(1), &Value::from(120.0))
    );
    assert_eq!(v["tasks"][1]["pool"], "gpu");
    assert_eq!(v["templates"], Value::Array(vec![]));
    assert_eq!(v["fan_outs"], Value::Array(vec![]));

    // The same plan for people.
    let o = run_cmd_ok(&dir, &["run", file.to_str().unwrap(), "--dry-run"]);
    let text = stdout(&o);
    assert!(text.contains("5 waves (at least 4 steps)"), "{text}");
    assert!(text.contains("wave 2: cpu3, g1, cpu1\n"), "{text}");
    assert!(text.contains("wave 3: g2, cpu2\n"), "{text}");
    assert!(
        text.contains("approvals: merge (expires after 30m)"),
        "{text}"
    );
    assert!(
        text.contains("compensations, in undo order: deploy, merge"),
        "{text}"
    );
    assert!(!dir.exists());
}

#[test]
fn run_dry_run_of_an_invalid_file_exits_2_with_the_position() {
    let tmp = tempfile::tempdir().unwrap();
    let file = workflow(
        tmp.path(),
        "bad.toml",
        "name = \"bad\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ndepends_on = [\"nope\"]\n",
    );
    let path = file.to_str().unwrap();
    let err = exits_2(tmp.path(), &["run", path, "--dry-run"]);
    assert!(
        err.contains(&format!("{path}:5:")) && err.contains("`nope`"),
        "{err}"
    );
    let o = run(tmp.path(), &["run", path, "--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (&v["valid"], &v["errors"][0]["line"]),
        (&false.into(), &5.into())
    );
}

#[test]
fn run_dry_run_submits_nothing_to_a_running_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _node = NodeProc::start(dir, &[]);
    let file = workflow(dir, "plan.toml", PLAN);
    run_cmd_ok(dir, &["run", file.to_str().unwrap(), "--dry-run"]);
    let o = run_cmd_ok(dir, &["list", "--json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&o.stdout).unwrap(),
        Value::Array(vec![])
    );
    assert!(events(dir).is_empty());
}

/// One run with a long attempt, a suspended task and a pending one; one failed run.
const LONG: &str = r#"
name = "long"
[[task]]
id = "slow"
command = ["sleep", "60"]
[[task]]
id = "held"
command = ["true"]
depends_on = ["slow"]
[[task]]
id = "later"
command = ["true"]
depends_on = ["slow"]
"#;

const FAILS: &str = r#"
name = "fails"
[[task]]
id = "bad"
command = ["false"]
retry = { max_attempts = 1 }
[[task]]
id = "next"
command = ["true"]
depends_on = ["bad"]
"#;

/// `troupe ARGS --dry-run --json` as JSON.
fn dry(dir: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--dry-run", "--json"]);
    let o = run_cmd_ok(dir, &all);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `(task, from, to)` of a dry run's task transitions.
fn moves(v: &Value) -> Vec<(String, String, String)> {
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap().to_owned();
            (s("task"), s("from"), s("to"))
        })
        .collect()
}

fn m(task: &str, from: &str, to: &str) -> (String, String, String) {
    (task.into(), from.into(), to.into())
}

#[test]
fn control_dry_runs_list_what_would_change_and_journal_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _node = NodeProc::start(dir, &[]);
    let long = submit(dir, &workflow(dir, "long.toml", LONG));
    let fails = submit(dir, &workflow(dir, "fails.toml", FAILS));
    wait_finished(dir, &fails, 60);
    wait_until(dir, &long, 60, |v| task_state(v, "slow") == "running");
    run_cmd_ok(dir, &["suspend", &format!("{long}/held")]);
    let before = events(dir).len();
    let status_before = run_status(dir, &long);

    // cancel RUN: every open task, the run, and the running attempt terminated.
    let v = dry(dir, &["cancel", &long]);
    assert_eq!(
        (&v["command"], &v["target"]),
        (&"cancel".into(), &long.as_str().into())
    );
    assert_eq!(strings(&v["events"]), ["run_cancelled"]);
    let mut got = moves(&v);
    got.sort();
    assert_eq!(
        got,
        [
            m("held", "suspended", "cancelled"),
            m("later", "pending", "cancelled"),
            m("slow", "running", "cancelled")
        ]
    );
    assert_eq!(v["runs"][0]["from"], "running");
    assert_eq!(v["runs"][0]["to"], "cancelled");
    assert_eq!(v["terminate"].as_array().unwrap().len(), 1);
    assert_eq!(
        (&v["terminate"][0]["task"], &v["terminate"][0]["attempt"]),
        (&"slow".into(), &1.into())
    );

    // suspend RUN: the waiting task not yet suspended; the running attempt goes on.
    let v = dry(dir, &["suspend", &long]);
    assert_eq!(moves(&v), [m("later", "pending", "suspended")]);
    assert!(v["terminate"].as_array().unwrap().is_empty());

    // resume RUN/TASK: the suspended task waits for its dependency again.
    let v = dry(dir, &["resume", &format!("{long}/held")]);
    assert_eq!(moves(&v), [m("held", "suspended", "pending")]);

    // retry RUN: the failed task reopens with its upstream_failed dependent, and the run.
    let v = dry(dir, &["retry", &fails]);
    assert_eq!(strings(&v["events"]), ["task_retried"]);
    assert_eq!(
        moves(&v),
        [
            m("bad", "failed", "ready"),
            m("next", "upstream_failed", "pending")
        ]
    );
    assert_eq!(
        (&v["runs"][0]["from"], &v["runs"][0]["to"]),
        (&"failed".into(), &"running".into())
    );

    // halt --kill: the running attempt it would terminate.
    let v = dry(dir, &["halt", "--kill"]);
    assert_eq!(v["halt"]["halted"], false);
    assert_eq!(v["halt"]["kill"], true);
    assert_eq!(v["terminate"][0]["run"], long.as_str());
    assert_eq!(v["terminate"][0]["task"], "slow");
    let v = dry(dir, &["halt"]);
    assert!(v["terminate"].as_array().unwrap().is_empty());
    assert_eq!(v["halt"]["running"][0]["task"], "slow");
    let text = stdout(&run_cmd_ok(dir, &["halt", "--dry-run"]));
    assert!(text.contains("1 running attempt would go on"), "{text}");

    // A refusal is the real command's: resuming a task that is not suspended.
    let err = exits_2(dir, &["resume", &format!("{long}/later"), "--dry-run"]);
    assert!(err.contains("not suspended"), "{err}");
    // An unknown run fails like the real command.
    let unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    for verb in ["cancel", "suspend", "resume", "retry"] {
        let err = exits_2(dir, &[verb, unknown, "--dry-run"]);
        assert!(err.contains(&format!("no run {unknown}")), "{verb}: {err}");
        exits_2(dir, &[verb, &format!("{long}/nope"), "--dry-run", "--json"]);
    }

    // Nothing was journaled, nothing moved.
    assert_eq!(events(dir).len(), before);
    let status_after = run_status(dir, &long);
    assert_eq!(status_after["state"], status_before["state"]);
    for t in ["slow", "held", "later"] {
        assert_eq!(task_state(&status_after, t), task_state(&status_before, t));
    }
    assert_eq!(task_state(&run_status(dir, &fails), "bad"), "failed");
    let node: Value =
        serde_json::from_slice(&run_cmd_ok(dir, &["status", "--json"]).stdout).unwrap();
    assert_eq!(node["halted"], false);
}
