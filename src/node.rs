//! The node: opens the data dir, spawns the supervision tree, returns a handle.
//!
//! ```text
//! node (root supervisor, rest_for_one)
//! ├── journal      group-commit writer (its own OS thread)
//! ├── scheduler    state, ready queue, retries, timers, halt, saga coordinator
//! ├── workers      supervisor (one_for_one) of `workers` worker actors
//! ├── approvals    approval gate: pending requests, expiry
//! ├── metrics      health watch (health_changed webhooks), retention of rollups and logs
//! └── control      Unix socket server (DATA_DIR/troupe.sock), optional
//! ```
//! Beside the tree: the HTTP endpoints (`/metrics`, `/healthz`, `/readyz` on `http_addr`,
//! bound before anything starts) and the webhook sender. rest_for_one: if the journal
//! restarts, everything after it restarts and rebuilds from the journal; if the scheduler
//! restarts, workers (whose attempts belong to the old scheduler), the approval gate and
//! control restart with it. The gate comes after the workers so that its own restart stops
//! no attempt.
//!
//! Nothing is registered under a global name, so several nodes (on different data dirs) can
//! live in one process, and [`Node::spawn_linked`] puts the whole tree under a host's own
//! supervisor.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef, SpawnErr};
use tokio::task::JoinHandle;

use std::net::SocketAddr;

use crate::actors::approval::{ApprovalGate, ApprovalRule, DEFAULT_APPROVAL_TIMEOUT};
use crate::actors::control::Control;
use crate::actors::journal::JournalRef;
use crate::actors::metrics::{HealthThresholds, Metrics, MetricsActor};
use crate::actors::scheduler::Scheduler;
use crate::actors::supervisor::{
    ChildSpec, Restart, Strategy, Supervisor, SupervisorMsg, SupervisorSpec,
};
use crate::actors::worker::Worker;
use crate::executor::{Executor, ProcessExecutor};
use crate::layout::DataDir;
use crate::messages::approval::ApprovalMsg;
use crate::messages::control::{Command, ControlError, Request, Response, Subscription};
use crate::messages::scheduler::SchedulerMsg;
use crate::model::{RunId, RunState, Workflow};
use crate::read::{ReadModel, ViewContext, WriteFacts};
use crate::storage::feed::Feed;
use crate::storage::{Durability, Journal, JournalError, JournalOptions};
use crate::webhooks::{Notice, WebhookConfig, Webhooks};

/// Longest path a Unix socket address can hold on Linux (`sun_path` is 108 bytes including
/// the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// Most worker actors a node runs (so most attempts at once): 10,000. Each worker is an
/// actor (a few KiB) and each attempt a process group with open log files, so a count far
/// above this is a typing error that would exhaust memory or descriptors before serving.
pub const MAX_WORKERS: u32 = 10_000;

