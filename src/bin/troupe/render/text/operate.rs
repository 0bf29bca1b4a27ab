//! Operating a node: the queue, pending approvals, dead letters, metrics of a window, health
//! checks.

use super::*;

/// The queue as a table, each task with its score (with the score's parts and why tasks are
/// held back when `verbose`): `troupe queue`.
pub(crate) fn print_queue(
    q: &QueueView,
    verbose: bool,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} queued{}, {} running on {} workers, {:.1} attempts/s over the last minute{}",
        q.total,
        if q.total > q.entries.len() as u64 {
            format!(" (first {} shown)", q.entries.len())
        } else {
            String::new()
        },
        q.running,
        q.workers,
        q.throughput,
        if q.halted { "; HALTED" } else { "" }
    )?;
    writeln!(
        out,
        "{:<40} {:<17} {:>5} {:>10} {:<10} {:>8} {:>10}{}",
        "RUN/TASK",
        "STATE",
        "PRIO",
        "SCORE",
        "POOL",
        "WAITING",
        "STARTS IN",
        if verbose {
            "  PRIORITY+DEADLINE+AGE+LABELS       BLOCKED"
        } else {
            ""
        }
    )?;
    for e in &q.entries {
        let starts = match e.estimated_start {
            Some(at) => short_duration(at.saturating_since(q.now)),
            None => "-".to_owned(),
        };
        write!(
            out,
            "{:<40} {:<17} {:>5} {:>10.1} {:<10} {:>8} {:>10}",
            format!("{}/{}", e.run, e.task),
            e.state.as_str(),
            e.priority,
            e.score.score,
            printable(e.pool.as_deref().unwrap_or("-")),
            short_duration(q.now.saturating_since(e.waiting_since)),
            starts
        )?;
        if verbose {
            let s = &e.score;
            let parts = format!(
                "{:.1} {:+.1} {:+.1} {:+.1}",
                s.priority, s.deadline, s.age, s.labels
            );
            write!(
                out,
                "  {parts:<34} {}",
                printable(e.blocked.as_deref().unwrap_or(""))
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// Pending approvals as a table, ages and expiries taken at `now`: `troupe approvals`.
pub(crate) fn print_approvals(
    list: &[PendingApproval],
    now: Timestamp,
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<40} {:<16} {:>8} {:>10}  COMMAND",
        "RUN/TASK", "WORKFLOW", "AGE", "EXPIRES IN"
    )?;
    let short = |d: Duration| {
        let s = d.as_secs();
        match s {
            0..60 => format!("{s}s"),
            60..3600 => format!("{}m", s / 60),
            3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
            _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
        }
    };
    for p in list {
        writeln!(
            out,
            "{:<40} {:<16} {:>8} {:>10}  {}",
            format!("{}/{}", p.run, p.task),
            printable(&p.workflow),
            short(now.saturating_since(p.requested_at)),
            short(p.expires_at.saturating_since(now)),
            printable(&p.command)
        )?;
    }
    Ok(())
}

/// Tasks failed for good as a table, each followed by its labels and the last lines of its
/// last attempt's log (`tail`, one entry per task, in the same order): `troupe failed`.
pub(crate) fn print_failed(
    list: &[FailedTask],
    tails: &[Vec<String>],
    out: &mut impl Write,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<40} {:<16} {:<18} {:>6} {:>8}  {:<24}  MESSAGE",
        "RUN/TASK", "WORKFLOW", "KIND", "STATUS", "ATTEMPTS", "FAILED AT"
    )?;
    for (f, tail) in list.iter().zip(tails) {
        let status = match (f.exit_code, f.signal) {
            (Some(code), _) => code.to_string(),
            (None, Some(signal)) => format!("SIG{signal}"),
            (None, None) => "-".to_owned(),
        };
        writeln!(
            out,
            "{:<40} {:<16} {:<18} {:>6} {:>8}  {:<24}  {}",
            format!("{}/{}", f.run, f.task),
            printable(&f.workflow),
            f.kind,
            status,
            f.attempts,
            f.failed_at.to_string(),
            printable(&f.message)
        )?;
        if !f.labels.is_empty() {
            writeln!(out, "    labels: {}", printable(&f.labels.join(", ")))?;
        }
        if !tail.is_empty() {
            writeln!(
                out,
                "    last {} line{} of attempt {}:",
                tail.len(),
                if tail.len() == 1 { "" } else { "s" },
                f.attempts
            )?;
            for line in tail {
                writeln!(out, "    | {}", printable(line))?;
            }
        }
    }
    Ok(())
}

/// Metrics of a window, overall then per pool: `troupe metrics`.
pub(crate) fn print_metrics(r: &MetricsReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "window: {} ({} to {}), {} buckets",
        humantime::format_duration(Duration::from_secs(r.window_secs)),
        r.from,
        r.to,
        r.buckets
    )?;
    writeln!(
        out,
        "{:<12} {:>10} {:>9} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "POOL", "TASKS/H", "SUCCEEDED", "FAILED", "ERRORS", "MEAN", "P50", "P95", "P99", "RETRIES"
    )?;
    let ms = |v: f64| {
        let d = Duration::from_micros((v * 1000.0) as u64);
        if v < 1000.0 {
            format!("{v:.0}ms")
        } else if v < 60_000.0 {
            format!("{:.1}s", d.as_secs_f64())
        } else {
            format!("{:.1}m", d.as_secs_f64() / 60.0)
        }
    };
    let rows = std::iter::once(&r.total).chain(r.pools.iter());
    for p in rows {
        let name = match p.pool.as_deref() {
            None => "(all)",
            Some("") => "(no pool)",
            Some(n) => n,
        };
        let name = printable(name);
        let (mean, p50, p95, p99) = match &p.latency {
            Some(l) => (ms(l.mean_ms), ms(l.p50_ms), ms(l.p95_ms), ms(l.p99_ms)),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        writeln!(
            out,
            "{:<12} {:>10.1} {:>9} {:>7} {:>7.1}% {:>9} {:>9} {:>9} {:>9} {:>8}",
            name,
            p.throughput_per_hour,
            p.counts.succeeded,
            p.counts.failed,
            p.error_rate * 100.0,
            mean,
            p50,
            p95,
            p99,
            p.counts.retries
        )?;
    }
    // Usage counters (TROUPE_USAGE), when any were reported in the window.
    let pools = std::iter::once(&r.total)
        .chain(r.pools.iter())
        .filter(|p| !p.usage.is_empty());
    for p in pools {
        let name = match p.pool.as_deref() {
            None => "(all)".to_owned(),
            Some("") => "pool (none)".to_owned(),
            Some(n) => format!("pool {}", printable(n)),
        };
        writeln!(out, "usage {name}: {}", usage_text(&p.usage))?;
    }
    for (label, usage) in &r.labels {
        writeln!(
            out,
            "usage label {}: {}",
            printable(label),
            usage_text(usage)
        )?;
    }
    Ok(())
}

/// The overall status, then one line per check: `troupe health`.
pub(crate) fn print_health(report: &HealthReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", report.status.as_str())?;
    for c in &report.checks {
        let mark = match c.status {
            Health::Healthy => "ok",
            Health::Degraded => "DEGRADED",
            Health::Unhealthy => "UNHEALTHY",
        };
        writeln!(
            out,
            "  {:<11} {:<9} {} (value {} {}, threshold {} {})",
            c.name,
            mark,
            c.message,
            num(c.value),
            c.unit,
            num(c.threshold),
            c.unit
        )?;
    }
    Ok(())
}
