//! What a careless or hostile first user breaks (issue 11): each test drives the real binary
//! and fails on the code before the fix.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const ONE_TASK: &str = "name = \"one\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n";

/// A workflow whose only task waits until `gate` exists (so a run stays open as long as a test
/// needs it).
fn gated(dir: &Path, name: &str, gate: &Path) -> std::path::PathBuf {
    workflow(
        dir,
        &format!("{name}.toml"),
        &format!(
            "name = \"{name}\"\n[[task]]\nid = \"wait\"\nshell = \"while [ ! -e {} ]; do sleep 0.05; done\"\n",
            gate.display()
        ),
    )
}

/// Waits for a line containing `needle` (at most 60 s); returns every line seen.
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return seen;
                }
            }
            Err(_) => panic!("no line with {needle:?} within 60 s; saw {seen:?}"),
        }
    }
}

/// Polls `pred` every 20 ms for at most 60 s.
fn eventually(what: &str, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pred() {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigint(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .unwrap();
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Defect 1: an existing data dir keeps its mode (a shared 1777 folder keeps its sticky bit,
/// `--data-dir .` does not lock a project folder), with a warning when others may write to
/// it; a missing one is created 0700.
#[test]
fn existing_data_dir_keeps_its_mode_and_a_new_one_is_private() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let wf = workflow(tmp.path(), "wf.toml", ONE_TASK);
    let o = run_cmd_ok(&shared, &["run", wf.to_str().unwrap()]);
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777, "the data dir's mode was changed to {mode:o}");
    assert!(
        stderr(&o).contains("writable by other users"),
        "no warning: {}",
        stderr(&o)
    );

    let project = tmp.path().join("project");
    std::fs::create_dir(&project).unwrap();
    std::fs::set_permissions(&project, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = run_cmd_ok(&project, &["run", wf.to_str().unwrap()]);
    let mode = std::fs::metadata(&project).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    assert!(
        !stderr(&o).contains("writable by other users"),
        "{}",
        stderr(&o)
    );

    let fresh = tmp.path().join("a/b/fresh");
    run_cmd_ok(&fresh, &["run", wf.to_str().unwrap()]);
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
}

/// Defect 2: approver names and reasons with control characters are refused at the door
/// (CLI and node), so they can never forge a line of the audit trail.
#[test]
fn approver_text_with_control_characters_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(
        tmp.path(),
        "gate.toml",
        "name = \"gate\"\n[[task]]\nid = \"deploy\"\ncommand = [\"true\"]\nrequires_approval = true\n",
    );
    let _node = NodeProc::start(&dir, &[]);
    let run_id = submit(&dir, &wf);
    let target = format!("{run_id}/deploy");
    let forged = "x\n       42  2026-01-01T00:00:00.000Z  approval_rejected  by alice";
    for args in [
        vec!["approve", &target, "--as", forged],
        vec!["reject", &target, "--as", "bob", "--reason", "ok\u{1b}[2J"],
        vec!["approve", &target, "--as", "  "],
    ] {
        let o = run(&dir, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("control characters") || stderr(&o).contains("needs a name"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    // The node refuses it too, whatever the client: send the request without the CLI's check.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer = rt.block_on(async {
        let mut c = troupe::client::Client::connect(&dir).await.unwrap();
        c.request(&troupe::messages::control::Request::Command(
            troupe::messages::control::Command::Approve {
                run: run_id.parse().unwrap(),
                task: "deploy".parse().unwrap(),
                approver: troupe::model::Approver {
                    name: forged.into(),
                    os_user: String::new(),
                    reason: None,
                },
            },
        ))
        .await
        .unwrap()
    });
    assert!(
        matches!(
            answer,
            troupe::messages::control::Response::Error(
                troupe::messages::control::ControlError::BadRequest(_)
            )
        ),
        "{answer:?}"
    );
    let events = events(&dir);
    assert!(
        events
            .iter()
            .all(|e| e["type"] != "approval_granted" && e["type"] != "approval_rejected"),
        "nothing was journaled"
    );
    run_cmd_ok(
        &dir,
        &[
            "approve",
            &target,
            "--as",
            "alice",
            "--reason",
            "looks good",
        ],
    );
    wait_finished(&dir, &run_id, 60);
}

/// Defect 3: `troupe dashboard` without a terminal refuses with exit 2 and a message, instead
/// of panicking (exit 101) and leaving an escape sequence on stdout.
#[test]
fn dashboard_without_a_terminal_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let o = troupe(tmp.path())
        .arg("dashboard")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("needs a terminal"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "stdout: {:?}", stdout(&o));
}

/// Defect 4: the node `troupe run` starts in-process serves reads and commands from other
/// clients but refuses their runs (it stops when its own run ends), instead of accepting a run
/// and abandoning it.
#[test]
fn embedded_node_refuses_other_runs_instead_of_abandoning_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let gate = tmp.path().join("open");
    let a = gated(tmp.path(), "a", &gate);
    let b = workflow(tmp.path(), "b.toml", ONE_TASK);
    let mut first = troupe(&dir)
        .args(["run", a.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the embedded node answers", || {
        run(&dir, &["status"]).status.success()
    });
    for args in [
        vec!["run", b.to_str().unwrap()],
        vec!["run", "--detach", b.to_str().unwrap()],
    ] {
        let o = run(&dir, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("embedded node of a `troupe run`")
                && stderr(&o).contains("troupe node start"),
            "{}",
            stderr(&o)
        );
    }
    // Reads still work against it.
    let list = run_cmd_ok(&dir, &["list", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&stdout(&list)).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "only A's run exists");
    std::fs::write(&gate, "").unwrap();
    let status = wait_exit(&mut first, 60);
    assert_eq!(status.code(), Some(0));
}

/// Defect 5: a run id whose first character is above 7 does not fit 128 bits; it is refused
/// instead of wrapping to another run's id.
#[test]
fn run_ids_that_overflow_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "wf.toml", ONE_TASK);
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    wait_finished(&dir, &id, 60);
    assert!(id.starts_with('0'));
    for first in ["8", "G", "Z"] {
        let wrapped = format!("{first}{}", &id[1..]);
        for args in [
            vec!["status", wrapped.as_str()],
            vec!["cancel", wrapped.as_str()],
            vec!["tasks", wrapped.as_str()],
        ] {
            let o = run(&dir, &args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
            assert!(stderr(&o).contains("is not a run id"), "{}", stderr(&o));
        }
    }
}

