//! The inbox (`troupe node start --inbox DIR`): dropped workflow files are submitted and moved
//! to `submitted/RUN.EXT`, invalid ones to `rejected/` with a `.error`; a crash between the
//! submission and the move never submits twice; and its bad inputs (real binary, real node).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A workflow that succeeds at once; `name` makes its bytes unique.
fn good(name: &str) -> String {
    format!("name = \"{name}\"\n[[task]]\nid = \"t\"\ncommand = [\"true\"]\n")
}

/// Polls `cond` every 20 ms until it holds (at most 60 s); `what` names it on failure.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "not reached within 60 s: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The names of the files in `dir` (sorted).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A data dir and an inbox folder beside it.
fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    (tmp, data, inbox)
}

/// Writes `text` to `inbox/.NAME.tmp`, then renames it to `inbox/NAME` (the usual way to drop
/// a file).
fn drop_file(inbox: &Path, name: &str, text: &[u8]) {
    let tmp = inbox.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, inbox.join(name)).unwrap();
}

/// The run ids `submitted/` names (file stems).
fn submitted_runs(inbox: &Path) -> Vec<String> {
    names(&inbox.join("submitted"))
        .into_iter()
        .map(|n| n.split('.').next().unwrap().to_owned())
        .collect()
}

#[test]
fn dropped_files_are_submitted_and_invalid_ones_rejected() {
    let (_tmp, data, inbox) = dirs();
    // Present before the node starts: found by the scan at start.
    std::fs::write(inbox.join("early.toml"), good("early")).unwrap();
    let inbox_arg = inbox.to_str().unwrap();
    let _node = NodeProc::start(&data, &["--inbox", inbox_arg]);
    // Ignored names stay where they are.
    for n in [".hidden.toml", "x.toml.tmp", "y.toml~"] {
        std::fs::write(inbox.join(n), good(n)).unwrap();
    }
    // Renamed in; written and closed; a relative `cwd` (relative to the inbox).
    drop_file(&inbox, "renamed.toml", good("renamed").as_bytes());
    std::fs::create_dir_all(inbox.join("work")).unwrap();
    std::fs::write(
        inbox.join("where.json"),
        r#"{"name": "where", "task": [{"id": "pwd", "cwd": "work", "shell": "pwd > where.txt"}]}"#,
    )
    .unwrap();
    std::fs::write(inbox.join("bad.toml"), "name = \"bad\"\nnope = 1\n").unwrap();
    wait_for("three files in submitted/, one in rejected/", || {
        names(&inbox.join("submitted")).len() == 3
            && names(&inbox.join("rejected")) == ["bad.toml", "bad.toml.error"]
    });
    let subs = names(&inbox.join("submitted"));
    assert_eq!(subs.iter().filter(|n| n.ends_with(".json")).count(), 1);
    assert_eq!(subs.iter().filter(|n| n.ends_with(".toml")).count(), 2);
    // Each submitted file is named after its run, and holds the bytes dropped.
    for run in submitted_runs(&inbox) {
        let v = wait_finished(&data, &run, 60);
        assert_eq!(v["state"], "succeeded", "{v}");
    }
    let mut left = names(&inbox);
    left.retain(|n| n != "submitted" && n != "rejected" && n != "work");
    assert_eq!(left, [".hidden.toml", "x.toml.tmp", "y.toml~"]);
    // `cwd = "work"` ran in INBOX/work.
    let pwd = std::fs::read_to_string(inbox.join("work/where.txt")).unwrap();
    assert_eq!(
        Path::new(pwd.trim()).canonicalize().unwrap(),
        inbox.join("work").canonicalize().unwrap()
    );
    // The .error holds what `troupe validate` prints for the file.
    let rejected = inbox.join("rejected");
    let error = std::fs::read_to_string(rejected.join("bad.toml.error")).unwrap();
    let v = Command::new(env!("CARGO_BIN_EXE_troupe"))
        .current_dir(&rejected)
        .args(["validate", "bad.toml"])
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(2));
    assert_eq!(error, stderr(&v));
    assert!(error.contains("bad.toml:2:1:"), "{error}");
    // The metric counts both outcomes.
    let (_, metrics) = http_get(&http_addr(&data), "/metrics");
    assert!(
        metrics.contains("troupe_inbox_files_total{outcome=\"submitted\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("troupe_inbox_files_total{outcome=\"rejected\"} 1"),
        "{metrics}"
    );
}

