//! The node end to end: the real binary, a real journal, real processes.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn ms(v: &Value) -> u64 {
    let t = v.as_str().unwrap();
    humantime::parse_rfc3339(t)
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Layers of a DAG with a run-wide cap of 3 and a pool of 1.
const CAPPED: &str = r#"
name = "capped"
max_concurrency = 3
[pools]
one = 1
[defaults]
retry = { max_attempts = 1 }
[[task]]
id = "root"
shell = "sleep 0.05"
[[task]]
id = "a1"
shell = "sleep 0.1"
depends_on = ["root"]
[[task]]
id = "a2"
shell = "sleep 0.1"
depends_on = ["root"]
[[task]]
id = "a3"
shell = "sleep 0.1"
depends_on = ["root"]
[[task]]
id = "a4"
shell = "sleep 0.1"
depends_on = ["root"]
[[task]]
id = "a5"
shell = "sleep 0.1"
depends_on = ["root"]
[[task]]
id = "p1"
shell = "sleep 0.05"
pool = "one"
depends_on = ["root"]
[[task]]
id = "p2"
shell = "sleep 0.05"
pool = "one"
depends_on = ["root"]
[[task]]
id = "p3"
shell = "sleep 0.05"
pool = "one"
depends_on = ["root"]
[[task]]
id = "join"
command = ["true"]
depends_on = ["a1", "a2", "a3", "a4", "a5", "p1", "p2", "p3"]
"#;

#[test]
fn dependency_order_and_caps_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(tmp.path(), "capped.toml", CAPPED);
    let o = run(&dir, &["run", wf.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("succeeded: 10/10"), "{}", stdout(&o));
    let events = events(&dir);
    let deps: HashMap<&str, Vec<&str>> = [
        ("join", vec!["a1", "a2", "a3", "a4", "a5", "p1", "p2", "p3"]),
        ("a1", vec!["root"]),
        ("p3", vec!["root"]),
    ]
    .into_iter()
    .collect();
    let seq_of = |ty: &str, task: &str| -> u64 {
        let v = of(&events, ty, task);
        assert_eq!(v.len(), 1, "{ty} {task}: {v:?}");
        v[0]["seq"].as_u64().unwrap()
    };
    for (task, ups) in &deps {
        let start = seq_of("attempt_started", task);
        for up in ups {
            assert!(
                seq_of("task_succeeded", up) < start,
                "{task} started before {up} succeeded"
            );
        }
    }
    // Walk the journal: attempts running at once, overall and in pool `one`.
    let pool: HashSet<&str> = ["p1", "p2", "p3"].into_iter().collect();
    let (mut running, mut in_pool, mut max_running, mut max_pool) = (0, 0, 0, 0);
    for e in &events {
        let task = e["task"].as_str().unwrap_or("");
        let delta: i32 = match e["type"].as_str().unwrap() {
            "attempt_started" => 1,
            "task_succeeded" | "attempt_failed" | "task_failed" => -1,
            _ => 0,
        };
        running += delta;
        if pool.contains(task) {
            in_pool += delta;
        }
        max_running = max_running.max(running);
        max_pool = max_pool.max(in_pool);
    }
    assert_eq!(
        max_running, 3,
        "the run-wide cap is 3 and 8 tasks were ready together"
    );
    assert_eq!(max_pool, 1, "pool `one` has one slot");
}

