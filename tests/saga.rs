//! Sagas end to end: the real binary, a real journal, real compensation processes.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// A chain s1 → … → s`n`; step `fail` exits 1 (no retry); every step's compensation appends
/// its id to `undo`.
fn chain(n: usize, fail: usize, undo: &Path) -> String {
    let mut s = String::from("name = \"chain-saga\"\n[defaults]\nretry = { max_attempts = 1 }\n");
    for i in 1..=n {
        let cmd = if i == fail { "exit 1" } else { "true" };
        s.push_str(&format!(
            "[[task]]\nid = \"s{i}\"\nshell = \"{cmd}\"\ncompensate_shell = \"echo s{i} >> {}\"\n",
            undo.display()
        ));
        if i > 1 {
            s.push_str(&format!("depends_on = [\"s{}\"]\n", i - 1));
        }
    }
    s
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn task<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap()
}

/// Tasks of events of `ty`, in journal order.
fn order(events: &[Value], ty: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == ty)
        .map(|e| e["task"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn forward_success_runs_no_compensation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let undo = tmp.path().join("undo.log");
    let wf = workflow(tmp.path(), "ok.toml", &chain(3, 0, &undo));
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "succeeded");
    let ev = events(&dir);
    assert!(order(&ev, "compensation_started").is_empty());
    assert!(!undo.exists(), "no compensation ran");
    assert!(task(&v, "s1")["compensation"].is_null());
}

#[test]
fn failure_of_step_k_compensates_k_minus_1_down_to_1() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let undo = tmp.path().join("undo.log");
    let wf = workflow(tmp.path(), "fail4.toml", &chain(6, 4, &undo));
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "compensated", "{v}");
    // From the side effects...
    assert_eq!(lines(&undo), ["s3", "s2", "s1"]);
    // ... and from the events.
    let ev = events(&dir);
    assert_eq!(order(&ev, "compensation_succeeded"), ["s3", "s2", "s1"]);
    assert_eq!(order(&ev, "compensation_started"), ["s3", "s2", "s1"]);
    // Per step: forward outcome and compensation outcome.
    for s in ["s1", "s2", "s3"] {
        let t = task(&v, s);
        assert_eq!(t["state"], "compensated");
        assert_eq!(t["compensation"]["state"], "succeeded");
        assert_eq!(t["compensation"]["attempts"], 1);
    }
    assert_eq!(task(&v, "s4")["state"], "failed");
    assert!(task(&v, "s4")["compensation"].is_null());
    // Steps after the failure never ran.
    assert_eq!(task(&v, "s5")["state"], "upstream_failed");
    assert_eq!(task(&v, "s6")["attempts"], 0);
    // The text view shows both outcomes.
    let text = stdout(&run_cmd_ok(&dir, &["status", &id]));
    let s2 = text.lines().find(|l| l.starts_with("s2 ")).unwrap();
    assert!(
        s2.contains("succeeded") && s2.contains("succeeded (1)"),
        "{text}"
    );
    // Its log is kept like any attempt's.
    let log = run_cmd_ok(&dir, &["logs", &format!("{id}/s2"), "--compensation"]);
    assert_eq!(log.stdout, b"");
    assert!(dir.join(format!("logs/{id}/s2/compensate-1.log")).exists());
}

