//! Retention of finished runs (`troupe gc`, `[retention] runs`): a finished run goes — state,
//! events, stream index, logs — while an active one is kept whole; the journal then
//! verifies, reads offline without a gap error, and a restarted node boots to the same
//! state for the run that remains.

mod common;

use common::*;
use serde_json::Value;

fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn gc_removes_a_finished_run_and_keeps_an_active_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let go = tmp.path().join("GO");
    // A failing assertion must not leave the waiting task behind (it would hold this test's
    // descriptors after the node is killed).
    let _release = GoOnDrop(go.clone());
    let done = workflow(
        tmp.path(),
        "done.toml",
        "name = \"done\"\n[[task]]\nid = \"a\"\nshell = \"echo old-output\"\n[[task]]\nid = \"b\"\ncommand = [\"true\"]\ndepends_on = [\"a\"]\n",
    );
    let active = workflow(
        tmp.path(),
        "active.toml",
        &format!(
            "name = \"active\"\n[[task]]\nid = \"first\"\ncommand = [\"true\"]\n[[task]]\nid = \"waits\"\nshell = \"while [ ! -e {} ]; do sleep 0.02; done\"\ndepends_on = [\"first\"]\n",
            go.display()
        ),
    );
    let node = NodeProc::start(&data, &[]);
    let old = submit(&data, &done);
    assert_eq!(wait_finished(&data, &old, 60)["state"], "succeeded");
    let kept = submit(&data, &active);
    wait_until(&data, &kept, 60, |v| task_state(v, "waits") == "running");
    let kept_events_before: Vec<Value> = events(&data)
        .into_iter()
        .filter(|e| e["run"] == kept.as_str())
        .collect();

    // No retention configured and no --older-than: refused.
    let none = run(&data, &["gc"]);
    assert_eq!(none.status.code(), Some(2), "{}", stderr(&none));
    assert!(
        stderr(&none).contains("no retention is set"),
        "{}",
        stderr(&none)
    );

    // A dry run lists the finished run only and changes nothing.
    let dry = json_out(&run_cmd_ok(
        &data,
        &["gc", "--older-than", "1ms", "--dry-run", "--json"],
    ));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["runs"], serde_json::json!([old]), "{dry}");
    assert!(dry["events"].as_u64().unwrap() >= 5, "{dry}");
    assert!(dry["log_files"].as_u64().unwrap() >= 2, "{dry}");
    run_cmd_ok(&data, &["status", &old]);

    let report = json_out(&run_cmd_ok(&data, &["gc", "--older-than", "1ms", "--json"]));
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["runs"], serde_json::json!([old]), "{report}");
    assert_eq!(report["events"], dry["events"], "{report}");
    assert!(report["log_bytes"].as_u64().unwrap() > 0, "{report}");

    // The finished run is gone everywhere; the active one is untouched.
    let gone = run(&data, &["status", &old]);
    assert_eq!(gone.status.code(), Some(2), "{}", stdout(&gone));
    assert!(!data.join("logs").join(&old).exists());
    let all = events(&data);
    assert!(
        all.iter().all(|e| e["run"] != old.as_str()),
        "events of the removed run remain"
    );
    assert_eq!(
        all.iter().filter(|e| e["type"] == "runs_removed").count(),
        1,
        "the removal is journaled"
    );
    let kept_events: Vec<Value> = all
        .iter()
        .filter(|e| e["run"] == kept.as_str())
        .cloned()
        .collect();
    assert_eq!(kept_events, kept_events_before);

    // A second gc finds nothing; the active run finishes.
    let again = json_out(&run_cmd_ok(&data, &["gc", "--older-than", "1ms", "--json"]));
    assert_eq!(again["runs"], serde_json::json!([]), "{again}");
    std::fs::write(&go, "").unwrap();
    let final_status = wait_finished(&data, &kept, 60);
    assert_eq!(final_status["state"], "succeeded");
    assert_eq!(node.terminate(), Some(0));

    // Offline: the journal verifies and reads without a gap error.
    run_cmd_ok(&data, &["journal", "verify"]);
    let offline = events(&data);
    assert!(offline.iter().all(|e| e["run"] != old.as_str()));

    // A restarted node boots to the same state for the run that remains.
    let node = NodeProc::start(&data, &[]);
    assert_eq!(run_status(&data, &kept), final_status);
    assert_eq!(list_json(&data).len(), 1);
    drop(node);
}

#[test]
fn a_zero_retention_is_refused_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("troupe.toml"),
        "[retention]\nruns = \"0s\"\n",
    )
    .unwrap();
    let o = run(tmp.path(), &["node", "start", "--print-config"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("retention.runs must be longer than 0s"),
        "{err}"
    );
    assert!(err.contains("troupe.toml"), "{err}");
}
