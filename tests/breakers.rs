//! Circuit breakers and retry policies against real failures: a local HTTP server that fails
//! its first requests, tasks that call it through bash's `/dev/tcp`, the real binary and
//! RocksDB, a SIGKILL of the node.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// An HTTP server on loopback: 503 while `failing` says so, else 200; counts requests.
struct Flaky {
    port: u16,
    requests: Arc<AtomicU64>,
    /// Requests answered 503 before it turns healthy (`u64::MAX`: until `heal`).
    fail_first: Arc<AtomicU64>,
}

impl Flaky {
    fn start(fail_first: u64) -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicU64::new(0));
        let fail = Arc::new(AtomicU64::new(fail_first));
        let (r, f) = (requests.clone(), fail.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let _ = reader.read_line(&mut line);
                let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                let status = if n <= f.load(Ordering::SeqCst) {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = write!(s, "HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n");
            }
        });
        Flaky {
            port,
            requests,
            fail_first: fail,
        }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// From now on every request succeeds.
    fn heal(&self) {
        self.fail_first.store(0, Ordering::SeqCst);
    }

    /// A task that GETs `/` and exits 0 on a 200, 1 otherwise.
    fn task(&self, id: &str) -> String {
        format!(
            "[[task]]\nid = \"{id}\"\nlabels = [\"api\"]\ncommand = [\"bash\", \"-c\", \
             \"exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'GET / HTTP/1.0\\\\r\\\\n\\\\r\\\\n' >&3; \
             head -n1 <&3 | grep -q ' 200 '\"]\n",
            port = self.port
        )
    }
}

fn breakers_json(dir: &Path) -> Vec<Value> {
    let o = run_cmd_ok(dir, &["breakers", "--json"]);
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn breaker(dir: &Path, name: &str) -> Value {
    breakers_json(dir)
        .into_iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no breaker {name}"))
}

fn poll<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The scenario: a pool of tasks against a server failing its first 20 requests.
/// The breaker opens, holds the rest, probes, closes; every task succeeds in the end (with
/// a retry budget the failures alone would exhaust for several tasks without the breaker).
#[test]
fn breaker_opens_holds_probes_and_closes_against_a_flaky_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = Flaky::start(20);
    std::fs::write(
        dir.join("troupe.toml"),
        "workers = 2\n[[breakers]]\nname = \"api\"\nlabel = \"api\"\nconsecutive_failures = 3\n\
         open_for = \"300ms\"\nhalf_open_probes = 1\n",
    )
    .unwrap();
    let _node = NodeProc::start(dir, &[]);
    let mut text = String::from(
        "name = \"calls\"\n[defaults]\nretry = { max_attempts = 6, initial_interval = \"50ms\", \
         max_interval = \"100ms\", jitter = 0.0 }\n",
    );
    for i in 0..10 {
        text.push_str(&server.task(&format!("call{i}")));
    }
    let file = workflow(dir, "calls.toml", &text);
    let run_id = submit(dir, &file);
    let v = wait_finished(dir, &run_id, 120);
    assert_eq!(v["state"], "succeeded", "{v}");
    let b = breaker(dir, "api");
    assert_eq!(b["state"], "closed", "{b}");
    assert!(b["opened"].as_u64().unwrap() >= 1, "{b}");
    let events = events(dir);
    let count = |ty: &str| events.iter().filter(|e| e["type"] == ty).count();
    assert!(count("breaker_opened") >= 1);
    assert!(count("breaker_half_opened") >= 1);
    assert_eq!(count("breaker_closed"), 1);
    assert_eq!(count("task_failed"), 0);
    // Without the breaker 20 failures would have been spread over the tasks as fast as two
    // workers go; with it, the attempts that failed are the 3 that tripped it, those already
    // running then, and one probe per half-open period.
    let failed_attempts = count("attempt_failed");
    assert_eq!(failed_attempts as u64, server.requests() - 10);
    // The metric follows the state.
    let addr = http_addr(dir);
    let (_, metrics) = http_get(&addr, "/metrics");
    assert!(
        metrics.contains("troupe_breaker_state{breaker=\"api\"} 0"),
        "{metrics}"
    );
}