/// Node settings. Defaults are documented per field.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The data dir: `journal/`, `logs/`, `troupe.sock`, `STOP`.
    pub data_dir: PathBuf,
    /// Worker actors, i.e. attempts that may run at once on this node (default 16; each
    /// workflow's `max_concurrency` and pools cap further).
    pub workers: u32,
    /// Journal durability (default `sync`: every acknowledged event is fsynced).
    pub durability: Durability,
    /// Bytes of output kept per attempt log (default 16 MiB); the rest is counted and
    /// dropped, and the log ends with a truncation line.
    pub log_cap: u64,
    /// Between SIGTERM and SIGKILL when an attempt is stopped, and how long a node shutdown
    /// lets running attempts finish (default 10 s, like `docker stop`).
    pub grace: Duration,
    /// Serve the control socket (default true).
    pub control_socket: bool,
    /// Accept runs submitted over the control socket (default true). `troupe run`'s embedded
    /// node turns it off: it stops when its own run ends, so it must not accept runs it would
    /// abandon. Other requests (status, approve, cancel, ...) are served either way.
    pub socket_submissions: bool,
    /// Honour [`Request::InjectPanic`] (tests only; default false, or `TROUPE_TEST_HOOKS=1`).
    pub test_hooks: bool,
    /// The scheduler stores a snapshot of its state after this many events (default
    /// 1,000,000; 0 = never), so a boot replays at most about that many events after the
    /// latest snapshot. Old events stay in the journal (retention is explicit).
    pub snapshot_every: u64,
    /// Root supervisor restart intensity (default 3 restarts ...).
    pub intensity: u32,
    /// ... within this period (default 10 s). More lenient than OTP's 1 in 5 s: a restart
    /// here costs a replay and nothing is lost, while giving up stops the whole node.
    pub period: Duration,
    /// Expiry of approval requests whose task (and matching rule) sets no `approval_timeout`
    /// (default 30 days; see [`crate::actors::approval`]).
    pub approval_timeout: Duration,
    /// Node approval rules: matching tasks require approval whatever their workflow says
    /// (default none).
    pub approval_rules: Vec<ApprovalRule>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (default none for an embedded
    /// node; `troupe node start` defaults to [`DEFAULT_HTTP_ADDR`]). Port 0 picks a free
    /// port, written to `DATA_DIR/http.addr`.
    pub http_addr: Option<SocketAddr>,
    /// Health check thresholds.
    pub health: HealthThresholds,
    /// How long rollups and attempt logs are kept.
    pub retention: Retention,
    /// Where notices are POSTed (default none).
    pub webhooks: Vec<WebhookConfig>,
    /// Collect metrics: Prometheus counters, gauges and histograms, and the journal's
    /// rollups (default true; `troupe bench metrics` turns it off to measure its cost).
    pub metrics: bool,
    /// Node-wide pool capacities: running attempts of tasks in pool `name` across all runs
    /// (default none; a workflow's own `[pools]` cap its run on top of this).
    pub pools: std::collections::BTreeMap<String, u32>,
}

impl NodeConfig {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            data_dir: data_dir.into(),
            workers: 16,
            durability: Durability::Sync,
            log_cap: 16 << 20,
            grace: Duration::from_secs(10),
            control_socket: true,
            socket_submissions: true,
            test_hooks: std::env::var("TROUPE_TEST_HOOKS").is_ok_and(|v| v == "1"),
            snapshot_every: 1_000_000,
            intensity: 3,
            period: Duration::from_secs(10),
            approval_timeout: DEFAULT_APPROVAL_TIMEOUT,
            approval_rules: Vec::new(),
            http_addr: None,
            metrics: true,
            health: HealthThresholds::default(),
            retention: Retention::default(),
            webhooks: Vec::new(),
            pools: std::collections::BTreeMap::new(),
        }
    }

    /// `DATA_DIR/troupe.sock`.
    pub fn socket_path(&self) -> PathBuf {
        self.layout().socket()
    }

    /// The paths of everything in the data dir.
    pub fn layout(&self) -> DataDir {
        DataDir::new(&self.data_dir)
    }
}

/// Where `troupe node start` serves HTTP unless told otherwise: loopback only, port 9479.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9479";

/// How long derived data is kept (`[retention]` in `troupe.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Rollup buckets older than this are deleted (default 90 days; `metrics --since`
    /// cannot look further back).
    pub metrics: Duration,
    /// Attempt logs of runs finished longer ago than this are deleted (default: kept).
    pub logs: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            metrics: Duration::from_secs(90 * 86_400),
            logs: None,
        }
    }
}

/// `DATA_DIR/http.addr`: the address the node's HTTP endpoints listen on (while it runs).
pub fn http_addr_file(data_dir: &Path) -> PathBuf {
    DataDir::new(data_dir).http_addr_file()
}

/// `DATA_DIR/troupe.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    DataDir::new(data_dir).socket()
}

