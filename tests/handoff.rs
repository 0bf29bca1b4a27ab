//! Handoff driven as a user would: the real binary running workflows whose tasks write
//! outputs, read inputs and templates, fan out, pass gates and report usage. Every bad input
//! of the handoff issue has a test here.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// Runs `text` as a workflow with an embedded node; returns (exit code, events).
fn run_workflow(dir: &Path, text: &str) -> (i32, Vec<Value>) {
    let file = workflow(dir, "wf.toml", text);
    let o = run(dir, &["run", file.to_str().unwrap()]);
    (o.status.code().unwrap(), events(dir))
}

/// The state of task `id` in a `status --json` value, if it has such a task (yet).
fn state_of<'v>(v: &'v Value, id: &str) -> Option<&'v str> {
    v["tasks"].as_array()?.iter().find(|t| t["id"] == id)?["state"].as_str()
}

fn run_id(events: &[Value]) -> String {
    events[0]["run"].as_str().unwrap().to_owned()
}

/// `troupe output RUN/TASK --json`'s `output`.
fn output_of(dir: &Path, run: &str, task: &str) -> Value {
    let o = run_cmd_ok(dir, &["output", &format!("{run}/{task}"), "--json"]);
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    v["output"].clone()
}

/// The failure kinds of `task`'s failed attempts, in order.
fn failure_kinds(events: &[Value], task: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["task"] == task && e.get("failure_kind").is_some())
        .map(|e| e["failure_kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn list_map_reduce_with_gate_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, lines) in [("a.txt", 1), ("b.txt", 2), ("c.txt", 3)] {
        std::fs::write(d.join(name), "x\n".repeat(lines)).unwrap();
    }
    let text = r#"
name = "handoff"
[[task]]
id = "list"
shell = '''printf '{"files": ["a.txt", "b.txt", "c.txt"], "count": 3}' > "$TROUPE_OUTPUT"'''
[[task]]
id = "count"
depends_on = ["list"]
for_each = "{{ tasks.list.output.files }}"
command = ["sh", "-c", '''n=$(wc -l < "$1"); printf '{"file": "%s", "lines": %d, "index": %s}' "$1" "$n" "$IDX" > "$TROUPE_OUTPUT"; printf '{"tokens": %d}' "$n" > "$TROUPE_USAGE"''', "sh", "{{ item }}"]
env = { IDX = "{{ index }}" }
[[task]]
id = "sum"
depends_on = ["count"]
env = { TOTAL_FILES = "{{ tasks.list.output.count }}" }
shell = '''total=$(grep -o '"lines":[0-9]*' "$TROUPE_INPUTS" | cut -d: -f2 | awk '{s+=$1} END {print s}'); files=$(grep -o '"file":"[^"]*"' "$TROUPE_INPUTS" | cut -d: -f2 | paste -sd, -); printf '{"total": %d, "files": [%s], "expected": %d}' "$total" "$files" "$TOTAL_FILES" > "$TROUPE_OUTPUT"'''
gate_shell = "grep -q '\"total\":6' || { echo gate: total is not 6; exit 1; }"
"#;
    let (code, events) = run_workflow(d, text);
    assert_eq!(code, 0, "events: {events:#?}");
    let run = run_id(&events);
    let expanded = of(&events, "task_expanded", "count");
    assert_eq!(expanded.len(), 1);
    assert_eq!(expanded[0]["count"], 3);
    for i in 0..3 {
        let out = output_of(d, &run, &format!("count[{i}]"));
        assert_eq!(out["index"], i);
        assert_eq!(out["lines"], i + 1);
    }
    // The mapped task's output is the list of its instances' outputs, in index order.
    let list = output_of(d, &run, "count");
    let files: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["a.txt", "b.txt", "c.txt"]);
    let sum = output_of(d, &run, "sum");
    assert_eq!(sum["total"], 6);
    assert_eq!(sum["expected"], 3);
    // events --json shows an output's size, not its bytes.
    let out_ev = &of(&events, "task_output", "sum")[0];
    assert!(out_ev.get("output").is_none());
    assert_eq!(
        out_ev["output_bytes"].as_u64().unwrap() as usize,
        sum.to_string().len()
    );
    // Usage: journaled per attempt.
    let usage = of(&events, "attempt_usage", "count[2]");
    assert_eq!(usage[0]["counters"]["tokens"], 3.0);
}

