//! The node: opens the data dir, spawns the supervision tree, returns a handle.
//!
//! ```text
//! node (root supervisor, rest_for_one)
//! ├── journal      group-commit writer (its own OS thread)
//! ├── scheduler    state, ready queue, retries, timers, halt, saga coordinator
//! ├── workers      supervisor (one_for_one) of `workers` worker actors
//! ├── approvals    approval gate: pending requests, expiry
//! ├── metrics      health watch (health_changed webhooks), retention of rollups and logs
//! ├── control      Unix socket server (DATA_DIR/troupe.sock), optional
//! └── cluster      gateway of remote worker nodes (`[cluster]`, the `cluster` feature)
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
//! # Layout
//! - this file: the [`Node`] builder; checking the data dir; starting the read model and the
//!   tree.
//! - `tree`: the supervision tree (children, order, restart settings).
//! - `handle`: [`NodeHandle`] (requests, subscriptions, waiting for runs, shutdown) and
//!   [`LocalSubscription`].
//!
//! This module is the top of the crate: it imports every actor, and nothing but the bench
//! imports it. The settings ([`NodeConfig`] and its limits, in [`crate::config`]), the context
//! and [`NodeError`] live below and are re-exported here under their former paths.

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorCell;

use crate::actors::approval::ApprovalRule;
use crate::actors::metrics::Metrics;
use crate::actors::supervisor::Supervisor;
use crate::context::NodeContext;
use crate::executor::{Executor, ProcessExecutor};
use crate::read::{ReadModel, ViewContext, WriteFacts};
use crate::storage::feed::Feed;
use crate::storage::{Durability, Journal};
use crate::webhooks::Webhooks;

mod handle;
mod tree;

pub use handle::{LocalSubscription, NodeHandle};
use tree::root_spec;

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

    /// The ready queue's scoring weights (`[scheduling]`).
    pub fn scheduling(mut self, weights: crate::model::score::Weights) -> Self {
        self.config.scheduling = weights;
        self
    }

    /// The node's circuit breakers (`[[breakers]]`).
    pub fn breakers(mut self, breakers: Vec<crate::model::resilience::BreakerSpec>) -> Self {
        self.config.breakers = breakers;
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

    /// The node's default authority for agent trees (`troupe.toml [agents]`).
    pub fn agents(mut self, authority: crate::model::authority::Authority) -> Self {
        self.config.agents = authority;
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

    async fn launch(mut self, parent: Option<ActorCell>) -> Result<NodeHandle, NodeError> {
        // Absolute: attempts run in their own working directories and are handed paths
        // under it (TROUPE_OUTPUT, TROUPE_DATA_DIR, ...).
        if let Ok(abs) = std::path::absolute(&self.config.data_dir) {
            self.config.data_dir = abs;
        }
        Self::prepare_data_dir(&self.config)?;
        // Checked before anything starts: a bad inbox folder stops the node at once.
        let inbox_dir = match &self.config.inbox {
            Some(dir) => Some(crate::inbox::check_dir(dir)?),
            None => None,
        };
        let secrets = match &self.config.cluster {
            Some(c) => {
                if cfg!(not(feature = "cluster")) {
                    return Err(NodeError::Spawn(
                        "[cluster] is set but this build has no `cluster` feature".into(),
                    ));
                }
                c.check_exposure().map_err(NodeError::Spawn)?;
                let cookie = crate::config::read_secret(&c.cookie_file, "cookie_file")
                    .map_err(NodeError::Spawn)?;
                let tokens =
                    crate::config::read_tokens(&c.join_tokens_file).map_err(NodeError::Spawn)?;
                Some((cookie, tokens))
            }
            None => None,
        };
        // Bind first: a port in use stops the node before it touches the journal.
        let http = match self.config.http_addr {
            Some(addr) => {
                let auth = crate::web::Auth::load(&self.config.http, addr)
                    .map_err(NodeError::HttpAccess)?;
                let listener = std::net::TcpListener::bind(addr)
                    .map_err(|source| NodeError::Http { addr, source })?;
                Some((listener, auth))
            }
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
                agents: std::sync::Arc::new(self.config.agent_registry.clone()),
                breakers: std::sync::Arc::new(self.config.breakers.clone()),
                scheduling: std::sync::Arc::new(self.config.scheduling.clone()),
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
        if let Some((cookie, tokens)) = secrets {
            shared.set_cluster_secrets(cookie, tokens);
        }
        let spec = root_spec(&shared);
        let spawned = match parent {
            Some(p) => Supervisor::spawn_linked(None, spec, p).await,
            None => Supervisor::spawn(None, spec).await,
        };
        let (root, join) = spawned.map_err(|e| NodeError::Spawn(e.to_string()))?;
        let http_stop = Arc::new(tokio::sync::Notify::new());
        let mut http_addr = None;
        if let Some((listener, auth)) = http {
            let addr = listener
                .local_addr()
                .map_err(|e| NodeError::Spawn(e.to_string()))?;
            let _ = std::fs::write(http_addr_file(&shared.config.data_dir), format!("{addr}\n"));
            http_addr = Some(addr);
            let (sh, stop) = (Arc::clone(&shared), Arc::clone(&http_stop));
            tokio::spawn(async move {
                if let Err(e) = crate::actors::metrics::serve_http(listener, sh, auth, stop).await {
                    tracing::error!(error = %e, "HTTP endpoints stopped");
                }
            });
        }
        let inbox = match inbox_dir {
            Some(dir) => {
                let poll = shared.config.inbox_poll;
                match crate::inbox::Inbox::start(Arc::clone(&shared), dir, poll) {
                    Ok(inbox) => Some(inbox),
                    Err(e) => {
                        http_stop.notify_one();
                        root.stop(None);
                        let _ = join.await;
                        shared.read.stop().await;
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        Ok(NodeHandle {
            inbox,
            shared,
            root,
            join,
            http_stop,
            http_addr,
        })
    }
}