/// Why a node could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The data dir cannot be used (create it, fix permissions, or choose another).
    #[error("data dir {path}: {message}")]
    DataDir {
        /// The data dir.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The HTTP address cannot be bound (in use, not local, no permission): nothing was
    /// started.
    #[error("http_addr {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
    /// The journal could not be opened (another node holds it, or it is damaged).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The actor tree failed to start.
    #[error("node failed to start: {0}")]
    Spawn(String),
    /// The node stopped or did not answer.
    #[error("node unavailable: {0}")]
    Unavailable(String),
    /// The node answered with an error.
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// What every actor of one node shares: settings and the current refs of its siblings
/// (which change when a supervisor restarts one).
pub struct NodeShared {
    /// Settings.
    pub config: NodeConfig,
    /// The journal (reads; the journal actor holds the writer).
    pub journal: Journal,
    /// Runs attempts.
    pub executor: Arc<dyn Executor>,
    /// The current journal actor.
    journal_ref: Mutex<Option<JournalRef>>,
    /// The current scheduler.
    scheduler: Mutex<Option<ActorRef<SchedulerMsg>>>,
    /// The current approval gate.
    approvals: Mutex<Option<ActorRef<ApprovalMsg>>>,
    /// Notified by a `Stop` control request; see [`NodeHandle::stop_requested`].
    pub stop_requested: tokio::sync::Notify,
    /// Every run that reaches a finished state, once that is durable (for waiters; lagging
    /// receivers re-query).
    pub finished_runs: tokio::sync::broadcast::Sender<(RunId, RunState)>,
    /// The node's Prometheus registry.
    pub metrics: Arc<Metrics>,
    /// The webhook sender (a no-op without webhooks).
    pub webhooks: Webhooks,
    /// Every committed batch of events (the journal actor publishes, readers listen).
    pub feed: Feed,
    /// What only the scheduler knows, published for the read side.
    pub facts: Arc<WriteFacts>,
    /// The read model: answers every read request.
    pub read: Arc<ReadModel>,
}

impl NodeShared {
    /// The current journal actor.
    pub fn journal_ref(&self) -> Option<JournalRef> {
        self.journal_ref.lock().expect("not poisoned").clone()
    }

    /// The current scheduler.
    pub fn scheduler(&self) -> Option<ActorRef<SchedulerMsg>> {
        self.scheduler.lock().expect("not poisoned").clone()
    }

    /// Makes a shutdown in progress stop now: every running attempt's process group gets
    /// SIGKILL instead of waiting out the grace period; their ends are not journaled (the next
    /// boot closes them as interrupted and retries them). For a second Ctrl-C.
    pub fn kill_running(&self) {
        if let Some(s) = self.scheduler() {
            let _ = s.cast(SchedulerMsg::KillRunning);
        }
    }

    /// The current approval gate.
    pub fn approvals(&self) -> Option<ActorRef<ApprovalMsg>> {
        self.approvals.lock().expect("not poisoned").clone()
    }

    /// `DATA_DIR/STOP`: while it exists the node dispatches nothing.
    pub fn stop_file(&self) -> PathBuf {
        self.config.layout().stop_file()
    }

    /// Sends `request` to the scheduler (or answers it from the journal) and waits.
    pub async fn request(self: &Arc<Self>, mut request: Request) -> Result<Response, NodeError> {
        match request {
            Request::Health => {
                // Boxed: the health checks send requests of their own.
                let report = Box::pin(crate::actors::metrics::evaluate_health(self)).await;
                return Ok(Response::Health(Box::new(report)));
            }
            _ => {}
        }
        if let Some(response) = crate::read::query::answer(&self.read, &request).await {
            return Ok(match response {
                Response::Dashboard(mut view) => {
                    view.error_rate = self.error_rate(view.queue.now).await.unwrap_or(0.0);
                    Response::Dashboard(view)
                }
                other => other,
            });
        }
        if let Request::Command(
            Command::Approve { approver, .. } | Command::Reject { approver, .. },
        ) = &mut request
        {
            if approver.os_user.is_empty() {
                approver.os_user = os_user(nix::unistd::geteuid());
            }
        }
        let scheduler = self
            .scheduler()
            .ok_or_else(|| NodeError::Unavailable("no scheduler".into()))?;
        let response = match scheduler
            .call(|reply| SchedulerMsg::Request { request, reply }, None)
            .await
        {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            Ok(_) => {
                return Err(NodeError::Unavailable(
                    "the scheduler stopped before answering".into(),
                ))
            }
            Err(e) => return Err(NodeError::Unavailable(e.to_string())),
        };
        Ok(response)
    }

    /// Waits until the scheduler has handled every message sent before this one and
    /// everything it decided is durable (at most `within`).
    pub async fn scheduler_barrier(&self, within: Option<Duration>) -> Result<(), NodeError> {
        let scheduler = self
            .scheduler()
            .ok_or_else(|| NodeError::Unavailable("no scheduler".into()))?;
        match scheduler.call(SchedulerMsg::Barrier, within).await {
            Ok(ractor::rpc::CallResult::Success(())) => Ok(()),
            Ok(ractor::rpc::CallResult::Timeout) => Err(NodeError::Unavailable(
                "the scheduler did not answer in time".into(),
            )),
            Ok(_) => Err(NodeError::Unavailable(
                "the scheduler stopped before answering".into(),
            )),
            Err(e) => Err(NodeError::Unavailable(e.to_string())),
        }
    }

    /// The last hour's error rate, from the durable rollups.
    pub async fn error_rate(&self, now: crate::model::Timestamp) -> Option<f64> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            crate::read::metrics::error_rate_last_hour(&journal, now)
        })
        .await
        .ok()?
    }
}

