//! The `[health]` section: thresholds of `troupe health`, and their type
//! ([`HealthThresholds`], read by the health checks in `troupe::telemetry::health`).

use std::time::Duration;

use toml::Spanned;

use super::file::NodeFile;
use super::parse::Spans;
use super::raw::RawHealth;
use super::ConfigError;

/// Health thresholds (`[health]` in `troupe.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthThresholds {
    /// Ready tasks waiting for a worker above which the node is degraded (default 20).
    pub backlog: u64,
    /// Share of tasks failing for good over the last hour above which the node is degraded
    /// (default 0.10).
    pub error_rate: f64,
    /// With work pending, no task ending for this long makes the node degraded (default 1 h).
    pub stalled_after: Duration,
    /// Free space on the data dir's file system below which the node is unhealthy (default
    /// 1 GiB), bytes.
    pub min_free_disk: u64,
    /// Actor restarts within this window make the node degraded (default 5 min).
    pub restart_window: Duration,
    /// How long the scheduler and the journal may take to answer (default 1 s).
    pub answer_within: Duration,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        HealthThresholds {
            backlog: 20,
            error_rate: 0.10,
            stalled_after: Duration::from_secs(3600),
            min_free_disk: 1 << 30,
            restart_window: Duration::from_secs(300),
            answer_within: Duration::from_secs(1),
        }
    }
}

/// Checks `[health]` into `out`.
pub(super) fn check(p: &Spans, h: &RawHealth, out: &mut NodeFile) -> Result<(), ConfigError> {
    let count = |v: &Option<Spanned<i64>>, field: &str| -> Result<Option<u64>, ConfigError> {
        match v {
            Some(v) if *v.get_ref() < 0 => Err(p.at(
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
            return Err(p.at(
                Some(r.span()),
                &format!("health.error_rate must be between 0 and 1 (got {v})"),
            ));
        }
        out.health_error_rate = Some(v);
    }
    if let Some(d) = &h.stalled_after {
        out.health_stalled_after = Some(p.duration(d, "health.stalled_after")?);
    }
    if let Some(d) = &h.restart_window {
        out.health_restart_window = Some(p.duration(d, "health.restart_window")?);
    }
    Ok(())
}
