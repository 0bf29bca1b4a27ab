//! `troupe health [--json]`: the node's health checks, with Nagios exit codes.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use troupe::messages::control::{Health, Request, Response};

use crate::common::{block, connect, unexpected};
use crate::render::json::health_json;
use crate::render::text::print_health;

/// `troupe health [--json]`: exit 0 healthy, 1 degraded, 2 unhealthy (Nagios), 3 when no node
/// answers (Nagios UNKNOWN).
pub(crate) fn health(data_dir: &Path, json: bool) -> ExitCode {
    block("health", async move {
        let mut conn = connect(data_dir).await?;
        let report = match conn.request(Request::Health).await? {
            Response::Health(r) => *r,
            r => return Err(unexpected(r)),
        };
        let mut out = std::io::stdout().lock();
        if json {
            let _ = writeln!(out, "{}", health_json(&report));
        } else {
            let _ = print_health(&report, &mut out);
        }
        Ok(ExitCode::from(match report.status {
            Health::Healthy => 0,
            Health::Degraded => 1,
            Health::Unhealthy => 2,
        }))
    })
}