/// The name of the OS user `uid` (its number if it has no passwd entry).
pub fn os_user(uid: nix::unistd::Uid) -> String {
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => uid.to_string(),
    }
}

/// Builds and starts a node.
pub struct Node {
    config: NodeConfig,
    executor: Arc<dyn Executor>,
}

/// A running node.
pub struct NodeHandle {
    shared: Arc<NodeShared>,
    root: ActorRef<SupervisorMsg>,
    join: JoinHandle<()>,
    /// Stops the HTTP server.
    http_stop: Arc<tokio::sync::Notify>,
    /// Where the HTTP endpoints listen, if they do.
    http_addr: Option<SocketAddr>,
}

fn spawn_err(e: impl std::fmt::Display) -> SpawnErr {
    SpawnErr::StartupFailed(e.to_string().into())
}

impl Node {
    /// A node on `data_dir` with default settings.
    pub fn builder(data_dir: impl Into<PathBuf>) -> Self {
        Node {
            config: NodeConfig::new(data_dir),
            executor: Arc::new(ProcessExecutor),
        }
    }

    /// A node with these settings.
    pub fn with_config(config: NodeConfig) -> Self {
        Node {
            config,
            executor: Arc::new(ProcessExecutor),
        }
    }

    /// Number of worker actors.
    pub fn workers(mut self, n: u32) -> Self {
        self.config.workers = n;
        self
    }

    /// Journal durability.
    pub fn durability(mut self, d: Durability) -> Self {
        self.config.durability = d;
        self
    }

    /// Grace period for stopping attempts.
    pub fn grace(mut self, d: Duration) -> Self {
        self.config.grace = d;
        self
    }

    /// Snapshot the scheduler's state every `events` events (0 = never).
    pub fn snapshot_every(mut self, events: u64) -> Self {
        self.config.snapshot_every = events;
        self
    }

    /// Default expiry of approval requests.
    pub fn approval_timeout(mut self, d: Duration) -> Self {
        self.config.approval_timeout = d;
        self
    }

    /// Node approval rules.
    pub fn approval_rules(mut self, rules: Vec<ApprovalRule>) -> Self {
        self.config.approval_rules = rules;
        self
    }

    /// Collect metrics or not (see [`NodeConfig::metrics`]).
    pub fn metrics(mut self, on: bool) -> Self {
        self.config.metrics = on;
        self
    }

    /// Where to serve `/metrics`, `/healthz` and `/readyz` (port 0: any free port).
    pub fn http_addr(mut self, addr: Option<SocketAddr>) -> Self {
        self.config.http_addr = addr;
        self
    }

