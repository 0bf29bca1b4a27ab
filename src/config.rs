//! The node config file, `troupe.toml`.
//!
//! Read from `--config FILE` (env `TROUPE_CONFIG`), else from `DATA_DIR/troupe.toml` when that
//! file exists. Unknown keys are errors, reported with the file, line and column.
//!
//! Precedence, highest first: command-line flags, `TROUPE_*` environment variables
//! ([`ENV_OVERRIDES`]), the file, the built-in defaults (see [`crate::node::NodeConfig`]).
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
//! [[webhooks]]
//! url = "https://hooks.example.com/troupe"
//! events = ["task_failed", "run_finished", "approval_requested", "health_changed", "node_stopping"]
//! timeout = "5s"           # per request (optional)
//! max_attempts = 5         # per notice (optional)
//! ```
//! (Keys before the first table header belong to the top level: put `http_addr` and the
//! other plain keys above `[approval]` in a real file.)

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::actors::approval::ApprovalRule;
use crate::storage::Durability;
use crate::webhooks::{WebhookConfig, WebhookEvent};

/// Environment variables that override the file, and the setting each one sets.
pub const ENV_OVERRIDES: [(&str, &str); 7] = [
    ("TROUPE_HTTP_ADDR", "http_addr"),
    ("TROUPE_WORKERS", "workers"),
    ("TROUPE_GRACE", "grace"),
    ("TROUPE_DURABILITY", "durability"),
    ("TROUPE_LOG_CAP", "log_cap"),
    ("TROUPE_SNAPSHOT_EVERY", "snapshot_every"),
    ("TROUPE_APPROVAL_TIMEOUT", "approval.timeout"),
];

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
    /// `[[webhooks]]`, in file order.
    pub webhooks: Vec<WebhookConfig>,
}

impl NodeFile {
    /// Sets what the file (and environment) gave over `cfg`.
    pub fn apply(self, cfg: &mut crate::node::NodeConfig) {
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
        cfg.webhooks = self.webhooks;
    }
}

/// Parses an `http_addr` value: `HOST:PORT` with an IP host, or `off`.
pub fn parse_http_addr(v: &str) -> Result<Option<SocketAddr>, String> {
    if v == "off" {
        return Ok(None);
    }
    v.parse::<SocketAddr>().map(Some).map_err(|_| {
        format!("`{v}` is not an address: give IP:PORT (e.g. 127.0.0.1:9479) or \"off\"")
    })
}

/// A config file that cannot be used: `FILE:LINE:COLUMN: message` (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    workers: Option<Spanned<i64>>,
    grace: Option<Spanned<String>>,
    durability: Option<Spanned<String>>,
    log_cap: Option<Spanned<i64>>,
    snapshot_every: Option<Spanned<i64>>,
    http_addr: Option<Spanned<String>>,
    approval: Option<RawApproval>,
    pools: Option<BTreeMap<String, Spanned<i64>>>,
    health: Option<RawHealth>,
    retention: Option<RawRetention>,
    #[serde(default)]
    webhooks: Vec<Spanned<RawWebhook>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    backlog: Option<Spanned<i64>>,
    error_rate: Option<Spanned<f64>>,
    stalled_after: Option<Spanned<String>>,
    min_free_disk: Option<Spanned<i64>>,
    restart_window: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    metrics: Option<Spanned<String>>,
    logs: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Spanned<String>,
    events: Spanned<Vec<String>>,
    timeout: Option<Spanned<String>>,
    max_attempts: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    pool: Option<String>,
    label: Option<String>,
    command: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

/// The config file to read: `explicit` if given, else `DATA_DIR/troupe.toml` if it exists.
pub fn locate(explicit: Option<&Path>, data_dir: &Path) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => Some(data_dir.join("troupe.toml")).filter(|p| p.exists()),
    }
}

