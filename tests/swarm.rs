//! Swarm tasks (`replicas`, `quorum`, `vote`; D67), driven through the real binary and a real
//! node: equal outputs reach a quorum and the rest are cancelled, disagreeing outputs fail
//! the task with the outputs seen, a vote picks one output (and a vote that picks none
//! fails), a SIGKILL while replicas run never counts a vote twice, and the bad inputs.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// The `quorum_reached` events of task `task`.
fn quorums<'a>(events: &'a [Value], task: &str) -> Vec<&'a Value> {
    of(events, "quorum_reached", task)
}

/// `troupe output RUN/TASK` as JSON.
fn output(dir: &Path, run: &str, task: &str) -> Value {
    let o = run_cmd_ok(dir, &["output", &format!("{run}/{task}")]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

#[test]
fn equal_outputs_reach_the_quorum_and_the_slow_replica_is_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    // Replicas 0 and 1 agree at once; replica 2 would take a minute and answer otherwise.
    let wf = workflow(
        tmp.path(),
        "swarm.toml",
        r#"
name = "classify"
[[task]]
id = "classify"
replicas = 3
quorum = 2
shell = '''
case "$TROUPE_TASK_ID" in
  "classify[2]") sleep 60; echo '"dog"' > "$TROUPE_OUTPUT" ;;
  *) echo '{"label": "cat", "score": 1}' > "$TROUPE_OUTPUT" ;;
esac
'''
[[task]]
id = "use"
depends_on = ["classify"]
command = ["echo", "{{ tasks.classify.output.label }}"]
"#,
    );
    let run = submit(&dir, &wf);
    let v = wait_finished(&dir, &run, 30);
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(task_state(&v, "classify"), "succeeded");
    assert_eq!(task_state(&v, "classify[2]"), "cancelled");
    assert_eq!(task_state(&v, "use"), "succeeded");
    assert_eq!(
        output(&dir, &run, "classify"),
        serde_json::json!({"label": "cat", "score": 1})
    );
    let ev = events(&dir);
    let q = quorums(&ev, "classify");
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["replicas"], serde_json::json!([0, 1]));
    // The swarm task succeeded by attempt 0 (it ran no process of its own).
    let ok = of(&ev, "task_succeeded", "classify");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["attempt"], 0);
    assert!(of(&ev, "attempt_started", "classify").is_empty());
    // Each replica is its own journaled attempt.
    for i in 0..3 {
        assert_eq!(
            of(&ev, "attempt_started", &format!("classify[{i}]")).len(),
            1,
            "replica {i}"
        );
    }
    // The dependent read the agreed output.
    let log = run_cmd_ok(&dir, &["logs", &format!("{run}/use")]);
    assert!(stdout(&log).contains("cat"), "{}", stdout(&log));
}

#[test]
fn disagreeing_replicas_fail_the_task_with_the_outputs_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let wf = workflow(
        tmp.path(),
        "swarm.toml",
        r#"
name = "split"
[[task]]
id = "guess"
replicas = 3
quorum = 2
retry = { max_attempts = 1 }
shell = 'echo "\"$TROUPE_TASK_ID\"" > "$TROUPE_OUTPUT"'
[[task]]
id = "after"
depends_on = ["guess"]
command = ["true"]
"#,
    );
    let run = submit(&dir, &wf);
    let v = wait_finished(&dir, &run, 30);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(task_state(&v, "guess"), "failed");
    assert_eq!(task_state(&v, "after"), "upstream_failed");
    let ev = events(&dir);
    let failed = of(&ev, "task_failed", "guess");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["attempt"], 0);
    assert_eq!(failed[0]["failure_kind"], "no_quorum", "{}", failed[0]);
    let msg = failed[0].to_string();
    assert!(msg.contains("at most 1 replicas agreed, 2 needed"), "{msg}");
    for i in 0..3 {
        assert!(msg.contains(&format!("guess[{i}]")), "{msg}");
    }
    assert!(quorums(&ev, "guess").is_empty());
}

#[test]
fn a_failed_replica_can_make_the_quorum_impossible_early() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    // quorum 3 of 3: replica 1 fails for good, so replica 2 (slow) is cancelled at once.
    let wf = workflow(
        tmp.path(),
        "swarm.toml",
        r#"
name = "strict"
[[task]]
id = "all"
replicas = 3
quorum = 3
retry = { max_attempts = 1 }
shell = '''
case "$TROUPE_TASK_ID" in
  "all[1]") exit 7 ;;
  "all[2]") sleep 60 ;;
esac
echo 1 > "$TROUPE_OUTPUT"
'''
"#,
    );
    let run = submit(&dir, &wf);
    let v = wait_finished(&dir, &run, 30);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(task_state(&v, "all[1]"), "failed");
    assert_eq!(task_state(&v, "all[2]"), "cancelled");
    let ev = events(&dir);
    assert_eq!(
        of(&ev, "task_failed", "all")[0]["failure_kind"],
        "no_quorum"
    );
}