    /// Serve the control socket or not.
    pub fn control_socket(mut self, on: bool) -> Self {
        self.config.control_socket = on;
        self
    }

    /// Runs attempts with `executor` instead of OS processes.
    pub fn executor(mut self, executor: impl Executor) -> Self {
        self.executor = Arc::new(executor);
        self
    }

    /// Starts the tree with no parent.
    pub async fn start(self) -> Result<NodeHandle, NodeError> {
        self.launch(None).await
    }

    /// Starts the tree linked under a host's supervisor (`parent`): the root supervisor's
    /// failure (restart intensity exceeded) reaches the host as `ActorFailed`.
    pub async fn spawn_linked(self, parent: ActorCell) -> Result<NodeHandle, NodeError> {
        self.launch(Some(parent)).await
    }

    /// Checks the settings that need no I/O, then makes sure the data dir exists: missing
    /// folders are created with mode 0700 (the journal and logs may hold secrets); an existing
    /// folder keeps its mode (it may be shared, or a project folder), with a warning when
    /// others may write to it. Nothing is created when a check fails.
    fn prepare_data_dir(config: &NodeConfig) -> Result<(), NodeError> {
        let dir = &config.data_dir;
        let err = |message: String| NodeError::DataDir {
            path: dir.clone(),
            message,
        };
        if config.workers == 0 || config.workers > MAX_WORKERS {
            return Err(err(format!(
                "workers must be between 1 and {MAX_WORKERS} (got {})",
                config.workers
            )));
        }
        if config.control_socket {
            let sock = config.socket_path();
            let len = sock.as_os_str().len();
            if len > MAX_SOCKET_PATH {
                return Err(err(format!(
                    "the control socket path {} is {len} bytes; Unix sockets allow at most \
                     {MAX_SOCKET_PATH}. Use a shorter --data-dir (or a symlink to it)",
                    sock.display()
                )));
            }
        }
        match std::fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => {
                return Err(err("exists and is not a directory".into()));
            }
            Ok(meta) => {
                let mode = meta.permissions().mode();
                if mode & 0o022 != 0 {
                    tracing::warn!(
                        data_dir = %dir.display(),
                        mode = format!("{:o}", mode & 0o7777),
                        "the data dir is writable by other users; they could tamper with \
                         the journal and logs (a private folder, mode 0700, is safer)"
                    );
                }
            }
            Err(_) => std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| err(e.to_string()))?,
        }
        Ok(())
    }

    async fn launch(self, parent: Option<ActorCell>) -> Result<NodeHandle, NodeError> {
        Self::prepare_data_dir(&self.config)?;
        // Bind first: a port in use stops the node before it touches the journal.
        let http = match self.config.http_addr {
            Some(addr) => Some(
                std::net::TcpListener::bind(addr)
                    .map_err(|source| NodeError::Http { addr, source })?,
            ),
            None => None,
        };
        let journal = Journal::open(&self.config.layout().journal())?;
        let metrics = Metrics::new();
        let webhooks = Webhooks::start(
            self.config.webhooks.clone(),
            journal.node_id().to_string(),
            Arc::clone(&metrics),
        );
        let feed = Feed::new();
        let facts = Arc::new(WriteFacts::default());
        let read = ReadModel::start(
            journal.clone(),
            feed.clone(),
            Arc::clone(&facts),
            ViewContext {
                workers: self.config.workers,
                node_pools: self.config.pools.clone(),
                approval_timeout: self.config.approval_timeout,
                node_id: journal.node_id().to_owned(),
            },
        )
        .map_err(|e| {
            NodeError::Spawn(format!("the read model could not replay the journal: {e}"))
        })?;
        let shared = Arc::new(NodeShared {
            config: self.config,
            journal,
            executor: self.executor,
            journal_ref: Mutex::new(None),
            scheduler: Mutex::new(None),
            approvals: Mutex::new(None),
            stop_requested: tokio::sync::Notify::new(),
            finished_runs: tokio::sync::broadcast::channel(1024).0,
            metrics,
            webhooks,
            feed,
            facts,
            read,
        });
        let spec = root_spec(&shared);
        let spawned = match parent {
            Some(p) => Supervisor::spawn_linked(None, spec, p).await,
            None => Supervisor::spawn(None, spec).await,
        };
        let (root, join) = spawned.map_err(|e| NodeError::Spawn(e.to_string()))?;
        let http_stop = Arc::new(tokio::sync::Notify::new());
        let mut http_addr = None;
        if let Some(listener) = http {
            let addr = listener
                .local_addr()
                .map_err(|e| NodeError::Spawn(e.to_string()))?;
            let _ = std::fs::write(http_addr_file(&shared.config.data_dir), format!("{addr}\n"));
            http_addr = Some(addr);
            let (sh, stop) = (Arc::clone(&shared), Arc::clone(&http_stop));
            tokio::spawn(async move {
                if let Err(e) = crate::actors::metrics::serve_http(listener, sh, stop).await {
                    tracing::error!(error = %e, "HTTP endpoints stopped");
                }
            });
        }
        Ok(NodeHandle {
            shared,
            root,
            join,
            http_stop,
            http_addr,
        })
    }
}