/// Largest config file read, in bytes (1 MiB; a config with hundreds of rules and webhooks
/// is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Checks a worker count from any source (file, `TROUPE_WORKERS`, `--workers`): 1 to
/// [`crate::node::MAX_WORKERS`].
pub fn check_workers(n: i64) -> Result<u32, String> {
    let max = crate::node::MAX_WORKERS;
    if (1..=i64::from(max)).contains(&n) {
        Ok(n as u32)
    } else {
        Err(format!("workers must be between 1 and {max} (got {n})"))
    }
}

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

/// Replaces `${VAR}` and `${VAR:-default}` outside comments (see the module docs); errors
/// name the file, line and column of the `${`.
pub fn substitute(
    text: &str,
    name: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        let mut col = 1;
        let mut quote: Option<char> = None;
        while let Some(c) = rest.chars().next() {
            let at = |msg: String| ConfigError(format!("{name}:{}:{col}: {msg}", n + 1));
            if quote.is_none() && c == '#' {
                out.push_str(rest);
                break;
            }
            if rest.starts_with("$${") {
                out.push_str("${");
                rest = &rest[3..];
                col += 3;
                continue;
            }
            if rest.starts_with("${") {
                let end = rest
                    .find('}')
                    .ok_or_else(|| at("`${` without a closing `}`".into()))?;
                let inner = &rest[2..end];
                let (var, default) = match inner.split_once(":-") {
                    Some((v, d)) => (v, Some(d)),
                    None => (inner, None),
                };
                let valid = var
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(at(format!(
                        "`${{{inner}}}`: `{var}` is not a variable name (letters, digits, `_`)"
                    )));
                }
                let value = match (env(var), default) {
                    (Some(v), Some(d)) if v.is_empty() => d.to_owned(),
                    (Some(v), _) => v,
                    (None, Some(d)) => d.to_owned(),
                    (None, None) => {
                        return Err(at(format!(
                            "`${{{var}}}`: the environment variable {var} is not set (set it, or \
                             give a default: `${{{var}:-value}}`)"
                        )))
                    }
                };
                out.push_str(&value);
                col += rest[..=end].chars().count();
                rest = &rest[end + 1..];
                continue;
            }
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                _ => {}
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
            col += 1;
        }
    }
    Ok(out)
}

/// Applies the `TROUPE_*` overrides found by `env` (see [`ENV_OVERRIDES`]) over `file`.
pub fn apply_env(
    mut file: NodeFile,
    env: impl Fn(&str) -> Option<String>,
) -> Result<NodeFile, ConfigError> {
    let bad = |var: &str, v: &str, why: String| ConfigError(format!("{var}={v}: {why}"));
    for (var, _) in ENV_OVERRIDES {
        let Some(v) = env(var) else { continue };
        match var {
            "TROUPE_HTTP_ADDR" => {
                file.http_addr = Some(parse_http_addr(&v).map_err(|e| bad(var, &v, e))?);
            }
            "TROUPE_WORKERS" => {
                let n: i64 = v
                    .parse()
                    .map_err(|e| bad(var, &v, format!("not a worker count ({e})")))?;
                file.workers = Some(check_workers(n).map_err(|e| bad(var, &v, e))?);
            }
            "TROUPE_GRACE" => {
                file.grace = Some(
                    humantime::parse_duration(&v)
                        .map_err(|e| bad(var, &v, format!("not a duration ({e})")))?,
                )
            }
            "TROUPE_DURABILITY" => {
                file.durability = Some(v.parse().map_err(|e: String| bad(var, &v, e))?)
            }
            "TROUPE_LOG_CAP" => {
                file.log_cap = Some(
                    v.parse()
                        .map_err(|e| bad(var, &v, format!("not a byte count ({e})")))?,
                )
            }
            "TROUPE_SNAPSHOT_EVERY" => {
                file.snapshot_every = Some(
                    v.parse()
                        .map_err(|e| bad(var, &v, format!("not an event count ({e})")))?,
                )
            }
            "TROUPE_APPROVAL_TIMEOUT" => {
                let d = humantime::parse_duration(&v)
                    .map_err(|e| bad(var, &v, format!("not a duration ({e})")))?;
                if d.is_zero() {
                    return Err(bad(var, &v, "must be longer than 0s".into()));
                }
                file.approval_timeout = Some(d);
            }
            _ => unreachable!("listed above"),
        }
    }
    Ok(file)
}