#[test]
fn retries_wait_at_least_the_backoff() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(
        tmp.path(),
        "flaky.toml",
        r#"
name = "flaky"
[[task]]
id = "fail"
command = ["false"]
retry = { max_attempts = 3, initial_interval = "300ms", backoff_coefficient = 2.0, jitter = 0.1 }
"#,
    );
    let o = run(&dir, &["run", wf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let events = events(&dir);
    // Exit status and resource usage are journaled with each attempt's end.
    for e in of(&events, "attempt_failed", "fail") {
        assert_eq!(e["failure"], "exited with status 1");
        assert!(e["usage"]["max_rss_kib"].as_u64().unwrap() > 0, "{e}");
        assert!(e["retry_at"].is_string());
    }
    let starts = of(&events, "attempt_started", "fail");
    let fails = of(&events, "attempt_failed", "fail");
    assert_eq!(starts.len(), 3);
    assert_eq!(fails.len(), 2);
    assert_eq!(of(&events, "task_failed", "fail").len(), 1);
    for (i, (f, next)) in fails.iter().zip(&starts[1..]).enumerate() {
        let backoff = 300 * (1 << i);
        let failed_at = ms(&f["time"]);
        let started = ms(&next["time"]);
        assert!(
            started >= failed_at + backoff,
            "attempt {} started {} ms after the failure; backoff is {backoff} ms",
            i + 2,
            started - failed_at
        );
    }
}

#[test]
fn suspend_and_resume_a_task() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let gate = tmp.path().join("gate");
    let wf = workflow(
        tmp.path(),
        "two.toml",
        &format!(
            r#"
name = "two"
[[task]]
id = "first"
shell = "while [ ! -e {gate} ]; do sleep 0.02; done"
[[task]]
id = "second"
command = ["true"]
depends_on = ["first"]
"#,
            gate = gate.display()
        ),
    );
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "first") == "running");
    run_cmd_ok(&dir, &["suspend", &format!("{id}/second")]);
    std::fs::write(&gate, "").unwrap();
    let v = wait_until(&dir, &id, 30, |v| task_state(v, "first") == "succeeded");
    assert_eq!(task_state(&v, "second"), "suspended");
    assert_eq!(v["state"], "running");
    // Suspending again is refused with exit 2.
    let o = run(&dir, &["suspend", &format!("{id}/second")]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    run_cmd_ok(&dir, &["resume", &format!("{id}/second")]);
    let v = wait_finished(&dir, &id, 30);
    assert_eq!(v["state"], "succeeded");
    let events = events(&dir);
    let resumed = of(&events, "task_resumed", "second")[0]["seq"]
        .as_u64()
        .unwrap();
    let started = of(&events, "attempt_started", "second")[0]["seq"]
        .as_u64()
        .unwrap();
    assert!(resumed < started);
}

fn node_status(dir: &std::path::Path) -> Value {
    serde_json::from_str(&stdout(&run_cmd_ok(dir, &["status", "--json"]))).unwrap()
}

