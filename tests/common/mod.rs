//! Helpers for tests that drive the real `troupe` binary against a real data dir.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `troupe --data-dir DIR`.
pub fn troupe(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_troupe"));
    // Port 0: parallel tests must not fight over the default HTTP port.
    c.arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .env("TROUPE_HTTP_ADDR", "127.0.0.1:0");
    c
}

/// `GET http://addr/path` over a plain TCP connection: (status code, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the node's HTTP port");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("an HTTP status line");
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

/// The address the node in `dir` serves HTTP on (`DATA_DIR/http.addr`).
pub fn http_addr(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("http.addr"))
        .expect("the node wrote http.addr")
        .trim()
        .to_string()
}

/// Runs `troupe --data-dir DIR ARGS...` and returns its output. A command still running after
/// 120 s is killed and the test fails (a hang must not stall CI).
pub fn run(dir: &Path, args: &[&str]) -> Output {
    let mut child = troupe(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run troupe");
    // Drain the pipes on threads so a chatty command cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).map(|_| v)
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).map(|_| v)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("troupe {args:?} still running after 120 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    }
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes a workflow file into `dir` and returns its path.
pub fn workflow(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A `troupe node start` process; SIGKILLed when dropped.
pub struct NodeProc {
    /// The process.
    pub child: Child,
    /// Its data dir.
    pub dir: PathBuf,
}

impl NodeProc {
    /// Starts a node (test hooks on) and waits until it answers `status`.
    pub fn start(dir: &Path, extra: &[&str]) -> NodeProc {
        let child = troupe(dir)
            .args(["node", "start"])
            .args(extra)
            .env("TROUPE_TEST_HOOKS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let mut node = NodeProc {
            child,
            dir: dir.to_owned(),
        };
        node.wait_ready();
        node
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("node exited early: {status}");
            }
            if run(&self.dir, &["status"]).status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "node did not answer within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::SIGTERM,
        )
        .unwrap();
        let status = self.child.wait().unwrap();
        status.code()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `status RUN --json`.
pub fn run_status(dir: &Path, run: &str) -> Value {
    let o = run_cmd_ok(dir, &["status", run, "--json"]);
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// Runs a command and asserts exit 0.
pub fn run_cmd_ok(dir: &Path, args: &[&str]) -> Output {
    let o = run(dir, args);
    assert!(
        o.status.success(),
        "troupe {args:?} failed ({:?}): {}{}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    o
}

/// Submits with `run --detach` and returns the run id.
pub fn submit(dir: &Path, file: &Path) -> String {
    let o = run_cmd_ok(dir, &["run", "--detach", file.to_str().unwrap()]);
    stdout(&o).trim().to_owned()
}

/// Polls `status RUN --json` until `pred` holds (at most `secs` seconds).
pub fn wait_until(dir: &Path, run: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = run_status(dir, run);
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not reached; last status {v}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Polls until the run is finished.
pub fn wait_finished(dir: &Path, run: &str, secs: u64) -> Value {
    wait_until(dir, run, secs, |v| {
        !matches!(v["state"].as_str(), Some("running") | Some("compensating"))
    })
}

/// The state of task `id` in a `status --json` value.
pub fn task_state<'a>(v: &'a Value, id: &str) -> &'a str {
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no task {id}"))["state"]
        .as_str()
        .unwrap()
}

/// Every event as JSON (through the node if one runs, else offline).
pub fn events(dir: &Path) -> Vec<Value> {
    let o = run_cmd_ok(dir, &["events", "--json"]);
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Events of `type` for task `task`.
pub fn of<'a>(events: &'a [Value], ty: &str, task: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == ty && e["task"] == task)
        .collect()
}

/// Asks the node's test hook to make `actor` panic (the node must run with
/// `TROUPE_TEST_HOOKS=1`, as [`NodeProc`] does). A scheduler panics before answering, so its
/// answer is an error.
pub fn inject_panic(dir: &std::path::Path, actor: &str) -> troupe::messages::control::Response {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = troupe::client::Client::connect(dir).await.unwrap();
        match c
            .request(&troupe::messages::control::Request::InjectPanic(
                actor.into(),
            ))
            .await
        {
            Ok(r) => r,
            // The scheduler panics before answering: the connection's answer is lost.
            Err(e) => troupe::messages::control::Response::Error(
                troupe::messages::control::ControlError::Internal(e.to_string()),
            ),
        }
    })
}

/// The lines `reader` produces (a child's piped stdout or stderr), as they come, read on a
/// thread so that a test can wait for one with `recv_timeout`.
pub fn lines_of(reader: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The `troupe` binary at `dir/troupe` (a hard link, else a copy), for running it as another
/// user: the target dir may sit under a 0700 home that user cannot enter.
pub fn binary_in(dir: &Path) -> PathBuf {
    let bin = dir.join("troupe");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_troupe"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_troupe"), &bin).unwrap();
    }
    bin
}

/// `PATH` with the `troupe` binary's folder first: a node started with it runs attempts that
/// can call `troupe spawn` / `troupe wait` (attempts inherit the node's environment).
pub fn path_with_troupe() -> std::ffi::OsString {
    let bin = Path::new(env!("CARGO_BIN_EXE_troupe")).parent().unwrap();
    let mut dirs = vec![bin.to_path_buf()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap()
}

impl NodeProc {
    /// Like [`NodeProc::start`], with [`path_with_troupe`] as the node's `PATH`, so tasks can
    /// spawn child runs.
    pub fn start_agents(dir: &Path, extra: &[&str]) -> NodeProc {
        let child = troupe(dir)
            .args(["node", "start"])
            .args(extra)
            .env("TROUPE_TEST_HOOKS", "1")
            .env("PATH", path_with_troupe())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let mut node = NodeProc {
            child,
            dir: dir.to_owned(),
        };
        node.wait_ready();
        node
    }
}

impl NodeProc {
    /// Stops the node so that it ends its attempts' processes (for a test's teardown: one
    /// that failed half-way must not leave blocked tasks running): SIGTERM, then a second
    /// one, which kills the running attempts' process groups at once; waits up to 10 s.
    pub fn stop_attempts(&mut self) {
        use nix::sys::signal::{kill, SIGTERM};
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut sent = 0;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            if sent < 2 {
                let _ = kill(pid, SIGTERM);
                sent += 1;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Whether process `pid` runs (a zombie runs nothing).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Polls until process `pid` is gone (30 s at most).
pub fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `troupe list --json` of the node in `dir`.
pub fn list_json(dir: &Path) -> Vec<Value> {
    let o = run_cmd_ok(dir, &["list", "--json"]);
    serde_json::from_str::<Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The nodes of `troupe tree RUN --json`.
pub fn tree_nodes(dir: &Path, run: &str) -> Vec<Value> {
    let o = run_cmd_ok(dir, &["tree", run, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["nodes"].as_array().unwrap().clone()
}

/// Creates the file it names when dropped: a test whose task waits for that file never
/// leaves the task behind when an assertion fails (the orphan would hold the test's
/// descriptors after the node is killed).
pub struct GoOnDrop(pub PathBuf);

impl Drop for GoOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}
pub mod http;
