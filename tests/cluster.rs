//! Remote worker nodes, tested with real processes on loopback: a coordinator
//! (`troupe node start` with `[cluster]`) and workers (`troupe worker start --join`), killed,
//! paused and restarted for real.
#![cfg(feature = "cluster")]

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const COOKIE: &str = "test-cookie-0123456789";
const TOKEN: &str = "join-token-abcdef";

fn secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A coordinator's data dir with `[cluster]` on a free loopback port.
struct Coordinator {
    dir: PathBuf,
    port: u16,
    node: Option<NodeProc>,
}

impl Coordinator {
    fn new(root: &Path, heartbeat: &str, run_local: bool) -> Coordinator {
        let dir = root.join("coordinator");
        std::fs::create_dir_all(&dir).unwrap();
        secret(&dir.join("cookie"), COOKIE);
        secret(&dir.join("tokens"), &format!("# workers\n{TOKEN}\nsecond-token\n"));
        let port = free_port();
        std::fs::write(
            dir.join("troupe.toml"),
            format!(
                "workers = 1\n[cluster]\nlisten = \"127.0.0.1:{port}\"\ncookie_file = \"cookie\"\n\
                 join_tokens_file = \"tokens\"\nheartbeat = \"{heartbeat}\"\nrun_local = {run_local}\n"
            ),
        )
        .unwrap();
        let node = Some(NodeProc::start(&dir, &[]));
        Coordinator { dir, port, node }
    }