#[test]
fn halt_unhalt_and_the_stop_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(
        tmp.path(),
        "one.toml",
        "name = \"one\"\n[[task]]\nid = \"only\"\ncommand = [\"true\"]\n",
    );
    let _node = NodeProc::start(&dir, &[]);
    run_cmd_ok(&dir, &["halt"]);
    assert_eq!(node_status(&dir)["state"], "halted");
    let id = submit(&dir, &wf);
    let v = run_status(&dir, &id);
    assert_eq!(
        task_state(&v, "only"),
        "ready",
        "halted: nothing is dispatched"
    );
    assert_eq!(node_status(&dir)["queued_tasks"], 1);
    run_cmd_ok(&dir, &["unhalt"]);
    assert_eq!(wait_finished(&dir, &id, 30)["state"], "succeeded");

    // The STOP file halts without the socket, and unhalt waits for its removal.
    let stop = dir.join("STOP");
    std::fs::write(&stop, "").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while node_status(&dir)["state"] != "halted" {
        assert!(
            std::time::Instant::now() < deadline,
            "STOP file not noticed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let wf2 = workflow(
        tmp.path(),
        "two.toml",
        "name = \"two\"\n[[task]]\nid = \"only\"\ncommand = [\"true\"]\n",
    );
    let id2 = submit(&dir, &wf2);
    assert_eq!(task_state(&run_status(&dir, &id2), "only"), "ready");
    let o = run(&dir, &["unhalt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("STOP"), "{}", stderr(&o));
    std::fs::remove_file(&stop).unwrap();
    run_cmd_ok(&dir, &["unhalt"]);
    assert_eq!(wait_finished(&dir, &id2, 30)["state"], "succeeded");
    let events = events(&dir);
    assert_eq!(
        events.iter().filter(|e| e["type"] == "node_halted").count(),
        2
    );
}

#[test]
fn cancel_a_running_task_terminates_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let pidfile = tmp.path().join("pid");
    let wf = workflow(
        tmp.path(),
        "long.toml",
        &format!(
            "name = \"long\"\n[[task]]\nid = \"long\"\nshell = \"echo $$ > {}; exec sleep 1000\"\n[[task]]\nid = \"after\"\ncommand = [\"true\"]\ndepends_on = [\"long\"]\n",
            pidfile.display()
        ),
    );
    let _node = NodeProc::start(&dir, &["--grace", "500ms"]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "long") == "running");
    while !pidfile.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    run_cmd_ok(&dir, &["cancel", &format!("{id}/long")]);
    let v = wait_finished(&dir, &id, 30);
    assert_eq!(v["state"], "failed");
    assert_eq!(task_state(&v, "long"), "cancelled");
    assert_eq!(task_state(&v, "after"), "upstream_failed");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            std::time::Instant::now() < deadline,
            "cancelled process {pid} still alive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // retry reopens the task and its upstream_failed dependent.
    std::fs::remove_file(&pidfile).unwrap();
    run_cmd_ok(&dir, &["retry", &format!("{id}/long")]);
    let v = run_status(&dir, &id);
    assert_eq!(task_state(&v, "after"), "pending");
    run_cmd_ok(&dir, &["cancel", &id]);
    assert_eq!(wait_finished(&dir, &id, 30)["state"], "cancelled");
}