fn root_spec(shared: &Arc<NodeShared>) -> SupervisorSpec {
    let cfg = &shared.config;
    let mut children = Vec::new();
    let sh = Arc::clone(shared);
    children.push(ChildSpec {
        id: "journal".into(),
        restart: Restart::Permanent,
        shutdown: Duration::from_secs(30),
        start: Arc::new(move |sup: ActorCell| {
            let sh = Arc::clone(&sh);
            Box::pin(async move {
                let options = JournalOptions {
                    durability: sh.config.durability,
                    ..JournalOptions::default()
                };
                let (jr, _thread) = JournalRef::spawn_linked(
                    sh.journal.clone(),
                    options,
                    Some(Arc::clone(&sh.metrics)).filter(|_| sh.config.metrics),
                    Some(sh.feed.clone()),
                    sup,
                )
                .await?;
                let cell = jr.actor().get_cell();
                *sh.journal_ref.lock().expect("not poisoned") = Some(jr);
                Ok(cell)
            })
        }),
    });
    let sh = Arc::clone(shared);
    children.push(ChildSpec {
        id: "scheduler".into(),
        restart: Restart::Permanent,
        shutdown: Duration::from_secs(5),
        start: Arc::new(move |sup: ActorCell| {
            let sh = Arc::clone(&sh);
            Box::pin(async move {
                let (actor, _) = Actor::spawn_linked(
                    None,
                    Scheduler {
                        shared: Arc::clone(&sh),
                    },
                    (),
                    sup,
                )
                .await?;
                let cell = actor.get_cell();
                *sh.scheduler.lock().expect("not poisoned") = Some(actor);
                Ok(cell)
            })
        }),
    });
    let sh = Arc::clone(shared);
    let worker_shutdown = cfg.grace + Duration::from_secs(2);
    children.push(ChildSpec {
        id: "workers".into(),
        restart: Restart::Permanent,
        shutdown: worker_shutdown + Duration::from_secs(1),
        start: Arc::new(move |sup: ActorCell| {
            let sh = Arc::clone(&sh);
            Box::pin(async move {
                let children = (0..sh.config.workers)
                    .map(|slot| {
                        let sh = Arc::clone(&sh);
                        let m = Arc::clone(&sh.metrics);
                        counted(
                            ChildSpec {
                                id: format!("worker-{slot}"),
                                restart: Restart::Permanent,
                                shutdown: worker_shutdown,
                                start: Arc::new(move |sup: ActorCell| {
                                    let w = Worker {
                                        shared: Arc::clone(&sh),
                                        slot,
                                    };
                                    Box::pin(async move {
                                        let (a, _) = Actor::spawn_linked(None, w, (), sup).await?;
                                        Ok(a.get_cell())
                                    })
                                }),
                            },
                            "worker".into(),
                            m,
                        )
                    })
                    .collect();
                let spec = SupervisorSpec {
                    strategy: Strategy::OneForOne,
                    // A worker restart loses at most its attempt (closed as interrupted).
                    intensity: 10,
                    period: Duration::from_secs(10),
                    children,
                };
                let (a, _) = Supervisor::spawn_linked(None, spec, sup).await?;
                Ok(a.get_cell())
            })
        }),
    });
    let sh = Arc::clone(shared);
    children.push(ChildSpec {
        id: "approvals".into(),
        restart: Restart::Permanent,
        shutdown: Duration::from_secs(2),
        start: Arc::new(move |sup: ActorCell| {
            let sh = Arc::clone(&sh);
            Box::pin(async move {
                let gate = ApprovalGate {
                    shared: Arc::clone(&sh),
                };
                let (a, _) = Actor::spawn_linked(None, gate, (), sup).await?;
                let cell = a.get_cell();
                *sh.approvals.lock().expect("not poisoned") = Some(a);
                Ok(cell)
            })
        }),
    });
    let sh = Arc::clone(shared);
    children.push(ChildSpec {
        id: "metrics".into(),
        restart: Restart::Permanent,
        shutdown: Duration::from_secs(2),
        start: Arc::new(move |sup: ActorCell| {
            let sh = Arc::clone(&sh);
            Box::pin(async move {
                let (a, _) =
                    Actor::spawn_linked(None, MetricsActor { shared: sh }, (), sup).await?;
                Ok(a.get_cell())
            })
        }),
    });
    if cfg.control_socket {
        let sh = Arc::clone(shared);
        children.push(ChildSpec {
            id: "control".into(),
            restart: Restart::Permanent,
            shutdown: Duration::from_secs(2),
            start: Arc::new(move |sup: ActorCell| {
                let sh = Arc::clone(&sh);
                Box::pin(async move {
                    let (a, _) = Actor::spawn_linked(None, Control { shared: sh }, (), sup)
                        .await
                        .map_err(spawn_err)?;
                    Ok(a.get_cell())
                })
            }),
        });
    }
    SupervisorSpec {
        strategy: Strategy::RestForOne,
        intensity: cfg.intensity,
        period: cfg.period,
        children: children
            .into_iter()
            .map(|c| {
                let label = c.id.clone();
                counted(c, label, Arc::clone(&shared.metrics))
            })
            .collect(),
    }
}