#[test]
fn output_that_is_not_json_fails_the_attempt_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run_workflow(
        dir.path(),
        r#"
name = "bad-output"
[[task]]
id = "a"
shell = "printf '{bad' > \"$TROUPE_OUTPUT\""
retry = { max_attempts = 2, initial_interval = "10ms" }
"#,
    );
    assert_eq!(code, 1);
    assert_eq!(
        failure_kinds(&events, "a"),
        ["output_invalid", "output_invalid"]
    );
    let failed = &of(&events, "task_failed", "a")[0];
    assert!(
        failed["failure"]
            .as_str()
            .unwrap()
            .contains("not one JSON value"),
        "{failed}"
    );
    assert!(of(&events, "task_output", "a").is_empty());
}

#[test]
fn output_one_byte_over_max_output_fails_and_exactly_max_output_passes() {
    let dir = tempfile::tempdir().unwrap();
    // "12345678" with its quotes is 10 bytes.
    let (code, events) = run_workflow(
        dir.path(),
        r#"
name = "sizes"
[defaults]
max_output = 10
retry = { max_attempts = 1 }
[[task]]
id = "fits"
shell = "printf '\"12345678\"' > \"$TROUPE_OUTPUT\""
[[task]]
id = "over"
max_output = 9
shell = "printf '\"12345678\"' > \"$TROUPE_OUTPUT\""
"#,
    );
    assert_eq!(code, 1);
    assert_eq!(of(&events, "task_succeeded", "fits").len(), 1);
    let failed = &of(&events, "task_failed", "over")[0];
    assert_eq!(failed["failure_kind"], "output_invalid");
    assert!(failed["failure"]
        .as_str()
        .unwrap()
        .contains("10 bytes, more than max_output (9 bytes)"));
}

#[test]
fn no_output_file_means_null() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run_workflow(
        dir.path(),
        r#"
name = "null"
[[task]]
id = "a"
command = ["true"]
[[task]]
id = "b"
depends_on = ["a"]
shell = "cat \"$TROUPE_INPUTS\" > \"$TROUPE_OUTPUT\""
"#,
    );
    assert_eq!(code, 0);
    let run = run_id(&events);
    assert_eq!(output_of(dir.path(), &run, "a"), Value::Null);
    assert_eq!(
        output_of(dir.path(), &run, "b"),
        serde_json::json!({"a": null})
    );
}

#[test]
fn a_template_path_missing_at_run_time_fails_without_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run_workflow(
        dir.path(),
        r#"
name = "missing"
[[task]]
id = "a"
shell = "echo '{\"x\": 1}' > \"$TROUPE_OUTPUT\""
[[task]]
id = "b"
depends_on = ["a"]
retry = { max_attempts = 3, initial_interval = "10ms" }
command = ["echo", "{{ tasks.a.output.y }}"]
"#,
    );
    assert_eq!(code, 1);
    let failed = of(&events, "task_failed", "b");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["attempt"], 1, "no retry");
    assert_eq!(failed[0]["failure_kind"], "template_failed");
    assert!(failed[0]["failure"]
        .as_str()
        .unwrap()
        .contains("{{ tasks.a.output.y }}"));
}

/// An upstream whose output does not fit a `for_each` fails for good, naming the mapped task.
fn fan_out_over(dir: &Path, output: &str) -> Vec<Value> {
    std::fs::write(dir.join("out.json"), output).unwrap();
    let (code, events) = run_workflow(
        dir,
        r#"
name = "fan"
[[task]]
id = "list"
shell = "cp out.json \"$TROUPE_OUTPUT\""
[[task]]
id = "each"
depends_on = ["list"]
for_each = "{{ tasks.list.output.items }}"
command = ["true"]
"#,
    );
    assert_eq!(code, 1, "{events:#?}");
    events
}

