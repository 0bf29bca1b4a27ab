//! Operating a node: /metrics, /healthz, /readyz, `troupe metrics`, `troupe health`,
//! node-wide pools, JSON logs, and the bad inputs of each (real binary, real journal).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::Value;

const MIXED: &str = r#"
name = "mixed"
[[task]]
id = "ok"
command = ["true"]
[[task]]
id = "bad"
command = ["false"]
depends_on = ["ok"]
retry = { max_attempts = 2, initial_interval = "10ms" }
"#;

/// Three independent tasks.
const WIDE: &str = "name = \"wide\"\n[[task]]\nid = \"a\"\ncommand = [\"true\"]\n[[task]]\nid = \"b\"\ncommand = [\"true\"]\n[[task]]\nid = \"c\"\ncommand = [\"true\"]\n";

/// The value of the sample `name{labels}` in a Prometheus text body.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn metrics_json(dir: &Path, since: &str) -> Value {
    let o = run(dir, &["metrics", "--since", since, "--json"]);
    assert!(o.status.success(), "metrics failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn prometheus_endpoints_count_what_happened() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _node = NodeProc::start(dir, &["--http-addr", "127.0.0.1:0"]);
    let addr = http_addr(dir);
    let wf = workflow(dir, "mixed.toml", MIXED);
    let o = run(dir, &["run", wf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    let (status, body) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    let get = |s: &str| sample(&body, s).unwrap_or_else(|| panic!("{s} missing:\n{body}"));
    assert_eq!(
        get(r#"troupe_tasks_total{outcome="succeeded",pool=""}"#),
        1.0
    );
    assert_eq!(get(r#"troupe_tasks_total{outcome="failed",pool=""}"#), 1.0);
    assert_eq!(get(r#"troupe_attempts_total{pool=""}"#), 3.0);
    assert_eq!(get(r#"troupe_retries_total{pool=""}"#), 1.0);
    assert_eq!(get(r#"troupe_queue_depth{pool=""}"#), 0.0);
    assert_eq!(get("troupe_running_attempts"), 0.0);
    assert_eq!(get("troupe_approvals_pending"), 0.0);
    assert_eq!(
        get(r#"troupe_attempt_duration_seconds_count{outcome="failed"}"#),
        2.0
    );
    assert_eq!(
        get(r#"troupe_run_duration_seconds_count{state="failed"}"#),
        1.0
    );
    assert_eq!(get("troupe_queue_wait_seconds_count"), 3.0);
    assert!(get("troupe_journal_batch_events_count") >= 1.0);
    assert!(get("troupe_process_resident_memory_bytes") > 0.0);
    assert!(get("troupe_process_cpu_seconds_total") >= 0.0);

    assert_eq!(http_get(&addr, "/healthz"), (200, "ok\n".into()));
    let (status, body) = http_get(&addr, "/readyz");
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    assert_eq!(http_get(&addr, "/nope").0, 404);
}

#[test]
fn metrics_since_survive_a_kill_and_read_without_a_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut node = NodeProc::start(dir, &[]);
    let wf = workflow(dir, "mixed.toml", MIXED);
    assert_eq!(
        run(dir, &["run", wf.to_str().unwrap()]).status.code(),
        Some(1)
    );
    let online = metrics_json(dir, "1h");
    let total = &online["total"];
    assert_eq!(total["counts"]["succeeded"], 1);
    assert_eq!(total["counts"]["failed"], 1);
    assert_eq!(total["counts"]["retries"], 1);
    assert_eq!(total["counts"]["attempts"], 3);
    assert_eq!(total["error_rate"], 0.5);
    assert!(total["latency"]["p99_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(online["pools"][0]["pool"], "");

    node.kill9();
    // No node: read from the journal directly; the same durable figures.
    let offline = metrics_json(dir, "1h");
    assert_eq!(offline["total"], online["total"]);
    let text = stdout(&run(dir, &["metrics", "--since", "7d"]));
    assert!(text.contains("(all)") && text.contains("50.0%"), "{text}");

    // And again after a restart, with a second run added.
    let _node = NodeProc::start(dir, &[]);
    let ok = workflow(
        dir,
        "ok.toml",
        "name = \"ok\"\n[[task]]\nid = \"t\"\ncommand = [\"true\"]\n",
    );
    assert!(run(dir, &["run", ok.to_str().unwrap()]).status.success());
    let after = metrics_json(dir, "24h");
    assert_eq!(after["total"]["counts"]["succeeded"], 2);
    assert_eq!(after["total"]["counts"]["failed"], 1);
}

#[test]
fn metrics_since_rejects_bad_durations() {
    let tmp = tempfile::tempdir().unwrap();
    for bad in ["yesterday", "-1h", "0s", ""] {
        let o = run(tmp.path(), &["metrics", &format!("--since={bad}")]);
        assert_eq!(o.status.code(), Some(2), "--since {bad:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("since"), "{}", stderr(&o));
    }
    // No journal and no node: exit 3, nothing created.
    let o = run(tmp.path(), &["metrics"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!tmp.path().join("journal").exists());
}

#[test]
fn health_grades_the_node_with_nagios_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Unreachable: UNKNOWN.
    let o = run(dir, &["health"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    std::fs::write(dir.join("troupe.toml"), "[health]\nbacklog = 1\n").unwrap();
    let _node = NodeProc::start(dir, &[]);
    let o = run(dir, &["health", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let h: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(h["status"], "healthy");
    let names: Vec<&str> = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "scheduler",
        "journal",
        "disk",
        "backlog",
        "stalled",
        "error_rate",
        "restarts",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let backlog = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "backlog")
        .unwrap();
    assert_eq!(backlog["threshold"], 1.0);

    // Backlog: halted, three ready tasks > 1.
    assert!(run(dir, &["halt"]).status.success());
    let wide = workflow(dir, "wide.toml", WIDE);
    let run_id = submit(dir, &wide);
    let o = run(dir, &["health"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).starts_with("degraded"), "{}", stdout(&o));
    assert!(stdout(&o).contains("3 ready tasks"), "{}", stdout(&o));
    assert!(run(dir, &["unhalt"]).status.success());
    wait_finished(dir, &run_id, 60);

    // Error rate: one of two tasks failed in the last hour (50% > 10%).
    let wf = workflow(dir, "mixed.toml", MIXED);
    assert_eq!(
        run(dir, &["run", wf.to_str().unwrap()]).status.code(),
        Some(1)
    );
    let o = run(dir, &["health", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let h: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rate = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "error_rate")
        .unwrap();
    assert_eq!(rate["status"], "degraded");
    assert_eq!(rate["value"], 0.2);
    assert_eq!(rate["threshold"], 0.1);
}

#[test]
fn an_http_port_in_use_stops_the_node_before_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = run(dir, &["node", "start", "--http-addr", &addr]);
    assert_ne!(o.status.code(), Some(0));
    let err = stderr(&o);
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
    assert!(!dir.join("journal").exists(), "the journal was touched");
    assert!(
        !dir.join("troupe.sock").exists(),
        "the control socket was created"
    );
}

#[test]
fn unparsable_http_addr_is_refused_with_its_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let o = run(dir, &["node", "start", "--http-addr", "localhost"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not an address"), "{}", stderr(&o));

    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "workers = 2\nhttp_addr = \"127.0.0.1:99999\"\n").unwrap();
    let o = run(dir, &["node", "start", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("bad.toml:2:"), "{}", stderr(&o));

    let o = troupe(dir)
        .args(["node", "start"])
        .env("TROUPE_HTTP_ADDR", "9090")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("TROUPE_HTTP_ADDR=9090"));
    assert!(!dir.join("journal").exists());
}

#[test]
fn node_pools_cap_running_attempts_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("troupe.toml"), "[pools]\ngpu = 1\n").unwrap();
    let _node = NodeProc::start(dir, &["--workers", "4"]);
    let log = dir.join("trace.log");
    let text = |name: &str| {
        format!(
            "name = \"{name}\"\n[pools]\ngpu = 2\n[defaults]\npool = \"gpu\"\n[[task]]\nid = \"a\"\nshell = \"echo start >> {0}; sleep 0.2; echo end >> {0}\"\n[[task]]\nid = \"b\"\nshell = \"echo start >> {0}; sleep 0.2; echo end >> {0}\"\n",
            log.display()
        )
    };
    let one = submit(dir, &workflow(dir, "one.toml", &text("one")));
    let two = submit(dir, &workflow(dir, "two.toml", &text("two")));
    for r in [&one, &two] {
        assert_eq!(wait_finished(dir, r, 60)["state"], "succeeded");
    }
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 8);
    for pair in lines.chunks(2) {
        assert_eq!(
            pair,
            ["start", "end"],
            "two gpu tasks overlapped: {lines:?}"
        );
    }
    let o = run(dir, &["node", "start", "--print-config"]);
    assert!(stdout(&o).contains("gpu = 1"), "{}", stdout(&o));
}

#[test]
fn bad_pool_and_webhook_config_names_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (text, want) in [
        (
            "[pools]\ngpu = 0\n",
            "t.toml:2:7: pools.gpu must be at least 1",
        ),
        (
            "[[webhooks]]\nurl = \"ftp://x\"\nevents = [\"task_failed\"]\n",
            "t.toml:2:7: webhooks[0].url `ftp://x` is not an http(s) URL",
        ),
        (
            "[[webhooks]]\nurl = \"http://127.0.0.1:1/\"\nevents = [\"task_exploded\"]\n",
            "unknown event `task_exploded`",
        ),
        (
            "[[webhooks]]\nurl = \"http://127.0.0.1:1/\"\nevents = []\n",
            "webhooks[0].events is empty",
        ),
        (
            "[health]\nerror_rate = 2.0\n",
            "t.toml:2:14: health.error_rate must be between 0 and 1",
        ),
        (
            "[retention]\nlogs = \"soon\"\n",
            "t.toml:2:8: retention.logs: `soon` is not a duration",
        ),
        (
            "[health]\nbacklogg = 3\n",
            "t.toml:2:1: unknown field `backlogg`",
        ),
    ] {
        let cfg = dir.join("t.toml");
        std::fs::write(&cfg, text).unwrap();
        let o = run(dir, &["node", "start", "--config", cfg.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(want),
            "{text}: want {want}, got {}",
            stderr(&o)
        );
        assert!(!dir.join("journal").exists());
    }
}

#[test]
fn log_format_json_writes_one_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wf = workflow(dir, "mixed.toml", MIXED);
    let o = troupe(dir)
        .args(["--log-format", "json", "run", wf.to_str().unwrap()])
        .env("RUST_LOG", "troupe=info")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    let logs: Vec<Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert!(!logs.is_empty(), "no JSON log lines in:\n{err}");
    assert!(logs
        .iter()
        .all(|l| l["level"].is_string() && l["fields"].is_object()));
    let o = run(dir, &["--log-format", "xml", "list"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A local webhook receiver: `Ok` answers 200, `Fail` 500, `Hang` never answers.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Ok,
    Fail,
    Hang,
}

struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

fn receiver(mode: Mode) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                match mode {
                    Mode::Ok => {
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                    }
                    Mode::Fail => {
                        let _ = stream.write_all(b"HTTP/1.1 500 Oops\r\ncontent-length: 0\r\n\r\n");
                    }
                    Mode::Hang => std::thread::sleep(Duration::from_secs(60)),
                }
            });
        }
    });
    Receiver { url, bodies }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn webhooks_deliver_retry_and_never_block_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ok = receiver(Mode::Ok);
    let fail = receiver(Mode::Fail);
    let hang = receiver(Mode::Hang);
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/", l.local_addr().unwrap())
    };
    let all = r#"["task_failed", "run_finished", "approval_requested", "node_stopping"]"#;
    let cfg = format!(
        "[[webhooks]]\nurl = \"{}\"\nevents = {all}\n\n\
         [[webhooks]]\nurl = \"{}\"\nevents = [\"run_finished\"]\nmax_attempts = 2\n\n\
         [[webhooks]]\nurl = \"{}\"\nevents = [\"run_finished\"]\ntimeout = \"200ms\"\nmax_attempts = 2\n\n\
         [[webhooks]]\nurl = \"{refused}\"\nevents = [\"run_finished\"]\nmax_attempts = 2\n",
        ok.url, fail.url, hang.url
    );
    std::fs::write(dir.join("troupe.toml"), cfg).unwrap();
    let node = NodeProc::start(dir, &[]);
    let addr = http_addr(dir);

    let wf = workflow(dir, "mixed.toml", MIXED);
    let o = run(dir, &["run", wf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // The node keeps answering while one URL hangs and another refuses.
    assert!(run(dir, &["status"]).status.success());
    let gate = workflow(
        dir,
        "gate.toml",
        "name = \"gate\"\n[[task]]\nid = \"deploy\"\ncommand = [\"true\"]\nrequires_approval = true\n",
    );
    let gated = submit(dir, &gate);

    wait_for("task_failed, run_finished, approval_requested", || {
        ok.bodies.lock().unwrap().len() >= 3
    });
    let bodies = ok.bodies.lock().unwrap().clone();
    let failed = bodies.iter().find(|b| b["event"] == "task_failed").unwrap();
    assert_eq!(failed["task"], "bad");
    assert_eq!(failed["workflow"], "mixed");
    assert_eq!(failed["attempt"], 2);
    assert!(failed["time"].as_str().unwrap().ends_with('Z'));
    assert!(failed["node"].is_string());
    let finished = bodies
        .iter()
        .find(|b| b["event"] == "run_finished")
        .unwrap();
    assert_eq!(finished["state"], "failed");
    let approval = bodies
        .iter()
        .find(|b| b["event"] == "approval_requested")
        .unwrap();
    assert_eq!(approval["run"], gated.as_str());
    assert_eq!(approval["task"], "deploy");

    // The failing URL got exactly max_attempts tries; every failure is counted.
    wait_for("retries to give up", || {
        let (_, body) = http_get(&addr, "/metrics");
        sample(
            &body,
            r#"troupe_webhook_deliveries_total{event="run_finished",result="failed"}"#,
        ) == Some(3.0)
    });
    assert_eq!(fail.bodies.lock().unwrap().len(), 2);
    assert_eq!(hang.bodies.lock().unwrap().len(), 2);
    let (_, body) = http_get(&addr, "/metrics");
    assert_eq!(
        sample(
            &body,
            r#"troupe_webhook_deliveries_total{event="task_failed",result="delivered"}"#
        ),
        Some(1.0)
    );

    // A graceful stop announces itself.
    assert_eq!(node.terminate(), Some(0));
    let bodies = ok.bodies.lock().unwrap().clone();
    let stopping = bodies.iter().find(|b| b["event"] == "node_stopping");
    assert!(stopping.is_some(), "no node_stopping in {bodies:?}");
}

#[test]
fn a_scheduler_restart_is_counted_and_gauges_are_recounted_not_doubled() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _node = NodeProc::start(dir, &[]);
    let addr = http_addr(dir);
    assert!(run(dir, &["halt"]).status.success());
    let wide = workflow(dir, "wide.toml", WIDE);
    submit(dir, &wide);
    let depth = || {
        sample(
            &http_get(&addr, "/metrics").1,
            r#"troupe_queue_depth{pool=""}"#,
        )
    };
    assert_eq!(depth(), Some(3.0));

    inject_panic(dir, "scheduler");
    wait_for("the restarted scheduler", || {
        run(dir, &["status"]).status.success()
    });
    let body = http_get(&addr, "/metrics").1;
    assert_eq!(
        sample(&body, r#"troupe_queue_depth{pool=""}"#),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, r#"troupe_tasks{pool="",state="ready"}"#),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, r#"troupe_actor_restarts_total{actor="scheduler"}"#),
        Some(1.0),
        "{body}"
    );
    let o = run(dir, &["health", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let h: Value = serde_json::from_slice(&o.stdout).unwrap();
    let restarts = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "restarts")
        .unwrap();
    assert_eq!(restarts["status"], "degraded");
    assert!(restarts["value"].as_f64().unwrap() >= 1.0);
}