/// An in-process subscription (see [`NodeHandle::subscribe`]); dropping it ends it.
pub struct LocalSubscription {
    /// Our end of the in-memory pipe the subscription writes its frames to.
    stream: tokio::io::DuplexStream,
}

impl LocalSubscription {
    /// The next frame; `None` once the stream ended.
    pub async fn next(&mut self) -> Result<Option<Response>, NodeError> {
        crate::messages::control::read_frame(&mut self.stream)
            .await
            .map_err(|e| NodeError::Unavailable(e.to_string()))
    }
}

/// Wraps a child's start function so that every start after the first counts as a restart
/// of that child in `troupe_actor_restarts_total`.
fn counted(mut child: ChildSpec, label: String, metrics: Arc<Metrics>) -> ChildSpec {
    let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let start = Arc::clone(&child.start);
    let id = label;
    child.start = Arc::new(move |sup: ActorCell| {
        if started.swap(true, std::sync::atomic::Ordering::Relaxed) {
            metrics.restarted(&id);
        }
        start(sup)
    });
    child
}

impl NodeHandle {
    /// Node-wide settings and handles.
    pub fn shared(&self) -> &Arc<NodeShared> {
        &self.shared
    }

    /// Where `/metrics`, `/healthz` and `/readyz` listen (the bound port when `http_addr`
    /// asked for port 0), if they do.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The root supervisor.
    pub fn root(&self) -> &ActorRef<SupervisorMsg> {
        &self.root
    }