#[test]
fn for_each_over_an_object_a_string_or_too_many_elements_fails_the_upstream() {
    for (output, needle) in [
        (
            r#"{"items": {"a": 1}}"#.to_owned(),
            "must be an array, found an object",
        ),
        (
            r#"{"items": "abc"}"#.to_owned(),
            "must be an array, found a string",
        ),
        (
            format!(r#"{{"items": [{}]}}"#, vec!["0"; 10_001].join(",")),
            "has 10001 elements, more than max_fan_out (10000)",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let events = fan_out_over(dir.path(), &output);
        let failed = of(&events, "task_failed", "list");
        assert_eq!(failed.len(), 1, "{events:#?}");
        assert_eq!(failed[0]["failure_kind"], "fan_out_invalid");
        let msg = failed[0]["failure"].as_str().unwrap();
        assert!(msg.contains(needle) && msg.contains("`each`"), "{msg}");
        assert!(of(&events, "task_expanded", "each").is_empty());
    }
}

#[test]
fn for_each_over_an_empty_array_makes_no_instance_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run_workflow(
        dir.path(),
        r#"
name = "empty"
[[task]]
id = "list"
shell = "echo '[]' > \"$TROUPE_OUTPUT\""
[[task]]
id = "each"
depends_on = ["list"]
for_each = "{{ tasks.list.output }}"
command = ["false"]
[[task]]
id = "after"
depends_on = ["each"]
shell = "cat \"$TROUPE_INPUTS\" > \"$TROUPE_OUTPUT\""
"#,
    );
    assert_eq!(code, 0, "{events:#?}");
    assert_eq!(of(&events, "task_expanded", "each")[0]["count"], 0);
    let run = run_id(&events);
    assert_eq!(
        output_of(dir.path(), &run, "after"),
        serde_json::json!({"each": []})
    );
}

#[test]
fn a_gate_that_hangs_times_out_and_a_missing_gate_fails_without_retries() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run_workflow(
        dir.path(),
        r#"
name = "gates"
[[task]]
id = "hangs"
command = ["true"]
timeout = "1s"
retry = { max_attempts = 1 }
gate = ["sleep", "30"]
[[task]]
id = "missing"
command = ["true"]
retry = { max_attempts = 3, initial_interval = "10ms" }
gate = ["/nonexistent/gate"]
[[task]]
id = "rejects"
command = ["true"]
retry = { max_attempts = 2, initial_interval = "10ms" }
gate_shell = "echo rejected by the gate; exit 3"
"#,
    );
    assert_eq!(code, 1);
    let hangs = &of(&events, "task_failed", "hangs")[0];
    assert_eq!(hangs["failure_kind"], "gate_failed");
    assert!(hangs["failure"].as_str().unwrap().contains("timed out"));
    let missing = of(&events, "task_failed", "missing");
    assert_eq!(missing[0]["attempt"], 1, "no retry for a missing gate");
    assert!(missing[0]["failure"]
        .as_str()
        .unwrap()
        .contains("could not start"));
    assert_eq!(
        failure_kinds(&events, "rejects"),
        ["gate_failed", "gate_failed"]
    );
    // The gate's output goes to the attempt log.
    let run = run_id(&events);
    let log = run_cmd_ok(dir.path(), &["logs", &format!("{run}/rejects")]);
    assert!(
        stdout(&log).contains("rejected by the gate"),
        "{}",
        stdout(&log)
    );
}

#[test]
fn a_usage_file_with_a_non_number_fails_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run_workflow(
        dir.path(),
        r#"
name = "usage"
[[task]]
id = "a"
retry = { max_attempts = 1 }
shell = "echo '{\"tokens\": \"many\"}' > \"$TROUPE_USAGE\""
"#,
    );
    assert_eq!(code, 1);
    let failed = &of(&events, "task_failed", "a")[0];
    assert_eq!(failed["failure_kind"], "usage_invalid");
    assert!(failed["failure"]
        .as_str()
        .unwrap()
        .contains("counter `tokens` must be a number, found a string"));
}

