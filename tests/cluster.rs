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
/// iproute2, for the partition test's network namespace.
const IP: &str = "/usr/sbin/ip";

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

/// A coordinator's data dir with `[cluster]` on a free port.
struct Coordinator {
    dir: PathBuf,
    /// The IP address it listens on.
    ip: String,
    port: u16,
    node: Option<NodeProc>,
}

impl Coordinator {
    /// On loopback, with no TLS.
    fn new(root: &Path, heartbeat: &str, run_local: bool) -> Coordinator {
        Coordinator::start(root, "127.0.0.1", heartbeat, run_local, "", &[])
    }

    /// Listening on `ip`, with `extra` lines in `[cluster]` and `flags` for `node start`.
    fn start(
        root: &Path,
        ip: &str,
        heartbeat: &str,
        run_local: bool,
        extra: &str,
        flags: &[&str],
    ) -> Coordinator {
        let dir = root.join("coordinator");
        std::fs::create_dir_all(&dir).unwrap();
        secret(&dir.join("cookie"), COOKIE);
        secret(
            &dir.join("tokens"),
            &format!("# workers\n{TOKEN}\nsecond-token\n"),
        );
        let port = free_port();
        std::fs::write(
            dir.join("troupe.toml"),
            format!(
                "workers = 1\n[cluster]\nlisten = \"{ip}:{port}\"\ncookie_file = \"cookie\"\n\
                 join_tokens_file = \"tokens\"\nheartbeat = \"{heartbeat}\"\nrun_local = {run_local}\n{extra}"
            ),
        )
        .unwrap();
        let node = Some(NodeProc::start(&dir, flags));
        Coordinator {
            dir,
            ip: ip.to_owned(),
            port,
            node,
        }
    }

