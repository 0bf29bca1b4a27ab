//! [`NodeFile`]: what `troupe.toml` (and the environment) sets, and how it goes over the
//! built-in defaults.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::ApprovalRule;
use super::WebhookConfig;
use crate::storage::Durability;

/// What `troupe.toml` sets (everything optional).
#[derive(Debug, Clone, Default)]
pub struct NodeFile {
    /// `workers`.
    pub workers: Option<u32>,
    /// `grace`.
    pub grace: Option<Duration>,
    /// `durability`.
    pub durability: Option<Durability>,
    /// `log_cap`, bytes.
    pub log_cap: Option<u64>,
    /// `snapshot_every`, events.
    pub snapshot_every: Option<u64>,
    /// `[approval] timeout`.
    pub approval_timeout: Option<Duration>,
    /// `[[approval.rule]]` entries, in file order.
    pub approval_rules: Vec<ApprovalRule>,
    /// `http_addr`: `Some(None)` for `"off"`.
    pub http_addr: Option<Option<SocketAddr>>,
    /// `[pools]`.
    pub pools: BTreeMap<String, u32>,
    /// `[health] backlog`.
    pub health_backlog: Option<u64>,
    /// `[health] error_rate`.
    pub health_error_rate: Option<f64>,
    /// `[health] stalled_after`.
    pub health_stalled_after: Option<Duration>,
    /// `[health] min_free_disk`, bytes.
    pub health_min_free_disk: Option<u64>,
    /// `[health] restart_window`.
    pub health_restart_window: Option<Duration>,
    /// `[retention] metrics`.
    pub retention_metrics: Option<Duration>,
    /// `[retention] logs`.
    pub retention_logs: Option<Duration>,
    /// `[retention] runs`.
    pub retention_runs: Option<Duration>,
    /// `[[webhooks]]`, in file order.
    pub webhooks: Vec<WebhookConfig>,
    /// `[agents]`: the node's default authority, over the built-in one.
    pub agents: Option<crate::model::authority::AuthorityAsk>,
    /// `[[agent]]`, in file order.
    pub agent_registry: Vec<crate::model::routing::AgentSpec>,
    /// `[cluster]`.
    pub cluster: Option<super::ClusterConfig>,
    /// `[secrets]`, its files read.
    pub secrets: Option<super::Secrets>,
    /// `[[breakers]]`, in file order.
    pub breakers: Vec<crate::model::resilience::BreakerSpec>,
    /// `[retry_policies.NAME]`, in name order.
    pub retry_policies: Vec<super::RetryPolicyConfig>,
    /// `[[hooks]]`, in file order.
    pub hooks: Vec<crate::model::resilience::HookSpec>,
    /// `inbox`, relative to the config file's folder.
    pub inbox: Option<std::path::PathBuf>,
    /// `[http] tokens_file`, relative to the config file's folder.
    pub http_tokens_file: Option<std::path::PathBuf>,
    /// `[scheduling]`: the scoring weights, defaults filled in for keys left out.
    pub scheduling: Option<crate::model::score::Weights>,
}

impl NodeFile {
    /// Sets what the file (and environment) gave over `cfg`.
    pub fn apply(self, cfg: &mut super::NodeConfig) {
        if let Some(w) = self.workers {
            cfg.workers = w;
        }
        if let Some(g) = self.grace {
            cfg.grace = g;
        }
        if let Some(d) = self.durability {
            cfg.durability = d;
        }
        if let Some(c) = self.log_cap {
            cfg.log_cap = c;
        }
        if let Some(n) = self.snapshot_every {
            cfg.snapshot_every = n;
        }
        if let Some(t) = self.approval_timeout {
            cfg.approval_timeout = t;
        }
        cfg.approval_rules = self.approval_rules;
        if let Some(a) = self.http_addr {
            cfg.http_addr = a;
        }
        if let Some(t) = self.http_tokens_file {
            cfg.http.tokens_file = Some(t);
        }
        if let Some(i) = self.inbox {
            cfg.inbox = Some(i);
        }
        cfg.pools = self.pools;
        let h = &mut cfg.health;
        if let Some(v) = self.health_backlog {
            h.backlog = v;
        }
        if let Some(v) = self.health_error_rate {
            h.error_rate = v;
        }
        if let Some(v) = self.health_stalled_after {
            h.stalled_after = v;
        }
        if let Some(v) = self.health_min_free_disk {
            h.min_free_disk = v;
        }
        if let Some(v) = self.health_restart_window {
            h.restart_window = v;
        }
        if let Some(v) = self.retention_metrics {
            cfg.retention.metrics = v;
        }
        if self.retention_logs.is_some() {
            cfg.retention.logs = self.retention_logs;
        }
        if self.retention_runs.is_some() {
            cfg.retention.runs = self.retention_runs;
        }
        cfg.webhooks = self.webhooks;
        cfg.breakers = self.breakers;
        cfg.retry_policies = self.retry_policies;
        cfg.hooks = self.hooks;
        if let Some(w) = self.scheduling {
            cfg.scheduling = w;
        }
        cfg.agent_registry = self.agent_registry;
        if self.cluster.is_some() {
            cfg.cluster = self.cluster;
        }
        if let Some(s) = self.secrets {
            cfg.secrets = std::sync::Arc::new(s);
        }
        if let Some(a) = self.agents {
            cfg.agents =
                crate::model::authority::Authority::default().narrow(&a, &Default::default());
            // `[agents]` sets the node's own limits: it may raise the built-in numbers.
            if let Some(d) = a.max_depth {
                cfg.agents.max_depth = d;
            }
            if let Some(c) = a.max_children {
                cfg.agents.max_children = c;
            }
            if let Some(n) = a.max_descendants {
                cfg.agents.max_descendants = n;
            }
        }
    }
}