/// `validate` refuses what can be seen in the file, with its position.
fn invalid(text: &str, needle: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = workflow(dir.path(), "wf.toml", text);
    let o = run(dir.path(), &["validate", file.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
    err
}

#[test]
fn templates_are_checked_by_validate_with_positions() {
    let err = invalid(
        "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n[[task]]\nid = \"b\"\ncommand = [\"echo\", \"{{ tasks.a.output }}\"]\n",
        "names `a`, which is not upstream of `b`",
    );
    assert!(err.contains("wf.toml:7:11:"), "{err}");
    let err = invalid(
        "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n[[task]]\nid = \"b\"\ndepends_on = [\"a\"]\nshell = \"echo {{ tasks.a.output }}\"\n",
        "templates are not resolved in a shell line",
    );
    assert!(err.contains("wf.toml:8:9:") && err.contains("env"), "{err}");
    invalid(
        "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"echo\", \"{{ tasks.nope.output }}\"]\n",
        "which is not a task in this workflow",
    );
    invalid(
        "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"echo\", \"{{ item }}\"]\n",
        "only available in a mapped task",
    );
    invalid(
        "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n[[task]]\nid = \"b\"\ndepends_on = [\"a\"]\nfor_each = \"files\"\ncommand = [\"true\"]\n",
        "for_each must be one expression",
    );
    invalid(
        "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nmax_output = 0\n",
        "max_output must be between 1 and",
    );
    invalid(
        "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\ngate = [\"x\"]\ngate_shell = \"y\"\n",
        "sets both `gate` and `gate_shell`",
    );
}

#[test]
fn usage_is_live_while_running_then_summed_in_status_metrics_and_prometheus() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let go = tmp.path().join("go");
    let text = format!(
        r#"
name = "usage"
[pools]
llm = 2
[[task]]
id = "think"
pool = "llm"
labels = ["agent"]
shell = '''echo '{{"tokens": 5}}' > "$TROUPE_USAGE"; i=0; while [ ! -e {go} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; echo '{{"tokens": 7, "cost_usd": 0.5}}' > "$TROUPE_USAGE"'''
[[task]]
id = "more"
depends_on = ["think"]
shell = '''echo '{{"tokens": 3}}' > "$TROUPE_USAGE"'''
"#,
        go = go.display()
    );
    let file = workflow(tmp.path(), "usage.toml", &text);
    let _node = NodeProc::start(&dir, &[]);
    let run = submit(&dir, &file);
    // Live: the running attempt's figures show before its end.
    let v = wait_until(&dir, &run, 30, |v| {
        v["tasks"][0]["usage"]["tokens"] == 5.0 && v["tasks"][0]["state"] == "running"
    });
    assert_eq!(v["usage"]["tokens"], 5.0);
    std::fs::write(&go, "").unwrap();
    let v = wait_finished(&dir, &run, 30);
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["tasks"][0]["usage"]["tokens"], 7.0);
    assert_eq!(v["tasks"][0]["usage"]["cost_usd"], 0.5);
    assert_eq!(v["usage"]["tokens"], 10.0, "summed per run");
    let m = run_cmd_ok(&dir, &["metrics", "--since", "1h", "--json"]);
    let m: Value = serde_json::from_str(stdout(&m).trim()).unwrap();
    assert_eq!(m["total"]["usage"]["tokens"], 10.0, "{m}");
    let llm = m["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pool"] == "llm")
        .unwrap();
    assert_eq!(llm["usage"]["tokens"], 7.0);
    assert_eq!(m["labels"]["agent"]["cost_usd"], 0.5);
    let (_, body) = http_get(&http_addr(&dir), "/metrics");
    assert!(
        body.contains("troupe_task_usage_total{name=\"tokens\",pool=\"llm\"} 7"),
        "{body}"
    );
    let text = run_cmd_ok(&dir, &["status", &run]);
    assert!(
        stdout(&text).contains("usage: cost_usd=0.5 tokens=10"),
        "{}",
        stdout(&text)
    );
}

