//! A task's whole process tree (issue 16, item 10), through the real binary: a task that
//! daemonises (a double fork into a new session) does not outlive its task's end, cancel,
//! timeout, nor a node killed with SIGKILL and restarted; the node (a child subreaper)
//! reaps the orphans it adopts.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// A task whose shell starts a daemon in a new session (double fork: `( setsid ... & )`),
/// records its pid in `pidfile`, then runs `rest`.
fn daemonising(id: &str, pidfile: &Path, rest: &str) -> String {
    let m = pidfile.display();
    format!(
        "[[task]]\nid = \"{id}\"\nshell = '''(setsid sh -c 'echo $$ > \"{m}.tmp\"; mv \"{m}.tmp\" \"{m}\"; exec sleep 300' &); \
         while [ ! -e \"{m}\" ]; do sleep 0.01; done; {rest}'''\n"
    )
}

fn read_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Polls until `/proc/PID` is gone altogether: killed *and* reaped (10 s at most).
fn wait_reaped(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            Instant::now() < deadline,
            "process {pid} still exists (alive: {})",
            alive(pid)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Zombie children of `parent`.
fn zombies_of(parent: u32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        if rest[0] == "Z" && rest[1] == parent.to_string() {
            out.push(pid);
        }
    }
    out
}

#[test]
fn daemons_end_with_their_tasks_end_cancel_and_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let p = |n: &str| tmp.path().join(n);
    let mut text = String::from("name = \"daemons\"\n");
    text.push_str(&daemonising("ends", &p("ends.pid"), "echo done"));
    text.push_str(&daemonising(
        "times_out",
        &p("times_out.pid"),
        "exec sleep 300",
    ));
    text.push_str("timeout = \"1s\"\nretry = { max_attempts = 1 }\n");
    text.push_str(&daemonising(
        "cancelled",
        &p("cancelled.pid"),
        "exec sleep 300",
    ));
    let wf = workflow(tmp.path(), "daemons.toml", &text);
    let node = NodeProc::start(&dir, &["--grace", "1s"]);
    let run = submit(&dir, &wf);

    let ends = read_pid(&p("ends.pid"));
    let times_out = read_pid(&p("times_out.pid"));
    let cancelled = read_pid(&p("cancelled.pid"));
    wait_until(&dir, &run, 60, |v| task_state(v, "ends") == "succeeded");
    wait_reaped(ends);
    assert!(alive(cancelled), "the running task's daemon runs");
    run_cmd_ok(&dir, &["cancel", &format!("{run}/cancelled")]);
    let v = wait_finished(&dir, &run, 60);
    assert_eq!(task_state(&v, "times_out"), "failed", "{v}");
    assert_eq!(task_state(&v, "cancelled"), "cancelled", "{v}");
    wait_reaped(times_out);
    wait_reaped(cancelled);
    assert_eq!(
        zombies_of(node.child.id()),
        Vec::<i32>::new(),
        "the node reaps the orphans it adopts"
    );
}

/// A node killed with SIGKILL leaves the daemon running (re-parented away from it); the
/// restarted node's orphan cleanup finds it by the mark recorded in the pid file.
#[test]
fn a_restarted_node_ends_the_daemons_of_an_interrupted_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let daemon = tmp.path().join("daemon.pid");
    let mut text = String::from("name = \"crash\"\n");
    text.push_str(&daemonising("t", &daemon, "exec sleep 300"));
    text.push_str("retry = { max_attempts = 1 }\n");
    let wf = workflow(tmp.path(), "crash.toml", &text);
    let mut node = NodeProc::start(&dir, &[]);
    let run = submit(&dir, &wf);
    let pid = read_pid(&daemon);
    let pid_file = dir.join("logs").join(&run).join("t").join("1.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            pid_file.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    node.kill9();
    assert!(alive(pid), "the daemon outlives the killed node");
    let _node = NodeProc::start(&dir, &[]);
    let v = wait_finished(&dir, &run, 60);
    assert_eq!(task_state(&v, "t"), "failed", "{v}");
    wait_gone(pid);
}
