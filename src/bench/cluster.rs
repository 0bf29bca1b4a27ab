//! `troupe bench cluster`: remote worker nodes on loopback against a plain local node,
//! measured in the same process, alternating rounds of both sides; every round is kept.
//!
//! The coordinator runs in this process (a [`Node`] whose config has `[cluster]` with
//! `run_local = false`, so every attempt goes to a worker node); its worker nodes are child
//! processes of the `troupe` binary running `worker start --join`, each with its own data
//! dir under the scratch dir. Both sides journal with the same durability and are driven the
//! same way: [`NodeHandle::submit`] + [`NodeHandle::wait_for_run`].
//!
//! | case | figure | baseline (same run) | target |
//! |---|---|---|---|
//! | throughput | tasks/s of one run of N independent `/bin/true` tasks on 2 worker nodes of S slots each | the same run on a local node with 2·S workers | ≥ 0.7× |
//! | latency | p50 of submit → done of a one-task `/bin/true` run on one worker node (S slots) | the same on a local node (S workers) | ≤ 3× |
//! | lost worker | `sleep 30` (`max_attempts = 2`, retried after 10 ms) runs on worker A; A gets `SIGKILL` 2–3 heartbeat periods later (a random point of the period); ms from the kill to the journal time of attempt 2's `attempt_placed` on worker B | the bound 2 × heartbeat + 500 ms | ≤ the bound |
//!
//! The lost-worker figure also gives the kill → `node_lost` time (journal time) and the
//! time until this process saw attempt 2's placement (durable, through an in-process event
//! subscription). A node is lost once silent for 2 × heartbeat (the lease, checked every
//! 250 ms), and its last heartbeat may precede the kill by up to one heartbeat period: the
//! figure lies between about one and two heartbeats plus the check's period.
//!
//! Each round has its own data dirs, kept until the end: deleting a round's thousands of
//! files would slow the next round's file creations (ext4 skips recently freed inodes).
//! Every worker process is killed when its guard drops (errors included), the attempts a
//! killed worker left running are ended from their pid files, and the scratch dir is
//! removed afterwards.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as OsCommand, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::tasks::flat_workflow;
use super::{fresh, node_err, BenchError};
use crate::config::ClusterConfig;
use crate::messages::control::{Request, Response, Subscription};
use crate::model::{Event, EventRecord, RunId, RunState, Timestamp, Workflow};
use crate::node::{LocalSubscription, Node, NodeConfig, NodeHandle};
use crate::storage::Durability;

/// Settings of `bench cluster`.
#[derive(Debug, Clone)]
pub struct ClusterBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// The `troupe` binary the worker nodes run (`worker start`).
    pub binary: PathBuf,
    /// `/bin/true` tasks in each throughput run.
    pub tasks: usize,
    /// Slots of each worker node (the local baseline gets twice as many workers).
    pub slots: u32,
    /// Submit → done samples per side and round.
    pub samples: usize,
    /// Rounds of each case (throughput and latency alternate the sides).
    pub rounds: usize,
    /// The coordinator's `[cluster] heartbeat` (the lease is twice this).
    pub heartbeat: Duration,
    /// Journal durability of both sides.
    pub durability: Durability,
}

impl ClusterBenchOptions {
    /// Defaults: 2,000 tasks, 4 slots per worker node, 50 latency samples, 3 rounds,
    /// heartbeat 500 ms, `sync`.
    pub fn new(dir: PathBuf, binary: PathBuf) -> Self {
        ClusterBenchOptions {
            dir,
            binary,
            tasks: 2_000,
            slots: 4,
            samples: 50,
            rounds: 3,
            heartbeat: Duration::from_millis(500),
            durability: Durability::Sync,
        }
    }
}

/// One lost-worker round, ms from the `SIGKILL`.
#[derive(Debug, Clone, Serialize)]
pub struct LostRound {
    /// To the journal time of `node_lost`.
    pub node_lost_ms: i64,
    /// To the journal time of attempt 2's `attempt_placed` on the other worker (the figure).
    pub retry_placed_ms: i64,
    /// To this process seeing that placement (durable, through an event subscription).
    pub retry_seen_ms: f64,
}