/// The bundled example, on this repository's own source tree: every listed file is measured
/// once, the summary counts them all, and the gate accepted it.
#[test]
fn the_sources_example_measures_every_file_of_a_real_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let o = run(&dir, &["run", "examples/handoff/sources.toml"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let events = events(&dir);
    let run = run_id(&events);
    let rs_files = walk(Path::new("src"));
    let expanded = of(&events, "task_expanded", "measure");
    assert_eq!(expanded[0]["count"].as_u64().unwrap() as usize, rs_files);
    let summary = output_of(&dir, &run, "summary");
    assert_eq!(summary["files"].as_u64().unwrap() as usize, rs_files);
    assert!(summary["lines"].as_u64().unwrap() > 1000);
    assert_eq!(summary["largest"].as_array().unwrap().len(), 5);
    // The run's graph shows the instances (after expansion), offline.
    let g = run_cmd_ok(&dir, &["graph", "--run", &run]);
    let dot = stdout(&g);
    assert!(dot.contains("\"list\" -> \"measure[0]\""), "{dot}");
    assert!(dot.contains(&format!("\"measure[{}]\" -> \"measure\"", rs_files - 1)));
    assert!(dot.contains("\"measure\" -> \"summary\""));
    let unknown = common::run(&dir, &["graph", "--run", "01M8N4SKFKWWFRRBMV8T0500AA"]);
    assert_eq!(unknown.status.code(), Some(2));
}

/// Number of `.rs` files under `dir`.
fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            if p.is_dir() {
                walk(&p)
            } else {
                usize::from(p.extension().is_some_and(|e| e == "rs"))
            }
        })
        .sum()
}

#[test]
fn a_dry_run_lists_templates_and_fan_outs_and_submits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let o = run_cmd_ok(
        &dir,
        &[
            "run",
            "examples/handoff/sources.toml",
            "--dry-run",
            "--json",
        ],
    );
    let v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["fan_outs"][0]["task"], "measure");
    assert_eq!(v["fan_outs"][0]["source"], "list");
    assert_eq!(v["fan_outs"][0]["over"], "{{ tasks.list.output.files }}");
    let templates = v["templates"].as_array().unwrap();
    assert!(templates.iter().any(|t| t["task"] == "summary"
        && t["text"] == "{{ tasks.list.output.count }}"
        && t["field"] == "env"));
    assert!(templates
        .iter()
        .any(|t| t["task"] == "measure" && t["text"] == "{{ item }}" && t["source"] == "list"));
    assert!(!dir.exists(), "a dry run touches no data dir");
}

#[test]
fn max_fan_out_is_checked_by_validate() {
    invalid(
        "name = \"t\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\nmax_fan_out = 5\n",
        "sets max_fan_out but has no for_each",
    );
    invalid(
        "name = \"t\"\n[defaults]\nmax_fan_out = 2000000\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n",
        "max_fan_out must be at most 1000000",
    );
}

