//! The `[health]` section: thresholds of `troupe health`.

use toml::Spanned;

use super::file::NodeFile;
use super::parse::Spans;
use super::raw::RawHealth;
use super::ConfigError;

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
