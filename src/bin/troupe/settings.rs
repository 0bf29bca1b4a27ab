//! The settings of a node this process starts (`troupe node start`, `troupe run` without a
//! node): built-in defaults, then `troupe.toml`, then `TROUPE_*` variables, then flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use troupe::{Durability, NodeConfig};

use crate::common::{Failed, EXIT_INVALID};

/// The flags that override a started node's settings (`node start`, and `run` when it starts
/// a node of its own).
pub(crate) struct StartOptions {
    /// Worker count override.
    pub(crate) workers: Option<u32>,
    /// Grace period override.
    pub(crate) grace: Option<Duration>,
    /// Durability override.
    pub(crate) durability: Option<Durability>,
    /// Snapshot interval override (events).
    pub(crate) snapshot_every: Option<u64>,
    /// `--config FILE` (else `DATA_DIR/troupe.toml` if present).
    pub(crate) config: Option<PathBuf>,
    /// `--http-addr` (`Some(None)`: off).
    pub(crate) http_addr: Option<Option<std::net::SocketAddr>>,
    /// Serve HTTP on the default address unless configured otherwise (`node start`).
    pub(crate) serve_http: bool,
    /// `--insecure`: `[cluster] listen` may be a non-loopback address without TLS.
    pub(crate) insecure: bool,
    /// `--inbox DIR` (`node start` only): over troupe.toml's `inbox`.
    pub(crate) inbox: Option<PathBuf>,
}

impl StartOptions {
    /// These options with `--inbox DIR` (`node start`).
    pub(crate) fn with_inbox(mut self, inbox: Option<PathBuf>) -> Self {
        self.inbox = inbox;
        self
    }
}

/// The node's settings: built-in defaults, then `troupe.toml`, then `TROUPE_*` variables, then
/// command-line flags (docs/config.md).
pub(crate) fn node_config(data_dir: &Path, opts: &StartOptions) -> Result<NodeConfig, Failed> {
    let invalid = |e: troupe::config::ConfigError| Failed {
        code: EXIT_INVALID,
        message: e.to_string(),
    };
    let mut cfg = NodeConfig::new(data_dir);
    let file = match troupe::config::locate(opts.config.as_deref(), data_dir) {
        Some(path) => troupe::config::load(&path).map_err(invalid)?,
        None => troupe::config::NodeFile::default(),
    };
    if opts.serve_http {
        cfg.http_addr = Some(
            troupe::node::DEFAULT_HTTP_ADDR
                .parse()
                .expect("the default parses"),
        );
    }
    let file = troupe::config::apply_env(file, |v| std::env::var(v).ok()).map_err(invalid)?;
    file.apply(&mut cfg);
    if let Some(a) = opts.http_addr {
        cfg.http_addr = a;
    }
    if let Some(w) = opts.workers {
        cfg.workers = w;
    }
    if let Some(g) = opts.grace {
        cfg.grace = g;
    }
    if let Some(d) = opts.durability {
        cfg.durability = d;
    }
    if let Some(n) = opts.snapshot_every {
        cfg.snapshot_every = n;
    }
    if let Some(dir) = &opts.inbox {
        cfg.inbox = Some(dir.clone());
    }
    cfg.http.insecure = opts.insecure;
    if let Some(c) = cfg.cluster.as_mut() {
        c.insecure = opts.insecure;
    }
    troupe::config::check_workers(cfg.workers.into()).map_err(|e| Failed {
        code: EXIT_INVALID,
        message: format!("--workers: {e}"),
    })?;
    Ok(cfg)
}
