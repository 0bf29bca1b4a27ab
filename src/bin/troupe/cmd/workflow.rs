//! `troupe validate FILE [--json]` and `troupe graph FILE [--format dot|mermaid]`: checks of a
//! workflow file, without a node or a data dir; `troupe graph --run RUN`: a run's workflow as
//! it is now (mapped tasks expanded), through the node or from the journal.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use troupe::client::{Client, ClientError};
use troupe::messages::control::{Request, Response};
use troupe::model::{render, RunId};
use troupe::read::offline;
use troupe::workflow_file::load_workflow;

use crate::common::{invalid, runtime, unexpected, Conn, Failed, EXIT_INVALID};
use crate::render::json::{invalid_json, valid_json};
use crate::render::text::workflow_summary;
use crate::GraphFormat;

/// Writes `text` to stdout; a closed pipe (`troupe graph x | head`) is not an error worth a
/// message.
fn print(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    ExitCode::SUCCESS
}

/// `troupe validate FILE [--json]`: exit 0 if the file is a valid workflow, 2 if not.
pub(crate) fn validate(file: &Path, json: bool) -> ExitCode {
    match load_workflow(file) {
        Ok(wf) => {
            let cp = wf.plan().critical_path(|_| 1);
            if json {
                print(&format!("{}\n", valid_json(file, &wf, &cp)))
            } else {
                print(&workflow_summary(file, &wf, cp.length))
            }
        }
        Err(e) if json => {
            print(&format!("{}\n", invalid_json(file, &e)));
            ExitCode::from(EXIT_INVALID)
        }
        Err(e) => invalid(&e),
    }
}

/// `troupe graph FILE [--format dot|mermaid]`: the workflow's DAG (exit 2 if the file is
/// invalid).
/// `troupe graph --run RUN`: the run's workflow with mapped tasks expanded.
pub(crate) fn graph_run(data_dir: &Path, run: RunId, format: GraphFormat) -> ExitCode {
    let rt = runtime();
    let wf = rt.block_on(async {
        match Client::connect(data_dir).await {
            Ok(c) => match Conn::Remote(c).request(Request::Workflow(run)).await? {
                Response::Workflow(wf) => Ok(*wf),
                r => Err(unexpected(r)),
            },
            Err(ClientError::NoNode { .. }) => {
                offline::open(data_dir)?.workflow(run).map_err(|e| Failed {
                    code: e.exit_code() as u8,
                    message: e.to_string(),
                })
            }
            Err(e) => Err(Failed::from(e)),
        }
    });
    match wf {
        Ok(wf) => print(&match format {
            GraphFormat::Dot => render::to_dot(&wf),
            GraphFormat::Mermaid => render::to_mermaid(&wf),
        }),
        Err(f) => f.exit("graph"),
    }
}

pub(crate) fn graph(file: &Path, format: GraphFormat) -> ExitCode {
    match load_workflow(file) {
        Ok(wf) => print(&match format {
            GraphFormat::Dot => render::to_dot(&wf),
            GraphFormat::Mermaid => render::to_mermaid(&wf),
        }),
        Err(e) => invalid(&e),
    }
}