#[test]
fn dag_saga_compensates_in_reverse_topological_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let undo = tmp.path().join("undo.log");
    let u = undo.display();
    let text = format!(
        r#"
name = "dag-saga"
[defaults]
retry = {{ max_attempts = 1 }}
[[task]]
id = "a"
shell = "true"
compensate_shell = "echo a >> {u}"
[[task]]
id = "b"
shell = "sleep 0.2"
depends_on = ["a"]
compensate_shell = "echo b >> {u}"
[[task]]
id = "c"
shell = "sleep 0.1"
depends_on = ["a"]
compensate_shell = "echo c >> {u}"
[[task]]
id = "e"
shell = "true"
depends_on = ["c"]
compensate_shell = "echo e >> {u}"
[[task]]
id = "d"
shell = "exit 1"
depends_on = ["b", "e"]
"#
    );
    let wf = workflow(tmp.path(), "dag.toml", &text);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "compensated", "{v}");
    let ev = events(&dir);
    let done = order(&ev, "task_succeeded");
    let mut reverse = done.clone();
    reverse.reverse();
    assert_eq!(order(&ev, "compensation_succeeded"), reverse);
    assert_eq!(lines(&undo), reverse);
    // Reverse topological: every step is undone after everything that depended on it.
    let pos = |t: &str| reverse.iter().position(|x| x == t).unwrap();
    assert!(pos("a") > pos("b") && pos("a") > pos("c") && pos("c") > pos("e"));
}

#[test]
fn failed_compensation_waits_for_the_operator_and_retry_resumes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let undo = tmp.path().join("undo.log");
    let gate = tmp.path().join("ok");
    let text = format!(
        r#"
name = "stuck-saga"
[defaults]
retry = {{ max_attempts = 1 }}
[[task]]
id = "a"
shell = "true"
compensate_shell = "echo a >> {u}"
[[task]]
id = "b"
shell = "true"
depends_on = ["a"]
compensate_shell = "test -f {g} && echo b >> {u}"
compensate_retry = {{ max_attempts = 2, initial_interval = "10ms" }}
[[task]]
id = "c"
shell = "exit 1"
depends_on = ["b"]
"#,
        u = undo.display(),
        g = gate.display()
    );
    let wf = workflow(tmp.path(), "stuck.toml", &text);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "compensation_failed", "{v}");
    let b = task(&v, "b");
    assert_eq!(b["compensation"]["state"], "failed");
    assert_eq!(
        b["compensation"]["attempts"], 2,
        "bounded by compensate_retry"
    );
    assert_eq!(b["compensation"]["last_failure"], "exited with status 1");
    // `a` waits: compensations run newest first and `b` is not undone.
    assert_eq!(task(&v, "a")["compensation"]["state"], "pending");
    assert!(lines(&undo).is_empty());

    // Retrying a compensation that is not the failed one is refused and changes nothing.
    let before = events(&dir).len();
    let o = run(&dir, &["retry", &format!("{id}/a")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(events(&dir).len(), before);

    std::fs::write(&gate, "").unwrap();
    run_cmd_ok(&dir, &["retry", &format!("{id}/b")]);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "compensated", "{v}");
    assert_eq!(lines(&undo), ["b", "a"]);
    assert_eq!(task(&v, "b")["compensation"]["attempts"], 3);

    // A compensation that succeeded never runs again.
    let o = run(&dir, &["retry", &format!("{id}/b")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already succeeded"), "{}", stderr(&o));
    assert_eq!(lines(&undo), ["b", "a"]);
}

#[test]
fn missing_compensation_program_fails_the_saga_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let text = r#"
name = "missing-undo"
[defaults]
retry = { max_attempts = 1 }
[[task]]
id = "a"
shell = "true"
compensate = ["/nonexistent/undo-a"]
[[task]]
id = "b"
shell = "exit 1"
depends_on = ["a"]
"#;
    let wf = workflow(tmp.path(), "missing.toml", text);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "compensation_failed", "{v}");
    let a = task(&v, "a");
    assert_eq!(a["compensation"]["state"], "failed");
    assert_eq!(
        a["compensation"]["attempts"], 1,
        "a missing program is not retried"
    );
    assert!(
        a["compensation"]["last_failure"]
            .as_str()
            .unwrap()
            .starts_with("could not start"),
        "{a}"
    );
    // `troupe run` reports it as not succeeded.
    let o = run(&dir, &["status", &id]);
    assert!(stdout(&o).contains("compensation_failed"));
}