/// Processes whose process group is `pgid`.
fn group_members(pgid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let rest: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
        if rest[0] != "Z" && rest[2].parse::<i32>().ok() == Some(pgid) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn bad_commands_fail_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // No node: exit 3 and say so.
    let o = run(&dir, &["status"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("no node serves"), "{}", stderr(&o));
    assert!(stderr(&o).contains(dir.to_str().unwrap()), "{}", stderr(&o));

    let node = NodeProc::start(&dir, &[]);
    // Unknown run id: exit 2.
    let o = run(&dir, &["cancel", "01ARZ3NDEKTSV4RRFFQ69G5FAV"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no run 01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        "{}",
        stderr(&o)
    );
    // Not a run id at all: usage error, exit 2.
    let o = run(&dir, &["cancel", "nonsense"]);
    assert_eq!(o.status.code(), Some(2));
    // A second node on the same data dir fails at once, naming the holder.
    let o = run(&dir, &["node", "start"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("pid {}", node.child.id())),
        "{}",
        stderr(&o)
    );
    // The node is unaffected.
    run_cmd_ok(&dir, &["status"]);
    assert_eq!(node.terminate(), Some(0), "SIGTERM: graceful stop, exit 0");
    assert!(!dir.join("troupe.sock").exists(), "socket removed on stop");
}

#[test]
fn socket_path_too_long_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d".repeat(120));
    let o = run(&dir, &["node", "start"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("at most 107"), "{}", stderr(&o));
}

#[test]
fn missing_program_and_cwd_fail_without_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(
        tmp.path(),
        "bad.toml",
        r#"
name = "bad"
[[task]]
id = "noprog"
command = ["troupe-no-such-program"]
[[task]]
id = "nocwd"
command = ["true"]
cwd = "does/not/exist"
"#,
    );
    let o = run(&dir, &["run", "--json", wf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["state"], "failed");
    for t in v["tasks"].as_array().unwrap() {
        assert_eq!(t["state"], "failed");
        assert_eq!(t["attempts"], 1, "not retried: {t}");
    }
    let failure = |id: &str| {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()["last_failure"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        failure("noprog").contains("troupe-no-such-program"),
        "{}",
        failure("noprog")
    );
    assert!(
        failure("nocwd").contains("does/not/exist"),
        "{}",
        failure("nocwd")
    );
}

#[test]
fn output_is_capped_and_kept_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(
        tmp.path(),
        "out.toml",
        r#"
name = "out"
[[task]]
id = "big"
command = ["head", "-c", "209715200", "/dev/zero"]
[[task]]
id = "bytes"
command = ["printf", '\377\376ok']
"#,
    );
    let o = run(&dir, &["run", "--json", wf.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let id = v["id"].as_str().unwrap();
    let log = dir.join("logs").join(id).join("big").join("1.log");
    let len = std::fs::metadata(&log).unwrap().len();
    let cap = 16 << 20;
    assert!(
        len > cap && len < cap + 200,
        "log is {len} bytes, cap {cap}"
    );
    let mut tail = Vec::new();
    let mut f = std::fs::File::open(&log).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(cap)).unwrap();
    f.read_to_end(&mut tail).unwrap();
    let tail = String::from_utf8_lossy(&tail);
    assert!(
        tail.contains("truncated") && tail.contains("209715200"),
        "{tail}"
    );
    let o = run(&dir, &["logs", &format!("{id}/bytes")]);
    assert!(o.status.success());
    assert_eq!(o.stdout, b"\xff\xfeok");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let pidfile = tmp.path().join("pid");
    let wf = workflow(
        tmp.path(),
        "hang.toml",
        &format!(
            r#"
name = "hang"
[[task]]
id = "hang"
shell = "echo $$ > {}; (trap '' TERM; sleep 1000) & trap '' TERM; sleep 1000"
timeout = "300ms"
retry = {{ max_attempts = 1 }}
"#,
            pidfile.display()
        ),
    );
    let o = run(
        &dir,
        &["run", "--grace", "300ms", "--json", wf.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["tasks"][0]["last_failure"], "timed out");
    let pgid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        group_members(pgid),
        Vec::<i32>::new(),
        "processes of the attempt survive"
    );
}

#[test]
fn bad_frames_get_an_error_and_leave_the_node_running() {
    use troupe::messages::control::{Hello, HelloReply, Response, MAGIC};
    use troupe::storage::codec::{decode_message, encode_message};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let _node = NodeProc::start(&dir, &[]);
    let sock = dir.join("troupe.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }
    fn read_reply(s: &mut UnixStream) -> Vec<u8> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        body
    }
    fn closed(s: &mut UnixStream) -> bool {
        let mut b = [0u8; 1];
        matches!(s.read(&mut b), Ok(0) | Err(_))
    }
    let hello = |version| {
        encode_message(&Hello {
            magic: MAGIC,
            version,
        })
        .unwrap()
    };

    // Wrong protocol version.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&frame(&hello(99))).unwrap();
    match decode_message::<HelloReply>(&read_reply(&mut s)).unwrap() {
        HelloReply::Refused { reason, version } => {
            assert!(reason.contains("99"), "{reason}");
            assert_eq!(version, troupe::messages::control::PROTOCOL_VERSION);
        }
        other => panic!("{other:?}"),
    }
    assert!(closed(&mut s));

    // Oversized frame after a good handshake.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&frame(&hello(troupe::messages::control::PROTOCOL_VERSION)))
        .unwrap();
    assert!(matches!(
        decode_message::<HelloReply>(&read_reply(&mut s)).unwrap(),
        HelloReply::Welcome { .. }
    ));
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    match decode_message::<Response>(&read_reply(&mut s)).unwrap() {
        Response::Error(e) => assert!(e.to_string().contains("outside"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(closed(&mut s));

    // Malformed body.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&frame(&hello(troupe::messages::control::PROTOCOL_VERSION)))
        .unwrap();
    read_reply(&mut s);
    s.write_all(&frame(&[0xff; 16])).unwrap();
    assert!(matches!(
        decode_message::<Response>(&read_reply(&mut s)).unwrap(),
        Response::Error(_)
    ));
    assert!(closed(&mut s));

    // Garbage instead of a hello.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.write_all(&frame(b"GET / HTTP/1.1")).unwrap();
    assert!(matches!(
        decode_message::<HelloReply>(&read_reply(&mut s)).unwrap(),
        HelloReply::Refused { .. }
    ));

    run_cmd_ok(&dir, &["status"]);
}

#[test]
fn halt_kill_interrupts_and_unhalt_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let gate = tmp.path().join("gate");
    let pidfile = tmp.path().join("pid");
    // First attempt hangs; the second finds the gate and succeeds.
    let wf = workflow(
        tmp.path(),
        "k.toml",
        &format!(
            "name = \"k\"\n[[task]]\nid = \"k\"\nshell = \"if [ -e {g} ]; then exit 0; fi; touch {g}; echo $$ > {p}; exec sleep 1000\"\nretry = {{ max_attempts = 3, initial_interval = \"10ms\" }}\n",
            g = gate.display(),
            p = pidfile.display()
        ),
    );
    let _node = NodeProc::start(&dir, &["--grace", "300ms"]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "k") == "running");
    while !pidfile.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    run_cmd_ok(&dir, &["halt", "--kill"]);
    let v = wait_until(&dir, &id, 30, |v| task_state(v, "k") != "running");
    assert_eq!(task_state(&v, "k"), "retrying", "{v}");
    assert!(
        !alive(pid),
        "halt --kill left the attempt's process running"
    );
    assert_eq!(v["tasks"][0]["last_failure"], "interrupted by a node stop");
    // Halted: the retry does not start even once it is due.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(task_state(&run_status(&dir, &id), "k"), "retrying");
    run_cmd_ok(&dir, &["unhalt"]);
    let v = wait_finished(&dir, &id, 30);
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["tasks"][0]["attempts"], 2);
}

#[test]
fn sigterm_lets_running_attempts_finish_and_node_stop_works() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(
        tmp.path(),
        "s.toml",
        "name = \"s\"\n[[task]]\nid = \"s\"\nshell = \"sleep 0.5\"\n",
    );
    let node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "s") == "running");
    // SIGTERM: the attempt (0.5 s) finishes inside the 10 s grace period and is journaled.
    assert_eq!(node.terminate(), Some(0));
    let events = events(&dir);
    assert_eq!(of(&events, "task_succeeded", "s").len(), 1, "{events:?}");
    // `node stop` stops a node and waits for it.
    let mut node = NodeProc::start(&dir, &[]);
    let o = run(&dir, &["node", "stop"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(node.child.wait().unwrap().code(), Some(0));
    let o = run(&dir, &["status"]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn restart_after_sigkill_terminates_orphans_and_reruns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let pids = tmp.path().join("pids");
    // Each attempt appends its pid; the second attempt succeeds.
    let wf = workflow(
        tmp.path(),
        "o.toml",
        &format!(
            "name = \"o\"\n[[task]]\nid = \"o\"\nshell = \"echo $$ >> {p}; if [ $TROUPE_ATTEMPT -gt 1 ]; then exit 0; fi; exec sleep 1000\"\nretry = {{ max_attempts = 3, initial_interval = \"10ms\" }}\n",
            p = pids.display()
        ),
    );
    let mut node = NodeProc::start(&dir, &["--grace", "300ms"]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "o") == "running");
    while !pids.exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let first: i32 = std::fs::read_to_string(&pids)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    node.kill9();
    assert!(
        alive(first),
        "the attempt outlives a SIGKILLed node (it is not our child)"
    );
    let _node = NodeProc::start(&dir, &["--grace", "300ms"]);
    let v = wait_finished(&dir, &id, 30);
    assert_eq!(v["state"], "succeeded");
    assert_eq!(v["tasks"][0]["attempts"], 2);
    assert!(
        !alive(first),
        "recovery left the interrupted attempt's process running"
    );
    let events = events(&dir);
    assert_eq!(of(&events, "attempt_failed", "o").len(), 1);
}

#[test]
fn retry_while_the_cancelled_attempt_is_still_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // Attempt 1 ignores SIGTERM, so it lingers for the grace period after `cancel`.
    let wf = workflow(
        tmp.path(),
        "r.toml",
        "name = \"r\"\n[[task]]\nid = \"r\"\nshell = \"trap '' TERM; if [ $TROUPE_ATTEMPT -gt 1 ]; then exit 0; fi; sleep 1000\"\n",
    );
    let _node = NodeProc::start(&dir, &["--grace", "1s"]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "r") == "running");
    run_cmd_ok(&dir, &["cancel", &format!("{id}/r")]);
    run_cmd_ok(&dir, &["retry", &format!("{id}/r")]);
    let v = wait_finished(&dir, &id, 30);
    assert_eq!(v["state"], "succeeded", "{v}");
    assert_eq!(v["tasks"][0]["attempts"], 2);
}

