//! `troupe hooks [--state S] [--json]`: hook calls, oldest first: id, hook, event, run/task,
//! state, attempts, last failure, times.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use troupe::messages::control::{Request, Response};
use troupe::read::hooks::HookCallView;

use crate::common::{block, connect, unexpected};

/// `troupe hooks`.
pub(crate) fn hooks(data_dir: &Path, state: Option<String>, json: bool) -> ExitCode {
    block("hooks", async move {
        let mut conn = connect(data_dir).await?;
        let list = match conn.request(Request::Hooks { state }).await? {
            Response::Hooks(list) => list,
            r => return Err(unexpected(r)),
        };
        let mut out = std::io::stdout().lock();
        if json {
            let all: Vec<_> = list.iter().map(hook_json).collect();
            let _ = writeln!(out, "{}", serde_json::Value::Array(all));
            return Ok(ExitCode::SUCCESS);
        }
        if list.is_empty() {
            let _ = writeln!(out, "no hook calls");
            return Ok(ExitCode::SUCCESS);
        }
        let _ = writeln!(
            out,
            "{:>6}  {:<20} {:<15} {:<10} {:>8}  {:<40} LAST FAILURE",
            "ID", "HOOK", "ON", "STATE", "ATTEMPTS", "ABOUT"
        );
        for c in &list {
            let about = match (&c.run, &c.task) {
                (Some(r), Some(t)) => format!("{r}/{t}"),
                (Some(r), None) => r.to_string(),
                _ => "(node)".into(),
            };
            let _ = writeln!(
                out,
                "{:>6}  {:<20} {:<15} {:<10} {:>8}  {:<40} {}",
                c.id,
                c.hook,
                c.on,
                c.state,
                format!("{}/{}", c.attempts, c.max_attempts),
                about,
                c.last_failure
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_default()
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn hook_json(c: &HookCallView) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "hook": c.hook,
        "on": c.on,
        "veto": c.veto,
        "run": c.run.map(|r| r.to_string()),
        "task": c.task.as_ref().map(|t| t.as_str()),
        "state": c.state,
        "attempts": c.attempts,
        "max_attempts": c.max_attempts,
        "failure_kind": c.last_failure.as_ref().map(|f| f.kind()),
        "last_failure": c.last_failure.as_ref().map(|f| f.to_string()),
        "retry_at": c.retry_at.map(|t| t.to_string()),
        "queued_at": c.queued_at.to_string(),
        "changed_at": c.changed_at.to_string(),
    })
}
