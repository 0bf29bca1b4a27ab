//! Agent trees: `troupe spawn` (a child run from inside a task, or a root run from outside),
//! `troupe delegate` (a child on a registry agent chosen for a capability), `troupe wait`
//! (children's final states and outputs), `troupe tree` (a run and its descendants),
//! `troupe agents` (the registry).
//!
//! Inside a task the attempt's environment says who is asking: `TROUPE_RUN_ID`,
//! `TROUPE_TASK_ID`, `TROUPE_ATTEMPT` and the capability `TROUPE_TOKEN` (valid only while that
//! attempt runs), plus `TROUPE_DATA_DIR` (the node's socket).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;

use troupe::client::Client;
use troupe::messages::control::{
    Caller, DelegateRequest, Request, Response, RunResultView, SpawnRequest, Subscription, TreeView,
};
use troupe::model::authority::AuthorityAsk;
use troupe::model::{Counters, OnFailure, OnParentExit, RunId, RunState, TaskId};
use troupe::workflow_file::{command_workflow, load_for_submit};

use crate::common::{
    block, invalid, unexpected, Conn, Failed, Stream, EXIT_INVALID, EXIT_RUN_FAILED,
};
use crate::render::json::print_json;

/// Exit code of `spawn` and `wait` when the node refuses (over a limit, not allowed, a
/// loop, a token that is not the attempt's).
pub(crate) const EXIT_DENIED: u8 = 4;
/// Exit code of `wait --timeout` when the time ran out (as `timeout(1)`'s).
pub(crate) const EXIT_TIMEOUT: u8 = 124;

/// What the spawn flags ask for.
pub(crate) struct SpawnArgs {
    pub(crate) file: Option<PathBuf>,
    pub(crate) command: Option<Vec<String>>,
    pub(crate) key: String,
    pub(crate) input: Option<String>,
    pub(crate) detach: bool,
    pub(crate) authority: AuthorityAsk,
    pub(crate) on_failure: OnFailure,
    pub(crate) on_parent_exit: OnParentExit,
    pub(crate) on_budget_exhausted: troupe::model::OnBudgetExhausted,
}

/// The attempt this process runs as, from its environment: `None` outside any task; an
/// error if the environment names an attempt but carries no (or a malformed) token.
pub(crate) fn caller_from_env() -> Result<Option<Caller>, Failed> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(run) = var("TROUPE_RUN_ID") else {
        if var("TROUPE_TOKEN").is_some() {
            return Err(denied("TROUPE_TOKEN is set but TROUPE_RUN_ID is not"));
        }
        return Ok(None);
    };
    let Some(token) = var("TROUPE_TOKEN") else {
        return Err(denied(
            "TROUPE_RUN_ID is set but TROUPE_TOKEN is not: inside a task, spawn and wait need \
             the attempt's capability token (the node sets it for every attempt)",
        ));
    };
    let bad = |what: &str| denied(&format!("{what} in the environment is not valid"));
    Ok(Some(Caller {
        run: run.parse().map_err(|_| bad("TROUPE_RUN_ID"))?,
        task: var("TROUPE_TASK_ID")
            .and_then(|t| TaskId::new(t).ok())
            .ok_or_else(|| bad("TROUPE_TASK_ID"))?,
        attempt: var("TROUPE_ATTEMPT")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| bad("TROUPE_ATTEMPT"))?,
        token,
    }))
}

fn denied(message: &str) -> Failed {
    Failed {
        code: EXIT_DENIED,
        message: message.to_owned(),
    }
}

/// `--input @FILE|JSON`: one JSON value, compact.
fn read_input(arg: &str) -> Result<String, Failed> {
    let (text, whence) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| Failed {
                code: EXIT_INVALID,
                message: format!("--input @{path}: {e}"),
            })?,
            format!("--input @{path}"),
        ),
        None => (arg.to_owned(), "--input".to_owned()),
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Failed {
        code: EXIT_INVALID,
        message: format!(
            "{whence}: not one JSON value ({e}); give JSON (quote a string: '\"text\"') or @FILE"
        ),
    })?;
    Ok(value.to_string())
}

