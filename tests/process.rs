use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use troupe::process::{
    process_start_time, run_process, terminate_orphan, OrphanOutcome, ProcessEnd, ProcessOutcome,
    ProcessSpec, Program, DRAIN_TIMEOUT,
};

const MIB: u64 = 1024 * 1024;

fn spec(dir: &Path, program: Program) -> ProcessSpec {
    ProcessSpec {
        stdin: None,
        append_log: false,
        program,
        env: Vec::new(),
        cwd: None,
        log_path: dir.join("logs/attempt.log"),
        log_cap: MIB,
        pid_path: dir.join("run/attempt.pid"),
        timeout: None,
        grace: Duration::from_secs(1),
    }
}

fn argv(words: &[&str]) -> Program {
    Program::Argv(words.iter().map(|w| w.to_string()).collect())
}

fn shell(text: &str) -> Program {
    Program::Shell(text.to_string())
}

/// Runs with a live cancel sender that is never used.
async fn run(spec: ProcessSpec) -> ProcessOutcome {
    let (tx, rx) = oneshot::channel();
    let out = tokio::time::timeout(Duration::from_secs(60), run_process(spec, rx))
        .await
        .expect("run_process hung");
    drop(tx);
    out
}

fn is_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap();
            !matches!(state, 'Z' | 'X')
        }
        Err(_) => false,
    }
}

/// Live (non-zombie) processes whose process group is `pgrp`.
fn live_group_members(pgrp: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        if fields[2].parse::<i32>().unwrap() == pgrp && !matches!(fields[0], "Z" | "X") {
            found.push(pid);
        }
    }
    found
}

/// Polls `cond` every 10 ms until it holds or `limit` passes.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the pid file of a running attempt and returns the recorded pid.
async fn wait_for_pid_file(path: &Path) -> (i32, u64) {
    assert!(
        eventually(Duration::from_secs(10), || path.exists()).await,
        "no pid file"
    );
    let text = fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "{text:?}");
    let mut words = text.split_whitespace();
    let pid = words.next().unwrap().parse().unwrap();
    let start = words.next().unwrap().parse().unwrap();
    (pid, start)
}

#[tokio::test]
async fn echo_hello() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), argv(&["echo", "hello"]));
    let out = run(s.clone()).await;
    assert_eq!(out.end, ProcessEnd::Exited { code: 0 });
    assert_eq!(fs::read(&s.log_path).unwrap(), b"hello\n");
    assert_eq!((out.log_bytes, out.truncated), (6, false));
    assert!(out.usage.is_some());
    assert!(!s.pid_path.exists(), "pid file left behind");
}

#[tokio::test]
async fn exit_code_and_signal() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(spec(dir.path(), shell("exit 3"))).await;
    assert_eq!(out.end, ProcessEnd::Exited { code: 3 });
    let out = run(spec(dir.path(), shell("kill -9 $$"))).await;
    assert_eq!(out.end, ProcessEnd::Signaled { signal: 9 });
    assert!(out.usage.is_some());
}

#[tokio::test]
async fn stdout_and_stderr_share_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), shell("echo out; echo err >&2; echo out2"));
    let out = run(s.clone()).await;
    assert_eq!(out.end, ProcessEnd::Exited { code: 0 });
    assert_eq!(fs::read_to_string(&s.log_path).unwrap(), "out\nerr\nout2\n");
}

#[tokio::test]
async fn env_and_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work dir");
    fs::create_dir(&work).unwrap();
    let mut s = spec(
        dir.path(),
        shell("echo \"$TROUPE_TEST_VAR\"; pwd; echo \"${HOME:+home}\""),
    );
    s.env = vec![("TROUPE_TEST_VAR".into(), "bar baz".into())];
    s.cwd = Some(work.clone());
    let inherits_home = std::env::var_os("HOME").is_some_and(|h| !h.is_empty());
    let out = run(s.clone()).await;
    assert_eq!(out.end, ProcessEnd::Exited { code: 0 });
    let expected = format!(
        "bar baz\n{}\n{}\n",
        work.display(),
        if inherits_home { "home" } else { "" }
    );
    assert_eq!(fs::read_to_string(&s.log_path).unwrap(), expected);
}

