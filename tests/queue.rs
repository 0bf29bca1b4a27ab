//! `troupe queue` end to end: order, blocked reasons, estimates, `--watch`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const WF: &str = r#"
name = "queued"
[pools]
p = 1
[defaults]
retry = { max_attempts = 1 }
[[task]]
id = "a"
shell = "sleep 0.2"
priority = 1
[[task]]
id = "b"
shell = "sleep 0.2"
priority = 5
[[task]]
id = "c"
shell = "sleep 0.2"
priority = 5
pool = "p"
[[task]]
id = "d"
shell = "true"
depends_on = ["a"]
[[task]]
id = "e"
shell = "true"
requires_approval = true
"#;

fn queue(dir: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec!["queue", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&stdout(&run_cmd_ok(dir, &args))).unwrap()
}

fn ids(q: &Value) -> Vec<String> {
    q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn queue_lists_ready_tasks_best_first_with_reasons_and_estimates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "q.toml", WF);
    let _node = NodeProc::start(&dir, &["--workers", "1"]);
    run_cmd_ok(&dir, &["halt"]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "e") == "awaiting_approval");

    let q = queue(&dir, &[]);
    assert_eq!(
        ids(&q),
        ["b", "c", "a"],
        "priority first, then wait (file order on ties)"
    );
    assert_eq!(q["total"], 3);
    assert_eq!(q["halted"], true);
    let b = &q["tasks"][0];
    assert_eq!(b["state"], "ready");
    assert_eq!(b["priority"], 5);
    assert_eq!(b["blocked"], "dispatch is halted");
    assert!(
        b["estimated_start"].is_null(),
        "nothing starts while halted"
    );
    assert_eq!(q["tasks"][1]["pool"], "p");

    let v = queue(&dir, &["--verbose"]);
    assert_eq!(ids(&v), ["b", "c", "a", "d", "e"]);
    assert_eq!(v["tasks"][3]["state"], "pending");
    assert_eq!(v["tasks"][4]["state"], "awaiting_approval");
    assert_eq!(
        queue(&dir, &["--limit", "1"])["tasks"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let text = stdout(&run_cmd_ok(&dir, &["queue", "--verbose"]));
    assert!(
        text.starts_with("5 queued, 0 running on 1 workers"),
        "{text}"
    );
    assert!(text.contains("HALTED"), "{text}");
    assert!(
        text.lines().nth(2).unwrap().contains(&format!("{id}/b")),
        "{text}"
    );

    // Running: one worker, so the rest wait behind it; after an attempt has ended, the
    // recent throughput gives each an estimated start.
    run_cmd_ok(&dir, &["unhalt"]);
    wait_until(&dir, &id, 30, |v| task_state(v, "b") == "succeeded");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let q = queue(&dir, &[]);
        let tasks = q["tasks"].as_array().unwrap();
        if let Some(t) = tasks.first() {
            if q["throughput_per_s"].as_f64().unwrap() > 0.0 {
                assert!(t["estimated_start"].is_string(), "{q}");
                assert!(t["blocked"].is_null(), "{q}");
                break;
            }
        }
        assert!(Instant::now() < deadline, "no estimate: {q}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn queue_watch_redraws_until_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let out = tmp.path().join("watch.out");
    let mut child = troupe(&dir)
        .args(["queue", "--watch"])
        .stdout(std::fs::File::create(&out).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&out)
        .unwrap_or_default()
        .matches("queued,")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "no second frame");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A file is not a terminal: listings follow one another, with no clear-screen codes.
    assert!(!std::fs::read_to_string(&out).unwrap().contains('\x1b'));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// Deadlines order the queue among equal priorities (a deadline in the past first, not
/// refused), a task without one counts from its implicit deadline, `queue --json` shows the
/// score's parts, the order is the same after a restart (the scheduler starts tasks in it),
/// and `scoring = false` gives priority, then first in, first out.
#[test]
fn deadlines_order_the_queue_and_the_order_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let past =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() - Duration::from_secs(300));
    let wf = workflow(
        tmp.path(),
        "d.toml",
        &format!(
            r#"
name = "deadlines"
max_concurrency = 1
[[task]]
id = "later"
command = ["true"]
deadline = "2h"
[[task]]
id = "none"
command = ["true"]
[[task]]
id = "soon"
command = ["true"]
deadline = "10m"
[[task]]
id = "late"
command = ["true"]
deadline = "{past}"
labels = ["vip"]
[[task]]
id = "p1"
command = ["true"]
priority = 1
"#
        ),
    );
    let scored = ["p1", "late", "soon", "none", "later"];
    let node = NodeProc::start(&dir, &[]);
    run_cmd_ok(&dir, &["halt"]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "p1") == "ready");
    let q = queue(&dir, &[]);
    assert_eq!(ids(&q), scored, "{q}");
    let tasks = q["tasks"].as_array().unwrap();
    let part = |t: &Value, p: &str| t["score_parts"][p].as_f64().unwrap();
    assert_eq!(part(&tasks[0], "priority"), 1000.0, "{q}");
    let late = &tasks[1];
    assert!(late["deadline"].is_string(), "{late}");
    assert_eq!(late["labels"][0], "vip");
    assert!(
        (4.9..30.0).contains(&part(late, "deadline")),
        "5 min late: {late}"
    );
    assert!(part(late, "age") >= 0.0);
    assert_eq!(part(late, "labels"), 0.0, "no boost configured");
    let none = &tasks[3];
    assert!(none["deadline"].is_null());
    assert!(
        (-60.5..-30.0).contains(&part(none, "deadline")),
        "implicit deadline 1 h after ready: {none}"
    );
    for t in tasks {
        let sum: f64 = ["priority", "deadline", "age", "labels"]
            .iter()
            .map(|p| part(t, p))
            .sum();
        assert!((sum - t["score"].as_f64().unwrap()).abs() < 1e-6, "{t}");
    }
    let text = stdout(&run_cmd_ok(&dir, &["queue", "--verbose"]));
    assert!(text.lines().nth(1).unwrap().contains("SCORE"), "{text}");

    // Scoring off (and a label boost, ignored with it): priority, then file order.
    node.terminate();
    std::fs::write(
        dir.join("troupe.toml"),
        "[scheduling]\nscoring = false\n[scheduling.label_boosts]\nvip = 5000\n",
    )
    .unwrap();
    let node = NodeProc::start(&dir, &[]);
    assert_eq!(
        ids(&queue(&dir, &[])),
        ["p1", "later", "none", "soon", "late"]
    );

    // Scoring on again after a restart: the same order as before, and the scheduler starts
    // the tasks in it.
    node.terminate();
    std::fs::remove_file(dir.join("troupe.toml")).unwrap();
    let _node = NodeProc::start(&dir, &[]);
    assert_eq!(ids(&queue(&dir, &[])), scored);
    run_cmd_ok(&dir, &["unhalt"]);
    let v = wait_finished(&dir, &id, 30);
    assert_eq!(v["state"], "succeeded", "{v}");
    let started: Vec<String> = events(&dir)
        .iter()
        .filter(|e| e["type"] == "attempt_started")
        .map(|e| e["task"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(started, scored);
}
