//! Dead letters: `troupe failed` lists the tasks that failed for good across runs (kind,
//! exit status, attempts, last log lines), filtered by `--since`, `--run`, `--label`;
//! `troupe retry --failed` redrives them in bulk, each as `retry RUN/TASK` would, and its
//! bad inputs (real binary, real node, real failures).

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// `troupe ARGS --json` (exit 0) as one JSON value.
fn json_of(dir: &Path, args: &[&str]) -> Value {
    let o = run_cmd_ok(dir, args);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", stdout(&o)))
}

/// The `(run, task)` pairs of a `failed --json` array, in its order.
fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["run"].as_str().unwrap().to_owned(),
                f["task"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The entry of task `task` in a `failed --json` array.
fn entry<'a>(v: &'a Value, task: &str) -> &'a Value {
    v.as_array()
        .unwrap()
        .iter()
        .find(|f| f["task"] == task)
        .unwrap_or_else(|| panic!("no dead letter {task} in {v}"))
}

/// A run with three tasks that fail for good (an exit status, one after a retry, a signal),
/// one whose upstream failed and one that succeeds. `flaky` succeeds once `marker` exists.
fn nightly(marker: &Path) -> String {
    let m = marker.display();
    format!(
        r#"
name = "nightly"
[[task]]
id = "boom"
command = ["sh", "-c", "echo starting; echo boom; exit 3"]
labels = ["etl"]
retry = {{ max_attempts = 1 }}
[[task]]
id = "flaky"
command = ["sh", "-c", "if test -f {m}; then echo fixed; else echo not yet; exit 4; fi"]
labels = ["etl", "db"]
retry = {{ max_attempts = 2, initial_interval = "10ms" }}
[[task]]
id = "after"
command = ["true"]
depends_on = ["flaky"]
[[task]]
id = "killed"
command = ["sh", "-c", "kill -9 $$"]
labels = ["web"]
retry = {{ max_attempts = 1 }}
[[task]]
id = "ok"
command = ["echo", "fine"]
"#
    )
}

const OTHER: &str = r#"
name = "other"
[[task]]
id = "nope"
command = ["sh", "-c", "echo nope >&2; exit 1"]
retry = { max_attempts = 1 }
"#;

/// A run whose only task fails until `marker` exists, with a dependent.
fn fixable(marker: &Path) -> String {
    let m = marker.display();
    format!(
        r#"
name = "fixable"
[[task]]
id = "load"
command = ["sh", "-c", "test -f {m} || {{ echo missing input; exit 2; }}"]
retry = {{ max_attempts = 1 }}
[[task]]
id = "report"
command = ["true"]
depends_on = ["load"]
"#
    )
}

/// Runs `file` to its end (detached, then waited for) and returns its id.
fn run_to_end(dir: &Path, file: &Path) -> String {
    let run = submit(dir, file);
    let v = wait_finished(dir, &run, 60);
    assert_eq!(v["state"], "failed", "{v}");
    run
}

fn event_count(dir: &Path) -> usize {
    events(dir).len()
}