#[tokio::test]
async fn program_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), argv(&["troupe-no-such-prog", "x"]));
    let out = run(s.clone()).await;
    let ProcessEnd::SpawnFailed { message } = &out.end else {
        panic!("{out:?}")
    };
    assert!(message.contains("`troupe-no-such-prog`"), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
    assert!(out.usage.is_none());
    let log = fs::read_to_string(&s.log_path).unwrap();
    assert!(
        log.contains("could not start") && log.contains("troupe-no-such-prog"),
        "{log}"
    );
    assert!(!s.pid_path.exists());
}

#[tokio::test]
async fn cwd_missing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("x/y");
    let mut s = spec(dir.path(), argv(&["true"]));
    s.cwd = Some(missing.clone());
    let out = run(s.clone()).await;
    let ProcessEnd::SpawnFailed { message } = &out.end else {
        panic!("{out:?}")
    };
    assert!(
        message.starts_with(&format!("cwd `{}`: ", missing.display())),
        "{message}"
    );
    assert!(message.contains("No such file or directory"), "{message}");
    assert!(fs::read_to_string(&s.log_path).unwrap().contains("cwd"));
}

#[tokio::test]
async fn program_not_executable() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(spec(dir.path(), argv(&[script.to_str().unwrap()]))).await;
    let ProcessEnd::SpawnFailed { message } = &out.end else {
        panic!("{out:?}")
    };
    assert!(
        message.contains("script.sh") && message.contains("Permission denied"),
        "{message}"
    );
}

#[tokio::test]
async fn empty_argv() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(spec(dir.path(), Program::Argv(Vec::new()))).await;
    assert!(matches!(out.end, ProcessEnd::SpawnFailed { .. }), "{out:?}");
}

#[tokio::test]
async fn output_is_capped_without_blocking_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let total: u64 = 200 * MIB;
    let s = spec(
        dir.path(),
        argv(&["head", "-c", &total.to_string(), "/dev/zero"]),
    );
    let out = tokio::time::timeout(Duration::from_secs(120), run(s.clone()))
        .await
        .unwrap();
    assert_eq!(out.end, ProcessEnd::Exited { code: 0 });
    assert!(out.truncated);
    assert_eq!(out.log_bytes, total);
    let marker = format!("\n[troupe: output truncated: kept {MIB} of {total} bytes]\n");
    let log = fs::read(&s.log_path).unwrap();
    assert_eq!(log.len() as u64, MIB + marker.len() as u64);
    assert!(log[..MIB as usize].iter().all(|&b| b == 0));
    assert_eq!(&log[MIB as usize..], marker.as_bytes());
}

#[tokio::test]
async fn output_exactly_at_cap_is_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), argv(&["head", "-c", "100", "/dev/zero"]));
    s.log_cap = 100;
    let out = run(s.clone()).await;
    assert_eq!((out.log_bytes, out.truncated), (100, false));
    assert_eq!(fs::read(&s.log_path).unwrap().len(), 100);
}

#[tokio::test]
async fn non_utf8_output_is_preserved() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), argv(&["printf", "a\\377\\376\\000b\\r\\n"]));
    let out = run(s.clone()).await;
    assert_eq!(out.end, ProcessEnd::Exited { code: 0 });
    assert_eq!(fs::read(&s.log_path).unwrap(), b"a\xff\xfe\x00b\r\n");
}

