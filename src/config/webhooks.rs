//! The `[[webhooks]]` entries: URL, events, per-request timeout, attempts per notice.

use toml::Spanned;

use super::file::NodeFile;
use super::parse::Spans;
use super::raw::RawWebhook;
use super::ConfigError;
use crate::telemetry::webhooks::{WebhookConfig, WebhookEvent};

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
