//! The node config file, `troupe.toml`.
//!
//! Read from `--config FILE` (env `TROUPE_CONFIG`), else from `DATA_DIR/troupe.toml` when that
//! file exists. Unknown keys are errors, reported with the file, line and column.
//!
//! Precedence, highest first: command-line flags, `TROUPE_*` environment variables
//! ([`ENV_OVERRIDES`]), the file, the built-in defaults (see [`NodeConfig`]).
//!
//! Before parsing, `${VAR}` is replaced by the environment variable `VAR` (an error if it is
//! unset) and `${VAR:-default}` by `VAR`, or `default` when `VAR` is unset or empty (the POSIX
//! shell forms); `$${` is a literal `${`. Comments are left alone. Substituted values are not
//! escaped: inside a TOML string, a value holding `"` or `\` must be escaped in the variable.
//!
//! ```toml
//! workers = 16             # worker actors (1 to 10,000)
//! grace = "10s"            # SIGTERM → SIGKILL grace, and shutdown grace
//! durability = "sync"      # or "buffered"
//! log_cap = 16777216       # bytes of output kept per attempt log
//! snapshot_every = 1000000 # events between scheduler snapshots (0 = never)
//!
//! [approval]
//! timeout = "30d"          # expiry of requests whose task sets no approval_timeout
//!
//! [[approval.rule]]        # tasks matching every matcher given require approval
//! pool = "prod"            # the task's pool
//! label = "deploy"         # one of the task's `labels`
//! command = "kubectl *"    # glob over the command line as `troupe status` prints it
//! timeout = "1h"           # expiry for requests this rule causes (optional)
//!
//! http_addr = "127.0.0.1:9479"  # /metrics, /healthz, /readyz ("off" to disable)
//!
//! [pools]                  # node-wide caps: running attempts per pool across all runs
//! gpu = 2
//!
//! [health]                 # thresholds of `troupe health`
//! backlog = 20             # ready tasks waiting for a worker
//! error_rate = 0.1         # tasks failing for good over the last hour
//! stalled_after = "1h"     # work pending and nothing ended for this long
//! min_free_disk = 1073741824  # bytes free on the data dir's file system
//! restart_window = "5m"    # actor restarts within this window
//!
//! [retention]
//! metrics = "90d"          # rollup buckets (what `troupe metrics --since` can see)
//! logs = "30d"             # attempt logs of finished runs (default: kept)
//!
//! [secrets]                # values of tasks' `secret_env` (never printed or journaled)
//! files = ["/etc/troupe/secrets.env"]   # NAME=VALUE lines, mode 0600
//!
//! [[breakers]]            # circuit breakers (docs: config/resilience.rs, docs/config.md)
//! name = "api"
//! label = "api"
//! consecutive_failures = 5
//!
//! [retry_policies.net]     # named retry policies: retry fields + non-retryable failures
//! label = "net"
//! non_retryable_exit_codes = [2]
//!
//! [[hooks]]                # commands run on events, the event as JSON on stdin
//! on = "task_failed"
//! command = ["/usr/local/bin/notify"]
//!
//! [scheduling]             # priority scoring (docs/semantics.md, "Queue order")
//! scoring = true           # false: priority, then first in, first out
//! priority = 1000          # points per priority step
//! deadline = 1             # points per minute past the deadline
//! age = 0.1                # points per minute waiting
//! default_deadline = "1h"  # deadline of a task without one, from when it became ready
//! label_boosts = { vip = 500 }  # points per label
//!
//! [[webhooks]]
//! url = "https://hooks.example.com/troupe"
//! events = ["task_failed", "run_finished", "approval_requested", "health_changed", "node_stopping"]
//! timeout = "5s"           # per request (optional)
//! max_attempts = 5         # per notice (optional)
//! ```
//! (Keys before the first table header belong to the top level: put `http_addr` and the
//! other plain keys above `[approval]` in a real file.)
//!
//! # Layout
//! Config sits below everything that reads it (read side, context, telemetry, actors, node):
//! the types the file fills live here, and nothing here imports those layers.
//! - this file: [`ConfigError`], finding the file ([`locate`]) and reading it ([`load`]).
//! - `node.rs`: the node's settings, [`NodeConfig`] (defaults per field) and [`Retention`],
//!   with [`MAX_WORKERS`], [`MAX_SOCKET_PATH`], [`DEFAULT_HTTP_ADDR`], [`socket_path`] and
//!   [`http_addr_file`] (re-exported by `troupe::node` under their former paths).
//! - [`NodeFile`] (`file.rs`): what the file sets, and how it goes over a [`NodeConfig`].
//! - `substitute.rs`: `${VAR}` and `${VAR:-default}` before parsing ([`substitute`]).
//! - `parse.rs`: TOML text → [`NodeFile`] with `FILE:LINE:COLUMN` errors ([`parse`]); the
//!   plain top-level keys and `[pools]`, `[retention]`; `raw.rs` holds the serde shapes.
//! - one file per larger section, with the types it fills: `health.rs` (`[health]`,
//!   [`HealthThresholds`]), `webhooks.rs` (`[[webhooks]]`, [`WebhookConfig`],
//!   [`WebhookEvent`]), `approval.rs` (`[approval]`, `[[approval.rule]]`, [`ApprovalRule`],
//!   [`DEFAULT_APPROVAL_TIMEOUT`], [`apply_rules`]).
//! - `values.rs`: checks shared by the file, the environment and the flags ([`check_workers`],
//!   [`parse_http_addr`]).
//! - `env.rs`: the `TROUPE_*` overrides ([`ENV_OVERRIDES`], [`apply_env`]).
//! - `render.rs`: the effective settings as a `troupe.toml` ([`render`]).
//! - `secrets.rs`: `[secrets]` and the values it loads ([`Secrets`]).
//! - `resilience.rs`: `[[breakers]]`, `[retry_policies.NAME]`, `[[hooks]]`
//!   ([`RetryPolicyConfig`], [`apply_retry_policies`]).
//! - `scheduling.rs`: `[scheduling]`, the priority scoring weights
//!   ([`crate::model::score::Weights`]).

