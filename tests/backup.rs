//! `troupe backup` while a run is in flight, `troupe restore` into a fresh data dir, and a
//! node started there: it holds exactly the journal up to the backup's sequence number and
//! finishes the run. Plus the bad inputs: a destination that exists or cannot be created,
//! a restore over a data dir a node uses or that already holds a journal, a source that is
//! not a backup.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn json_out(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// `events --json` lines with `seq <= upto`.
fn events_upto(dir: &Path, upto: u64) -> Vec<Value> {
    events(dir)
        .into_iter()
        .filter(|e| e["seq"].as_u64().unwrap() <= upto)
        .collect()
}

#[test]
fn a_backup_taken_mid_run_restores_into_a_node_that_finishes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let go = tmp.path().join("GO");
    // A failing assertion must not leave the waiting task behind (it would hold this test's
    // descriptors after the node is killed).
    let _release = GoOnDrop(go.clone());
    let wf = workflow(
        tmp.path(),
        "wf.toml",
        &format!(
            r#"
name = "backed-up"
[[task]]
id = "first"
shell = "echo first-output"
[[task]]
id = "waits"
shell = "while [ ! -e {go} ]; do sleep 0.02; done"
depends_on = ["first"]
retry = {{ max_attempts = 3, initial_interval = "100ms" }}
[[task]]
id = "last"
command = ["true"]
depends_on = ["waits"]
"#,
            go = go.display()
        ),
    );
    let node = NodeProc::start(&data, &[]);
    let run_id = submit(&data, &wf);
    wait_until(&data, &run_id, 60, |v| task_state(v, "waits") == "running");

    let dest = tmp.path().join("backup-1");
    let info = json_out(&run_cmd_ok(
        &data,
        &["backup", dest.to_str().unwrap(), "--json"],
    ));
    let seq = info["seq"].as_u64().unwrap();
    assert!(seq >= 4, "{info}");
    assert!(dest.join("backup.json").exists());
    assert!(info["log_files"].as_u64().unwrap() >= 1, "{info}");

    // Bad destinations: one that exists, one that cannot be created.
    let again = run(&data, &["backup", dest.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    let under_a_file = tmp.path().join("wf.toml").join("backup");
    let bad = run(&data, &["backup", under_a_file.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("wf.toml"), "{}", stderr(&bad));

    // Restoring over the data dir the node uses is refused, and changes nothing there.
    let over = run(&data, &["restore", dest.to_str().unwrap()]);
    assert_eq!(over.status.code(), Some(2), "{}", stderr(&over));
    assert!(stderr(&over).contains("node"), "{}", stderr(&over));

    // The original finishes; its journal up to the backup's seq is what the backup holds.
    std::fs::write(&go, "").unwrap();
    assert_eq!(wait_finished(&data, &run_id, 60)["state"], "succeeded");
    let original = events_upto(&data, seq);
    assert_eq!(node.terminate(), Some(0));

    // The backup verifies like a data dir.
    run_cmd_ok(&dest, &["journal", "verify"]);

    let restored = tmp.path().join("restored");
    let r = json_out(&run_cmd_ok(
        &restored,
        &["restore", dest.to_str().unwrap(), "--json"],
    ));
    assert_eq!(r["seq"].as_u64(), Some(seq), "{r}");
    assert_eq!(events(&restored), original, "the restored journal differs");
    assert!(
        restored
            .join("logs")
            .join(&run_id)
            .join("first")
            .join("1.log")
            .exists(),
        "the logs came along"
    );
    // A second restore into it is refused: it holds a journal now.
    let twice = run(&restored, &["restore", dest.to_str().unwrap()]);
    assert_eq!(twice.status.code(), Some(2), "{}", stderr(&twice));
    assert!(
        stderr(&twice).contains("already holds a journal"),
        "{}",
        stderr(&twice)
    );

    // A node on the restored dir resumes at the backup and finishes the run.
    let node = NodeProc::start(&restored, &[]);
    let v = wait_finished(&restored, &run_id, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(node.terminate(), Some(0));
    run_cmd_ok(&restored, &["journal", "verify"]);
}

#[test]
fn a_stopped_node_is_backed_up_directly_and_a_non_backup_is_not_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let wf = workflow(
        tmp.path(),
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n",
    );
    run_cmd_ok(&data, &["run", wf.to_str().unwrap()]);
    let dest = tmp.path().join("b");
    let info = json_out(&run_cmd_ok(
        &data,
        &["backup", dest.to_str().unwrap(), "--json"],
    ));
    assert!(info["seq"].as_u64().unwrap() >= 3, "{info}");

    // A folder that is not a backup.
    let not = run(&tmp.path().join("x"), &["restore", data.to_str().unwrap()]);
    assert_eq!(not.status.code(), Some(2), "{}", stderr(&not));
    assert!(
        stderr(&not).contains("not a troupe backup"),
        "{}",
        stderr(&not)
    );
    assert!(!tmp.path().join("x").join("journal").exists());
}
