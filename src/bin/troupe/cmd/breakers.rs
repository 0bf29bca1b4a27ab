//! `troupe breakers [--json]`: every circuit breaker, its state and configuration (the read
//! model's [`Request::Breakers`]); `troupe breakers reset NAME`: closes one by hand (a
//! journaled `breaker_closed`, reason `reset by USER`).
//!
//! Exit codes: 0; `reset` of an unknown breaker 2 (the known ones are named), of a closed one
//! 2; 3 when no node answers.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;
use troupe::messages::control::{BreakerView, Request, Response};
use troupe::model::quote::printable;

use crate::common::{block, connect, unexpected};

/// `troupe breakers [--json]`.
pub(crate) fn list(data_dir: &Path, json: bool) -> ExitCode {
    block("breakers", async move {
        let mut conn = connect(data_dir).await?;
        let list = match conn.request(Request::Breakers).await? {
            Response::Breakers(list) => list,
            r => return Err(unexpected(r)),
        };
        let mut out = std::io::stdout().lock();
        if json {
            let all: Vec<_> = list.iter().map(breaker_json).collect();
            let _ = writeln!(out, "{}", serde_json::Value::Array(all));
            return Ok(ExitCode::SUCCESS);
        }
        if list.is_empty() {
            let _ = writeln!(
                out,
                "no circuit breakers (add [[breakers]] to troupe.toml or a workflow)"
            );
            return Ok(ExitCode::SUCCESS);
        }
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:>7} {:>6}  {:<30} TRIP",
            "BREAKER", "STATE", "WAITING", "OPENED", "SCOPE"
        );
        for b in &list {
            let trip = match (b.failure_rate, b.consecutive_failures) {
                (Some(r), Some(n)) => format!(
                    "{r} of last {} (min {}) or {n} in a row",
                    b.window, b.min_attempts
                ),
                (Some(r), None) => format!("{r} of last {} (min {})", b.window, b.min_attempts),
                (None, Some(n)) => format!("{n} in a row"),
                (None, None) => "-".into(),
            };
            let _ = writeln!(
                out,
                "{:<24} {:<10} {:>7} {:>6}  {:<30} {trip}",
                printable(&b.name),
                b.state,
                b.waiting,
                b.opened,
                printable(&b.scope)
            );
            match (&b.state[..], b.until, &b.reason) {
                ("open", Some(until), Some(reason)) => {
                    let _ = writeln!(out, "  open until {until}: {}", printable(reason));
                }
                (_, _, Some(reason)) => {
                    let _ = writeln!(
                        out,
                        "  {} since {}: {}",
                        b.state,
                        b.since.map(|s| s.to_string()).unwrap_or_default(),
                        printable(reason)
                    );
                }
                _ => {}
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// One breaker as `troupe breakers --json` prints it.
fn breaker_json(b: &BreakerView) -> serde_json::Value {
    json!({
        "name": b.name,
        "state": b.state,
        "scope": b.scope,
        "since": b.since.map(|t| t.to_string()),
        "until": b.until.map(|t| t.to_string()),
        "reason": b.reason,
        "opened": b.opened,
        "waiting": b.waiting,
        "failure_rate": b.failure_rate,
        "window": b.window,
        "min_attempts": b.min_attempts,
        "consecutive_failures": b.consecutive_failures,
        "open_for_ms": b.open_for_ms,
        "half_open_probes": b.half_open_probes,
    })
}
