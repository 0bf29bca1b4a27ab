//! `troupe status [RUN|RUN/TASK]`, `troupe list`, `troupe tasks RUN`: views of the node, its
//! runs and their tasks, asked of the node serving the data dir.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use troupe::messages::control::{Request, Response, Target};
use troupe::model::RunId;

use crate::common::{block, connect, unexpected, Failed, EXIT_INVALID};
use crate::render::json::{node_json, print_json, run_json, summary_json, task_json};
use crate::render::text::{print_node, print_run, print_runs, print_tasks};

/// `troupe status [RUN|RUN/TASK] [--json]`.
pub(crate) fn status(data_dir: &Path, target: Option<Target>, json: bool) -> ExitCode {
    block("status", async move {
        let mut conn = connect(data_dir).await?;
        match target {
            None => match conn.request(Request::Node).await? {
                Response::Node(n) if json => print_json(&node_json(&n)),
                Response::Node(n) => print_node(&n),
                r => return Err(unexpected(r)),
            },
            Some(Target::Run(run)) => match conn.request(Request::Run(run)).await? {
                Response::Run(v) if json => print_json(&run_json(&v)),
                Response::Run(v) => print_run(&v),
                r => return Err(unexpected(r)),
            },
            Some(Target::Task(run, task)) => match conn.request(Request::Run(run)).await? {
                Response::Run(v) => {
                    let Some(t) = v.tasks.iter().find(|t| t.id == task) else {
                        return Err(Failed {
                            code: EXIT_INVALID,
                            message: format!("run {run} has no task `{task}`"),
                        });
                    };
                    if json {
                        let mut j = task_json(t);
                        j["run"] = json!(run.to_string());
                        print_json(&j);
                    } else {
                        print_tasks(std::slice::from_ref(t));
                    }
                }
                r => return Err(unexpected(r)),
            },
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `troupe list [--json]`.
pub(crate) fn list(data_dir: &Path, json: bool, roots: bool) -> ExitCode {
    block("list", async move {
        let mut conn = connect(data_dir).await?;
        let response = match conn.request(Request::List).await? {
            Response::Runs(mut runs) if roots => {
                runs.retain(|r| r.parent.is_none());
                Response::Runs(runs)
            }
            r => r,
        };
        match response {
            Response::Runs(runs) if json => {
                print_json(&json!(runs.iter().map(summary_json).collect::<Vec<_>>()))
            }
            Response::Runs(runs) => print_runs(&runs),
            r => return Err(unexpected(r)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `troupe tasks RUN [--json]`.
pub(crate) fn tasks(data_dir: &Path, run: RunId, json: bool) -> ExitCode {
    block("tasks", async move {
        let mut conn = connect(data_dir).await?;
        match conn.request(Request::Run(run)).await? {
            Response::Run(v) if json => {
                print_json(&json!(v.tasks.iter().map(task_json).collect::<Vec<_>>()))
            }
            Response::Run(v) => print_tasks(&v.tasks),
            r => return Err(unexpected(r)),
        }
        Ok(ExitCode::SUCCESS)
    })
}