#[tokio::test]
async fn timeout_kills_term_ignoring_grandchild() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(
        dir.path(),
        shell("sh -c 'trap \"\" TERM; sleep 1000' & trap '' TERM; echo started; sleep 1000"),
    );
    s.timeout = Some(Duration::from_millis(300));
    s.grace = Duration::from_millis(300);
    let began = Instant::now();
    let task = tokio::spawn(run(s.clone()));
    let (pgid, _) = wait_for_pid_file(&s.pid_path).await;
    assert!(
        eventually(Duration::from_secs(5), || live_group_members(pgid).len()
            >= 3)
        .await,
        "expected leader, inner sh and sleeps in the group: {:?}",
        live_group_members(pgid)
    );
    let out = task.await.unwrap();
    let elapsed = began.elapsed();
    assert_eq!(out.end, ProcessEnd::TimedOut);
    assert!(
        elapsed >= Duration::from_millis(550),
        "SIGKILL came before the grace: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(
        eventually(Duration::from_secs(5), || live_group_members(pgid)
            .is_empty())
        .await,
        "survivors: {:?}",
        live_group_members(pgid)
    );
    assert!(!s.pid_path.exists());
    assert!(fs::read_to_string(&s.log_path).unwrap().contains("started"));
}

#[tokio::test]
async fn timeout_plain_sleep_terminates_within_grace() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = spec(dir.path(), argv(&["sleep", "1000"]));
    s.timeout = Some(Duration::from_millis(200));
    s.grace = Duration::from_secs(20);
    let began = Instant::now();
    let out = run(s).await;
    let elapsed = began.elapsed();
    assert_eq!(out.end, ProcessEnd::TimedOut);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    // SIGTERM alone ended it, long before the 20 s grace.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(out.usage.is_some());
}

#[tokio::test]
async fn background_process_is_killed_after_normal_exit() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), shell("sleep 1000 & echo $!"));
    let out = run(s.clone()).await;
    assert_eq!(out.end, ProcessEnd::Exited { code: 0 });
    let bg: i32 = fs::read_to_string(&s.log_path)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || !is_alive(bg)).await,
        "background sleep {bg} survived"
    );
}

/// A shell that starts a daemon outside its process group (`setsid`, in the background of
/// a subshell: a double fork), records the daemon's pid in `pidfile` and then runs `rest`.
fn daemonising(pidfile: &Path, rest: &str) -> Program {
    let m = pidfile.display();
    shell(&format!(
        "(setsid sh -c 'echo $$ > \"{m}.tmp\"; mv \"{m}.tmp\" \"{m}\"; exec sleep 300' &); \
         while [ ! -e \"{m}\" ]; do sleep 0.01; done; {rest}"
    ))
}

fn read_pid(path: &Path) -> i32 {
    fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn a_daemon_that_left_the_group_ends_with_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = dir.path().join("daemon.pid");
    let s = spec(dir.path(), daemonising(&daemon, "echo started"));
    let began = Instant::now();
    let out = run(s.clone()).await;
    assert_eq!(out.end, ProcessEnd::Exited { code: 0 });
    let pid = read_pid(&daemon);
    assert!(!is_alive(pid), "daemon {pid} outlived its attempt");
    // It held the output pipe: killed, so the log did not wait for DRAIN_TIMEOUT.
    assert!(began.elapsed() < DRAIN_TIMEOUT, "{:?}", began.elapsed());
    assert_eq!(fs::read_to_string(&s.log_path).unwrap(), "started\n");
}

#[tokio::test]
async fn a_daemon_ends_with_a_timed_out_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = dir.path().join("daemon.pid");
    let mut s = spec(dir.path(), daemonising(&daemon, "exec sleep 300"));
    s.timeout = Some(Duration::from_millis(500));
    let out = run(s.clone()).await;
    assert_eq!(out.end, ProcessEnd::TimedOut);
    let pid = read_pid(&daemon);
    assert!(
        !is_alive(pid),
        "daemon {pid} outlived its timed-out attempt"
    );
}