/// An open breaker survives a SIGKILL of the node: after the restart it is still open with
/// the same `until`, its tasks are still held (no request reaches the server), `queue
/// --verbose` says why; `breakers reset` closes it and the run finishes.
#[test]
fn an_open_breaker_survives_a_sigkill_and_reset_closes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = Flaky::start(u64::MAX);
    std::fs::write(
        dir.join("troupe.toml"),
        "workers = 1\n[[breakers]]\nname = \"api\"\nlabel = \"api\"\nfailure_rate = 1.0\n\
         window = 2\nmin_attempts = 2\nopen_for = \"1h\"\n",
    )
    .unwrap();
    let mut node = NodeProc::start(dir, &[]);
    let mut text = String::from(
        "name = \"calls\"\n[defaults]\nretry = { max_attempts = 5, initial_interval = \"50ms\", \
         jitter = 0.0 }\n",
    );
    for i in 0..4 {
        text.push_str(&server.task(&format!("call{i}")));
    }
    let file = workflow(dir, "calls.toml", &text);
    let run_id = submit(dir, &file);
    let open = poll(60, "the breaker opens", || {
        let b = breaker(dir, "api");
        (b["state"] == "open").then_some(b)
    });
    assert!(open["reason"]
        .as_str()
        .unwrap()
        .contains("2 of the last 2 attempts failed"));
    // Nothing more reaches the server once the running attempt (if any) ended.
    let v = wait_until(dir, &run_id, 30, |v| {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] != "running")
    });
    assert_eq!(v["state"], "running");
    let seen = server.requests();
    node.kill9();
    let _node = NodeProc::start(dir, &[]);
    let after = breaker(dir, "api");
    assert_eq!(after["state"], "open", "{after}");
    assert_eq!(after["until"], open["until"]);
    let o = run_cmd_ok(dir, &["queue", "--verbose", "--json"]);
    let q: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let blocked: Vec<&str> = q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["blocked"].as_str())
        .collect();
    assert!(
        blocked
            .iter()
            .any(|b| b.starts_with("breaker api open until")),
        "{q}"
    );
    // Recovery closed the interrupted attempt, if one was out; no new attempt was sent.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.requests(), seen);
    server.heal();
    let o = run(dir, &["breakers", "reset", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no breaker named \"nope\" (known: api)"));
    run_cmd_ok(dir, &["breakers", "reset", "api"]);
    let b = breaker(dir, "api");
    assert_eq!(b["state"], "closed");
    assert!(b["reason"].as_str().unwrap().starts_with("reset by "));
    let o = run(dir, &["breakers", "reset", "api"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("already closed"));
    let v = wait_finished(dir, &run_id, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
}

/// `[retry_policies.NAME]`: a labelled task uses it; an exit status it lists ends the task
/// at once, whatever attempts remain; a task naming a policy the node lacks is refused.
#[test]
fn retry_policies_by_label_and_name_and_non_retryable_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("troupe.toml"),
        "[retry_policies.usage]\nlabel = \"cli\"\nmax_attempts = 5\ninitial_interval = \"10ms\"\n\
         non_retryable_exit_codes = [64]\n\
         [retry_policies.twice]\nmax_attempts = 2\ninitial_interval = \"10ms\"\n",
    )
    .unwrap();
    let _node = NodeProc::start(dir, &[]);
    let file = workflow(
        dir,
        "p.toml",
        "name = \"p\"\n\
         [[task]]\nid = \"usage\"\nlabels = [\"cli\"]\ncommand = [\"sh\", \"-c\", \"exit 64\"]\n\
         [[task]]\nid = \"flaky\"\nlabels = [\"cli\"]\ncommand = [\"sh\", \"-c\", \"exit 1\"]\n\
         [[task]]\nid = \"named\"\nretry_policy = \"twice\"\ncommand = [\"sh\", \"-c\", \"exit 1\"]\n",
    );
    let run_id = submit(dir, &file);
    let v = wait_finished(dir, &run_id, 60);
    let attempts = |id: &str| {
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()["attempts"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(attempts("usage"), 1, "{v}");
    assert_eq!(attempts("flaky"), 5, "{v}");
    assert_eq!(attempts("named"), 2, "{v}");
    // The policy is in the journaled spec: replay does not depend on today's config.
    let o = run_cmd_ok(dir, &["failed", "--json"]);
    let failed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(failed.as_array().unwrap().len(), 3, "{failed}");
    let bad = workflow(
        dir,
        "bad.toml",
        "name = \"bad\"\n[[task]]\nid = \"a\"\nretry_policy = \"nope\"\ncommand = [\"true\"]\n",
    );
    let o = run(dir, &["run", "--detach", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("task `a`: retry_policy \"nope\" is not defined"),
        "{}",
        stderr(&o)
    );
}

/// Bad breakers in troupe.toml: the node refuses to start (exit 2) naming the file, line
/// and field; a workflow's breaker with a pool it does not declare is refused by validate.
#[test]
fn bad_breakers_are_refused_with_their_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (text, want) in [
        (
            "[[breakers]]\nname = \"b\"\nwindow = 0\n",
            "breakers[0]: window must be between 1",
        ),
        (
            "[[breakers]]\nname = \"b\"\nfailure_rate = 1.5\n",
            "breakers[0]: failure_rate must be",
        ),
        (
            "[[breakers]]\nname = \"b\"\npool = \"gpu\"\n",
            "pool \"gpu\" is not declared under [pools]",
        ),
        (
            "[[hooks]]\non = \"task_redy\"\ncommand = [\"true\"]\n",
            "unknown hook event \"task_redy\"",
        ),
        (
            "[retry_policies.x]\nnon_retryable_signals = [99]\n",
            "non_retryable_signals: 99 is not between 1 and 64",
        ),
    ] {
        std::fs::write(dir.join("troupe.toml"), text).unwrap();
        let o = run(dir, &["node", "start"]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("troupe.toml:") && err.contains(want),
            "{text}: {err}"
        );
    }
    let wf = workflow(
        dir,
        "w.toml",
        "name = \"w\"\n[[breakers]]\nname = \"b\"\npool = \"gpu\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n",
    );
    let o = run(dir, &["validate", wf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("breakers[0]: pool `gpu` is not declared under [pools]"),
        "{}",
        stderr(&o)
    );
}