#[test]
fn failed_lists_tasks_failed_for_good_with_their_failure_and_last_log_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _node = NodeProc::start(dir, &[]);
    let marker = dir.join("never");
    let r1 = run_to_end(dir, &workflow(dir, "nightly.toml", &nightly(&marker)));
    let r2 = run_to_end(dir, &workflow(dir, "other.toml", OTHER));

    let all = json_of(dir, &["failed", "--json"]);
    let mut got = pairs(&all);
    got.sort();
    let mut want = vec![
        (r1.clone(), "boom".to_owned()),
        (r1.clone(), "flaky".to_owned()),
        (r1.clone(), "killed".to_owned()),
        (r2.clone(), "nope".to_owned()),
    ];
    want.sort();
    assert_eq!(
        got, want,
        "exactly the tasks failed for good (not `after`, upstream_failed, nor `ok`)"
    );

    let boom = entry(&all, "boom");
    assert_eq!(boom["kind"], "exit");
    assert_eq!(boom["exit_code"], 3);
    assert_eq!(boom["signal"], Value::Null);
    assert_eq!(boom["message"], "exited with status 3");
    assert_eq!(boom["attempts"], 1);
    assert_eq!(boom["state"], "failed");
    assert_eq!(boom["run_state"], "failed");
    assert_eq!(boom["workflow"], "nightly");
    assert_eq!(boom["labels"], serde_json::json!(["etl"]));
    assert_eq!(
        boom["log_tail"],
        serde_json::json!(["starting", "boom"]),
        "the end of the last attempt's log"
    );
    assert!(boom["log"].as_str().unwrap().ends_with("/boom/1.log"));
    let failed_at = boom["failed_at"].as_str().unwrap();
    assert!(
        humantime::parse_rfc3339(failed_at).is_ok(),
        "RFC 3339: {failed_at}"
    );

    let flaky = entry(&all, "flaky");
    assert_eq!(flaky["attempts"], 2, "its retry ran first");
    assert_eq!(flaky["exit_code"], 4);
    assert_eq!(flaky["log_tail"], serde_json::json!(["not yet"]));
    assert!(flaky["log"].as_str().unwrap().ends_with("/flaky/2.log"));

    let killed = entry(&all, "killed");
    assert_eq!(killed["kind"], "signal");
    assert_eq!(killed["signal"], 9);
    assert_eq!(killed["exit_code"], Value::Null);

    assert_eq!(
        entry(&all, "nope")["log_tail"],
        serde_json::json!(["nope"]),
        "stderr is in the log too"
    );

    // Filters.
    let etl = json_of(dir, &["failed", "--label", "etl", "--json"]);
    let mut names: Vec<String> = pairs(&etl).into_iter().map(|p| p.1).collect();
    names.sort();
    assert_eq!(names, ["boom", "flaky"]);
    let both = json_of(
        dir,
        &["failed", "--label", "etl", "--label", "db", "--json"],
    );
    assert_eq!(pairs(&both), [(r1.clone(), "flaky".to_owned())]);
    let of_r2 = json_of(dir, &["failed", "--run", &r2, "--json"]);
    assert_eq!(pairs(&of_r2), [(r2.clone(), "nope".to_owned())]);
    assert_eq!(
        pairs(&json_of(dir, &["failed", "--since", "1h", "--json"])).len(),
        4
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        json_of(dir, &["failed", "--since", "200ms", "--json"]),
        serde_json::json!([]),
        "nothing failed in the last 200 ms"
    );

    // Text: a table, the log lines under each task; an empty list says so.
    let o = run_cmd_ok(dir, &["failed", "--run", &r1]);
    let text = stdout(&o);
    assert!(text.starts_with("RUN/TASK"), "{text}");
    assert!(text.contains(&format!("{r1}/boom")), "{text}");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(text.contains("    | boom"), "{text}");
    assert!(text.contains("SIG9"), "{text}");
    assert!(text.contains("3 tasks failed for good"), "{text}");
    let o = run_cmd_ok(dir, &["failed", "--label", "missing"]);
    assert_eq!(
        stdout(&o).trim(),
        "no task failed for good matching --label missing"
    );

    // A dry run lists what would be retried and changes nothing.
    let before = event_count(dir);
    let dry = json_of(dir, &["retry", "--failed", "--dry-run", "--json"]);
    assert_eq!(event_count(dir), before, "a dry run journals nothing");
    assert_eq!(dry.as_array().unwrap().len(), 4);
    for d in dry.as_array().unwrap() {
        assert_eq!(d["outcome"], "would_retry", "{d}");
    }
    let flaky = entry(&dry, "flaky");
    let moves = flaky["tasks"].as_array().unwrap();
    assert!(
        moves.contains(
            &serde_json::json!({"task": "after", "from": "upstream_failed", "to": "pending"})
        ),
        "its dependent reopens: {flaky}"
    );
    let o = run_cmd_ok(dir, &["retry", "--failed", "--dry-run", "--label", "web"]);
    let text = stdout(&o);
    assert!(text.contains(&format!("would retry {r1}/killed")), "{text}");
    assert!(text.contains("nothing was changed"), "{text}");
    assert_eq!(event_count(dir), before);
    assert_eq!(run_status(dir, &r1)["state"], "failed");
}