#[tokio::test]
async fn a_daemon_ends_with_a_cancelled_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = dir.path().join("daemon.pid");
    let s = spec(dir.path(), daemonising(&daemon, "exec sleep 300"));
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(run_process(s.clone(), rx));
    assert!(eventually(Duration::from_secs(10), || daemon.exists()).await);
    let pid = read_pid(&daemon);
    assert!(is_alive(pid));
    tx.send(()).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.end, ProcessEnd::Cancelled);
    assert!(
        !is_alive(pid),
        "daemon {pid} outlived its cancelled attempt"
    );
}

/// Out of reach, as documented: a process that leaves the group *and* drops the mark from
/// its environment survives; if it holds the output pipe, the log stops being copied
/// DRAIN_TIMEOUT after the group died instead of hanging.
#[tokio::test]
async fn a_process_that_drops_the_mark_escapes_and_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("escaped.pid");
    let m = marker.display();
    let s = spec(
        dir.path(),
        shell(&format!(
            "setsid env -u {var} sh -c 'echo $$ > \"{m}.tmp\"; mv \"{m}.tmp\" \"{m}\"; exec sleep 60' & \
             while [ ! -e \"{m}\" ]; do sleep 0.01; done; echo started",
            var = troupe::process::MARK_VAR
        )),
    );
    let began = Instant::now();
    let out = run(s.clone()).await;
    let elapsed = began.elapsed();
    let escaped = read_pid(&marker);
    let still_alive = is_alive(escaped);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(escaped),
        nix::sys::signal::SIGKILL,
    );
    assert_eq!(out.end, ProcessEnd::Exited { code: 0 });
    assert!(
        still_alive,
        "a process without the mark outside the group is out of reach"
    );
    assert!(
        elapsed < DRAIN_TIMEOUT + Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(elapsed >= DRAIN_TIMEOUT, "{elapsed:?}");
    assert_eq!(fs::read_to_string(&s.log_path).unwrap(), "started\n");
}

/// A node that crashed left an attempt whose daemon left the group: the pid file's mark lets
/// `terminate_orphan` find and end it.
#[tokio::test]
async fn terminate_orphan_ends_the_daemons_of_the_recorded_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = dir.path().join("daemon.pid");
    let s = spec(dir.path(), daemonising(&daemon, "exec sleep 300"));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(run_process(s.clone(), rx));
    let (leader, _) = wait_for_pid_file(&s.pid_path).await;
    assert!(eventually(Duration::from_secs(10), || daemon.exists()).await);
    let pid = read_pid(&daemon);
    let record = fs::read_to_string(&s.pid_path).unwrap();
    assert_eq!(record.split_whitespace().count(), 3, "{record:?}");
    // As if the node had died: the record survives the attempt's future.
    let saved = dir.path().join("saved.pid");
    fs::copy(&s.pid_path, &saved).unwrap();
    let outcome = terminate_orphan(&saved, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        matches!(outcome, OrphanOutcome::Terminated { pid } | OrphanOutcome::Killed { pid } if pid == leader),
        "{outcome:?}"
    );
    assert!(!is_alive(pid), "daemon {pid} survived the orphan cleanup");
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}

#[tokio::test]
async fn cancel_terminates() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), argv(&["sleep", "1000"]));
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(run_process(s.clone(), rx));
    let (pid, _) = wait_for_pid_file(&s.pid_path).await;
    let began = Instant::now();
    tx.send(()).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.end, ProcessEnd::Cancelled);
    assert!(
        began.elapsed() < Duration::from_millis(900),
        "needed SIGKILL: {:?}",
        began.elapsed()
    );
    assert!(eventually(Duration::from_secs(5), || !is_alive(pid)).await);
    assert!(!s.pid_path.exists());
}

#[tokio::test]
async fn dropped_sender_does_not_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), shell("sleep 0.3; echo done; exit 7"));
    let (tx, rx) = oneshot::channel::<()>();
    drop(tx);
    let out = run_process(s.clone(), rx).await;
    assert_eq!(out.end, ProcessEnd::Exited { code: 7 });
    assert_eq!(fs::read_to_string(&s.log_path).unwrap(), "done\n");
}

