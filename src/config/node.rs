//! The node's settings: [`NodeConfig`] (every field with its default), [`Retention`], and the
//! limits and paths that follow from them ([`MAX_WORKERS`], [`MAX_SOCKET_PATH`],
//! [`DEFAULT_HTTP_ADDR`], [`socket_path`], [`http_addr_file`]).
//!
//! They live with the config file that fills them, below everything that reads them (the
//! actors, telemetry, the client and the node builder); the node builder's module re-exports
//! them under their former paths (`troupe::node::NodeConfig`, ...).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::approval::{ApprovalRule, DEFAULT_APPROVAL_TIMEOUT};
use super::health::HealthThresholds;
use super::webhooks::WebhookConfig;
use crate::layout::DataDir;
use crate::storage::Durability;

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
    /// Honour [`Request::InjectPanic`](crate::messages::control::Request::InjectPanic) (tests only; default false, or `TROUPE_TEST_HOOKS=1`).
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
    /// (default [`DEFAULT_APPROVAL_TIMEOUT`], 30 days; the approval gate's docs give the order
    /// in which expiries apply).
    pub approval_timeout: Duration,
    /// Node approval rules: matching tasks require approval whatever their workflow says
    /// (default none).
    pub approval_rules: Vec<ApprovalRule>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (default none for an embedded
    /// node; `troupe node start` defaults to [`DEFAULT_HTTP_ADDR`]). Port 0 picks a free
    /// port, written to `DATA_DIR/http.addr`.
    pub http_addr: Option<SocketAddr>,
    /// `[http]`: the tokens of the web UI and HTTP API, and whether a non-loopback
    /// `http_addr` may serve without them.
    pub http: super::HttpConfig,
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
    /// `[agents]`: the authority a root run has (depth 4, 16 live children, 1,000
    /// descendants, no budget, any program, by default); children get at most their
    /// parent's ([`crate::model::authority`]).
    pub agents: crate::model::authority::Authority,
    /// `[[agent]]`: the agent registry `troupe delegate` routes to (default none).
    pub agent_registry: Vec<crate::model::routing::AgentSpec>,
    /// `[cluster]`: accept remote worker nodes (default off; docs/cluster.md).
    pub cluster: Option<super::ClusterConfig>,
    /// `[secrets]`: the values of tasks' `secret_env`, from the files it names and this
    /// process's environment (default: the environment only). Never printed or journaled.
    pub secrets: std::sync::Arc<super::Secrets>,
    /// `[[breakers]]`: the node's circuit breakers (default none).
    pub breakers: Vec<crate::model::resilience::BreakerSpec>,
    /// `[retry_policies.NAME]`: named retry policies tasks choose by name or label
    /// (default none).
    pub retry_policies: Vec<super::RetryPolicyConfig>,
    /// `[[hooks]]`: commands run on run, task and node events (default none).
    pub hooks: Vec<crate::model::resilience::HookSpec>,
    /// `inbox` / `--inbox DIR`: workflow files dropped into this folder are submitted
    /// ([`crate::inbox`]; default none).
    pub inbox: Option<PathBuf>,
    /// Watch the inbox by polling instead of the OS file watcher (default false, or
    /// `TROUPE_INBOX_POLL=1`); the inbox polls by itself when the OS watcher cannot start.
    pub inbox_poll: bool,
    /// `[scheduling]`: the ready queue's scoring weights (default: scoring on with
    /// [`Weights::default`](crate::model::score::Weights)); the scheduler ranks tasks with
    /// them and `troupe queue` shows the scores they give.
    pub scheduling: crate::model::score::Weights,
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
            http: super::HttpConfig::default(),
            metrics: true,
            health: HealthThresholds::default(),
            retention: Retention::default(),
            webhooks: Vec::new(),
            pools: std::collections::BTreeMap::new(),
            agents: crate::model::authority::Authority::default(),
            agent_registry: Vec::new(),
            cluster: None,
            secrets: Default::default(),
            breakers: Vec::new(),
            retry_policies: Vec::new(),
            hooks: Vec::new(),
            inbox: None,
            inbox_poll: std::env::var("TROUPE_INBOX_POLL").is_ok_and(|v| v == "1"),
            scheduling: Default::default(),
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
    /// Finished runs (whole agent trees) that ended longer ago than this are removed:
    /// state, events, stream index entries and logs (default: kept; `troupe gc`).
    pub runs: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            metrics: Duration::from_secs(90 * 86_400),
            logs: None,
            runs: None,
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