/// `NAME=NUMBER` or `wall_clock=DURATION` of `--budget`.
pub(crate) fn parse_budget(arg: &str) -> Result<(String, BudgetValue), String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?}: expected NAME=NUMBER (e.g. tokens=50000)"))?;
    if name == "wall_clock" {
        let d = humantime::parse_duration(value)
            .map_err(|e| format!("wall_clock={value}: {e} (examples: 90s, 10m)"))?;
        return Ok((name.to_owned(), BudgetValue::Time(d)));
    }
    let v: f64 = value
        .parse()
        .map_err(|_| format!("{name}={value}: the budget is not a number"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!(
            "{name}={value}: a budget is a finite number, 0 or more"
        ));
    }
    Ok((name.to_owned(), BudgetValue::Amount(v)))
}

/// A `--budget` value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum BudgetValue {
    /// A usage counter's amount.
    Amount(f64),
    /// `wall_clock`.
    Time(Duration),
}

/// Folds `--budget` values into an ask.
pub(crate) fn budget_ask(values: Vec<(String, BudgetValue)>, ask: &mut AuthorityAsk) {
    for (name, v) in values {
        match v {
            BudgetValue::Amount(a) => {
                ask.budget.insert(name, a);
            }
            BudgetValue::Time(d) => ask.wall_clock = Some(d),
        }
    }
}

/// `troupe spawn`: prints the run id; without `--detach`, waits for its end (exit 0 if it
/// succeeded, 1 if not).
pub(crate) fn spawn(data_dir: &Path, args: SpawnArgs) -> ExitCode {
    let workflow = match (&args.file, args.command) {
        (Some(file), None) => match load_for_submit(file) {
            Ok(w) => w,
            Err(e) => return invalid(&e),
        },
        (None, Some(argv)) => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| "/".into());
            match command_workflow(argv, &cwd) {
                Ok(w) => w,
                Err(e) => return invalid(&e),
            }
        }
        _ => {
            return Failed {
                code: EXIT_INVALID,
                message: "give a workflow FILE or --command PROGRAM ARGS..., not both".into(),
            }
            .exit("spawn")
        }
    };
    if let Err(e) = args.authority.check() {
        return Failed {
            code: EXIT_INVALID,
            message: e,
        }
        .exit("spawn");
    }
    let detach = args.detach;
    block("spawn", async move {
        let caller = caller_from_env()?;
        let input = args.input.as_deref().map(read_input).transpose()?;
        let mut conn = Conn::Remote(Client::connect(data_dir).await?);
        let request = Request::Spawn(Box::new(SpawnRequest {
            caller: caller.clone(),
            key: args.key,
            workflow: Box::new(workflow),
            input,
            authority: args.authority,
            on_failure: args.on_failure,
            on_parent_exit: args.on_parent_exit,
            on_budget_exhausted: args.on_budget_exhausted,
        }));
        let (run, attached) = match conn.request(request).await? {
            Response::Submitted { run, attached } => (run, attached),
            r => return Err(unexpected(r)),
        };
        println!("{run}");
        if attached {
            eprintln!("troupe spawn: key already names run {run}; attached to it");
        }
        if detach {
            return Ok(ExitCode::SUCCESS);
        }
        follow_one(&mut conn, data_dir, caller.as_ref(), run).await
    })
}

/// `troupe delegate CAPABILITY`: routes to a registry agent, prints the run id (the agent
/// and the reason on stderr); without `--detach`, waits for the run's end.
pub(crate) fn delegate(data_dir: &Path, capability: String, args: SpawnArgs) -> ExitCode {
    let detach = args.detach;
    block("delegate", async move {
        let caller = caller_from_env()?;
        let input = args.input.as_deref().map(read_input).transpose()?;
        let cwd = std::env::current_dir()
            .unwrap_or_else(|_| "/".into())
            .to_string_lossy()
            .into_owned();
        let mut conn = Conn::Remote(Client::connect(data_dir).await?);
        let request = Request::Delegate(Box::new(DelegateRequest {
            caller: caller.clone(),
            capability,
            key: args.key,
            input,
            cwd,
            authority: args.authority,
            on_failure: args.on_failure,
            on_parent_exit: args.on_parent_exit,
            on_budget_exhausted: args.on_budget_exhausted,
        }));
        let run = match conn.request(request).await? {
            Response::Delegated {
                run,
                attached,
                agent,
                reason,
            } => {
                println!("{run}");
                if attached {
                    eprintln!("troupe delegate: key already names run {run} (agent {agent}); attached to it");
                } else {
                    eprintln!("troupe delegate: agent {agent} ({reason})");
                }
                run
            }
            r => return Err(unexpected(r)),
        };
        if detach {
            return Ok(ExitCode::SUCCESS);
        }
        follow_one(&mut conn, data_dir, caller.as_ref(), run).await
    })
}