#[test]
fn cancelling_a_saga_compensates_what_succeeded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let undo = tmp.path().join("undo.log");
    let text = format!(
        r#"
name = "cancel-saga"
[[task]]
id = "a"
shell = "true"
compensate_shell = "echo a >> {u}"
[[task]]
id = "b"
shell = "sleep 0.5"
depends_on = ["a"]
compensate_shell = "echo b >> {u}"
[[task]]
id = "c"
shell = "true"
depends_on = ["b"]
compensate_shell = "echo c >> {u}"
"#,
        u = undo.display()
    );
    let wf = workflow(tmp.path(), "cancel.toml", &text);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "b") == "running");
    run_cmd_ok(&dir, &["cancel", &id]);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "compensated", "{v}");
    // The running step was let finish, so its effect is undone too, newest first.
    assert_eq!(lines(&undo), ["b", "a"]);
    assert_eq!(task_state(&v, "c"), "cancelled");
}

#[test]
fn compensate_and_compensate_shell_together_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "name = \"x\"\n[[task]]\nid = \"a\"\nshell = \"true\"\ncompensate = [\"undo\"]\ncompensate_shell = \"undo\"\n";
    let wf = workflow(tmp.path(), "both.toml", text);
    let o = run(tmp.path(), &["validate", wf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("both.toml:2:") && e.contains("compensate") && e.contains("compensate_shell"),
        "{e}"
    );
    let bad_retry = "name = \"x\"\n[[task]]\nid = \"a\"\nshell = \"true\"\ncompensate_retry = { max_attempts = 2 }\n";
    let wf = workflow(tmp.path(), "retry.toml", bad_retry);
    let o = run(tmp.path(), &["validate", wf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("retry.toml:5:"), "{}", stderr(&o));
}

#[test]
fn no_compensation_starts_while_a_cancelled_step_is_still_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let log = tmp.path().join("order.log");
    let l = log.display();
    // `b` takes half a second to stop after SIGTERM; `a`'s undo must come after.
    let text = format!(
        r#"
name = "slow-stop"
[[task]]
id = "a"
shell = "true"
compensate_shell = "echo undo-a >> {l}"
[[task]]
id = "b"
shell = "trap 'sleep 0.5; echo b-stopped >> {l}; exit 1' TERM; echo b-running >> {l}; sleep 30 & wait"
depends_on = ["a"]
"#
    );
    let wf = workflow(tmp.path(), "slow.toml", &text);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| {
        task_state(v, "b") == "running" && lines(&log) == ["b-running"]
    });
    run_cmd_ok(&dir, &["cancel", &format!("{id}/b")]);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "compensated", "{v}");
    assert_eq!(lines(&log), ["b-running", "b-stopped", "undo-a"]);
}

#[test]
fn a_compensation_that_outlives_its_timeout_is_retried_then_fails_the_saga() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let text = r#"
name = "slow-undo"
[[task]]
id = "a"
shell = "true"
timeout = "300ms"
compensate_shell = "sleep 30"
compensate_retry = { max_attempts = 2, initial_interval = "10ms" }
[[task]]
id = "b"
shell = "exit 1"
retry = { max_attempts = 1 }
depends_on = ["a"]
"#;
    let wf = workflow(tmp.path(), "slow-undo.toml", text);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    let v = wait_finished(&dir, &id, 60);
    assert_eq!(v["state"], "compensation_failed", "{v}");
    let a = task(&v, "a");
    assert_eq!(a["compensation"]["attempts"], 2);
    assert_eq!(a["compensation"]["last_failure"], "timed out");
    let ev = events(&dir);
    let failed: Vec<&Value> = ev
        .iter()
        .filter(|e| e["type"] == "compensation_failed")
        .collect();
    assert_eq!(failed.len(), 2);
    assert!(failed[0]["retry_at"].is_string() && failed[1]["retry_at"].is_null());
}