#[test]
fn a_vote_picks_one_output_and_a_vote_that_picks_none_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    // Each replica outputs its number + 10; the vote picks the largest output.
    let vote = r#"python3 -c 'import json,os,sys; b=json.load(sys.stdin); json.dump(max(x["output"] for x in b), open(os.environ["TROUPE_OUTPUT"],"w"))'"#;
    let wf = workflow(
        tmp.path(),
        "vote.toml",
        &format!(
            r#"
name = "vote"
[[task]]
id = "pick"
replicas = 3
vote = ["sh", "-c", "{}"]
shell = 'n="${{TROUPE_TASK_ID#pick[}}"; echo "$(( ${{n%]}} + 10 ))" > "$TROUPE_OUTPUT"'
"#,
            vote.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    );
    let run = submit(&dir, &wf);
    let v = wait_finished(&dir, &run, 30);
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(output(&dir, &run, "pick"), serde_json::json!(12));
    let ev = events(&dir);
    // With a vote the quorum defaults to every replica; the vote is the task's attempt 1.
    assert_eq!(
        quorums(&ev, "pick")[0]["replicas"],
        serde_json::json!([0, 1, 2])
    );
    assert_eq!(of(&ev, "attempt_started", "pick").len(), 1);

    // A vote that writes something no replica wrote fails as output_invalid.
    let bad = workflow(
        tmp.path(),
        "bad-vote.toml",
        r#"
name = "bad-vote"
[[task]]
id = "pick"
replicas = 2
retry = { max_attempts = 1 }
vote = ["sh", "-c", "cat > /dev/null; echo 99 > \"$TROUPE_OUTPUT\""]
shell = 'echo 1 > "$TROUPE_OUTPUT"'
"#,
    );
    let run = submit(&dir, &bad);
    let v = wait_finished(&dir, &run, 30);
    assert_eq!(v["state"], "failed", "{v}");
    let ev = events(&dir);
    let failed: Vec<_> = ev
        .iter()
        .filter(|e| e["type"] == "task_failed" && e["run"] == run.as_str())
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["failure_kind"], "output_invalid");
    assert!(
        failed[0]
            .to_string()
            .contains("none of the 2 replica outputs"),
        "{}",
        failed[0]
    );
}

#[test]
fn a_sigkill_while_replicas_run_never_counts_a_vote_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let gate = tmp.path().join("go");
    let mut node = NodeProc::start(&dir, &[]);
    // All three must agree; replica 2 waits for a file that appears only after the crash.
    let wf = workflow(
        tmp.path(),
        "swarm.toml",
        &format!(
            r#"
name = "crashy"
[[task]]
id = "agree"
replicas = 3
quorum = 3
retry = {{ max_attempts = 3, initial_interval = "10ms" }}
shell = '''
if [ "$TROUPE_TASK_ID" = "agree[2]" ]; then
  while [ ! -e {gate} ]; do sleep 0.05; done
fi
echo '"yes"' > "$TROUPE_OUTPUT"
'''
"#,
            gate = gate.display()
        ),
    );
    let run = submit(&dir, &wf);
    wait_until(&dir, &run, 30, |v| {
        task_state(v, "agree[0]") == "succeeded"
            && task_state(v, "agree[1]") == "succeeded"
            && task_state(v, "agree[2]") == "running"
    });
    node.kill9();
    std::fs::write(&gate, "").unwrap();
    let _node = NodeProc::start(&dir, &[]);
    let v = wait_finished(&dir, &run, 30);
    assert_eq!(v["state"], "succeeded", "{v}");
    let ev = events(&dir);
    let q = quorums(&ev, "agree");
    assert_eq!(q.len(), 1, "{q:?}");
    assert_eq!(q[0]["replicas"], serde_json::json!([0, 1, 2]));
    assert_eq!(of(&ev, "task_succeeded", "agree").len(), 1);
    // The replicas done before the crash counted once and never ran again; the one the
    // crash interrupted ran again.
    for i in 0..2 {
        let id = format!("agree[{i}]");
        assert_eq!(of(&ev, "task_succeeded", &id).len(), 1, "{id}");
        assert_eq!(of(&ev, "attempt_started", &id).len(), 1, "{id}");
    }
    assert_eq!(of(&ev, "task_succeeded", "agree[2]").len(), 1);
    assert!(of(&ev, "attempt_started", "agree[2]").len() >= 2);
    assert_eq!(output(&dir, &run, "agree"), serde_json::json!("yes"));
}

