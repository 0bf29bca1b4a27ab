//! `troupe cancel|suspend|resume|retry TARGET`, `troupe halt [--kill]`, `troupe unhalt` (and
//! the sending of `approve|reject`): one control command to the node serving the data dir.
//! With `--dry-run`, what the command would change, changing nothing.

use std::path::Path;
use std::process::ExitCode;

use troupe::messages::control::{Command as AdminCommand, Request, Response};

use crate::common::{block, connect, unexpected};
use crate::render::json::{command_dry_run_json, print_json};
use crate::render::text::{command_done, print_command_dry_run};

/// `troupe cancel|suspend|resume|retry TARGET --dry-run [--json]`, `halt [--kill] --dry-run
/// [--json]`: asks the node what the command would change (answered by its read model; the
/// scheduler never sees it) and prints it. Refused like the real command: an unknown run or
/// task exits 2, a command the state does not allow exits 2 with the reason.
pub(crate) fn dry_run(data_dir: &Path, name: &str, cmd: AdminCommand, json: bool) -> ExitCode {
    block(name, async move {
        let mut conn = connect(data_dir).await?;
        let view = match conn.request(Request::DryRun(cmd.clone())).await? {
            Response::DryRun(v) => v,
            r => return Err(unexpected(r)),
        };
        if json {
            let target = match &cmd {
                AdminCommand::Cancel(t)
                | AdminCommand::Suspend(t)
                | AdminCommand::Resume(t)
                | AdminCommand::Retry(t) => Some(t),
                _ => None,
            };
            print_json(&command_dry_run_json(name, target, &view));
        } else {
            let mut out = std::io::stdout().lock();
            let _ = print_command_dry_run(&cmd, &view, &mut out);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `troupe cancel|suspend|resume|retry TARGET`, `halt [--kill]`, `unhalt`.
pub(crate) fn command(data_dir: &Path, name: &str, cmd: AdminCommand) -> ExitCode {
    block(name, async move {
        let mut conn = connect(data_dir).await?;
        let what = command_done(&cmd);
        match conn.request(Request::Command(cmd)).await? {
            Response::Done => println!("{what}"),
            r => return Err(unexpected(r)),
        }
        Ok(ExitCode::SUCCESS)
    })
}