#[tokio::test]
async fn dropping_the_future_kills_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), argv(&["sleep", "1000"]));
    let task = tokio::spawn(run(s.clone()));
    let (pid, _) = wait_for_pid_file(&s.pid_path).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert!(
        eventually(Duration::from_secs(5), || !is_alive(pid)).await,
        "{pid} survived"
    );
    assert!(!s.pid_path.exists());
}

#[tokio::test]
async fn usage_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        dir.path(),
        shell("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"),
    );
    let out = run(s).await;
    assert_eq!(out.end, ProcessEnd::Exited { code: 0 });
    let usage = out.usage.unwrap();
    assert!(usage.user_cpu_us > 0, "{usage:?}");
    assert!(usage.max_rss_kib > 0, "{usage:?}");
}

#[tokio::test]
async fn pid_file_records_pid_and_start_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(dir.path(), argv(&["sleep", "1000"]));
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(run_process(s.clone(), rx));
    let (pid, start) = wait_for_pid_file(&s.pid_path).await;
    assert_eq!(process_start_time(pid), Some(start));
    assert_eq!(
        live_group_members(pid),
        vec![pid],
        "leader must head its own group"
    );
    tx.send(()).unwrap();
    assert_eq!(task.await.unwrap().end, ProcessEnd::Cancelled);
}

fn write_record(path: &Path, pid: i32, start: u64) {
    fs::write(path, format!("{pid} {start}\n")).unwrap();
}

/// Spawns `sh -c SCRIPT` as a group leader and waits for its first line.
fn spawn_group(script: &str) -> (std::process::Child, String) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

fn orphan_record(dir: &Path) -> PathBuf {
    dir.join("orphan.pid")
}

#[tokio::test]
async fn orphan_terminated_by_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = spawn_group("echo ready; exec sleep 1000");
    let pid = child.id() as i32;
    let path = orphan_record(dir.path());
    write_record(&path, pid, process_start_time(pid).unwrap());
    let out = terminate_orphan(&path, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(out, OrphanOutcome::Terminated { pid });
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    assert!(!path.exists());
}

#[tokio::test]
async fn orphan_ignoring_sigterm_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, _) = spawn_group("trap '' TERM; echo ready; exec sleep 1000");
    let pid = child.id() as i32;
    let path = orphan_record(dir.path());
    write_record(&path, pid, process_start_time(pid).unwrap());
    let began = Instant::now();
    let out = terminate_orphan(&path, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(out, OrphanOutcome::Killed { pid });
    assert!(began.elapsed() >= Duration::from_millis(300));
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(!path.exists());
}

#[tokio::test]
async fn orphan_group_survivors_are_killed_when_leader_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, line) = spawn_group("trap '' TERM; sleep 1000 & echo $!; exit 0");
    let pid = child.id() as i32;
    let start = process_start_time(pid).unwrap(); // zombie until we wait
    assert!(child.wait().unwrap().success());
    let survivor: i32 = line.trim().parse().unwrap();
    assert!(is_alive(survivor));
    let path = orphan_record(dir.path());
    write_record(&path, pid, start);
    let out = terminate_orphan(&path, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(out, OrphanOutcome::Killed { pid });
    assert!(eventually(Duration::from_secs(5), || !is_alive(survivor)).await);
    assert!(!path.exists());
}