#[test]
fn cancelling_a_swarm_task_cancels_its_replicas() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let wf = workflow(
        tmp.path(),
        "swarm.toml",
        r#"
name = "stop"
[[task]]
id = "slow"
replicas = 2
command = ["sleep", "60"]
"#,
    );
    let run = submit(&dir, &wf);
    wait_until(&dir, &run, 30, |v| {
        task_state(v, "slow[0]") == "running" && task_state(v, "slow[1]") == "running"
    });
    run_cmd_ok(&dir, &["cancel", &format!("{run}/slow")]);
    let v = wait_finished(&dir, &run, 30);
    for t in ["slow", "slow[0]", "slow[1]"] {
        assert_eq!(task_state(&v, t), "cancelled", "{t}: {v}");
    }
    // A swarm task is not retried by hand.
    let o = common::run(&dir, &["retry", &format!("{run}/slow")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("swarm"), "{}", stderr(&o));
}

#[test]
fn bad_swarm_settings_are_refused_with_their_place() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "replicas = 3\nquorum = 4",
            "quorum must be from 1 to replicas (3), got 4",
            "quorum",
        ),
        (
            "replicas = 3\nquorum = 0",
            "quorum must be from 1 to replicas (3), got 0",
            "quorum",
        ),
        (
            "replicas = 1",
            "replicas must be from 2 to 100, got 1",
            "replicas",
        ),
        (
            "replicas = 101",
            "replicas must be from 2 to 100, got 101",
            "replicas",
        ),
        (
            "quorum = 2",
            "replicas must be from 2 to 100, got 0",
            "replicas",
        ),
        (
            "replicas = 2\ncompensate = [\"undo\"]",
            "sets replicas and compensate",
            "compensate",
        ),
        (
            "replicas = 2\nrequires_approval = true",
            "sets replicas and requires_approval",
            "requires_approval",
        ),
        ("replicas = 2\nvote = []", "vote", "vote"),
    ];
    for (i, (fields, message, field)) in cases.into_iter().enumerate() {
        let text =
            format!("name = \"bad\"\n[[task]]\nid = \"t\"\ncommand = [\"true\"]\n{fields}\n");
        let file = workflow(tmp.path(), &format!("bad{i}.toml"), &text);
        let o = run(tmp.path(), &["validate", file.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{fields}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains(message), "{fields}: {err}");
        // The message points at the line of the field.
        let line = text
            .lines()
            .position(|l| l.starts_with(&format!("{field} ")))
            .map(|n| n + 1);
        let at = format!("bad{i}.toml:{}:", line.unwrap_or(2));
        assert!(err.contains(&at), "{fields}: want {at} in {err}");
    }
}

#[test]
fn replicas_that_end_together_all_count() {
    // Regression: the verdict ran once the first end was durable and read the later
    // replicas' outputs from the journal before they were durable (they counted as null).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let wf = workflow(
        tmp.path(),
        "swarm.toml",
        r#"
name = "together"
[[task]]
id = "all"
replicas = 6
quorum = 6
retry = { max_attempts = 1 }
shell = 'sleep 0.5; echo "{\"ok\": true}" > "$TROUPE_OUTPUT"'
"#,
    );
    for _ in 0..3 {
        let run = submit(&dir, &wf);
        let v = wait_finished(&dir, &run, 30);
        assert_eq!(v["state"], "succeeded", "{v}");
        assert_eq!(output(&dir, &run, "all"), serde_json::json!({"ok": true}));
    }
}

#[test]
fn failed_replicas_are_not_dead_letters() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    // Replica 2 fails for good, the other two agree: the swarm and the run succeed.
    let wf = workflow(
        tmp.path(),
        "swarm.toml",
        r#"
name = "one-bad"
[[task]]
id = "vote"
replicas = 3
quorum = 2
retry = { max_attempts = 1 }
shell = '''
[ "$TROUPE_TASK_ID" = "vote[2]" ] && exit 9
echo 5 > "$TROUPE_OUTPUT"
'''
"#,
    );
    let run = submit(&dir, &wf);
    let v = wait_finished(&dir, &run, 30);
    assert_eq!(v["state"], "succeeded", "{v}");
    let o = run_cmd_ok(&dir, &["failed", "--json"]);
    let dead: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(dead, serde_json::json!([]), "{dead}");
}