/// What `bench cluster` measured; every round of both sides is kept.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterBenchReport {
    /// Tasks per throughput run.
    pub tasks: usize,
    /// Slots per worker node.
    pub slots: u32,
    /// Submit → done samples per side and round.
    pub samples: usize,
    /// The coordinator's heartbeat, ms.
    pub heartbeat_ms: u64,
    /// Each round: (2 worker nodes tasks/s, local node tasks/s).
    pub throughput_rounds: Vec<(f64, f64)>,
    /// Median of the rounds' remote / local.
    pub throughput_ratio: f64,
    /// Each round: (one worker node p50 µs, local node p50 µs).
    pub latency_rounds: Vec<(u64, u64)>,
    /// Median of the rounds' remote / local.
    pub latency_ratio: f64,
    /// Each lost-worker round.
    pub lost_rounds: Vec<LostRound>,
    /// Median kill → retry placed, ms.
    pub lost_ms: i64,
    /// The bound it is held to: 2 × heartbeat + 500 ms.
    pub lost_bound_ms: u64,
}

/// Writes `text` to a new file of mode 0600 (what the coordinator and `worker start`
/// demand of the cookie and token files).
fn secret(path: &Path, text: &str) -> Result<(), BenchError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// A free loopback port (the listener is dropped before the coordinator binds it).
fn free_port() -> Result<SocketAddr, BenchError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// A `troupe worker start` process; `SIGKILL`ed and reaped when dropped.
struct WorkerProc {
    child: Child,
    /// Its data dir (node id, attempt logs and pid files, `worker.log`).
    dir: PathBuf,
    /// Its node id, once it has written it.
    id: String,
}

impl WorkerProc {
    fn spawn(
        opts: &ClusterBenchOptions,
        dir: PathBuf,
        join: SocketAddr,
        secrets: &Secrets,
        slots: u32,
    ) -> Result<WorkerProc, BenchError> {
        std::fs::create_dir_all(&dir)?;
        secret(&dir.join("cookie"), &secrets.cookie)?;
        secret(&dir.join("token"), &secrets.token)?;
        let log = std::fs::File::create(dir.join("worker.log"))?;
        let child = OsCommand::new(&opts.binary)
            .arg("--data-dir")
            .arg(&dir)
            .args(["worker", "start", "--join", &join.to_string()])
            .arg("--cookie-file")
            .arg(dir.join("cookie"))
            .arg("--token-file")
            .arg(dir.join("token"))
            .args(["--slots", &slots.to_string(), "--join-timeout", "30s"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| node_err(format!("{}: {e}", opts.binary.display())))?;
        Ok(WorkerProc {
            child,
            dir,
            id: String::new(),
        })
    }

    /// The worker's log, for an error message.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("worker.log")).unwrap_or_default()
    }

