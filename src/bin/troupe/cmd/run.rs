//! `troupe run FILE [--detach] [--json]`: submits a workflow and follows it to its end (exit 0
//! if it succeeded, 1 if not). With no node serving the data dir, runs one in this process
//! until the run ends. `troupe run FILE --dry-run [--json]` prints the plan instead and
//! touches no node and no data dir.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use troupe::client::{Client, ClientError};
use troupe::messages::control::{Request, Response, RunView, Subscription};
use troupe::model::{RunId, RunState};
use troupe::workflow_file::load_for_submit;
use troupe::Node;

use crate::cmd::node::{start_failed, stop_node};
use crate::common::{
    block, invalid, unexpected, Conn, Failed, Signals, Stream, EXIT_INTERNAL, EXIT_INVALID,
    EXIT_RUN_FAILED,
};
use crate::render::json::{invalid_json, print_json, run_json, workflow_dry_run_json};
use crate::render::text::{print_outcome, print_workflow_dry_run};
use crate::settings::{node_config, StartOptions};

/// `troupe run FILE --dry-run [--json]`: validates the file as a submission would (exit 2
/// with `FILE:LINE:COL: message` if invalid, like `validate`) and prints its plan
/// ([`troupe::model::dry_run::workflow`]). Reads only the file: no node, no data dir.
pub(crate) fn dry_run(file: &Path, json: bool) -> ExitCode {
    let workflow = match load_for_submit(file) {
        Ok(w) => w,
        Err(e) if json => {
            print_json(&invalid_json(file, &e));
            return ExitCode::from(EXIT_INVALID);
        }
        Err(e) => return invalid(&e),
    };
    let preview = troupe::model::dry_run::preview_workflow(&workflow);
    if json {
        print_json(&workflow_dry_run_json(file, &workflow, &preview));
    } else {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`troupe run x --dry-run | head`) is not worth a message.
        let _ = print_workflow_dry_run(file, &workflow, &preview, &mut out);
    }
    ExitCode::SUCCESS
}

/// `troupe run FILE [--detach] [--json]`.
pub(crate) fn run(
    data_dir: &Path,
    file: &Path,
    detach: bool,
    json: bool,
    opts: StartOptions,
) -> ExitCode {
    let workflow = match load_for_submit(file) {
        Ok(w) => w,
        Err(e) => return invalid(&e),
    };
    block("run", async move {
        let mut conn = match Client::connect(data_dir).await {
            Ok(c) => Conn::Remote(c),
            Err(ClientError::NoNode { .. }) if !detach => {
                let mut cfg = node_config(data_dir, &opts)?;
                // This node stops when its run ends: it must not take runs it would abandon.
                cfg.socket_submissions = false;
                // ... nor watch an inbox (troupe.toml's `inbox` is for `node start`).
                cfg.inbox = None;
                let node = Node::with_config(cfg)
                    .start()
                    .await
                    .map_err(|e| start_failed(data_dir, e))?;
                Conn::Local(node)
            }
            Err(e @ ClientError::NoNode { .. }) => {
                return Err(Failed {
                    code: EXIT_INTERNAL,
                    message: format!("{e}; --detach needs a running node"),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let (run, attached) = match conn.request(Request::Submit(Box::new(workflow))).await? {
            Response::Submitted { run, attached } => (run, attached),
            r => return Err(unexpected(r)),
        };
        if attached {
            eprintln!("troupe run: the same workflow is already running as {run}; following it");
        }
        if detach {
            if json {
                print_json(&json!({"id": run.to_string(), "attached": attached}));
            } else {
                println!("{run}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        let local = match &conn {
            Conn::Local(node) => Some(std::sync::Arc::clone(node.shared())),
            Conn::Remote(_) => None,
        };
        let stop_requested = async move {
            match local {
                Some(shared) => shared.stop_requested.notified().await,
                None => std::future::pending().await,
            }
        };
        let grace = match &conn {
            Conn::Local(node) => Some(node.shared().config.grace),
            Conn::Remote(_) => None,
        };
        let stopping = |why: &str| {
            if let Some(grace) = grace {
                eprintln!(
                    "troupe run: {why}: stopping the embedded node; running attempts get up to \
                     {} to finish (Ctrl-C again to kill them now); the run continues when a \
                     node next serves {}",
                    humantime::format_duration(grace),
                    data_dir.display()
                );
            } else {
                eprintln!(
                    "troupe run: {why}: no longer following; run {run} goes on in the node \
                     serving {} (`troupe status {run}`)",
                    data_dir.display()
                );
            }
        };
        let mut signals = Signals::new();
        let followed = tokio::select! {
            // follow() only reads; dropping it mid-frame loses nothing (the run goes on).
            r = follow(&mut conn, data_dir, run) => Some(r),
            s = signals.next() => {
                stopping(s);
                None
            }
            _ = stop_requested => {
                stopping("`troupe node stop`");
                None
            }
        };
        if let Conn::Local(node) = conn {
            stop_node(node, "run", &mut signals).await?;
        }
        let Some(view) = followed else {
            return Ok(ExitCode::from(EXIT_INTERNAL));
        };
        let view = view?;
        let s = &view.summary;
        if json {
            print_json(&run_json(&view));
        } else {
            print_outcome(&view);
        }
        Ok(if s.state == RunState::Succeeded {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_RUN_FAILED)
        })
    })
}

/// Follows the run's summaries, pushed by the node as they change, until it finishes,
/// drawing a progress bar on a terminal.
async fn follow(conn: &mut Conn, data_dir: &Path, run: RunId) -> Result<Box<RunView>, Failed> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tasks {msg}",
        )
        .expect("valid template"),
    );
    let mut announced = 0;
    let mut stream = Stream::open(conn, data_dir, Subscription::Run(run)).await?;
    loop {
        let s = match stream.next().await? {
            Response::Runs(mut v) if v.len() == 1 => v.remove(0),
            r => return Err(unexpected(r)),
        };
        bar.set_length(s.tasks as u64);
        bar.set_position((s.succeeded + s.failed) as u64);
        if s.awaiting_approval > announced {
            let line = format!(
                "troupe run: {} task(s) of {} await approval: see `troupe approvals`",
                s.awaiting_approval, s.id
            );
            if bar.is_hidden() {
                eprintln!("{line}");
            } else {
                bar.println(line);
            }
        }
        announced = s.awaiting_approval;
        let waiting = if s.awaiting_approval > 0 {
            format!(
                ", {} awaiting approval (troupe approvals; troupe approve {}/TASK --as NAME)",
                s.awaiting_approval, s.id
            )
        } else {
            String::new()
        };
        bar.set_message(format!(
            "{} running, {} failed{waiting} — {}",
            s.running, s.failed, s.state
        ));
        if s.state.is_finished() {
            bar.finish_and_clear();
            return match conn.request(Request::Run(run)).await? {
                Response::Run(v) => Ok(v),
                r => Err(unexpected(r)),
            };
        }
    }
}