#[test]
fn retry_failed_redrives_and_then_has_nothing_to_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _node = NodeProc::start(dir, &[]);
    let marker = dir.join("input-ready");
    let fixed = run_to_end(dir, &workflow(dir, "fixable.toml", &fixable(&marker)));
    let dead = json_of(dir, &["failed", "--json"]);
    assert_eq!(pairs(&dead), [(fixed.clone(), "load".to_owned())]);
    assert_eq!(
        entry(&dead, "load")["log_tail"],
        serde_json::json!(["missing input"])
    );

    std::fs::write(&marker, "").unwrap();
    let o = run_cmd_ok(dir, &["retry", "--failed", "--since", "1h"]);
    let text = stdout(&o);
    assert!(text.contains(&format!("retrying {fixed}/load")), "{text}");
    assert!(
        text.contains("retried 1 of 1 task failed for good"),
        "{text}"
    );
    let v = wait_finished(dir, &fixed, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(
        task_state(&v, "report"),
        "succeeded",
        "its dependent reopened"
    );
    let retried = of(&events(dir), "task_retried", "load").len();
    assert_eq!(retried, 1);

    // Nothing left: exit 2, the filters named, nothing journaled.
    let before = event_count(dir);
    let o = run(dir, &["retry", "--failed"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        "troupe retry: nothing to retry: no task failed for good"
    );
    let o = run(
        dir,
        &["retry", "--failed", "--since", "1h", "--label", "etl"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("nothing to retry: no task failed for good matching --since 1h --label etl"),
        "{}",
        stderr(&o)
    );
    let o = run(dir, &["retry", "--failed", "--dry-run", "--json"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stdout(&o).trim(), "[]");
    assert_eq!(event_count(dir), before);
    let o = run_cmd_ok(dir, &["failed"]);
    assert_eq!(stdout(&o).trim(), "no task failed for good");
}

#[test]
fn a_refused_retry_is_skipped_with_its_reason_and_the_batch_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _node = NodeProc::start(dir, &[]);
    // A run whose failed task stays failed when the run is cancelled afterwards.
    let stuck = workflow(
        dir,
        "stuck.toml",
        r#"
name = "stuck"
[[task]]
id = "broken"
command = ["false"]
retry = { max_attempts = 1 }
[[task]]
id = "slow"
command = ["sleep", "60"]
"#,
    );
    let cancelled = submit(dir, &stuck);
    wait_until(dir, &cancelled, 60, |v| task_state(v, "broken") == "failed");
    run_cmd_ok(dir, &["cancel", &cancelled]);
    assert_eq!(wait_finished(dir, &cancelled, 60)["state"], "cancelled");
    let marker = dir.join("never");
    let failed = run_to_end(dir, &workflow(dir, "fixable.toml", &fixable(&marker)));

    let o = run(dir, &["retry", "--failed", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    let broken = entry(&out, "broken");
    assert_eq!(broken["run"], cancelled.as_str());
    assert_eq!(broken["outcome"], "skipped");
    assert!(
        broken["reason"].as_str().unwrap().contains("cancelled"),
        "{broken}"
    );
    let load = entry(&out, "load");
    assert_eq!(load["run"], failed.as_str());
    assert_eq!(load["outcome"], "retried");
    assert_eq!(load["reason"], Value::Null);
    assert_eq!(of(&events(dir), "task_retried", "broken").len(), 0);
    assert_eq!(of(&events(dir), "task_retried", "load").len(), 1);

    // Only refusals: nothing retried, exit 2, each reason shown.
    let o = run(dir, &["retry", "--failed", "--run", &cancelled]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("skipped {cancelled}/broken: ")),
        "{}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("nothing retried"), "{}", stderr(&o));
}

#[test]
fn bad_inputs_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run_id = "01JD3X5Q8R2N6V7W0Y4Z9A1B2C";
    let task = format!("{run_id}/a");
    for (args, names) in [
        (vec!["retry", "--failed", task.as_str()], "--failed"),
        (vec!["failed", "--since", "nonsense"], "--since"),
        (vec!["retry", "--failed", "--since", "nonsense"], "--since"),
        (vec!["retry", "--since", "1h", task.as_str()], "--failed"),
        (vec!["retry", "--label", "etl", run_id], "--failed"),
        (vec!["retry"], "TARGET"),
        (vec!["failed", "--run", "nope"], "--run"),
    ] {
        let o = run(dir, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(names), "{args:?}: {}", stderr(&o));
    }
    // No node: exit 3, as for every command that needs one.
    for args in [vec!["failed"], vec!["retry", "--failed"]] {
        let o = run(dir, &args);
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("no node serves"), "{}", stderr(&o));
    }
}