#[test]
fn the_polling_fallback_submits_and_a_vanished_file_is_skipped() {
    let (_tmp, data, inbox) = dirs();
    let child = troupe(&data)
        .args(["node", "start", "--inbox", inbox.to_str().unwrap()])
        .env("TROUPE_INBOX_POLL", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut node = NodeProc {
        child,
        dir: data.clone(),
    };
    wait_for("the node answers", || {
        run(&data, &["status"]).status.success()
    });
    // Gone before it settles: skipped, not rejected.
    std::fs::write(inbox.join("gone.toml"), good("gone")).unwrap();
    std::fs::remove_file(inbox.join("gone.toml")).unwrap();
    std::fs::write(inbox.join("polled.toml"), good("polled")).unwrap();
    wait_for("polled.toml submitted", || {
        names(&inbox.join("submitted")).len() == 1
    });
    assert!(names(&inbox.join("rejected")).is_empty());
    let runs = list_json(&data);
    assert_eq!(runs.len(), 1, "{runs:?}");
    node.kill9();
}

#[test]
fn a_half_written_file_waits_for_its_close() {
    let (_tmp, data, inbox) = dirs();
    let _node = NodeProc::start(&data, &["--inbox", inbox.to_str().unwrap()]);
    let text = good("half");
    let (first, second) = text.split_at(text.len() / 2);
    let mut half = std::fs::File::create(inbox.join("half.toml")).unwrap();
    half.write_all(first.as_bytes()).unwrap();
    half.flush().unwrap();
    // Another file goes through meanwhile.
    std::fs::write(inbox.join("whole.toml"), good("whole")).unwrap();
    wait_for("whole.toml submitted", || {
        names(&inbox.join("submitted")).len() == 1
    });
    assert!(inbox.join("half.toml").exists());
    assert!(names(&inbox.join("rejected")).is_empty());
    half.write_all(second.as_bytes()).unwrap();
    drop(half);
    wait_for("half.toml submitted once closed", || {
        names(&inbox.join("submitted")).len() == 2
    });
    assert!(!inbox.join("half.toml").exists());
    assert!(names(&inbox.join("rejected")).is_empty());
}

#[test]
fn a_binary_file_is_rejected_as_not_a_workflow() {
    let (_tmp, data, inbox) = dirs();
    let _node = NodeProc::start(&data, &["--inbox", inbox.to_str().unwrap()]);
    drop_file(
        &inbox,
        "blob.toml",
        &[0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0, 1, 2],
    );
    wait_for("blob.toml rejected", || {
        names(&inbox.join("rejected")) == ["blob.toml", "blob.toml.error"]
    });
    let error = std::fs::read_to_string(inbox.join("rejected/blob.toml.error")).unwrap();
    assert!(
        error.contains("blob.toml:1:5: file is not valid UTF-8"),
        "{error}"
    );
    assert!(error.contains("the workflow is invalid"), "{error}");
    assert!(names(&inbox.join("submitted")).is_empty());
    assert!(list_json(&data).is_empty());
}

/// `node start --inbox DIR` exits 2 naming DIR.
fn refused(data: &Path, inbox: &Path, cmd: Option<Command>) -> String {
    let mut cmd = cmd.unwrap_or_else(|| troupe(data));
    let o = cmd
        .args(["node", "start", "--inbox", inbox.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(inbox.to_str().unwrap()), "{err}");
    assert!(!data.join("troupe.sock").exists());
    err
}

#[test]
fn an_inbox_that_is_not_a_directory_is_refused() {
    let (tmp, data, _inbox) = dirs();
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let err = refused(&data, &file, None);
    assert!(err.contains("is not a directory"), "{err}");
    let err = refused(&data, &tmp.path().join("missing"), None);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn an_inbox_that_is_not_writable_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (tmp, _data, inbox) = dirs();
    std::fs::set_permissions(&inbox, std::fs::Permissions::from_mode(0o555)).unwrap();
    let cmd = if nix::unistd::geteuid().is_root() {
        // Root writes anywhere: run the node as nobody, on a data dir it owns.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = binary_in(tmp.path());
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = tmp.path().join("nobody-data");
        std::fs::create_dir(&data).unwrap();
        nix::unistd::chown(&data, Some(65534.into()), Some(65534.into())).unwrap();
        let mut c = Command::new(bin);
        c.uid(65534).gid(65534);
        c.arg("--data-dir")
            .arg(&data)
            .env("TROUPE_HTTP_ADDR", "127.0.0.1:0");
        (c, data)
    } else {
        let data = tmp.path().join("data");
        (troupe(&data), data)
    };
    let err = refused(&cmd.1, &inbox, Some(cmd.0));
    assert!(err.contains("is not writable"), "{err}");
}

#[test]
fn a_crash_between_submission_and_move_submits_once() {
    let (_tmp, data, inbox) = dirs();
    let mut crashing = troupe(&data)
        .args(["node", "start", "--inbox", inbox.to_str().unwrap()])
        .env("TROUPE_TEST_HOOKS", "1")
        .env("TROUPE_TEST_INBOX_EXIT_AFTER_SUBMIT", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    wait_for("the node answers", || {
        run(&data, &["status"]).status.success()
    });
    drop_file(&inbox, "once.toml", good("once").as_bytes());
    let status = crashing.wait().unwrap();
    assert_eq!(status.code(), Some(86), "the test hook's exit");
    // Submitted (durably) but not moved.
    assert!(inbox.join("once.toml").exists());
    assert!(names(&inbox.join("submitted")).is_empty());
    // Let the run finish first (so only its origin, not an unfinished twin, can stop a second
    // run), on a node that snapshots after every event: the next boot decodes a snapshot.
    let between = NodeProc::start(&data, &["--snapshot-every", "1"]);
    let run = list_json(&data)[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(wait_finished(&data, &run, 60)["state"], "succeeded");
    assert_eq!(between.terminate(), Some(0));
    assert!(inbox.join("once.toml").exists());
    let _node = NodeProc::start(&data, &["--inbox", inbox.to_str().unwrap()]);
    wait_for("once.toml moved after the restart", || {
        names(&inbox.join("submitted")).len() == 1
    });
    let submitted: Vec<_> = events(&data)
        .into_iter()
        .filter(|e| e["type"] == "run_submitted")
        .collect();
    assert_eq!(submitted.len(), 1, "{submitted:?}");
    assert_eq!(
        submitted_runs(&inbox),
        [submitted[0]["run"].as_str().unwrap().to_owned()]
    );
    assert!(!inbox.join("once.toml").exists());
}

#[test]
fn the_inbox_can_be_set_in_troupe_toml_relative_to_it() {
    let (tmp, data, _inbox) = dirs();
    let conf = tmp.path().join("conf");
    std::fs::create_dir_all(conf.join("drop")).unwrap();
    std::fs::write(conf.join("troupe.toml"), "inbox = \"drop\"\n").unwrap();
    let config = conf.join("troupe.toml");
    let printed = run_cmd_ok(
        &data,
        &[
            "node",
            "start",
            "--config",
            config.to_str().unwrap(),
            "--print-config",
        ],
    );
    let shown = conf.join("drop");
    assert!(
        stdout(&printed).contains(&format!("inbox = \"{}\"", shown.display())),
        "{}",
        stdout(&printed)
    );
    let _node = NodeProc::start(&data, &["--config", config.to_str().unwrap()]);
    drop_file(&conf.join("drop"), "a.toml", good("from-config").as_bytes());
    wait_for("a.toml submitted from the configured inbox", || {
        names(&conf.join("drop/submitted")).len() == 1
    });
}