/// `troupe agents [--json]`: the registry with load, success rate and median duration.
pub(crate) fn agents(data_dir: &Path, json: bool) -> ExitCode {
    block("agents", async move {
        let mut conn = Conn::Remote(Client::connect(data_dir).await?);
        let list = match conn.request(Request::Agents).await? {
            Response::Agents(v) => v,
            r => return Err(unexpected(r)),
        };
        if json {
            let v: Vec<_> = list
                .iter()
                .map(|a| {
                    json!({
                        "name": a.name,
                        "capabilities": a.capabilities,
                        "live": a.live,
                        "max_concurrency": a.max_concurrency,
                        "finished": a.finished,
                        "succeeded": a.succeeded,
                        "success_rate": (a.finished > 0).then(|| f64::from(a.succeeded) / f64::from(a.finished)),
                        "p50_ms": a.p50_ms,
                    })
                })
                .collect();
            print_json(&json!(v));
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{:<20} {:<30} {:>9} {:>12} {:>9}",
            "AGENT", "CAPABILITIES", "LOAD", "SUCCESS", "P50"
        );
        for a in &list {
            let load = match a.max_concurrency {
                Some(m) => format!("{}/{m}", a.live),
                None => a.live.to_string(),
            };
            let success = if a.finished == 0 {
                "-".to_owned()
            } else {
                format!("{}/{}", a.succeeded, a.finished)
            };
            let p50 = a
                .p50_ms
                .map_or("-".to_owned(), |p| format!("{:.1}s", p as f64 / 1000.0));
            println!(
                "{:<20} {:<30} {:>9} {:>12} {:>9}",
                troupe::model::quote::printable(&a.name),
                a.capabilities.join(","),
                load,
                success,
                p50
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `spawn` and `delegate` without `--detach`: waits for `run`; exit 0 if it succeeded.
async fn follow_one(
    conn: &mut Conn,
    data_dir: &Path,
    caller: Option<&Caller>,
    run: RunId,
) -> Result<ExitCode, Failed> {
    let results = wait_all(conn, data_dir, caller, &[run], false).await?;
    Ok(if results.iter().all(|r| r.state == RunState::Succeeded) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUN_FAILED)
    })
}

/// Follows `run` until it is finished.
async fn until_finished(data_dir: PathBuf, run: RunId) -> Result<RunId, Failed> {
    let conn = Conn::Remote(Client::connect(&data_dir).await?);
    let mut stream = Stream::open(&conn, &data_dir, Subscription::Run(run)).await?;
    loop {
        match stream.next().await? {
            Response::Runs(v) if v.first().is_some_and(|s| s.state.is_finished()) => {
                return Ok(run)
            }
            Response::Runs(_) => {}
            r => return Err(unexpected(r)),
        }
    }
}

/// Waits for all of `runs` (or, with `any`, the first to finish) and returns their results
/// (with `any`: the first that finished only).
async fn wait_all(
    conn: &mut Conn,
    data_dir: &Path,
    caller: Option<&Caller>,
    runs: &[RunId],
    any: bool,
) -> Result<Vec<RunResultView>, Failed> {
    if let Some(caller) = caller {
        conn.request(Request::CheckChildren {
            caller: caller.clone(),
            runs: runs.to_vec(),
        })
        .await?;
    }
    let mut set = tokio::task::JoinSet::new();
    for &run in runs {
        set.spawn(until_finished(data_dir.to_owned(), run));
    }
    let mut done = Vec::new();
    let mut announced = std::collections::HashSet::new();
    while let Some(joined) = set.join_next().await {
        let run = joined.map_err(|e| Failed {
            code: 3,
            message: e.to_string(),
        })??;
        // A finished run that asks a human (an escalation) is not done: look again.
        let asking = match conn.request(Request::Summary(run)).await? {
            Response::Runs(v) => v.first().and_then(|s| s.asking.clone()),
            r => return Err(unexpected(r)),
        };
        if let Some(why) = asking {
            if announced.insert(run) {
                eprintln!(
                    "troupe wait: run {run} asks a human: {why} (troupe approve|reject {run} --as NAME)"
                );
            }
            let data_dir = data_dir.to_owned();
            set.spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                until_finished(data_dir, run).await
            });
            continue;
        }
        done.push(run);
        if any {
            break;
        }
    }
    // In the order given (with --any: the one that finished).
    let order: Vec<RunId> = if any { done } else { runs.to_vec() };
    let mut out = Vec::with_capacity(order.len());
    for run in order {
        match conn.request(Request::Result(run)).await? {
            Response::Result(v) => out.push(*v),
            r => return Err(unexpected(r)),
        }
    }
    Ok(out)
}

/// `troupe wait RUN... [--any] [--timeout DUR] [--json]`.
pub(crate) fn wait(
    data_dir: &Path,
    runs: Vec<RunId>,
    any: bool,
    timeout: Option<Duration>,
    json: bool,
) -> ExitCode {
    block("wait", async move {
        let caller = caller_from_env()?;
        let mut conn = Conn::Remote(Client::connect(data_dir).await?);
        let waiting = wait_all(&mut conn, data_dir, caller.as_ref(), &runs, any);
        let results = match timeout {
            Some(t) => match tokio::time::timeout(t, waiting).await {
                Ok(r) => r?,
                Err(_) => {
                    eprintln!(
                        "troupe wait: timed out after {}; the runs go on",
                        humantime::format_duration(t)
                    );
                    return Ok(ExitCode::from(EXIT_TIMEOUT));
                }
            },
            None => waiting.await?,
        };
        for r in &results {
            let output: serde_json::Value =
                serde_json::from_str(&r.output).unwrap_or(serde_json::Value::Null);
            if json {
                print_json(&json!({
                    "run": r.run.to_string(),
                    "key": r.key,
                    "state": r.state.as_str(),
                    "output": output,
                }));
            } else {
                println!(
                    "{}\t{}\t{}\t{}",
                    r.run,
                    r.key.as_deref().unwrap_or("-"),
                    r.state,
                    output
                );
            }
        }
        Ok(if results.iter().all(|r| r.state == RunState::Succeeded) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_RUN_FAILED)
        })
    })
}