    fn join(&self) -> String {
        format!("{}:{}", self.ip, self.port)
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

/// A `troupe worker start` process; SIGKILLed when dropped. Its stderr goes to the file
/// `stderr` in its data dir (a pipe nobody reads could fill and block it).
struct WorkerProc {
    child: Child,
    dir: PathBuf,
}

impl WorkerProc {
    fn spawn(
        root: &Path,
        name: &str,
        join: &str,
        cookie: &str,
        token: &str,
        slots: u32,
    ) -> WorkerProc {
        WorkerProc::spawn_with(root, name, join, cookie, token, slots, &[], None)
    }

    /// Like [`WorkerProc::spawn`], with more flags (`--join-timeout` defaults to 20s) and,
    /// given a network namespace, run inside it (`ip netns exec`).
    #[allow(clippy::too_many_arguments)]
    fn spawn_with(
        root: &Path,
        name: &str,
        join: &str,
        cookie: &str,
        token: &str,
        slots: u32,
        extra: &[&str],
        netns: Option<&str>,
    ) -> WorkerProc {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        secret(&dir.join("cookie"), cookie);
        secret(&dir.join("token"), token);
        let mut cmd = match netns {
            None => troupe(&dir),
            Some(ns) => {
                let mut c = std::process::Command::new(IP);
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_troupe")])
                    .arg("--data-dir")
                    .arg(&dir);
                c
            }
        };
        cmd.args(["worker", "start", "--join", join])
            .arg("--cookie-file")
            .arg(dir.join("cookie"))
            .arg("--token-file")
            .arg(dir.join("token"))
            .args(["--slots", &slots.to_string()]);
        if !extra.contains(&"--join-timeout") {
            cmd.args(["--join-timeout", "20s"]);
        }
        let child = cmd
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr")).unwrap())
            .spawn()
            .expect("spawn worker");
        WorkerProc { child, dir }
    }

    /// Starts a worker and waits until the coordinator lists it ready; returns it with its
    /// node id.
    fn start(root: &Path, name: &str, c: &Coordinator, slots: u32) -> (WorkerProc, String) {
        WorkerProc::start_with(root, name, c, slots, &[], None)
    }

    /// [`WorkerProc::start`] with [`WorkerProc::spawn_with`]'s `extra` and `netns`.
    fn start_with(
        root: &Path,
        name: &str,
        c: &Coordinator,
        slots: u32,
        extra: &[&str],
        netns: Option<&str>,
    ) -> (WorkerProc, String) {
        let mut w =
            WorkerProc::spawn_with(root, name, &c.join(), COOKIE, TOKEN, slots, extra, netns);
        let id = w.node_id();
        c.wait_node(&id, "ready");
        (w, id)
    }

    /// Waits until the worker wrote its node id (at most 60 s) and returns it.
    fn node_id(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(id) = std::fs::read_to_string(self.dir.join("node-id")) {
                if !id.trim().is_empty() {
                    return id.trim().to_owned();
                }
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "worker exited early: {}",
                self.stderr()
            );
            assert!(Instant::now() < deadline, "worker wrote no node id");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What it wrote to stderr so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
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
                return (status.code(), self.stderr());
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
        assert!(
            placed[&b_id].iter().any(|(x, n)| x == t && *n == 2),
            "{t} not retried on {b_id}: {placed:?}"
        );
        assert_eq!(run_status_task(&c.dir, &run, t)["node"], b_id.as_str());
    }
    assert_eq!(c.node_state(&a_id).as_deref(), Some("lost"));
}

#[test]
fn the_replicas_of_a_swarm_task_go_to_different_workers() {
    // Worker A has more free slots, so without spreading both replicas would go to A.
    let root = tempfile::tempdir().unwrap();
    let c = Coordinator::new(root.path(), "300ms", false);
    let (_a, a_id) = WorkerProc::start(root.path(), "wa", &c, 4);
    let (_b, b_id) = WorkerProc::start(root.path(), "wb", &c, 2);
    let wf = workflow(
        root.path(),
        "swarm.toml",
        "name = \"spread\"\n[[task]]\nid = \"s\"\nreplicas = 2\n\
         shell = 'sleep 1; echo 1 > \"$TROUPE_OUTPUT\"'\n",
    );
    let run = submit(&c.dir, &wf);
    let v = wait_finished(&c.dir, &run, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let placed = placements(&events(&c.dir));
    let on = |id: &str| {
        placed
            .get(id)
            .map(|v| v.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(on(&a_id).len(), 1, "{placed:?}");
    assert_eq!(on(&b_id).len(), 1, "{placed:?}");
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
    assert_eq!(
        before["tasks"], after["tasks"],
        "a rejected result changed the run"
    );
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
    assert!(
        stdout(&o).contains("\"n\":5") || stdout(&o).contains("\"n\": 5"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_wrong_token_is_refused_and_journaled_and_a_wrong_cookie_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let c = Coordinator::new(root.path(), "300ms", true);
    let w = WorkerProc::spawn(
        root.path(),
        "bad-token",
        &c.join(),
        COOKIE,
        "not-a-token",
        1,
    );
    let (code, err) = w.wait_exit();
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("refused the join: unknown join token"),
        "{err}"
    );
    let evs = events(&c.dir);
    let refused: Vec<&Value> = evs.iter().filter(|e| e["type"] == "join_refused").collect();
    assert_eq!(refused.len(), 1, "{evs:?}");
    assert_eq!(refused[0]["reason"], "unknown join token");
    assert!(
        !serde_json::to_string(&evs).unwrap().contains("not-a-token"),
        "the token was journaled"
    );

    let w = WorkerProc::spawn(
        root.path(),
        "bad-cookie",
        &c.join(),
        "another-cookie",
        TOKEN,
        1,
    );
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
    assert!(
        stderr(&o).contains("no worker node `no-such-node`"),
        "{}",
        stderr(&o)
    );
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
        assert!(
            stderr(&o).contains("troupe.toml:"),
            "{text}: {}",
            stderr(&o)
        );
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
        (
            vec!["--join", "127.0.0.1:9", "--slots", "0"],
            "--slots must be at least 1",
        ),
        (
            vec!["--join", "127.0.0.1:9", "--labels", "a,,b"],
            "--labels",
        ),
    ];
    for (args, want) in cases {
        let mut full = vec![
            "worker",
            "start",
            "--cookie-file",
            cookie.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ];
        full.extend(args.iter());
        let o = run(&w, &full);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{args:?}: {}", stderr(&o));
    }
    let o = run(
        &w,
        &[
            "worker",
            "start",
            "--join",
            "127.0.0.1:9",
            "--cookie-file",
            open.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    // Nobody listening: the first join times out with a clear message.
    let o = run(
        &w,
        &[
            "worker",
            "start",
            "--join",
            &format!("127.0.0.1:{}", free_port()),
            "--cookie-file",
            cookie.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
            "--join-timeout",
            "1s",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no answer from a troupe coordinator"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn node_labels_route_a_task_and_a_task_no_node_can_take_waits_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let c = Coordinator::new(root.path(), "300ms", true);
    let (_a, a_id) =
        WorkerProc::start_with(root.path(), "wa", &c, 2, &["--labels", "gpu,big"], None);
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
    assert!(
        placed.iter().all(|(n, ts)| n == &a_id || ts.is_empty()),
        "{placed:?}"
    );
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
    let bad = workflow(
        root.path(),
        "bad.toml",
        "name = \"b\"\n[[task]]\nid = \"x\"\ncommand = [\"true\"]\nnode_labels = [\"a b\"]\n",
    );
    let o = common::run(&c.dir, &["validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.toml:5:") || stdout(&o).contains("bad.toml:5:"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        format!("{}{}", stdout(&o), stderr(&o)).contains("node_label `a b`"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
}

/// Whether the `openssl` CLI runs (the TLS test makes its certificates with it).
fn openssl_available() -> bool {
    std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A private CA in `dir`: `NAME.pem` and `NAME.key` (P-256).
fn make_ca(dir: &Path, name: &str) {
    let (key, pem, subject) = (
        format!("{name}.key"),
        format!("{name}.pem"),
        format!("/CN=troupe test {name}"),
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// A certificate `NAME.pem` (key `NAME.key`, mode 0600) that the CA `ca` signed, with the
/// X.509 v3 extensions `ext` (lines of an openssl extension file).
fn make_cert(dir: &Path, name: &str, ca: &str, ext: &str) {
    let (key, csr, pem, ext_file, subject) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
        format!("{name}.ext"),
        format!("/CN={name}"),
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subject,
        ],
    );
    std::fs::write(dir.join(&ext_file), ext).unwrap();
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &pem,
            "-extfile",
            &ext_file,
        ],
    );
    std::fs::set_permissions(dir.join(&key), std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Mutual TLS with a private CA (certificates made with the `openssl` CLI): a worker whose
/// client certificate the cluster's CA signed joins and runs a workflow; a worker whose
/// certificate another CA signed, one without TLS, and one that does not trust the
/// coordinator's certificate never join and exit 3 within their `--join-timeout`.
#[test]
fn mutual_tls_admits_only_workers_whose_certificate_the_cluster_ca_signed() {
    if !openssl_available() {
        eprintln!("skipped: no `openssl` CLI to make the test certificates with");
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let pki = root.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_ca(&pki, "ca");
    make_ca(&pki, "other-ca");
    let leaf = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n";
    make_cert(
        &pki,
        "coordinator",
        "ca",
        &format!("{leaf}extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"),
    );
    let client = format!("{leaf}extendedKeyUsage=clientAuth\n");
    make_cert(&pki, "worker", "ca", &client);
    make_cert(&pki, "rogue", "other-ca", &client);
    let f = |name: &str| pki.join(name).to_str().unwrap().to_owned();
    let c = Coordinator::start(
        root.path(),
        "127.0.0.1",
        "300ms",
        false,
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_ca = \"{}\"\n",
            f("coordinator.pem"),
            f("coordinator.key"),
            f("ca.pem")
        ),
        &[],
    );
    // The server name is the host of --join, 127.0.0.1: the certificate's IP SAN.
    let (_w, w_id) = WorkerProc::start_with(
        root.path(),
        "wa",
        &c,
        2,
        &[
            "--tls-cert",
            &f("worker.pem"),
            "--tls-key",
            &f("worker.key"),
            "--tls-ca",
            &f("ca.pem"),
        ],
        None,
    );
    let run = submit(&c.dir, &sleepers(root.path(), 3, 0.1));
    let v = wait_finished(&c.dir, &run, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let evs = events(&c.dir);
    succeeded_once_each(&evs, 3);
    let placed = placements(&evs);
    assert_eq!(placed.get(&w_id).map(Vec::len), Some(3), "{placed:?}");

    let refused: [(&str, Vec<String>, &str); 3] = [
        // The coordinator refuses a client certificate of another CA.
        (
            "rogue",
            vec![
                "--tls-cert".into(),
                f("rogue.pem"),
                "--tls-key".into(),
                f("rogue.key"),
                "--tls-ca".into(),
                f("ca.pem"),
                "--tls-server-name".into(),
                "localhost".into(),
            ],
            "certificate",
        ),
        // A worker in the clear cannot speak to a TLS listener.
        ("plain", vec![], "during the handshake"),
        // A worker refuses a coordinator whose certificate its CA did not sign.
        (
            "distrustful",
            vec![
                "--tls-cert".into(),
                f("worker.pem"),
                "--tls-key".into(),
                f("worker.key"),
                "--tls-ca".into(),
                f("other-ca.pem"),
                "--tls-server-name".into(),
                "localhost".into(),
            ],
            "certificate",
        ),
    ];
    for (name, mut args, want) in refused {
        args.extend(["--join-timeout".to_owned(), "3s".to_owned()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let w = WorkerProc::spawn_with(root.path(), name, &c.join(), COOKIE, TOKEN, 1, &args, None);
        let dir = w.dir.clone();
        let (code, err) = w.wait_exit();
        let took = started.elapsed();
        assert_eq!(code, Some(3), "{name}: {err}");
        assert!(
            err.to_lowercase().contains(want),
            "{name}: wanted `{want}` in: {err}"
        );
        // The join timeout plus a process start and a loop tick, with room for a busy machine.
        assert!(
            took < Duration::from_secs(13),
            "{name} took {took:?}: {err}"
        );
        let id = std::fs::read_to_string(dir.join("node-id")).unwrap();
        let evs = events(&c.dir);
        assert!(
            !evs.iter().any(|e| e["node"] == id.trim()),
            "{name} ({}) reached the journal: {evs:?}",
            id.trim()
        );
    }
    // Only the worker with the cluster's certificate is a node; it still holds its lease.
    let nodes = c.nodes();
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["local", w_id.as_str()], "{nodes:?}");
    assert_eq!(c.node_state(&w_id).as_deref(), Some("ready"));
    let evs = events(&c.dir);
    assert!(
        !evs.iter().any(|e| e["type"] == "join_refused"),
        "a refused TLS handshake never reaches the join: {evs:?}"
    );
}

/// A network namespace joined to the host's by a veth pair: the host end `10.77.N.1/24`, the
/// namespace's end `10.77.N.2/24` (N from the test process's id). Dropping it deletes the
/// host end (which takes the pair with it) and the namespace, also after a failed assert.
struct NetNs {
    /// The namespace (`ip netns exec NAME`).
    name: String,
    /// The host end of the veth pair.
    host_veth: String,
    /// The host end's address: where the coordinator listens.
    host_ip: String,
}

impl NetNs {
    /// Makes it; Err says why it cannot be made here (not root, no `ip`, no namespaces or
    /// veth in this kernel), for a skip message.
    fn create() -> Result<NetNs, String> {
        if !nix::unistd::geteuid().is_root() {
            return Err("not root".into());
        }
        if !Path::new(IP).exists() {
            return Err(format!("no {IP}"));
        }
        let id = std::process::id();
        let subnet = format!("10.77.{}", id % 250 + 1);
        let net = NetNs {
            name: format!("troupe-part-{id}"),
            host_veth: format!("trp{id}h"),
            host_ip: format!("{subnet}.1"),
        };
        let ns_veth = format!("trp{id}n");
        let ns_ip = format!("{subnet}.2");
        // From here on, a failure leaves the cleanup to Drop.
        net.ip(&["netns", "add", &net.name])?;
        net.ip(&[
            "link",
            "add",
            &net.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            &ns_veth,
        ])?;
        net.ip(&["link", "set", &ns_veth, "netns", &net.name])?;
        net.ip(&[
            "addr",
            "add",
            &format!("{}/24", net.host_ip),
            "dev",
            &net.host_veth,
        ])?;
        net.ip(&["link", "set", &net.host_veth, "up"])?;
        net.ip(&[
            "-n",
            &net.name,
            "addr",
            "add",
            &format!("{ns_ip}/24"),
            "dev",
            &ns_veth,
        ])?;
        net.ip(&["-n", &net.name, "link", "set", &ns_veth, "up"])?;
        net.ip(&["-n", &net.name, "link", "set", "lo", "up"])?;
        Ok(net)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let o = std::process::Command::new(IP)
            .args(args)
            .output()
            .map_err(|e| format!("{IP}: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(())
    }

    /// Cuts one direction: a blackhole route in the namespace drops all it sends to the host
    /// end, while what the host end sends still arrives.
    fn cut_outbound(&self) -> Result<(), String> {
        let to = format!("{}/32", self.host_ip);
        self.ip(&["-n", &self.name, "route", "add", "blackhole", &to])
    }

    /// Removes the cut.
    fn heal(&self) -> Result<(), String> {
        let to = format!("{}/32", self.host_ip);
        self.ip(&["-n", &self.name, "route", "del", "blackhole", &to])
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = self.ip(&["link", "del", &self.host_veth]);
        let _ = self.ip(&["netns", "del", &self.name]);
    }
}

/// Whether process `pid` runs (a zombie does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let state = s.rsplit_once(") ")?.1.chars().next()?;
            Some(state != 'Z')
        })
        .unwrap_or(false)
}

/// `node_joined` epochs of `node`, in journal order.
fn join_epochs(evs: &[Value], node: &str) -> Vec<u64> {
    evs.iter()
        .filter(|e| e["type"] == "node_joined" && e["node"] == node)
        .map(|e| e["epoch"].as_u64().unwrap())
        .collect()
}

/// A one-way partition (root only): the worker `far` runs in a network namespace, and a
/// blackhole route there drops everything it sends to the coordinator while the
/// coordinator's packets still reach it. The coordinator loses `far` within about 2× the
/// heartbeat and retries its attempt on `near` (on the host's side); `far` stops the attempt
/// itself while still cut off; once the route is gone `far` joins again under a new epoch and
/// the result of its stopped attempt, if it sends one, is rejected and changes nothing.
#[test]
fn a_one_way_partition_loses_the_worker_and_its_attempt_is_retried_elsewhere() {
    let net = match NetNs::create() {
        Ok(net) => net,
        Err(why) => {
            eprintln!("skipped: cannot make a network namespace with a veth pair: {why}");
            return;
        }
    };
    let root = tempfile::tempdir().unwrap();
    let heartbeat = Duration::from_millis(500);
    let c = Coordinator::start(
        root.path(),
        &net.host_ip,
        "500ms",
        false,
        "",
        &["--insecure"],
    );
    let (far, far_id) =
        WorkerProc::start_with(root.path(), "far", &c, 1, &["--insecure"], Some(&net.name));
    let marks = root.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    let m = marks.display();
    let wf = workflow(
        root.path(),
        "long.toml",
        &format!(
            "name = \"long\"\n[[task]]\nid = \"t0\"\n\
             shell = \"echo $$ > {m}/pid-$TROUPE_ATTEMPT; sleep 5; touch {m}/done-$TROUPE_ATTEMPT\"\n\
             retry = {{ max_attempts = 3, initial_interval = \"10ms\" }}\n"
        ),
    );
    let run = submit(&c.dir, &wf);
    wait_until(&c.dir, &run, 60, |v| v["tasks_running"] == 1);
    let placed = placements(&events(&c.dir));
    assert_eq!(
        placed.get(&far_id),
        Some(&vec![("t0".to_owned(), 1)]),
        "{placed:?}"
    );
    let first_epoch = join_epochs(&events(&c.dir), &far_id);
    assert_eq!(first_epoch.len(), 1);
    // The retry's worker joins only now, so attempt 1 could go nowhere but `far`.
    let (_near, near_id) =
        WorkerProc::start_with(root.path(), "near", &c, 1, &["--insecure"], None);
    let pid_file = marks.join("pid-1");
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid1: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "attempt 1 never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(alive(pid1));

    if let Err(why) = net.cut_outbound() {
        eprintln!("skipped: cannot cut the namespace's traffic: {why}");
        return;
    }
    let cut = Instant::now();
    c.wait_node(&far_id, "lost");
    let lost_after = cut.elapsed();
    // The lease is 2× the heartbeat; its last heartbeat may have left just before the cut.
    // Room for a busy machine on top.
    assert!(
        lost_after < heartbeat * 2 + Duration::from_secs(4),
        "lost only {lost_after:?} after the cut"
    );
    let evs = events(&c.dir);
    let lost: Vec<&Value> = evs.iter().filter(|e| e["type"] == "node_lost").collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0]["node"], far_id.as_str());
    assert_eq!(lost[0]["epoch"], first_epoch[0]);
    // Still cut off, `far` stops attempt 1 on its own.
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive(pid1) {
        assert!(
            Instant::now() < deadline,
            "the partitioned worker did not stop attempt 1 ({:?} after the cut)",
            cut.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stopped_after = cut.elapsed();
    assert!(
        alive_child(&far),
        "the partitioned worker exited: {}",
        far.stderr()
    );

    // Attempt 2 runs on `near` and the run succeeds.
    let v = wait_finished(&c.dir, &run, 60);
    assert_eq!(v["state"], "succeeded", "{v}");
    let evs = events(&c.dir);
    succeeded_once_each(&evs, 1);
    let failed = of(&evs, "attempt_failed", "t0");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["attempt"], 1);
    assert_eq!(failed[0]["failure_kind"], "interrupted", "{failed:?}");
    let placed = placements(&evs);
    assert_eq!(
        placed.get(&near_id),
        Some(&vec![("t0".to_owned(), 2)]),
        "{placed:?}"
    );
    assert_eq!(
        run_status_task(&c.dir, &run, "t0")["node"],
        near_id.as_str()
    );
    assert!(marks.join("done-2").exists());
    assert!(
        !marks.join("done-1").exists(),
        "attempt 1 ran to its end on the partitioned worker"
    );
    let before = run_status(&c.dir, &run);

    // Healed, `far` joins again under a new lease. (The joins it sent into the stalled
    // session while cut off may arrive as a burst, each one a lease of its own: only the
    // first rejoin's epoch is pinned here.)
    net.heal().unwrap();
    let healed = Instant::now();
    c.wait_node(&far_id, "ready");
    let rejoined_after = healed.elapsed();
    let epochs = join_epochs(&events(&c.dir), &far_id);
    assert!(epochs.len() >= 2, "{epochs:?}");
    assert!(
        epochs.windows(2).all(|w| w[0] < w[1]),
        "epochs only grow: {epochs:?}"
    );
    // The stopped attempt's result was spooled and is sent after the welcome: under the old
    // lease, so it is rejected and the run does not change.
    let deadline = Instant::now() + Duration::from_secs(30);
    let evs = loop {
        let evs = events(&c.dir);
        if evs.iter().any(|e| e["type"] == "result_rejected") {
            break evs;
        }
        assert!(
            Instant::now() < deadline,
            "no result_rejected for attempt 1: {evs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let rejected: Vec<&Value> = evs
        .iter()
        .filter(|e| e["type"] == "result_rejected")
        .collect();
    for r in &rejected {
        assert_eq!(r["node"], far_id.as_str(), "{r}");
        assert_eq!(r["task"], "t0", "{r}");
        assert_eq!(r["attempt"], 1, "{r}");
        assert_eq!(r["epoch"], first_epoch[0], "{r}");
    }
    succeeded_once_each(&evs, 1);
    let after = run_status(&c.dir, &run);
    assert_eq!(
        before["tasks"], after["tasks"],
        "a late result changed the run"
    );
    eprintln!(
        "partition: lost after {lost_after:?}, attempt stopped after {stopped_after:?}, \
         ready again {rejoined_after:?} after the heal under epochs {epochs:?}, \
         {} result(s) rejected",
        rejected.len()
    );
}

/// Whether the worker process still runs.
fn alive_child(w: &WorkerProc) -> bool {
    alive(w.child.id() as i32)
}