    fn join(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn nodes(&self) -> Vec<Value> {
        let o = run_cmd_ok(&self.dir, &["nodes", "--json"]);
        serde_json::from_str(&stdout(&o)).unwrap()
    }

    fn node_state(&self, id: &str) -> Option<String> {
        self.nodes()
            .into_iter()
            .find(|n| n["id"] == id)
            .map(|n| n["state"].as_str().unwrap().to_owned())
    }

    fn wait_node(&self, id: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.node_state(id).as_deref() != Some(state) {
            assert!(
                Instant::now() < deadline,
                "node {id} not {state}: {:?}",
                self.nodes()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A `troupe worker start` process; SIGKILLed when dropped.
struct WorkerProc {
    child: Child,
    dir: PathBuf,
}

impl WorkerProc {
    fn spawn(root: &Path, name: &str, join: &str, cookie: &str, token: &str, slots: u32) -> WorkerProc {
        WorkerProc::spawn_with(root, name, join, cookie, token, slots, &[])
    }

    fn spawn_with(
        root: &Path,
        name: &str,
        join: &str,
        cookie: &str,
        token: &str,
        slots: u32,
        extra: &[&str],
    ) -> WorkerProc {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        secret(&dir.join("cookie"), cookie);
        secret(&dir.join("token"), token);
        let child = troupe(&dir)
            .args(["worker", "start", "--join", join])
            .arg("--cookie-file")
            .arg(dir.join("cookie"))
            .arg("--token-file")
            .arg(dir.join("token"))
            .args(["--slots", &slots.to_string(), "--join-timeout", "20s"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        WorkerProc { child, dir }
    }

    /// Starts a worker and waits until the coordinator lists it ready; returns it with its
    /// node id.
    fn start(root: &Path, name: &str, c: &Coordinator, slots: u32) -> (WorkerProc, String) {
        WorkerProc::start_with(root, name, c, slots, &[])
    }

    fn start_with(
        root: &Path,
        name: &str,
        c: &Coordinator,
        slots: u32,
        extra: &[&str],
    ) -> (WorkerProc, String) {
        let mut w = WorkerProc::spawn_with(root, name, &c.join(), COOKIE, TOKEN, slots, extra);
        let deadline = Instant::now() + Duration::from_secs(60);
        let id = loop {
            if let Ok(id) = std::fs::read_to_string(w.dir.join("node-id")) {
                break id.trim().to_owned();
            }
            assert!(w.child.try_wait().unwrap().is_none(), "worker exited early");
            assert!(Instant::now() < deadline, "worker wrote no node id");
            std::thread::sleep(Duration::from_millis(10));
        };
        c.wait_node(&id, "ready");
        (w, id)
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    fn signal(&self, s: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), s).unwrap();
    }

    /// Waits for the process to exit (at most 60 s): (exit code, stderr).
    fn wait_exit(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                return (status.code(), err);
            }
            assert!(Instant::now() < deadline, "worker did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid(), nix::sys::signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `n` independent tasks, each sleeping `secs`, retried up to 3 attempts.
fn sleepers(dir: &Path, n: usize, secs: f64) -> PathBuf {
    let mut text = String::from("name = \"sleepers\"\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[task]]\nid = \"t{i}\"\nshell = \"sleep {secs}; echo t{i} done\"\nretry = {{ max_attempts = 3, initial_interval = \"10ms\" }}\n"
        ));
    }
    workflow(dir, "sleepers.toml", &text)
}

/// node id → tasks placed there (from `attempt_placed` events).
fn placements(evs: &[Value]) -> HashMap<String, Vec<(String, u64)>> {
    let mut m: HashMap<String, Vec<(String, u64)>> = HashMap::new();
    for e in evs.iter().filter(|e| e["type"] == "attempt_placed") {
        m.entry(e["node"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                e["task"].as_str().unwrap().to_owned(),
                e["attempt"].as_u64().unwrap(),
            ));
    }
    m
}

fn succeeded_once_each(evs: &[Value], n: usize) {
    for i in 0..n {
        let id = format!("t{i}");
        assert_eq!(
            of(evs, "task_succeeded", &id).len(),
            1,
            "{id} must succeed exactly once"
        );
    }
}

#[test]
fn tasks_land_on_both_workers_and_a_killed_workers_attempts_are_retried_on_the_other() {
    let root = tempfile::tempdir().unwrap();
    let c = Coordinator::new(root.path(), "300ms", false);
    let (mut a, a_id) = WorkerProc::start(root.path(), "wa", &c, 3);
    let (_b, b_id) = WorkerProc::start(root.path(), "wb", &c, 3);
    let run = submit(&c.dir, &sleepers(root.path(), 6, 1.5));
    wait_until(&c.dir, &run, 60, |v| v["tasks_running"] == 6);
    let placed = placements(&events(&c.dir));
    assert_eq!(placed.get(&a_id).map(Vec::len), Some(3), "{placed:?}");
    assert_eq!(placed.get(&b_id).map(Vec::len), Some(3), "{placed:?}");
    let on_a: Vec<String> = placed[&a_id].iter().map(|(t, _)| t.clone()).collect();
    let _ = a.child.kill();
    let _ = a.child.wait();
    let v = wait_finished(&c.dir, &run, 120);
    assert_eq!(v["state"], "succeeded", "{v}");
    let evs = events(&c.dir);
    succeeded_once_each(&evs, 6);
    let lost: Vec<&Value> = evs.iter().filter(|e| e["type"] == "node_lost").collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["node"], a_id.as_str());
    for t in &on_a {
        let failed = of(&evs, "attempt_failed", t);
        assert_eq!(failed.len(), 1, "{t}: {failed:?}");
        assert_eq!(failed[0]["failure_kind"], "interrupted", "{failed:?}");
        // Retried on the other worker.
        let placed = placements(&evs);
        assert!(placed[&b_id].iter().any(|(x, n)| x == t && *n == 2), "{t} not retried on {b_id}: {placed:?}");
        assert_eq!(run_status_task(&c.dir, &run, t)["node"], b_id.as_str());
    }
    assert_eq!(c.node_state(&a_id).as_deref(), Some("lost"));
}

fn run_status_task(dir: &Path, run: &str, task: &str) -> Value {
    let o = run_cmd_ok(dir, &["status", &format!("{run}/{task}"), "--json"]);
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn a_paused_worker_past_its_lease_is_fenced_and_its_late_result_rejected() {
    let root = tempfile::tempdir().unwrap();
    let c = Coordinator::new(root.path(), "300ms", false);
    let (a, a_id) = WorkerProc::start(root.path(), "wa", &c, 1);
    let run = submit(&c.dir, &sleepers(root.path(), 1, 1.0));
    wait_until(&c.dir, &run, 60, |v| v["tasks_running"] == 1);
    a.signal(nix::sys::signal::SIGSTOP);
    c.wait_node(&a_id, "lost");
    let (_b, b_id) = WorkerProc::start(root.path(), "wb", &c, 1);
    let v = wait_finished(&c.dir, &run, 120);
    assert_eq!(v["state"], "succeeded", "{v}");
    let before = run_status(&c.dir, &run);
    // The paused worker wakes up with the result of an attempt whose lease is gone.
    a.signal(nix::sys::signal::SIGCONT);
    let deadline = Instant::now() + Duration::from_secs(60);
    let rejected = loop {
        let evs = events(&c.dir);
        let r: Vec<Value> = evs
            .iter()
            .filter(|e| e["type"] == "result_rejected")
            .cloned()
            .collect();
        if !r.is_empty() {
            break r;
        }
        assert!(Instant::now() < deadline, "no result_rejected: {evs:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(rejected[0]["node"], a_id.as_str());
    assert_eq!(rejected[0]["task"], "t0");
    assert_eq!(rejected[0]["attempt"], 1);
    let evs = events(&c.dir);
    succeeded_once_each(&evs, 1);
    assert_eq!(run_status_task(&c.dir, &run, "t0")["node"], b_id.as_str());
    let after = run_status(&c.dir, &run);
    assert_eq!(before["tasks"], after["tasks"], "a rejected result changed the run");
    // The woken worker joined again under a new lease.
    c.wait_node(&a_id, "ready");
}

#[test]
fn a_killed_coordinator_restarts_and_the_run_completes_with_nothing_lost() {
    let root = tempfile::tempdir().unwrap();
    let mut c = Coordinator::new(root.path(), "1s", false);
    let (_a, _a_id) = WorkerProc::start(root.path(), "wa", &c, 2);
    let mut text = String::from("name = \"chain\"\n");
    for i in 0..6 {
        text.push_str(&format!(
            "[[task]]\nid = \"t{i}\"\nshell = \"sleep 0.3; echo '{{\\\"n\\\": {i}}}' > $TROUPE_OUTPUT\"\nretry = {{ max_attempts = 3, initial_interval = \"10ms\" }}\n"
        ));
        if i > 0 {
            text.push_str(&format!("depends_on = [\"t{}\"]\n", i - 1));
        }
    }
    let run = submit(&c.dir, &workflow(root.path(), "chain.toml", &text));
    wait_until(&c.dir, &run, 60, |v| v["tasks_succeeded"] == 2);
    c.node.as_mut().unwrap().kill9();
    c.node = Some(NodeProc::start(&c.dir, &[]));
    let v = wait_finished(&c.dir, &run, 120);
    assert_eq!(v["state"], "succeeded", "{v}");
    let evs = events(&c.dir);
    succeeded_once_each(&evs, 6);
    let o = run_cmd_ok(&c.dir, &["output", &format!("{run}/t5")]);
    assert!(stdout(&o).contains("\"n\":5") || stdout(&o).contains("\"n\": 5"), "{}", stdout(&o));
}

#[test]
fn a_wrong_token_is_refused_and_journaled_and_a_wrong_cookie_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let c = Coordinator::new(root.path(), "300ms", true);
    let w = WorkerProc::spawn(root.path(), "bad-token", &c.join(), COOKIE, "not-a-token", 1);
    let (code, err) = w.wait_exit();
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("refused the join: unknown join token"), "{err}");
    let evs = events(&c.dir);
    let refused: Vec<&Value> = evs.iter().filter(|e| e["type"] == "join_refused").collect();
    assert_eq!(refused.len(), 1, "{evs:?}");
    assert_eq!(refused[0]["reason"], "unknown join token");
    assert!(!serde_json::to_string(&evs).unwrap().contains("not-a-token"), "the token was journaled");

    let w = WorkerProc::spawn(root.path(), "bad-cookie", &c.join(), "another-cookie", TOKEN, 1);
    let (code, err) = w.wait_exit();
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("cookie"), "{err}");
    // Neither joined.
    assert_eq!(c.nodes().len(), 1, "{:?}", c.nodes());
}

#[test]
fn a_drained_worker_takes_no_new_attempts() {
    let root = tempfile::tempdir().unwrap();
    let c = Coordinator::new(root.path(), "300ms", false);
    let (_a, a_id) = WorkerProc::start(root.path(), "wa", &c, 2);
    let (_b, b_id) = WorkerProc::start(root.path(), "wb", &c, 2);
    let o = run_cmd_ok(&c.dir, &["drain", &a_id]);
    assert!(stdout(&o).contains(&format!("drained {a_id}")));
    assert_eq!(c.node_state(&a_id).as_deref(), Some("draining"));
    let run = submit(&c.dir, &sleepers(root.path(), 4, 0.1));
    let v = wait_finished(&c.dir, &run, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let placed = placements(&events(&c.dir));
    assert!(!placed.contains_key(&a_id), "{placed:?}");
    assert_eq!(placed[&b_id].len(), 4);
    let nodes = c.nodes();
    assert_eq!(nodes[0]["id"], "local");
    let o = common::run(&c.dir, &["drain", "no-such-node"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no worker node `no-such-node`"), "{}", stderr(&o));
}

#[test]
fn bad_cluster_settings_and_worker_flags_are_refused_with_where() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("node");
    std::fs::create_dir_all(&dir).unwrap();
    let cases: &[(&str, &str)] = &[
        ("[cluster]\ncookie_file = \"c\"\njoin_tokens_file = \"t\"\n", "needs `listen"),
        ("[cluster]\nlisten = \"nowhere\"\ncookie_file = \"c\"\njoin_tokens_file = \"t\"\n", "is not an address"),
        ("[cluster]\nlisten = \"127.0.0.1:1\"\njoin_tokens_file = \"t\"\n", "needs `cookie_file`"),
        ("[cluster]\nlisten = \"127.0.0.1:1\"\ncookie_file = \"c\"\njoin_tokens_file = \"t\"\nheartbeat = \"0s\"\n", "heartbeat must be longer than 0s"),
        ("[cluster]\nlisten = \"127.0.0.1:1\"\ncookie_file = \"c\"\njoin_tokens_file = \"t\"\ntls_cert = \"x\"\n", "all three"),
        ("[cluster]\nlisten = \"127.0.0.1:1\"\ncookie_file = \"c\"\njoin_tokens_file = \"t\"\nport = 3\n", "unknown field `port`"),
    ];
    for (text, want) in cases {
        std::fs::write(dir.join("troupe.toml"), text).unwrap();
        let o = run(&dir, &["node", "start"]);
        assert_eq!(o.status.code(), Some(2), "{text}: {}", stderr(&o));
        assert!(stderr(&o).contains("troupe.toml:"), "{text}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{text}: {}", stderr(&o));
    }
    // Files that others may read, or a public address without TLS, stop the node.
    std::fs::write(dir.join("c"), COOKIE).unwrap();
    std::fs::set_permissions(dir.join("c"), std::fs::Permissions::from_mode(0o644)).unwrap();
    secret(&dir.join("t"), TOKEN);
    std::fs::write(
        dir.join("troupe.toml"),
        "[cluster]\nlisten = \"127.0.0.1:1\"\ncookie_file = \"c\"\njoin_tokens_file = \"t\"\n",
    )
    .unwrap();
    let o = run(&dir, &["node", "start"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    secret(&dir.join("c"), COOKIE);
    std::fs::write(
        dir.join("troupe.toml"),
        "[cluster]\nlisten = \"0.0.0.0:1\"\ncookie_file = \"c\"\njoin_tokens_file = \"t\"\n",
    )
    .unwrap();
    let o = run(&dir, &["node", "start"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("--insecure"), "{}", stderr(&o));

    // Worker flags.
    let w = root.path().join("w");
    std::fs::create_dir_all(&w).unwrap();
    secret(&w.join("cookie"), COOKIE);
    secret(&w.join("token"), TOKEN);
    std::fs::write(w.join("open"), COOKIE).unwrap();
    std::fs::set_permissions(w.join("open"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let cookie = w.join("cookie");
    let token = w.join("token");
    let open = w.join("open");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--join", "nonsense"], "is not HOST:PORT"),
        (vec!["--join", "10.1.2.3:9480"], "--insecure"),
        (vec!["--join", "127.0.0.1:9", "--slots", "0"], "--slots must be at least 1"),
        (vec!["--join", "127.0.0.1:9", "--labels", "a,,b"], "--labels"),
    ];
    for (args, want) in cases {
        let mut full = vec!["worker", "start", "--cookie-file", cookie.to_str().unwrap(), "--token-file", token.to_str().unwrap()];
        full.extend(args.iter());
        let o = run(&w, &full);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = run(&w, &["worker", "start", "--join", "127.0.0.1:9", "--cookie-file", open.to_str().unwrap(), "--token-file", token.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    // Nobody listening: the first join times out with a clear message.
    let o = run(&w, &["worker", "start", "--join", &format!("127.0.0.1:{}", free_port()), "--cookie-file", cookie.to_str().unwrap(), "--token-file", token.to_str().unwrap(), "--join-timeout", "1s"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no answer from a troupe coordinator"), "{}", stderr(&o));
}

#[test]
fn node_labels_route_a_task_and_a_task_no_node_can_take_waits_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let c = Coordinator::new(root.path(), "300ms", true);
    let (_a, a_id) = WorkerProc::start_with(root.path(), "wa", &c, 2, &["--labels", "gpu,big"]);
    let (_b, _b_id) = WorkerProc::start(root.path(), "wb", &c, 2);
    let mut text = String::from("name = \"routed\"\n");
    for i in 0..4 {
        text.push_str(&format!(
            "[[task]]\nid = \"g{i}\"\ncommand = [\"true\"]\nnode_labels = [\"gpu\"]\n"
        ));
    }
    text.push_str("[[task]]\nid = \"tpu\"\ncommand = [\"true\"]\nnode_labels = [\"tpu\"]\n");
    let run = submit(&c.dir, &workflow(root.path(), "routed.toml", &text));
    wait_until(&c.dir, &run, 60, |v| v["tasks_succeeded"] == 4);
    let placed = placements(&events(&c.dir));
    let on_a: Vec<&str> = placed[&a_id].iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(on_a.len(), 4, "{placed:?}");
    assert!(placed.iter().all(|(n, ts)| n == &a_id || ts.is_empty()), "{placed:?}");
    let o = run_cmd_ok(&c.dir, &["queue", "--verbose", "--json"]);
    let q: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let waiting = q["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "tpu")
        .cloned()
        .unwrap_or_else(|| panic!("tpu not queued: {q}"));
    assert_eq!(waiting["state"], "ready", "{waiting}");
    assert_eq!(
        waiting["blocked"], "no ready worker node has node_labels tpu",
        "{waiting}"
    );
    run_cmd_ok(&c.dir, &["cancel", &run]);
    // A label that is not a name is refused with its place.
    let bad = workflow(root.path(), "bad.toml", "name = \"b\"\n[[task]]\nid = \"x\"\ncommand = [\"true\"]\nnode_labels = [\"a b\"]\n");
    let o = common::run(&c.dir, &["validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.toml:5:") || stdout(&o).contains("bad.toml:5:"), "{}{}", stdout(&o), stderr(&o));
    assert!(format!("{}{}", stdout(&o), stderr(&o)).contains("node_label `a b`"), "{}{}", stdout(&o), stderr(&o));
}
