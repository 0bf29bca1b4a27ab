//! The serde shapes of `troupe.toml`, each value with its span so errors can name its line and
//! column. Unknown keys are refused at every level.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub(super) workers: Option<Spanned<i64>>,
    pub(super) grace: Option<Spanned<String>>,
    pub(super) durability: Option<Spanned<String>>,
    pub(super) log_cap: Option<Spanned<i64>>,
    pub(super) snapshot_every: Option<Spanned<i64>>,
    pub(super) http_addr: Option<Spanned<String>>,
    /// `inbox`: the folder whose dropped workflow files are submitted.
    pub(super) inbox: Option<Spanned<String>>,
    pub(super) approval: Option<RawApproval>,
    pub(super) pools: Option<BTreeMap<String, Spanned<i64>>>,
    pub(super) health: Option<RawHealth>,
    pub(super) retention: Option<RawRetention>,
    #[serde(default)]
    pub(super) webhooks: Vec<Spanned<RawWebhook>>,
    /// `[agents]`: the node's default authority for agent trees.
    pub(super) agents: Option<Spanned<crate::model::authority::AuthorityFile>>,
    /// `[[agent]]`: the agent registry (`troupe delegate`).
    #[serde(default)]
    pub(super) agent: Vec<Spanned<RawAgent>>,
    /// `[cluster]`: remote worker nodes.
    pub(super) cluster: Option<Spanned<super::cluster::RawCluster>>,
    /// `[secrets]`: files holding the values of tasks' `secret_env`.
    pub(super) secrets: Option<super::secrets::RawSecrets>,
    /// `[[breakers]]`: circuit breakers.
    #[serde(default)]
    pub(super) breakers: Vec<Spanned<crate::model::resilience::BreakerFile>>,
    /// `[retry_policies.NAME]`: named retry policies.
    #[serde(default)]
    pub(super) retry_policies: BTreeMap<String, Spanned<super::resilience::RawRetryPolicy>>,
    /// `[[hooks]]`: commands run on events.
    #[serde(default)]
    pub(super) hooks: Vec<Spanned<crate::model::resilience::HookFile>>,
    /// `[http]`: tokens of the web UI and the HTTP API.
    pub(super) http: Option<super::http::RawHttp>,
    /// `[scheduling]`: priority scoring weights.
    pub(super) scheduling: Option<super::scheduling::RawScheduling>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub(super) name: Spanned<String>,
    pub(super) command: Option<Vec<String>>,
    pub(super) shell: Option<String>,
    pub(super) capabilities: Spanned<Vec<String>>,
    pub(super) max_concurrency: Option<Spanned<i64>>,
    pub(super) authority: Option<Spanned<crate::model::authority::AuthorityFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) backlog: Option<Spanned<i64>>,
    pub(super) error_rate: Option<Spanned<f64>>,
    pub(super) stalled_after: Option<Spanned<String>>,
    pub(super) min_free_disk: Option<Spanned<i64>>,
    pub(super) restart_window: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    pub(super) metrics: Option<Spanned<String>>,
    pub(super) logs: Option<Spanned<String>>,
    pub(super) runs: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebhook {
    pub(super) url: Spanned<String>,
    pub(super) events: Spanned<Vec<String>>,
    pub(super) timeout: Option<Spanned<String>>,
    pub(super) max_attempts: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApproval {
    pub(super) timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) pool: Option<String>,
    pub(super) label: Option<String>,
    pub(super) command: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
}
