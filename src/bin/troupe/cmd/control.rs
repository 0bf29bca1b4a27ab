//! `troupe cancel|suspend|resume|retry TARGET`, `troupe halt [--kill]`, `troupe unhalt` (and
//! the sending of `approve|reject`): one control command to the node serving the data dir.

use std::path::Path;
use std::process::ExitCode;

use troupe::messages::control::{Command as AdminCommand, Request, Response};

use crate::common::{block, connect, unexpected};
use crate::render::text::command_done;

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