#[test]
fn a_cancelled_parked_task_does_not_block_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let gate = tmp.path().join("gate");
    let wf = workflow(
        tmp.path(),
        "p.toml",
        &format!(
            "name = \"p\"\nmax_concurrency = 1\n[[task]]\nid = \"a\"\nshell = \"while [ ! -e {} ]; do sleep 0.02; done\"\npriority = 100\n[[task]]\nid = \"b\"\ncommand = [\"true\"]\npriority = 10\n[[task]]\nid = \"c\"\ncommand = [\"true\"]\n",
            gate.display()
        ),
    );
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "a") == "running");
    run_cmd_ok(&dir, &["cancel", &format!("{id}/b")]);
    std::fs::write(&gate, "").unwrap();
    let v = wait_finished(&dir, &id, 30);
    assert_eq!(task_state(&v, "a"), "succeeded");
    assert_eq!(task_state(&v, "b"), "cancelled");
    assert_eq!(task_state(&v, "c"), "succeeded", "{v}");
}

#[test]
fn node_stop_stops_an_embedded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let wf = workflow(
        tmp.path(),
        "long.toml",
        "name = \"long\"\n[[task]]\nid = \"long\"\ncommand = [\"sleep\", \"1000\"]\n",
    );
    let runner = troupe(&dir)
        .args(["run", "--grace", "200ms", wf.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !run(&dir, &["status"]).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "embedded node never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = run(&dir, &["node", "stop"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = runner.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "the run did not end: exit 3");
    assert!(String::from_utf8_lossy(&out.stderr).contains("the run continues"));
}

#[test]
fn a_slot_handed_to_a_task_cancelled_while_queued_is_not_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let gate = tmp.path().join("gate");
    let wf = workflow(
        tmp.path(),
        "q.toml",
        &format!(
            "name = \"q\"\nmax_concurrency = 1\n[[task]]\nid = \"x\"\nshell = \"while [ ! -e {} ]; do sleep 0.02; done\"\npriority = 100\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\npriority = 50\n[[task]]\nid = \"b\"\ncommand = [\"true\"]\n",
            gate.display()
        ),
    );
    let _node = NodeProc::start(&dir, &[]);
    let id = submit(&dir, &wf);
    wait_until(&dir, &id, 30, |v| task_state(v, "x") == "running");
    // x's end hands the run's slot to `a`, which waits in the queue while the node is halted,
    // and is cancelled there.
    run_cmd_ok(&dir, &["halt"]);
    std::fs::write(&gate, "").unwrap();
    wait_until(&dir, &id, 30, |v| task_state(v, "x") == "succeeded");
    run_cmd_ok(&dir, &["cancel", &format!("{id}/a")]);
    run_cmd_ok(&dir, &["unhalt"]);
    let v = wait_finished(&dir, &id, 30);
    assert_eq!(task_state(&v, "b"), "succeeded", "{v}");
}