    /// Sends a control request and waits for the answer.
    pub async fn request(&self, request: Request) -> Result<Response, NodeError> {
        self.shared.request(request).await
    }

    /// Subscribes in-process: the frames a socket client gets after
    /// [`Request::Subscribe`], from this node's read model.
    pub fn subscribe(&self, subscription: Subscription) -> LocalSubscription {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (reader, writer) = tokio::io::split(theirs);
        let model = Arc::clone(&self.shared.read);
        tokio::spawn(crate::read::subscribe::serve(
            model,
            subscription,
            reader,
            writer,
        ));
        LocalSubscription { stream: ours }
    }

    /// Submits `workflow`; returns the run id (an unfinished run of the same workflow is
    /// reused, see [`Response::Submitted`]).
    pub async fn submit(&self, workflow: Workflow) -> Result<RunId, NodeError> {
        match self.request(Request::Submit(Box::new(workflow))).await? {
            Response::Submitted { run, .. } => Ok(run),
            Response::Error(e) => Err(e.into()),
            other => Err(NodeError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Waits until the run is finished (and durably so); returns its final state. Woken by
    /// the scheduler, no polling.
    pub async fn wait_for_run(&self, run: RunId) -> Result<RunState, NodeError> {
        use tokio::sync::broadcast::error::RecvError;
        let mut finished = self.shared.finished_runs.subscribe();
        loop {
            match self.request(Request::Run(run)).await? {
                Response::Run(view) if view.summary.state.is_finished() => {
                    return Ok(view.summary.state)
                }
                Response::Run(_) => {}
                Response::Error(e) => return Err(e.into()),
                other => {
                    return Err(NodeError::Unavailable(format!(
                        "unexpected answer {other:?}"
                    )))
                }
            }
            // Re-query after a lag or a scheduler restart; otherwise wait for our run.
            loop {
                match finished.recv().await {
                    Ok((r, state)) if r == run => return Ok(state),
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => {
                        return Err(NodeError::Unavailable("the node stopped".into()))
                    }
                }
            }
        }
    }

    /// Completes when the root supervisor has stopped (after [`NodeHandle::shutdown`], or when
    /// its restart intensity was exceeded).
    pub fn is_stopped(&self) -> bool {
        self.join.is_finished()
    }

    /// Graceful stop: dispatch nothing more, let running attempts finish within the grace
    /// period, then terminate them (their ends are not journaled; the next boot closes them
    /// as interrupted), stop the tree in reverse order, and sync the journal.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.shared.webhooks.send(Notice::NodeStopping {
            reason: "graceful stop".into(),
        });
        let grace = self.shared.config.grace;
        if let Some(s) = self.shared.scheduler() {
            let drained = s.call(SchedulerMsg::Drain, Some(grace)).await;
            if !matches!(drained, Ok(ractor::rpc::CallResult::Success(()))) {
                let _ = s.cast(SchedulerMsg::AbandonRunning);
            }
            // Barrier: the scheduler answers only once everything it decided is durable
            // (a supervisor stop does not drain the journal's mailbox).
            let _ = self.shared.scheduler_barrier(None).await;
        }
        self.root.stop(None);
        let _ = self.join.await;
        self.shared.read.stop().await;
        // Last notices (node_stopping) get a few seconds; a dead URL cannot hold the stop.
        self.shared.webhooks.drain(Duration::from_secs(5)).await;
        self.http_stop.notify_one();
        if self.http_addr.is_some() {
            let _ = std::fs::remove_file(http_addr_file(&self.shared.config.data_dir));
        }
        self.shared.journal.sync_wal()?;
        Ok(())
    }

    /// Completes when a client asked the node to stop (`troupe node stop`); the owner then
    /// calls [`NodeHandle::shutdown`].
    pub async fn stop_requested(&self) {
        self.shared.stop_requested.notified().await
    }

    /// Waits until the root supervisor stops by itself (escalation) and returns.
    pub async fn join(self) {
        let _ = self.join.await;
        self.shared.read.stop().await;
    }
}