/// JSON workflows take the handoff fields like TOML ones (generated workflows and agents will
/// mostly write JSON).
#[test]
fn a_json_workflow_fans_out_and_gates() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let file = workflow(
        tmp.path(),
        "wf.json",
        r#"{
  "name": "json-handoff",
  "defaults": { "max_fan_out": 5 },
  "task": [
    { "id": "list", "shell": "echo '[\"x\", \"y\"]' > \"$TROUPE_OUTPUT\"" },
    { "id": "each", "depends_on": ["list"], "for_each": "{{ tasks.list.output }}",
      "command": ["sh", "-c", "printf '\"%s!\"' \"$1\" > \"$TROUPE_OUTPUT\"", "sh", "{{ item }}"],
      "gate": ["grep", "-q", "!"] }
  ]
}
"#,
    );
    let o = run(&dir, &["run", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let events = events(&dir);
    let run_id = run_id(&events);
    assert_eq!(
        output_of(&dir, &run_id, "each"),
        serde_json::json!(["x!", "y!"])
    );
}

#[test]
fn cancel_and_retry_of_a_mapped_task_address_each_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let file = workflow(
        tmp.path(),
        "wf.toml",
        r#"
name = "mapped-control"
[[task]]
id = "list"
shell = "echo '[1, 2, 3]' > \"$TROUPE_OUTPUT\""
[[task]]
id = "each"
depends_on = ["list"]
for_each = "{{ tasks.list.output }}"
command = ["sleep", "30"]
"#,
    );
    let _node = NodeProc::start(&dir, &["--grace", "1s"]);
    let run = submit(&dir, &file);
    wait_until(&dir, &run, 30, |v| {
        (0..3).all(|i| state_of(v, &format!("each[{i}]")) == Some("running"))
    });
    // A dry run lists the three instances and changes nothing.
    let dry = run_cmd_ok(
        &dir,
        &["cancel", &format!("{run}/each"), "--dry-run", "--json"],
    );
    let dry: Value = serde_json::from_str(stdout(&dry).trim()).unwrap();
    assert_eq!(dry["tasks"].as_array().unwrap().len(), 4, "{dry}");
    run_cmd_ok(&dir, &["cancel", &format!("{run}/each")]);
    let v = wait_finished(&dir, &run, 30);
    for i in 0..3 {
        assert_eq!(task_state(&v, &format!("each[{i}]")), "cancelled");
    }
    assert_eq!(task_state(&v, "each"), "upstream_failed");
    run_cmd_ok(&dir, &["retry", &format!("{run}/each")]);
    let v = wait_until(&dir, &run, 30, |v| {
        (0..3).all(|i| state_of(v, &format!("each[{i}]")) == Some("running"))
    });
    assert_eq!(task_state(&v, "each"), "pending");
    let events = events(&dir);
    for i in 0..3 {
        assert_eq!(of(&events, "task_retried", &format!("each[{i}]")).len(), 1);
    }
    // One instance alone.
    run_cmd_ok(&dir, &["cancel", &format!("{run}/each[1]")]);
    let v = wait_until(&dir, &run, 30, |v| task_state(v, "each[1]") == "cancelled");
    assert_eq!(task_state(&v, "each[0]"), "running");
    run_cmd_ok(&dir, &["cancel", &run]);
}

/// A saga whose step fans out: when a later step fails for good, every instance is undone
/// (newest first) and the mapped task itself, which ran nothing, has nothing to undo.
#[test]
fn instances_of_a_saga_step_are_compensated_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run_workflow(
        dir.path(),
        r#"
name = "saga-fan"
max_concurrency = 1
[[task]]
id = "list"
shell = "echo '[\"a\", \"b\", \"c\"]' > \"$TROUPE_OUTPUT\""
[[task]]
id = "each"
depends_on = ["list"]
for_each = "{{ tasks.list.output }}"
command = ["true"]
compensate = ["sh", "-c", "echo undo"]
[[task]]
id = "boom"
depends_on = ["each"]
command = ["false"]
retry = { max_attempts = 1 }
"#,
    );
    assert_eq!(code, 1);
    let undone: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "compensation_succeeded")
        .map(|e| e["task"].as_str().unwrap())
        .collect();
    assert_eq!(undone, ["each[2]", "each[1]", "each[0]"]);
}

/// `{{ ... }}` that is not troupe's (`docker inspect -f '{{.Id}}'`, a Go template) is left as
/// written, in `command` and in `shell`.
#[test]
fn other_programs_templates_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (code, events) = run_workflow(
        dir.path(),
        r#"
name = "braces"
[[task]]
id = "a"
command = ["sh", "-c", "printf '\"%s\"' \"$1\" > \"$TROUPE_OUTPUT\"", "sh", "{{.Id}} {{ json .Names }}"]
[[task]]
id = "b"
shell = "echo '{{.State}}' > /dev/null"
"#,
    );
    assert_eq!(code, 0, "{events:#?}");
    assert_eq!(
        output_of(dir.path(), &run_id(&events), "a"),
        serde_json::json!("{{.Id}} {{ json .Names }}")
    );
}