use std::path::{Path, PathBuf};

use crate::layout::DataDir;

mod approval;
mod cluster;
mod env;
mod file;
mod health;
mod http;
mod node;
mod parse;
mod raw;
mod render;
mod resilience;
mod scheduling;
mod secrets;
mod substitute;
mod values;
mod webhooks;

pub use approval::{apply_rules, ApprovalRule, DEFAULT_APPROVAL_TIMEOUT};
pub use cluster::{read_secret, read_tokens, ClusterConfig, TlsFiles, DEFAULT_HEARTBEAT};
pub use env::{apply_env, ENV_OVERRIDES};
pub use file::NodeFile;
pub use health::HealthThresholds;
pub use http::HttpConfig;
pub use node::{
    http_addr_file, socket_path, NodeConfig, Retention, DEFAULT_HTTP_ADDR, MAX_SOCKET_PATH,
    MAX_WORKERS,
};
pub use parse::parse;
pub use render::render;
pub use resilience::{apply_retry_policies, RetryPolicyConfig};
pub use secrets::Secrets;
pub use substitute::substitute;
pub use values::{check_workers, parse_http_addr};
pub use webhooks::{WebhookConfig, WebhookEvent};

/// A config file that cannot be used: `FILE:LINE:COLUMN: message` (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The config file to read: `explicit` if given, else `DATA_DIR/troupe.toml` if it exists.
pub fn locate(explicit: Option<&Path>, data_dir: &Path) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => Some(DataDir::new(data_dir).config_file()).filter(|p| p.exists()),
    }
}

/// Largest config file read, in bytes (1 MiB; a config with hundreds of rules and webhooks
/// is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads and checks a config file, substituting `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<NodeFile, ConfigError> {
    use std::io::Read;
    let name = path.display().to_string();
    let cannot =
        |e: std::io::Error| ConfigError(format!("{name}: cannot read the config file: {e}"));
    // Read at most one byte past the cap: a wrong path (`/dev/zero`, a log) is refused
    // instead of being read into memory whole.
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(cannot)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError(format!(
            "{name}: larger than the {} MiB limit for config files (is it the right file?)",
            MAX_CONFIG_BYTES >> 20
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        ConfigError(format!(
            "{name}: not valid UTF-8 at byte {} (TOML files must be UTF-8)",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let text = substitute(&text, &name, |v| std::env::var(v).ok())?;
    parse(&text, &name)
}

/// A stand-in for the process environment in tests: `pairs` as `(name, value)`.
#[cfg(test)]
fn test_env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}