    /// Waits (at most 60 s) until the coordinator lists this worker `ready`.
    async fn wait_ready(&mut self, node: &NodeHandle) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(node_err(format!(
                    "worker {} exited ({status}) before it joined: {}",
                    self.dir.display(),
                    self.log().trim()
                )));
            }
            if self.id.is_empty() {
                if let Ok(id) = std::fs::read_to_string(self.dir.join("node-id")) {
                    self.id = id.trim().to_owned();
                }
            }
            if !self.id.is_empty() {
                let Response::Nodes(nodes) =
                    node.request(Request::Nodes).await.map_err(node_err)?
                else {
                    return Err(node_err("`nodes` answered something else"));
                };
                if nodes.iter().any(|n| n.id == self.id && n.state == "ready") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(node_err(format!(
                    "worker {} did not join within 60 s: {}",
                    self.dir.display(),
                    self.log().trim()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `SIGTERM` (the worker stops its attempts, reports them and leaves); `SIGKILL` if it
    /// has not exited within `wait`.
    async fn terminate(mut self, wait: Duration) -> Result<(), BenchError> {
        if self.child.try_wait()?.is_some() {
            // Reaped already: its pid may belong to another process by now.
            return Ok(());
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + wait;
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                return Err(node_err(format!(
                    "worker {} did not stop within {} s of SIGTERM",
                    self.dir.display(),
                    wait.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The cluster's cookie and the workers' join token (random per cluster).
struct Secrets {
    cookie: String,
    token: String,
}

/// A coordinator in this process and its worker processes.
struct Cluster {
    node: NodeHandle,
    workers: Vec<WorkerProc>,
}

impl Cluster {
    /// A coordinator on `dir/coordinator` and `workers` worker nodes of `slots` each
    /// (`dir/w0`, `dir/w1`, ...), returned once every worker is `ready`.
    async fn start(
        opts: &ClusterBenchOptions,
        dir: &Path,
        workers: usize,
        slots: u32,
    ) -> Result<Cluster, BenchError> {
        let secrets = Secrets {
            cookie: format!("bench-{:032x}", rand::random::<u128>()),
            token: format!("bench-{:032x}", rand::random::<u128>()),
        };
        let cdir = dir.join("coordinator");
        std::fs::create_dir_all(&cdir)?;
        secret(&cdir.join("cookie"), &secrets.cookie)?;
        secret(&cdir.join("tokens"), &format!("{}\n", secrets.token))?;
        let listen = free_port()?;
        let mut config = NodeConfig::new(&cdir);
        config.workers = 1;
        config.durability = opts.durability;
        config.control_socket = false;
        // What a worker waits between SIGTERM and SIGKILL when it stops an attempt.
        config.grace = Duration::from_secs(1);
        config.cluster = Some(ClusterConfig {
            listen,
            cookie_file: cdir.join("cookie"),
            join_tokens_file: cdir.join("tokens"),
            heartbeat: opts.heartbeat,
            run_local: false,
            tls: None,
            insecure: false,
        });
        let node = Node::with_config(config).start().await.map_err(node_err)?;
        let mut cluster = Cluster {
            node,
            workers: Vec::with_capacity(workers),
        };
        let ready = async {
            for i in 0..workers {
                let w_dir = dir.join(format!("w{i}"));
                let w = WorkerProc::spawn(opts, w_dir, listen, &secrets, slots)?;
                cluster.workers.push(w);
            }
            for w in &mut cluster.workers {
                w.wait_ready(&cluster.node).await?;
            }
            Ok::<_, BenchError>(())
        }
        .await;
        match ready {
            Ok(()) => Ok(cluster),
            Err(e) => {
                let _ = cluster.stop().await;
                Err(e)
            }
        }
    }

    /// Stops the workers (`SIGTERM`, then `SIGKILL`), then the coordinator.
    async fn stop(mut self) -> Result<(), BenchError> {
        let mut result = Ok(());
        for w in self.workers.drain(..) {
            if let Err(e) = w.terminate(Duration::from_secs(5)).await {
                result = Err(e);
            }
        }
        self.node.shutdown().await.map_err(node_err)?;
        result
    }
}

/// Submits `wf` and waits for its end; refuses a run that did not succeed (its figure
/// would time failures).
async fn run_ok(node: &NodeHandle, wf: Workflow) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let run = node.submit(wf).await.map_err(node_err)?;
    let state = node.wait_for_run(run).await.map_err(node_err)?;
    if state != RunState::Succeeded {
        return Err(node_err(format!("run {run} ended {state}")));
    }
    Ok(start.elapsed())
}

/// A local node with `workers` workers on `dir`.
async fn local_node(
    opts: &ClusterBenchOptions,
    dir: &Path,
    workers: u32,
) -> Result<NodeHandle, BenchError> {
    Node::builder(dir)
        .workers(workers)
        .durability(opts.durability)
        .control_socket(false)
        .start()
        .await
        .map_err(node_err)
}

/// Tasks/s of one run of `opts.tasks` `/bin/true` tasks on 2 worker nodes.
async fn throughput_remote(opts: &ClusterBenchOptions, round: usize) -> Result<f64, BenchError> {
    let dir = fresh(&opts.dir, &format!("throughput-remote-{round}"))?;
    let cluster = Cluster::start(opts, &dir, 2, opts.slots).await?;
    let wf = flat_workflow("bench-cluster", opts.tasks, &["/bin/true"])?;
    let took = run_ok(&cluster.node, wf).await;
    cluster.stop().await?;
    Ok(opts.tasks as f64 / took?.as_secs_f64())
}

/// The same on a local node with 2·S workers.
async fn throughput_local(opts: &ClusterBenchOptions, round: usize) -> Result<f64, BenchError> {
    let dir = fresh(&opts.dir, &format!("throughput-local-{round}"))?;
    let node = local_node(opts, &dir, 2 * opts.slots).await?;
    let wf = flat_workflow("bench-cluster", opts.tasks, &["/bin/true"])?;
    let took = run_ok(&node, wf).await;
    node.shutdown().await.map_err(node_err)?;
    Ok(opts.tasks as f64 / took?.as_secs_f64())
}

/// p50 (µs) of `opts.samples` one-task `/bin/true` runs, one after another.
async fn submit_to_done(opts: &ClusterBenchOptions, node: &NodeHandle) -> Result<u64, BenchError> {
    let mut samples = Vec::with_capacity(opts.samples);
    for i in 0..opts.samples {
        let wf = flat_workflow(&format!("bench-latency-{i}"), 1, &["/bin/true"])?;
        samples.push(run_ok(node, wf).await?.as_micros() as u64);
    }
    Ok(median(samples))
}

async fn latency_remote(opts: &ClusterBenchOptions, round: usize) -> Result<u64, BenchError> {
    let dir = fresh(&opts.dir, &format!("latency-remote-{round}"))?;
    let cluster = Cluster::start(opts, &dir, 1, opts.slots).await?;
    let p50 = submit_to_done(opts, &cluster.node).await;
    cluster.stop().await?;
    p50
}

async fn latency_local(opts: &ClusterBenchOptions, round: usize) -> Result<u64, BenchError> {
    let dir = fresh(&opts.dir, &format!("latency-local-{round}"))?;
    let node = local_node(opts, &dir, opts.slots).await?;
    let p50 = submit_to_done(opts, &node).await;
    node.shutdown().await.map_err(node_err)?;
    p50
}

/// The lost-worker case's workflow: one `sleep 30`, two attempts, retried after 10 ms.
fn sleeper() -> Result<Workflow, BenchError> {
    Ok(crate::model::parse::parse_workflow(
        "name = \"bench-lost-worker\"\n\
         [[task]]\n\
         id = \"sleeper\"\n\
         command = [\"sleep\", \"30\"]\n\
         retry = { max_attempts = 2, initial_interval = \"10ms\" }\n",
    )?)
}

/// Journal events in order, from an in-process subscription.
struct EventStream {
    sub: LocalSubscription,
    pending: std::collections::VecDeque<EventRecord>,
}

impl EventStream {
    /// The next event matching `pred`, and when this process received it; an error after
    /// `deadline`.
    async fn find(
        &mut self,
        deadline: Instant,
        what: &str,
        mut pred: impl FnMut(&Event) -> bool,
    ) -> Result<(EventRecord, Instant), BenchError> {
        loop {
            while let Some(r) = self.pending.pop_front() {
                if pred(&r.event) {
                    return Ok((r, Instant::now()));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = tokio::time::timeout(left, self.sub.next())
                .await
                .map_err(|_| node_err(format!("no {what} within the time allowed")))?
                .map_err(node_err)?;
            match frame {
                Some(Response::Events(v)) => self.pending.extend(v.into_iter().map(|(_, r)| r)),
                Some(other) => return Err(node_err(format!("event stream: {other:?}"))),
                None => return Err(node_err("the event stream ended")),
            }
        }
    }
}

/// Ms from `t` to `time` (negative if `time` is earlier).
fn ms_since(t: SystemTime, time: Timestamp) -> i64 {
    time.0 as i64 - Timestamp::from_system_time(t).0 as i64
}

/// One lost-worker round (see the module docs).
async fn lost_round(opts: &ClusterBenchOptions, round: usize) -> Result<LostRound, BenchError> {
    let dir = fresh(&opts.dir, &format!("lost-{round}"))?;
    let mut cluster = Cluster::start(opts, &dir, 2, 1).await?;
    let measured = async {
        let mut events = EventStream {
            sub: cluster.node.subscribe(Subscription::Events {
                run: None,
                after: 0,
            }),
            pending: Default::default(),
        };
        let run: RunId = cluster.node.submit(sleeper()?).await.map_err(node_err)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        let (placed, _) = events
            .find(
                deadline,
                "placement of attempt 1",
                |e| matches!(e, Event::AttemptPlaced { run: r, attempt: 1, .. } if *r == run),
            )
            .await?;
        let Event::AttemptPlaced { node: victim, .. } = placed.event else {
            return Err(node_err("the event stream matched another event"));
        };
        let a = cluster
            .workers
            .iter()
            .position(|w| w.id == victim)
            .ok_or_else(|| node_err(format!("attempt 1 went to an unknown node {victim}")))?;
        // `sleep` runs there once its pid file is written.
        while !has_pid_file(&cluster.workers[a].dir) {
            if Instant::now() > deadline {
                return Err(node_err(format!("attempt 1 did not start on {victim}")));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Kill in the steady state (heartbeats flowing, not right after the join), at a
        // random point of the heartbeat period, so the rounds see different phases.
        let settle = 2 * opts.heartbeat + opts.heartbeat.mul_f64(rand::random::<f64>());
        tokio::time::sleep(settle).await;
        let killed_at = SystemTime::now();
        let killed = Instant::now();
        cluster.workers[a].child.kill()?;
        let deadline = Instant::now() + 2 * opts.heartbeat + Duration::from_secs(30);
        let (lost, _) = events
            .find(
                deadline,
                "node_lost",
                |e| matches!(e, Event::NodeLost { node, .. } if *node == victim),
            )
            .await?;
        let (retry, seen) = events
            .find(
                deadline,
                "placement of attempt 2",
                |e| matches!(e, Event::AttemptPlaced { run: r, attempt: 2, .. } if *r == run),
            )
            .await?;
        if let Event::AttemptPlaced { node, .. } = &retry.event {
            if *node == victim {
                return Err(node_err("attempt 2 was placed on the killed worker"));
            }
        }
        Ok::<_, BenchError>(LostRound {
            node_lost_ms: ms_since(killed_at, lost.time),
            retry_placed_ms: ms_since(killed_at, retry.time),
            retry_seen_ms: (seen - killed).as_secs_f64() * 1e3,
        })
    }
    .await;
    // The killed worker's `sleep` outlives it: end it from its pid file.
    for w in &mut cluster.workers {
        if w.child.try_wait()?.is_some() {
            crate::process::terminate_orphans_under(&w.dir, Duration::ZERO).await;
        }
    }
    cluster.stop().await?;
    measured
}

/// Whether an attempt pid file (`*.pid`) exists anywhere under `dir`.
fn has_pid_file(dir: &Path) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "pid") {
                return true;
            }
        }
    }
    false
}

fn median<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).expect("comparable"));
    v[v.len() / 2]
}

async fn measure(opts: &ClusterBenchOptions) -> Result<ClusterBenchReport, BenchError> {
    let mut throughput_rounds = Vec::with_capacity(opts.rounds);
    let mut latency_rounds = Vec::with_capacity(opts.rounds);
    for round in 0..opts.rounds {
        // Alternate which side goes first, so drift (page cache, other load) hits both alike.
        if round % 2 == 0 {
            let remote = throughput_remote(opts, round).await?;
            throughput_rounds.push((remote, throughput_local(opts, round).await?));
            let remote = latency_remote(opts, round).await?;
            latency_rounds.push((remote, latency_local(opts, round).await?));
        } else {
            let local = throughput_local(opts, round).await?;
            throughput_rounds.push((throughput_remote(opts, round).await?, local));
            let local = latency_local(opts, round).await?;
            latency_rounds.push((latency_remote(opts, round).await?, local));
        }
    }
    let mut lost_rounds = Vec::with_capacity(opts.rounds);
    for round in 0..opts.rounds {
        lost_rounds.push(lost_round(opts, round).await?);
    }
    Ok(ClusterBenchReport {
        tasks: opts.tasks,
        slots: opts.slots,
        samples: opts.samples,
        heartbeat_ms: opts.heartbeat.as_millis() as u64,
        throughput_ratio: median(throughput_rounds.iter().map(|(r, l)| r / l).collect()),
        latency_ratio: median(
            latency_rounds
                .iter()
                .map(|(r, l)| *r as f64 / (*l).max(1) as f64)
                .collect(),
        ),
        lost_ms: median(lost_rounds.iter().map(|r| r.retry_placed_ms).collect()),
        lost_bound_ms: lost_bound(opts.heartbeat).as_millis() as u64,
        throughput_rounds,
        latency_rounds,
        lost_rounds,
    })
}

/// How long detecting a lost worker and placing its attempt elsewhere may take:
/// 2 × heartbeat + 500 ms.
pub fn lost_bound(heartbeat: Duration) -> Duration {
    2 * heartbeat + Duration::from_millis(500)
}

/// Runs every case (see the module docs); ends what the worker processes left running and
/// removes `opts.dir` afterwards, also on error.
pub async fn cluster(opts: &ClusterBenchOptions) -> Result<ClusterBenchReport, BenchError> {
    std::fs::create_dir_all(&opts.dir)?;
    let result = measure(opts).await;
    crate::process::terminate_orphans_under(&opts.dir, Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&opts.dir);
    result
}
