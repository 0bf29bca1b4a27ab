//! `troupe output RUN/TASK [--json]`: a task's output, read through the node serving the data
//! dir, else from the stopped node's journal ([`troupe::read::offline`]).

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use troupe::client::{Client, ClientError};
use troupe::messages::control::{OutputView, Request, Response, Target};
use troupe::model::TaskState;
use troupe::read::offline;

use crate::common::{runtime, unexpected, Conn, Failed, EXIT_INVALID, EXIT_RUN_FAILED};
use crate::render::json::print_json;

/// `troupe output`: exit 0 with the output of a succeeded task; exit 1 (and the state on
/// stderr) for a task that has not succeeded; 2 for an unknown run or task.
pub(crate) fn output(data_dir: &Path, target: Target, json: bool) -> ExitCode {
    let Target::Task(run, task) = target else {
        return Failed {
            code: EXIT_INVALID,
            message: "give RUN/TASK (a run has no output of its own)".into(),
        }
        .exit("output");
    };
    let rt = runtime();
    let view = rt.block_on(async {
        match Client::connect(data_dir).await {
            Ok(c) => {
                let mut conn = Conn::Remote(c);
                match conn
                    .request(Request::Output {
                        run,
                        task: task.clone(),
                    })
                    .await?
                {
                    Response::Output(v) => Ok(*v),
                    r => Err(unexpected(r)),
                }
            }
            Err(ClientError::NoNode { .. }) => {
                let journal = offline::open(data_dir)?;
                journal.output(run, &task).map_err(|e| Failed {
                    code: e.exit_code() as u8,
                    message: e.to_string(),
                })
            }
            Err(e) => Err(Failed::from(e)),
        }
    });
    match view {
        Ok(v) => print(&v, json),
        Err(f) => f.exit("output"),
    }
}

fn print(v: &OutputView, json: bool) -> ExitCode {
    let value: serde_json::Value =
        serde_json::from_str(&v.output).unwrap_or(serde_json::Value::Null);
    let done = matches!(v.state, TaskState::Succeeded | TaskState::Compensated);
    if json {
        print_json(&json!({
            "run": v.run.to_string(),
            "task": v.task.as_str(),
            "state": v.state.as_str(),
            "output": value,
        }));
    } else if done {
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| v.output.clone())
        );
    }
    if done {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "troupe output: task `{}` is {}: it has no output (only a succeeded task has one)",
            v.task, v.state
        );
        ExitCode::from(EXIT_RUN_FAILED)
    }
}
