//! Config text → [`NodeFile`]: the serde pass (unknown keys, types), then every value checked,
//! each error naming the file, line and column of the value.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

use super::file::NodeFile;
use super::raw::Raw;
use super::values::{check_workers, parse_http_addr};
use super::ConfigError;

/// The text being parsed and its name, to turn spans into `FILE:LINE:COLUMN: message`.
pub(super) struct Spans<'a> {
    /// The config text (already substituted).
    text: &'a str,
    /// The file name that prefixes every error.
    name: &'a str,
}

impl Spans<'_> {
    /// The error `msg` at `span` (`FILE:LINE:COLUMN: msg`; `FILE: msg` without a span).
    pub(super) fn at(&self, span: Option<Range<usize>>, msg: &str) -> ConfigError {
        let name = self.name;
        match span {
            Some(span) => {
                let (line, col) = line_col(self.text, span.start);
                ConfigError(format!("{name}:{line}:{col}: {msg}"))
            }
            None => ConfigError(format!("{name}: {msg}")),
        }
    }

    /// A duration value (humantime: `90s`, `1h 30m`) longer than 0 s; `field` names it in
    /// errors.
    pub(super) fn duration(
        &self,
        s: &Spanned<String>,
        field: &str,
    ) -> Result<Duration, ConfigError> {
        let d = humantime::parse_duration(s.get_ref()).map_err(|e| {
            self.at(
                Some(s.span()),
                &format!("{field}: `{}` is not a duration ({e})", s.get_ref()),
            )
        })?;
        if d.is_zero() {
            return Err(self.at(Some(s.span()), &format!("{field} must be longer than 0s")));
        }
        Ok(d)
    }
}

/// Parses config text (already substituted); `name` prefixes error positions.
pub fn parse(text: &str, name: &str) -> Result<NodeFile, ConfigError> {
    let p = Spans { text, name };
    let raw: Raw = toml::from_str(text).map_err(|e| p.at(e.span(), e.message()))?;
    let mut out = NodeFile::default();
    if let Some(w) = &raw.workers {
        out.workers = Some(check_workers(*w.get_ref()).map_err(|e| p.at(Some(w.span()), &e))?);
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
                return Err(p.at(
                    Some(v.span()),
                    &format!("{field} must not be negative (got {})", v.get_ref()),
                ));
            }
            *slot = Some(*v.get_ref() as u64);
        }
    }
    if let Some(g) = &raw.grace {
        out.grace = Some(humantime::parse_duration(g.get_ref()).map_err(|e| {
            p.at(
                Some(g.span()),
                &format!("grace: `{}` is not a duration ({e})", g.get_ref()),
            )
        })?);
    }
    if let Some(d) = &raw.durability {
        out.durability = Some(
            d.get_ref()
                .parse()
                .map_err(|e: String| p.at(Some(d.span()), &format!("durability: {e}")))?,
        );
    }
    if let Some(a) = &raw.http_addr {
        out.http_addr = Some(
            parse_http_addr(a.get_ref())
                .map_err(|e| p.at(Some(a.span()), &format!("http_addr: {e}")))?,
        );
    }
    for (name, cap) in raw.pools.iter().flatten() {
        let n = *cap.get_ref();
        if n < 1 || n > i64::from(u32::MAX) {
            return Err(p.at(
                Some(cap.span()),
                &format!("pools.{name} must be at least 1 (got {n})"),
            ));
        }
        out.pools.insert(name.clone(), n as u32);
    }
    if let Some(h) = &raw.health {
        super::health::check(&p, h, &mut out)?;
    }
    if let Some(r) = &raw.retention {
        if let Some(d) = &r.metrics {
            out.retention_metrics = Some(p.duration(d, "retention.metrics")?);
        }
        if let Some(d) = &r.logs {
            out.retention_logs = Some(p.duration(d, "retention.logs")?);
        }
        if let Some(d) = &r.runs {
            out.retention_runs = Some(p.duration(d, "retention.runs")?);
        }
    }
    super::webhooks::check(&p, &raw.webhooks, &mut out)?;
    super::resilience::check_breakers(&p, &raw.breakers, &mut out)?;
    super::resilience::check_retry_policies(&p, &raw.retry_policies, &mut out)?;
    super::resilience::check_hooks(&p, &raw.hooks, &mut out)?;
    let base = std::path::Path::new(name)
        .parent()
        .unwrap_or(std::path::Path::new(""));
    if let Some(i) = &raw.inbox {
        if i.get_ref().is_empty() {
            return Err(p.at(Some(i.span()), "inbox: the folder path is empty"));
        }
        out.inbox = Some(base.join(i.get_ref()));
    }
    if let Some(c) = &raw.cluster {
        out.cluster = super::cluster::check(&p, c, base)?;
    }
    if let Some(s) = &raw.secrets {
        out.secrets = Some(super::secrets::check(&p, s, base)?);
    }
    if let Some(a) = &raw.agents {
        let ask = a.get_ref().clone().into_ask();
        ask.check()
            .map_err(|e| p.at(Some(a.span()), &format!("[agents] {e}")))?;
        out.agents = Some(ask);
    }
    for a in &raw.agent {
        let a = a.get_ref();
        let name = a.name.get_ref();
        let at = |span: std::ops::Range<usize>, msg: String| {
            p.at(Some(span), &format!("[[agent]] {name:?}: {msg}"))
        };
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            return Err(at(
                a.name.span(),
                "give the agent a name without control characters".into(),
            ));
        }
        if out.agent_registry.iter().any(|x| &x.name == name) {
            return Err(at(a.name.span(), "another [[agent]] has this name".into()));
        }
        let command = match (&a.command, &a.shell) {
            (Some(argv), None) if !argv.is_empty() => crate::model::Command::Argv(argv.clone()),
            (None, Some(line)) if !line.trim().is_empty() => {
                crate::model::Command::Shell(line.clone())
            }
            _ => {
                return Err(at(
                    a.name.span(),
                    "set exactly one of `command = [...]` (not empty) or `shell = \"...\"`".into(),
                ))
            }
        };
        if a.capabilities.get_ref().is_empty() {
            return Err(at(
                a.capabilities.span(),
                "list at least one capability".into(),
            ));
        }
        let max_concurrency = match &a.max_concurrency {
            Some(m) if *m.get_ref() < 1 || *m.get_ref() > i64::from(u32::MAX) => {
                return Err(at(
                    m.span(),
                    format!("max_concurrency must be at least 1 (got {})", m.get_ref()),
                ))
            }
            Some(m) => Some(*m.get_ref() as u32),
            None => None,
        };
        let authority = match &a.authority {
            Some(x) => {
                let ask = x.get_ref().clone().into_ask();
                ask.check()
                    .map_err(|e| at(x.span(), format!("authority: {e}")))?;
                ask
            }
            None => Default::default(),
        };
        out.agent_registry.push(crate::model::routing::AgentSpec {
            name: name.clone(),
            command,
            capabilities: a.capabilities.get_ref().clone(),
            max_concurrency,
            authority,
        });
    }
    if let Some(approval) = &raw.approval {
        super::approval::check(&p, approval, &mut out)?;
    }
    if let Some(h) = &raw.http {
        super::http::check(&p, h, base, &mut out)?;
    }
    if let Some(s) = &raw.scheduling {
        super::scheduling::check(&p, s, &mut out)?;
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
}
