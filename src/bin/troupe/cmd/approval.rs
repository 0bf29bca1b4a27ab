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
        // Escalations of agent trees: runs that ask a human (decided per run).
        let asking: Vec<_> = match conn.request(Request::List).await? {
            Response::Runs(runs) => runs.into_iter().filter(|r| r.asking.is_some()).collect(),
            r => return Err(unexpected(r)),
        };
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        let mut out = std::io::stdout().lock();
        if json {
            let mut all: Vec<_> = list.iter().map(|p| approval_json(p, now)).collect();
            all.extend(asking.iter().map(|r| {
                serde_json::json!({
                    "kind": "escalation",
                    "run": r.id.to_string(),
                    "key": r.key,
                    "parent": r.parent.as_ref().map(|(p, _)| p.to_string()),
                    "state": r.state.as_str(),
                    "reason": r.asking,
                })
            }));
            let _ = writeln!(out, "{}", serde_json::Value::Array(all));
            return Ok(ExitCode::SUCCESS);
        }
        let _ = print_approvals(&list, now, &mut out);
        for r in &asking {
            let _ = writeln!(
                out,
                "escalation  {}  {}  {}  (troupe approve|reject {} --as NAME)",
                r.id,
                r.state,
                r.asking.as_deref().unwrap_or(""),
                r.id
            );
        }
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
    extend: Vec<(String, crate::cmd::agents::BudgetValue)>,
) -> ExitCode {
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
    let (run, task) = match target {
        Target::Task(run, task) if extend.is_empty() => (run, task),
        Target::Task(..) => {
            eprintln!("troupe {verb}: --extend is for a run's budget escalation: give RUN");
            return ExitCode::from(EXIT_INVALID);
        }
        Target::Run(run) => {
            // An agent tree's escalation (docs/agents.md).
            let extend = extend
                .into_iter()
                .map(|(k, v)| match v {
                    crate::cmd::agents::BudgetValue::Amount(a) => (k, a),
                    crate::cmd::agents::BudgetValue::Time(d) => (k, d.as_secs_f64()),
                })
                .collect();
            let cmd = AdminCommand::Escalation {
                run,
                approved: verb == "approve",
                approver,
                extend,
            };
            return command(data_dir, verb, cmd);
        }
    };
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
