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
//! supervisor. What the actors share is a [`NodeContext`] (in [`crate::context`]), whose
//! registry of current incarnations the start functions here fill.
//!
//! This module is the top of the crate: it imports every actor, and nothing but the bench
//! imports it. The settings ([`NodeConfig`] and its limits, in [`crate::config`]), the context
//! and [`NodeError`] live below and are re-exported here under their former paths.

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef, SpawnErr};
use tokio::task::JoinHandle;

use crate::actors::approval::{ApprovalGate, ApprovalRule};
use crate::actors::control::Control;
use crate::actors::journal::JournalRef;
use crate::actors::metrics::{Metrics, MetricsActor};
use crate::actors::scheduler::Scheduler;
use crate::actors::supervisor::{
    ChildSpec, Restart, Strategy, Supervisor, SupervisorMsg, SupervisorSpec,
};
use crate::actors::worker::Worker;
use crate::context::NodeContext;
use crate::executor::{Executor, ProcessExecutor};
use crate::messages::control::{Request, Response, Subscription};
use crate::messages::scheduler::SchedulerMsg;
use crate::model::{RunId, RunState, Workflow};
use crate::read::{ReadModel, ViewContext, WriteFacts};
use crate::storage::feed::Feed;
use crate::storage::{Durability, Journal, JournalOptions};
use crate::webhooks::{Notice, Webhooks};

pub use crate::config::{
    http_addr_file, socket_path, NodeConfig, Retention, DEFAULT_HTTP_ADDR, MAX_SOCKET_PATH,
    MAX_WORKERS,
};
pub use crate::context::{os_user, NodeError};

/// What every actor of one node shares, under its former name (see [`NodeContext`]).
pub type NodeShared = NodeContext;

/// Builds and starts a node.
pub struct Node {
    config: NodeConfig,
    executor: Arc<dyn Executor>,
}

/// A running node.
pub struct NodeHandle {
    shared: Arc<NodeContext>,
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
        let shared = Arc::new(NodeContext::new(
            self.config,
            journal,
            self.executor,
            metrics,
            webhooks,
            feed,
            facts,
            read,
        ));
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

fn root_spec(shared: &Arc<NodeContext>) -> SupervisorSpec {
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
                sh.set_journal_ref(jr);
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
                sh.set_scheduler(actor);
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
                sh.set_approvals(a);
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
    pub fn shared(&self) -> &Arc<NodeContext> {
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
        crate::actors::control::route(&self.shared, request).await
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