/// Defect 7 (in part): a data dir that is a regular file is named as such, exit 2.
#[test]
fn data_dir_that_is_a_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data");
    std::fs::write(&file, "not a folder").unwrap();
    let wf = workflow(tmp.path(), "wf.toml", ONE_TASK);
    for args in [vec!["node", "start"], vec!["run", wf.to_str().unwrap()]] {
        let o = run(&file, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("not a directory"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("os error 17"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a folder");
}

/// Defect 8: invalid bench options are invalid input (2), not an internal error (3).
#[test]
fn bad_bench_options_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        vec!["bench", "plan", "--nodes", "0"],
        vec!["bench", "plan", "--nodes", "10", "--runs", "0"],
        vec!["bench", "journal", "--seconds", "0"],
        vec!["bench", "journal", "--appenders", "0"],
        vec!["bench", "tasks", "--workers", "0"],
        vec!["bench", "saga", "--steps", "0"],
        vec!["bench", "metrics", "--scrape-tasks", "0"],
        vec!["bench", "cluster", "--slots", "0"],
        vec!["bench", "cluster", "--heartbeat", "0s"],
    ] {
        let o = run(tmp.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("must be"), "{args:?}: {}", stderr(&o));
    }
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "nothing was created"
    );
}

/// Defect 8: one cause, one exit code: a data dir this user may not read gives 2 from every
/// command that opens the journal (it gave 2 from `events` and 3 from the others).
#[test]
fn unreadable_journal_gives_one_exit_code() {
    if !is_root() {
        eprintln!("skipped: needs root to run the CLI as another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "wf.toml", ONE_TASK);
    run_cmd_ok(&dir, &["run", wf.to_str().unwrap()]);
    let bin = binary_in(tmp.path());
    // Root's data dir is 0700: uid 65534 cannot read it.
    for args in [
        vec!["events"],
        vec!["metrics"],
        vec!["run", wf.to_str().unwrap()],
        vec!["node", "start"],
    ] {
        let o = std::process::Command::new(&bin)
            .arg("--data-dir")
            .arg(&dir)
            .args(&args)
            .env("TROUPE_HTTP_ADDR", "127.0.0.1:0")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).to_lowercase().contains("permission denied"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

/// Defect 9: no usable HOME is an error, not a data dir under the current folder; a relative
/// XDG_STATE_HOME is ignored (XDG Base Directory spec).
#[test]
fn default_data_dir_needs_an_absolute_home() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_troupe");
    let wf = workflow(tmp.path(), "wf.toml", ONE_TASK);
    for home in [None, Some("relative/home")] {
        let mut c = std::process::Command::new(bin);
        c.args(["run", wf.to_str().unwrap()])
            .current_dir(tmp.path())
            .env_remove("TROUPE_DATA_DIR")
            .env_remove("XDG_STATE_HOME")
            .env_remove("HOME");
        if let Some(h) = home {
            c.env("HOME", h);
        }
        let o = c.output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{home:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("--data-dir"), "{}", stderr(&o));
    }
    assert!(!tmp.path().join(".local").exists(), "nothing under the cwd");
    assert!(
        !tmp.path().join("relative").exists(),
        "nothing under the cwd"
    );
    // Validating needs no data dir at all.
    let o = std::process::Command::new(bin)
        .args(["validate", wf.to_str().unwrap()])
        .env_remove("TROUPE_DATA_DIR")
        .env_remove("XDG_STATE_HOME")
        .env_remove("HOME")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A relative XDG_STATE_HOME is ignored: the data dir is under HOME.
    let home = tmp.path().join("home");
    let o = std::process::Command::new(bin)
        .args(["run", wf.to_str().unwrap()])
        .current_dir(tmp.path())
        .env_remove("TROUPE_DATA_DIR")
        .env("XDG_STATE_HOME", "state")
        .env("HOME", &home)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(home.join(".local/state/troupe/journal").exists());
    assert!(!tmp.path().join("state").exists());
}

/// Defect 9: `metrics --since` reaching before 1970 is refused instead of silently starting
/// the window at the epoch.
#[test]
fn metrics_window_before_the_epoch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(tmp.path(), &["metrics", "--since", "1000000y"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("before 1970"), "{}", stderr(&o));
}

/// Defect 9: `queue --watch` writes no clear-screen codes into a pipe.
#[test]
fn queue_watch_into_a_pipe_has_no_escape_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let mut watch = troupe(&dir)
        .args(["queue", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines_of(watch.stdout.take().unwrap());
    // Two listings: a header line each.
    let mut lines = Vec::new();
    while lines
        .iter()
        .filter(|l: &&String| l.contains("queued"))
        .count()
        < 2
    {
        lines.push(rx.recv_timeout(Duration::from_secs(60)).expect("a listing"));
    }
    sigint(&watch);
    assert_eq!(wait_exit(&mut watch, 60).code(), Some(0));
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "escape codes in a pipe: {lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.is_empty()),
        "listings are apart: {lines:?}"
    );
}

/// Defect 9: Ctrl-C on `troupe run` says what it waits for, and a second Ctrl-C kills the
/// running attempts at once instead of being ignored for the whole grace period.
#[test]
fn second_ctrl_c_stops_an_embedded_run_now() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let pid_file = tmp.path().join("task.pid");
    let wf = workflow(
        tmp.path(),
        "stubborn.toml",
        &format!(
            "name = \"stubborn\"\n[[task]]\nid = \"t\"\nshell = \"trap '' TERM; echo $$ > {}; while true; do sleep 0.05; done\"\n",
            pid_file.display()
        ),
    );
    let mut child = troupe(&dir)
        .args(["run", "--grace", "600s", wf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stderr.take().unwrap());
    eventually("the task writes its pid", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let task_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    sigint(&child);
    let seen = wait_line(&lines, "Ctrl-C again");
    assert!(
        seen.iter().any(|l| l.contains("10m") || l.contains("600")),
        "names the grace period: {seen:?}"
    );
    let started = Instant::now();
    sigint(&child);
    wait_line(&lines, "killing running attempts now");
    let status = wait_exit(&mut child, 120);
    assert_eq!(status.code(), Some(3));
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "the second Ctrl-C did not cut the 600 s grace short"
    );
    let alive = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    eventually("the task's process is gone", || !alive(task_pid));
}

/// Defect 9: a refused too-long socket path leaves no folder behind.
#[test]
fn too_long_socket_path_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let deep = tmp.path().join("d".repeat(120));
    let o = run(&deep, &["node", "start"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Unix sockets allow at most"),
        "{}",
        stderr(&o)
    );
    assert!(!deep.exists(), "{} was created", deep.display());
}

/// Defect 6: `--workers` is capped instead of growing past 3 GB before serving.
#[test]
fn huge_worker_count_is_refused_with_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "wf.toml", ONE_TASK);
    let o = run(
        &dir,
        &["run", "--workers", "100000000", wf.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("between 1 and 10000"), "{}", stderr(&o));
    assert!(!dir.exists(), "nothing was created");
}
