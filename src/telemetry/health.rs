//! Health: the checks behind `troupe health` and `health_changed` webhooks, and readiness
//! (`/readyz`). Their thresholds, [`HealthThresholds`], are config (`crate::config`) and are
//! re-exported here under their former path.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::NodeContext;
use crate::messages::control::{Health, HealthCheck, HealthReport, NodeView, Request, Response};
use crate::model::Timestamp;
use crate::read::metrics::metrics_report;

pub use crate::config::HealthThresholds;

fn check(
    name: &str,
    failing: Health,
    failed: bool,
    value: f64,
    threshold: f64,
    unit: &str,
    message: String,
) -> HealthCheck {
    HealthCheck {
        name: name.into(),
        status: if failed { failing } else { Health::Healthy },
        value,
        threshold,
        unit: unit.into(),
        message,
    }
}

/// Free bytes for unprivileged users on the file system holding `path`.
fn free_disk(path: &std::path::Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}

/// Runs every health check (each bounded by `answer_within`) and grades the node.
///
/// | check | fails when | makes the node |
/// |---|---|---|
/// | `scheduler` | it does not answer within 1 s | unhealthy |
/// | `dispatch` | an append failed (disk full): dispatch halted until `unhalt` | unhealthy |
/// | `journal` | a probe write does not succeed within 1 s | unhealthy |
/// | `disk` | free space below `min_free_disk` | unhealthy |
/// | `backlog` | ready tasks waiting for a worker above `backlog` | degraded |
/// | `error_rate` | tasks failing for good over the last hour above `error_rate` | degraded |
/// | `stalled` | work pending and no task ended for `stalled_after` | degraded |
/// | `restarts` | any actor restart within `restart_window` | degraded |
pub async fn evaluate_health(shared: &Arc<NodeContext>) -> HealthReport {
    let t = &shared.config.health;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let mut checks = Vec::new();
    let limit_ms = t.answer_within.as_secs_f64() * 1000.0;

    // Scheduler.
    let started = Instant::now();
    let node: Option<NodeView> = match tokio::time::timeout(t.answer_within, async {
        shared.scheduler_barrier(None).await?;
        shared.request(Request::Node).await
    })
    .await
    {
        Ok(Ok(Response::Node(v))) => Some(v),
        _ => None,
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    checks.push(check(
        "scheduler",
        Health::Unhealthy,
        node.is_none(),
        ms,
        limit_ms,
        "ms",
        match &node {
            Some(_) => format!("answered in {ms:.1} ms"),
            None => format!("did not answer within {limit_ms:.0} ms"),
        },
    ));

    // Dispatch after a failed append (disk full): halted until `unhalt`.
    let fault = shared.facts.fault();
    checks.push(check(
        "dispatch",
        Health::Unhealthy,
        fault.is_some(),
        f64::from(u8::from(fault.is_some())),
        0.0,
        "faults",
        match &fault {
            Some(why) => format!(
                "halted: the journal refused a write ({why}); free space, then `troupe unhalt`"
            ),
            None => "no journal write failed".into(),
        },
    ));

    // Journal.
    let started = Instant::now();
    let probe = match shared.journal_ref() {
        Some(j) => tokio::time::timeout(t.answer_within, j.probe())
            .await
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r.map_err(|e| e.to_string())),
        None => Err("the journal actor is not running".into()),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    checks.push(check(
        "journal",
        Health::Unhealthy,
        probe.is_err(),
        ms,
        limit_ms,
        "ms",
        match &probe {
            Ok(()) => format!("probe write took {ms:.1} ms"),
            Err(e) => format!("not writable: {e}"),
        },
    ));

    // Disk.
    let free = free_disk(&shared.config.data_dir);
    checks.push(check(
        "disk",
        Health::Unhealthy,
        free.is_none_or(|f| f < t.min_free_disk),
        free.unwrap_or(0) as f64,
        t.min_free_disk as f64,
        "bytes",
        match free {
            Some(f) => format!("{} free", bytes_text(f)),
            None => "cannot read the file system's free space".into(),
        },
    ));

    // Backlog and stalled work (from the scheduler's view).
    if let Some(v) = &node {
        checks.push(check(
            "backlog",
            Health::Degraded,
            v.queued_tasks > t.backlog,
            v.queued_tasks as f64,
            t.backlog as f64,
            "tasks",
            format!("{} ready tasks waiting for a worker", v.queued_tasks),
        ));
        let idle = now.saturating_since(v.last_progress);
        let pending = v.waiting_tasks + u64::from(v.running_attempts) > 0;
        checks.push(check(
            "stalled",
            Health::Degraded,
            pending && idle >= t.stalled_after,
            idle.as_secs_f64(),
            t.stalled_after.as_secs_f64(),
            "s",
            if pending {
                format!(
                    "{} tasks pending; last task end or new work {} ago",
                    v.waiting_tasks + u64::from(v.running_attempts),
                    humantime::format_duration(Duration::from_secs(idle.as_secs()))
                )
            } else {
                "no work pending".into()
            },
        ));
    }

    // Error rate over the last hour (durable rollups).
    let journal = shared.journal.clone();
    let hour = Duration::from_secs(3600);
    let report = tokio::task::spawn_blocking(move || metrics_report(&journal, now, hour)).await;
    match report
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
    {
        Ok(r) => {
            let ended = r.total.counts.succeeded + r.total.counts.failed;
            checks.push(check(
                "error_rate",
                Health::Degraded,
                r.total.error_rate > t.error_rate,
                r.total.error_rate,
                t.error_rate,
                "ratio",
                format!(
                    "{} of {ended} tasks failed in the last hour",
                    r.total.counts.failed
                ),
            ));
        }
        Err(e) => checks.push(check(
            "error_rate",
            Health::Degraded,
            true,
            0.0,
            t.error_rate,
            "ratio",
            format!("cannot read the rollups: {e}"),
        )),
    }

    // Restarts.
    let n = shared.metrics.restarts_within(t.restart_window);
    checks.push(check(
        "restarts",
        Health::Degraded,
        n > 0,
        n as f64,
        0.0,
        "restarts",
        format!(
            "{n} actor restarts in the last {}",
            humantime::format_duration(t.restart_window)
        ),
    ));

    let status = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Health::Healthy);
    HealthReport {
        status,
        now,
        checks,
    }
}

/// `1.5 GiB`-style text for a byte count.
fn bytes_text(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// Readiness: the journal takes a probe write and the scheduler answers, each within
/// `answer_within`. `Err` names the failing part.
pub async fn ready(shared: &Arc<NodeContext>) -> Result<(), String> {
    let within = shared.config.health.answer_within;
    match shared.journal_ref() {
        Some(j) => match tokio::time::timeout(within, j.probe()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("journal not writable: {e}")),
            Err(_) => return Err("journal did not answer within 1 s".into()),
        },
        None => return Err("journal actor not running".into()),
    }
    match tokio::time::timeout(within, shared.scheduler_barrier(None)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("scheduler unavailable: {e}")),
        Err(_) => Err("scheduler did not answer within 1 s".into()),
    }
}
