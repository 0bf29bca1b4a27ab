//! `troupe approvals`, `troupe approve|reject RUN/TASK --as NAME [--reason TEXT]`: approval
//! requests pending at the node, and deciding one.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use troupe::messages::control::{Command as AdminCommand, Request, Response, Target};
use troupe::model::Timestamp;

use crate::cmd::control::command;
use crate::common::{block, connect, unexpected, EXIT_INVALID};
use crate::render::json::approval_json;
use crate::render::text::print_approvals;

/// `troupe approvals [--json]`: pending requests, oldest first.
pub(crate) fn approvals(data_dir: &Path, json: bool) -> ExitCode {
    block("approvals", async move {
        let mut conn = connect(data_dir).await?;
        let list = match conn.request(Request::Approvals).await? {
            Response::Approvals(list) => list,
            r => return Err(unexpected(r)),
        };
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        let mut out = std::io::stdout().lock();
        if json {
            let all: Vec<_> = list.iter().map(|p| approval_json(p, now)).collect();
            let _ = writeln!(out, "{}", serde_json::Value::Array(all));
            return Ok(ExitCode::SUCCESS);
        }
        let _ = print_approvals(&list, now, &mut out);
        Ok(ExitCode::SUCCESS)
    })
}

/// `troupe approve|reject RUN/TASK --as NAME [--reason TEXT]`.
pub(crate) fn decide(
    data_dir: &Path,
    verb: &str,
    target: Target,
    name: String,
    reason: Option<String>,
) -> ExitCode {
    let Target::Task(run, task) = target else {
        eprintln!("troupe {verb}: give the task as RUN/TASK (approvals are per task)");
        return ExitCode::from(EXIT_INVALID);
    };
    let approver = troupe::model::Approver {
        name,
        // Filled in by the node from the connection's peer credentials.
        os_user: String::new(),
        reason,
    };
    if let Err(e) = approver.check() {
        eprintln!("troupe {verb}: {e}");
        return ExitCode::from(EXIT_INVALID);
    }
    let cmd = if verb == "approve" {
        AdminCommand::Approve {
            run,
            task,
            approver,
        }
    } else {
        AdminCommand::Reject {
            run,
            task,
            approver,
        }
    };
    command(data_dir, verb, cmd)
}