/// The effective settings as a `troupe.toml` (what `troupe node start --print-config`
/// prints).
pub fn render(cfg: &crate::node::NodeConfig) -> String {
    #[derive(serde::Serialize)]
    struct Rule<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        pool: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        label: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout: Option<String>,
    }
    #[derive(serde::Serialize)]
    struct Approval<'a> {
        timeout: String,
        rule: Vec<Rule<'a>>,
    }
    #[derive(serde::Serialize)]
    struct Health {
        backlog: u64,
        error_rate: f64,
        stalled_after: String,
        min_free_disk: u64,
        restart_window: String,
    }
    #[derive(serde::Serialize)]
    struct Retention {
        metrics: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        logs: Option<String>,
    }
    #[derive(serde::Serialize)]
    struct Hook<'a> {
        url: &'a str,
        events: Vec<&'static str>,
        timeout: String,
        max_attempts: u32,
    }
    #[derive(serde::Serialize)]
    struct Out<'a> {
        workers: u32,
        grace: String,
        durability: &'static str,
        log_cap: u64,
        snapshot_every: u64,
        http_addr: String,
        pools: &'a BTreeMap<String, u32>,
        health: Health,
        retention: Retention,
        approval: Approval<'a>,
        webhooks: Vec<Hook<'a>>,
    }
    let human = |d: Duration| humantime::format_duration(d).to_string();
    let out = Out {
        workers: cfg.workers,
        grace: human(cfg.grace),
        durability: match cfg.durability {
            Durability::Sync => "sync",
            Durability::Buffered => "buffered",
        },
        log_cap: cfg.log_cap,
        snapshot_every: cfg.snapshot_every,
        http_addr: cfg
            .http_addr
            .map_or_else(|| "off".to_string(), |a| a.to_string()),
        pools: &cfg.pools,
        health: Health {
            backlog: cfg.health.backlog,
            error_rate: cfg.health.error_rate,
            stalled_after: human(cfg.health.stalled_after),
            min_free_disk: cfg.health.min_free_disk,
            restart_window: human(cfg.health.restart_window),
        },
        retention: Retention {
            metrics: human(cfg.retention.metrics),
            logs: cfg.retention.logs.map(human),
        },
        webhooks: cfg
            .webhooks
            .iter()
            .map(|w| Hook {
                url: w.url.as_str(),
                events: w.events.iter().map(|e| e.as_str()).collect(),
                timeout: human(w.timeout),
                max_attempts: w.max_attempts,
            })
            .collect(),
        approval: Approval {
            timeout: human(cfg.approval_timeout),
            rule: cfg
                .approval_rules
                .iter()
                .map(|r| Rule {
                    pool: r.pool.as_deref(),
                    label: r.label.as_deref(),
                    command: r.command.as_ref().map(|g| g.as_str()),
                    timeout: r.timeout.map(human),
                })
                .collect(),
        },
    };
    toml::to_string(&out).expect("plain values serialize")
}

