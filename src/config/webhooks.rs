//! The `[[webhooks]]` entries: URL, events, per-request timeout, attempts per notice, and
//! their types ([`WebhookConfig`], [`WebhookEvent`]; the sender in
//! `troupe::telemetry::webhooks` delivers them and re-exports them under their former paths).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::file::NodeFile;
use super::parse::Spans;
use super::raw::RawWebhook;
use super::ConfigError;

/// Something a webhook can subscribe to. Config and JSON spelling: snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A task failed for good.
    TaskFailed,
    /// A run finished (any final state).
    RunFinished,
    /// A task awaits approval.
    ApprovalRequested,
    /// The node's health status changed.
    HealthChanged,
    /// The node began a graceful stop.
    NodeStopping,
    /// A circuit breaker opened (tripped, or a half-open probe failed).
    BreakerOpened,
    /// A circuit breaker closed (its probes succeeded, or an operator reset it).
    BreakerClosed,
}

impl WebhookEvent {
    /// Every event.
    pub const ALL: [WebhookEvent; 7] = [
        WebhookEvent::TaskFailed,
        WebhookEvent::RunFinished,
        WebhookEvent::ApprovalRequested,
        WebhookEvent::HealthChanged,
        WebhookEvent::NodeStopping,
        WebhookEvent::BreakerOpened,
        WebhookEvent::BreakerClosed,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::TaskFailed => "task_failed",
            WebhookEvent::RunFinished => "run_finished",
            WebhookEvent::ApprovalRequested => "approval_requested",
            WebhookEvent::HealthChanged => "health_changed",
            WebhookEvent::NodeStopping => "node_stopping",
            WebhookEvent::BreakerOpened => "breaker_opened",
            WebhookEvent::BreakerClosed => "breaker_closed",
        }
    }
}

/// One `[[webhooks]]` entry of `troupe.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookConfig {
    /// Where to POST (http or https).
    pub url: reqwest::Url,
    /// What to send there.
    pub events: Vec<WebhookEvent>,
    /// Per-request timeout (default 5 s).
    pub timeout: Duration,
    /// Attempts per notice, the first included (default 5).
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time (default 1 s).
    pub backoff: Duration,
}

impl WebhookConfig {
    /// Defaults for `url` and `events`.
    pub fn new(url: reqwest::Url, events: Vec<WebhookEvent>) -> Self {
        WebhookConfig {
            url,
            events,
            timeout: Duration::from_secs(5),
            max_attempts: 5,
            backoff: Duration::from_secs(1),
        }
    }
}

/// Checks every `[[webhooks]]` entry, in file order, into `out`.
pub(super) fn check(
    p: &Spans,
    webhooks: &[Spanned<RawWebhook>],
    out: &mut NodeFile,
) -> Result<(), ConfigError> {
    for (i, hook) in webhooks.iter().enumerate() {
        let h = hook.get_ref();
        let which = format!("webhooks[{i}]");
        let url = reqwest::Url::parse(h.url.get_ref())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                p.at(
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
                    p.at(
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
            return Err(p.at(
                Some(h.events.span()),
                &format!("{which}.events is empty: name at least one event"),
            ));
        }
        let mut w = WebhookConfig::new(url, events);
        if let Some(t) = &h.timeout {
            w.timeout = p.duration(t, &format!("{which}.timeout"))?;
        }
        if let Some(n) = &h.max_attempts {
            let v = *n.get_ref();
            if !(1..=100).contains(&v) {
                return Err(p.at(
                    Some(n.span()),
                    &format!("{which}.max_attempts must be between 1 and 100 (got {v})"),
                ));
            }
            w.max_attempts = v as u32;
        }
        out.webhooks.push(w);
    }
    Ok(())
}