/// `troupe tree RUN [--json]`.
pub(crate) fn tree(data_dir: &Path, run: RunId, json: bool) -> ExitCode {
    block("tree", async move {
        let mut conn = Conn::Remote(Client::connect(data_dir).await?);
        let view = match conn.request(Request::Tree(run)).await? {
            Response::Tree(v) => *v,
            r => return Err(unexpected(r)),
        };
        print_tree(&view, json);
        Ok(ExitCode::SUCCESS)
    })
}

fn counters_text(c: &Counters) -> String {
    if c.is_empty() {
        return "-".into();
    }
    c.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn print_tree(view: &TreeView, json: bool) {
    if json {
        let nodes: Vec<_> = view
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "run": n.run.to_string(),
                    "name": n.name,
                    "state": n.state.as_str(),
                    "depth": n.depth,
                    "parent": n.parent.as_ref().map(|(r, _)| r.to_string()),
                    "parent_task": n.parent.as_ref().map(|(_, t)| t.as_str()),
                    "key": n.key,
                    "asking": n.asking,
                    "usage": n.usage,
                    "budget": n.budget,
                    "reserved": n.reserved,
                    "left": n.left,
                    "exhausted": n.exhausted,
                })
            })
            .collect();
        print_json(&json!({ "nodes": nodes }));
        return;
    }
    let base = view.nodes.first().map_or(0, |n| n.depth);
    for n in &view.nodes {
        let indent = "  ".repeat((n.depth - base) as usize);
        let via = match (&n.parent, &n.key) {
            (Some((_, task)), Some(key)) => format!(" ← {task} key={key}"),
            _ => String::new(),
        };
        let budget = if n.budget.is_empty() {
            String::new()
        } else {
            format!(
                " budget={} left={}",
                counters_text(&n.budget),
                counters_text(&n.left)
            )
        };
        let asking = n
            .asking
            .as_deref()
            .map_or(String::new(), |a| format!(" ASKING: {a}"));
        println!(
            "{indent}{} {} [{}] depth={}{via} usage={}{budget}{asking}",
            n.run,
            troupe::model::quote::printable(&n.name),
            n.state,
            n.depth,
            counters_text(&n.usage)
        );
    }
}