/// Parses config text (already substituted); `name` prefixes error positions.
pub fn parse(text: &str, name: &str) -> Result<NodeFile, ConfigError> {
    let at = |span: Option<Range<usize>>, msg: &str| -> ConfigError {
        match span {
            Some(span) => {
                let (line, col) = line_col(text, span.start);
                ConfigError(format!("{name}:{line}:{col}: {msg}"))
            }
            None => ConfigError(format!("{name}: {msg}")),
        }
    };
    let raw: Raw = toml::from_str(text).map_err(|e| at(e.span(), e.message()))?;
    let mut out = NodeFile::default();
    if let Some(w) = &raw.workers {
        out.workers = Some(check_workers(*w.get_ref()).map_err(|e| at(Some(w.span()), &e))?);
    }
    for (field, value, slot) in [
        ("log_cap", &raw.log_cap, &mut out.log_cap),
        (
            "snapshot_every",
            &raw.snapshot_every,
            &mut out.snapshot_every,
        ),
    ] {
        if let Some(v) = value {
            if *v.get_ref() < 0 {
                return Err(at(
                    Some(v.span()),
                    &format!("{field} must not be negative (got {})", v.get_ref()),
                ));
            }
            *slot = Some(*v.get_ref() as u64);
        }
    }
    if let Some(g) = &raw.grace {
        out.grace = Some(humantime::parse_duration(g.get_ref()).map_err(|e| {
            at(
                Some(g.span()),
                &format!("grace: `{}` is not a duration ({e})", g.get_ref()),
            )
        })?);
    }
    if let Some(d) = &raw.durability {
        out.durability = Some(
            d.get_ref()
                .parse()
                .map_err(|e: String| at(Some(d.span()), &format!("durability: {e}")))?,
        );
    }
    let duration = |s: &Spanned<String>, field: &str| -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(s.get_ref()).map_err(|e| {
            at(
                Some(s.span()),
                &format!("{field}: `{}` is not a duration ({e})", s.get_ref()),
            )
        })?;
        if d.is_zero() {
            return Err(at(
                Some(s.span()),
                &format!("{field} must be longer than 0s"),
            ));
        }
        Ok(d)
    };
    if let Some(a) = &raw.http_addr {
        out.http_addr = Some(
            parse_http_addr(a.get_ref())
                .map_err(|e| at(Some(a.span()), &format!("http_addr: {e}")))?,
        );
    }
    for (name, cap) in raw.pools.iter().flatten() {
        let n = *cap.get_ref();
        if n < 1 || n > i64::from(u32::MAX) {
            return Err(at(
                Some(cap.span()),
                &format!("pools.{name} must be at least 1 (got {n})"),
            ));
        }
        out.pools.insert(name.clone(), n as u32);
    }
    if let Some(h) = &raw.health {
        let count = |v: &Option<Spanned<i64>>, field: &str| -> Result<Option<u64>, ConfigError> {
            match v {
                Some(v) if *v.get_ref() < 0 => Err(at(
                    Some(v.span()),
                    &format!("health.{field} must not be negative (got {})", v.get_ref()),
                )),
                Some(v) => Ok(Some(*v.get_ref() as u64)),
                None => Ok(None),
            }
        };
        out.health_backlog = count(&h.backlog, "backlog")?;
        out.health_min_free_disk = count(&h.min_free_disk, "min_free_disk")?;
        if let Some(r) = &h.error_rate {
            let v = *r.get_ref();
            if !(0.0..=1.0).contains(&v) {
                return Err(at(
                    Some(r.span()),
                    &format!("health.error_rate must be between 0 and 1 (got {v})"),
                ));
            }
            out.health_error_rate = Some(v);
        }
        if let Some(d) = &h.stalled_after {
            out.health_stalled_after = Some(duration(d, "health.stalled_after")?);
        }
        if let Some(d) = &h.restart_window {
            out.health_restart_window = Some(duration(d, "health.restart_window")?);
        }
    }
    if let Some(r) = &raw.retention {
        if let Some(d) = &r.metrics {
            out.retention_metrics = Some(duration(d, "retention.metrics")?);
        }
        if let Some(d) = &r.logs {
            out.retention_logs = Some(duration(d, "retention.logs")?);
        }
    }
    for (i, hook) in raw.webhooks.iter().enumerate() {
        let h = hook.get_ref();
        let which = format!("webhooks[{i}]");
        let url = reqwest::Url::parse(h.url.get_ref())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                at(
                    Some(h.url.span()),
                    &format!("{which}.url `{}` is not an http(s) URL", h.url.get_ref()),
                )
            })?;
        let mut events = Vec::new();
        for e in h.events.get_ref() {
            let ev = WebhookEvent::ALL
                .into_iter()
                .find(|w| w.as_str() == e)
                .ok_or_else(|| {
                    at(
                        Some(h.events.span()),
                        &format!(
                            "{which}.events: unknown event `{e}` (expected one of {})",
                            WebhookEvent::ALL.map(|w| w.as_str()).join(", ")
                        ),
                    )
                })?;
            events.push(ev);
        }
        if events.is_empty() {
            return Err(at(
                Some(h.events.span()),
                &format!("{which}.events is empty: name at least one event"),
            ));
        }
        let mut w = WebhookConfig::new(url, events);
        if let Some(t) = &h.timeout {
            w.timeout = duration(t, &format!("{which}.timeout"))?;
        }
        if let Some(n) = &h.max_attempts {
            let v = *n.get_ref();
            if !(1..=100).contains(&v) {
                return Err(at(
                    Some(n.span()),
                    &format!("{which}.max_attempts must be between 1 and 100 (got {v})"),
                ));
            }
            w.max_attempts = v as u32;
        }
        out.webhooks.push(w);
    }
    let Some(approval) = raw.approval else {
        return Ok(out);
    };
    if let Some(t) = &approval.timeout {
        out.approval_timeout = Some(duration(t, "approval.timeout")?);
    }
    for (i, rule) in approval.rule.iter().enumerate() {
        let span = rule.span();
        let r = rule.get_ref();
        let which = format!("approval.rule[{i}]");
        if r.pool.is_none() && r.label.is_none() && r.command.is_none() {
            return Err(at(
                Some(span),
                &format!(
                    "{which} matches nothing: give at least one of `pool`, `label`, `command`"
                ),
            ));
        }
        for (field, value) in [("pool", &r.pool), ("label", &r.label)] {
            if let Some(v) = value {
                let ok = !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
                if !ok {
                    return Err(at(
                        Some(span.clone()),
                        &format!(
                            "{which}.{field} `{v}` may only use letters, digits, `_`, `.` and `-`"
                        ),
                    ));
                }
            }
        }
        let command = match &r.command {
            Some(c) => Some(glob::Pattern::new(c.get_ref()).map_err(|e| {
                at(
                    Some(c.span()),
                    &format!("{which}.command `{}` is not a valid glob: {e}", c.get_ref()),
                )
            })?),
            None => None,
        };
        let timeout = match &r.timeout {
            Some(t) => Some(duration(t, &format!("{which}.timeout"))?),
            None => None,
        };
        out.approval_rules.push(ApprovalRule {
            pool: r.pool.clone(),
            label: r.label.clone(),
            command,
            timeout,
        });
    }
    Ok(out)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse() {
        let f = parse(
            "[approval]\ntimeout = \"2h\"\n[[approval.rule]]\npool = \"prod\"\n\
             [[approval.rule]]\ncommand = \"kubectl *\"\ntimeout = \"5m\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(f.approval_timeout, Some(Duration::from_secs(7200)));
        assert_eq!(f.approval_rules.len(), 2);
        assert!(f.approval_rules[1]
            .command
            .as_ref()
            .unwrap()
            .matches("kubectl apply -f x"));
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn substitution_forms() {
        let e = env(&[("A", "8"), ("EMPTY", "")]);
        let t =
            "workers = ${A}\ngrace = \"${B:-3s}\"  # ${NOT_EXPANDED}\nx = \"${EMPTY:-d}$${A}\"\n";
        assert_eq!(
            substitute(t, "t.toml", &e).unwrap(),
            "workers = 8\ngrace = \"3s\"  # ${NOT_EXPANDED}\nx = \"d${A}\"\n"
        );
        let err = |t: &str| substitute(t, "t.toml", &e).unwrap_err().to_string();
        assert!(err("a = 1\nb = \"x${UNSET}\"\n")
            .starts_with("t.toml:2:7: `${UNSET}`: the environment variable UNSET is not set"));
        assert!(err("a = ${1X}\n").starts_with("t.toml:1:5: `${1X}`"));
        assert!(err("a = ${A\n").starts_with("t.toml:1:5: `${` without"));
    }

    #[test]
    fn node_settings_and_env_overrides() {
        let f = parse(
            "workers = 4\ngrace = \"2s\"\ndurability = \"buffered\"\nlog_cap = 1024\nsnapshot_every = 0\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(f.workers, Some(4));
        assert_eq!(f.durability, Some(Durability::Buffered));
        let f = apply_env(f, env(&[("TROUPE_WORKERS", "6"), ("TROUPE_GRACE", "1s")])).unwrap();
        assert_eq!(f.workers, Some(6));
        assert_eq!(f.grace, Some(Duration::from_secs(1)));
        for (var, value, want) in [
            (
                "TROUPE_WORKERS",
                "0",
                "TROUPE_WORKERS=0: workers must be between 1 and 10000 (got 0)",
            ),
            (
                "TROUPE_WORKERS",
                "many",
                "TROUPE_WORKERS=many: not a worker count",
            ),
            (
                "TROUPE_DURABILITY",
                "fast",
                "TROUPE_DURABILITY=fast: unknown durability",
            ),
            (
                "TROUPE_APPROVAL_TIMEOUT",
                "0s",
                "TROUPE_APPROVAL_TIMEOUT=0s: must be longer",
            ),
        ] {
            let e = apply_env(NodeFile::default(), env(&[(var, value)])).unwrap_err();
            assert!(e.to_string().starts_with(want), "{e}");
        }
    }

    #[test]
    fn bad_node_settings_name_their_line() {
        let cases = [
            (
                "workers = 0\n",
                "t.toml:1:11: workers must be between 1 and 10000 (got 0)",
            ),
            (
                "workers = -3\n",
                "t.toml:1:11: workers must be between 1 and 10000 (got -3)",
            ),
            (
                "grace = \"soon\"\n",
                "t.toml:1:9: grace: `soon` is not a duration",
            ),
            (
                "durability = \"fast\"\n",
                "t.toml:1:14: durability: unknown durability `fast`",
            ),
            (
                "log_cap = -1\n",
                "t.toml:1:11: log_cap must not be negative",
            ),
            ("wrokers = 2\n", "t.toml:1:1: unknown field `wrokers`"),
        ];
        for (text, want) in cases {
            let e = parse(text, "t.toml").unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: got {e}");
        }
    }

    #[test]
    fn rendered_config_reads_back() {
        let mut cfg = crate::node::NodeConfig::new("/tmp/x");
        cfg.workers = 3;
        cfg.approval_rules = parse("[[approval.rule]]\npool = \"p\"\ncommand = \"rm *\"\n", "t")
            .unwrap()
            .approval_rules;
        let text = render(&cfg);
        let f = parse(&text, "rendered").unwrap();
        assert_eq!(f.workers, Some(3));
        assert_eq!(f.approval_rules.len(), 1);
        assert_eq!(f.approval_timeout, Some(cfg.approval_timeout));
    }

    #[test]
    fn bad_rules_name_their_line() {
        let cases = [
            (
                "[approval]\n[[approval.rule]]\nbogus = 1\n",
                "t.toml:3:1: unknown field `bogus`",
            ),
            (
                "[approval]\n[[approval.rule]]\ntimeout = \"1h\"\n",
                "t.toml:2:1: approval.rule[0] matches nothing",
            ),
            (
                "[approval]\n[[approval.rule]]\ncommand = \"[oops\"\n",
                "t.toml:3:11: approval.rule[0].command `[oops` is not a valid glob",
            ),
            (
                "[approval]\ntimeout = \"soon\"\n",
                "t.toml:2:11: approval.timeout: `soon` is not a duration",
            ),
            (
                "[approval]\n[[approval.rule]]\nlabel = \"a b\"\n",
                "t.toml:2:1: approval.rule[0].label `a b` may only",
            ),
            ("[aproval]\n", "t.toml:1:2: unknown field `aproval`"),
        ];
        for (text, want) in cases {
            let e = parse(text, "t.toml").unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: got {e}");
        }
    }
}