#[tokio::test]
async fn orphan_with_mismatched_start_time_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let me = std::process::id() as i32;
    assert_ne!(process_start_time(me), Some(1));
    let path = orphan_record(dir.path());
    write_record(&path, me, 1);
    let out = terminate_orphan(&path, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(out, OrphanOutcome::Gone);
    assert!(!path.exists());

    // Same for a live group leader that is not the recorded process.
    let (mut child, _) = spawn_group("echo ready; exec sleep 1000");
    let pid = child.id() as i32;
    write_record(&path, pid, process_start_time(pid).unwrap() + 1);
    let out = terminate_orphan(&path, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(out, OrphanOutcome::Gone);
    assert!(is_alive(pid));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn orphan_record_missing_or_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let path = orphan_record(dir.path());
    assert_eq!(
        terminate_orphan(&path, Duration::ZERO).await.unwrap(),
        OrphanOutcome::NoRecord
    );
    for bad in ["", "12", "abc 5", "1 5", "0 5", "-1 5", "12 5 m 8"] {
        fs::write(&path, bad).unwrap();
        let err = terminate_orphan(&path, Duration::ZERO).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{bad:?}");
    }
}

#[test]
fn start_time_of_missing_process() {
    assert!(process_start_time(std::process::id() as i32).is_some());
    assert_eq!(process_start_time(i32::MAX), None);
    assert_eq!(process_start_time(0), None);
    assert_eq!(process_start_time(-1), None);
}

/// One attempt's end must not wait for another, concurrently running attempt
/// (e.g. because that one holds a copy of the first one's output pipe).
#[tokio::test]
async fn concurrent_attempts_do_not_inherit_each_others_pipes() {
    let dir = tempfile::tempdir().unwrap();
    let a = spec(&dir.path().join("a"), shell("sleep 0.5; echo a"));
    let b = spec(&dir.path().join("b"), argv(&["sleep", "1000"]));
    let began = Instant::now();
    let task_a = tokio::spawn(run(a.clone()));
    wait_for_pid_file(&a.pid_path).await;
    let (tx_b, rx_b) = oneshot::channel();
    let task_b = tokio::spawn(run_process(b.clone(), rx_b));
    wait_for_pid_file(&b.pid_path).await;
    let out_a = task_a.await.unwrap();
    let elapsed = began.elapsed();
    tx_b.send(()).unwrap();
    assert_eq!(task_b.await.unwrap().end, ProcessEnd::Cancelled);
    assert_eq!(out_a.end, ProcessEnd::Exited { code: 0 });
    assert_eq!(fs::read_to_string(&a.log_path).unwrap(), "a\n");
    assert!(
        elapsed < DRAIN_TIMEOUT,
        "attempt a waited for b's lifetime: {elapsed:?}"
    );
}

#[tokio::test]
async fn unwritable_pid_or_log_file_is_a_spawn_failure() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    fs::write(&file, "").unwrap();

    let mut s = spec(dir.path(), argv(&["sleep", "1000"]));
    s.pid_path = file.join("attempt.pid");
    let began = Instant::now();
    let out = run(s.clone()).await;
    let ProcessEnd::SpawnFailed { message } = &out.end else {
        panic!("{out:?}")
    };
    assert!(
        message.starts_with(&format!("pid file `{}`", s.pid_path.display())),
        "{message}"
    );
    // The already spawned sleep was killed rather than waited for.
    assert!(began.elapsed() < Duration::from_secs(10));
    assert!(fs::read_to_string(&s.log_path)
        .unwrap()
        .contains("could not start: pid file"));

    let mut s = spec(dir.path(), argv(&["true"]));
    s.log_path = file.join("attempt.log");
    let out = run(s.clone()).await;
    let ProcessEnd::SpawnFailed { message } = &out.end else {
        panic!("{out:?}")
    };
    assert!(
        message.starts_with(&format!("log `{}`", s.log_path.display())),
        "{message}"
    );
}

/// Regression: a leader that exits at once used to be reaped before its pid file was
/// written, which failed the attempt as "could not start". Many quick attempts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_exits_never_race_the_pid_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200 {
        let mut s = spec(&dir.path().join(i.to_string()), argv(&["/bin/true"]));
        s.grace = Duration::from_millis(100);
        set.spawn(async move {
            let (_tx, rx) = oneshot::channel();
            run_process(s, rx).await
        });
    }
    while let Some(out) = set.join_next().await {
        let out = out.unwrap();
        assert_eq!(out.end, ProcessEnd::Exited { code: 0 }, "{out:?}");
    }
}
