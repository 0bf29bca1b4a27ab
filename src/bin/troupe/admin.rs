//! Commands that talk to a node: `node start|stop`, `run`, `status`, `list`, `tasks`, `logs`,
//! `cancel|suspend|resume|retry`, `halt|unhalt`, `events --follow`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::json;

use troupe::client::{Client, ClientError};
use troupe::messages::control::Health;
use troupe::messages::control::{
    Command as AdminCommand, NodeView, PendingApproval, QueueView, Request, Response, RunSummary,
    RunView, Target, TaskView,
};
use troupe::messages::scheduler::AttemptKind;
use troupe::model::rollup::MetricsReport;
use troupe::model::{RunId, RunState, Seq, TaskState, Timestamp};
use troupe::storage::{Journal, JournalError};
use troupe::workflow_file::load_for_submit;
use troupe::{Node, NodeConfig, NodeError, NodeHandle};

use crate::{event_json, event_line, invalid, EXIT_INTERNAL, EXIT_INVALID};
use troupe::model::quote::printable;

/// Exit status of a run that ended not succeeded.
const EXIT_RUN_FAILED: u8 = 1;

/// How often followers poll.
const POLL: Duration = Duration::from_millis(100);

/// A way to send requests: over the socket, or to a node in this process.
pub enum Conn {
    /// A node in another process.
    Remote(Client),
    /// A node embedded in this process (`troupe run` with no node serving the data dir).
    Local(NodeHandle),
}

/// A failed request, with its exit code.
pub struct Failed {
    /// The exit code.
    code: u8,
    /// What to print after `troupe CMD: `.
    message: String,
}

impl Failed {
    /// Prints `troupe CMD: message` and gives the exit code.
    pub fn exit(self, cmd: &str) -> ExitCode {
        eprintln!("troupe {cmd}: {}", self.message);
        ExitCode::from(self.code)
    }
}

impl From<ClientError> for Failed {
    fn from(e: ClientError) -> Self {
        Failed {
            code: e.exit_code() as u8,
            message: e.to_string(),
        }
    }
}

impl From<NodeError> for Failed {
    fn from(e: NodeError) -> Self {
        let code = match &e {
            NodeError::Control(c) => c.exit_code() as u8,
            NodeError::DataDir { .. } => EXIT_INVALID,
            NodeError::Journal(j) => j.exit_code() as u8,
            _ => EXIT_INTERNAL,
        };
        Failed {
            code,
            message: e.to_string(),
        }
    }
}

impl Conn {
    async fn request(&mut self, request: Request) -> Result<Response, Failed> {
        let response = match self {
            Conn::Remote(c) => c.request(&request).await?,
            Conn::Local(n) => n.request(request).await?,
        };
        match response {
            Response::Error(e) => Err(Failed {
                code: e.exit_code() as u8,
                message: e.to_string(),
            }),
            r => Ok(r),
        }
    }
}

fn unexpected(r: Response) -> Failed {
    Failed {
        code: EXIT_INTERNAL,
        message: format!("unexpected answer from the node: {r:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs an async command body on a fresh runtime and turns its failure into an exit code.
fn block(cmd: &str, f: impl std::future::Future<Output = Result<ExitCode, Failed>>) -> ExitCode {
    match runtime().block_on(f) {
        Ok(code) => code,
        Err(e) => e.exit(cmd),
    }
}

async fn connect(data_dir: &Path) -> Result<Conn, Failed> {
    Ok(Conn::Remote(Client::connect(data_dir).await?))
}

fn print_json(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}

fn opt_time(t: Option<troupe::model::Timestamp>) -> serde_json::Value {
    t.map(|t| json!(t.to_string()))
        .unwrap_or(serde_json::Value::Null)
}

fn summary_json(s: &RunSummary) -> serde_json::Value {
    json!({
        "id": s.id.to_string(),
        "name": s.name,
        "state": s.state.as_str(),
        "submitted_at": s.submitted_at.to_string(),
        "finished_at": opt_time(s.finished_at),
        "tasks_total": s.tasks,
        "tasks_succeeded": s.succeeded,
        "tasks_failed": s.failed,
        "tasks_running": s.running,
        "tasks_awaiting_approval": s.awaiting_approval,
    })
}

fn task_json(t: &TaskView) -> serde_json::Value {
    json!({
        "id": t.id.as_str(),
        "state": t.state.as_str(),
        "attempts": t.attempts,
        "depends_on": t.depends_on.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "priority": t.priority,
        "pool": t.pool,
        "command": t.command,
        "started_at": opt_time(t.started_at),
        "finished_at": opt_time(t.finished_at),
        "retry_at": opt_time(t.retry_at),
        "last_failure": t.last_failure,
        "compensate": t.compensate,
        "compensation": t.compensation.as_ref().map(|c| json!({
            "state": c.state.as_str(),
            "attempts": c.attempts,
            "retry_at": opt_time(c.retry_at),
            "last_failure": c.last_failure,
        })),
    })
}

fn run_json(v: &RunView) -> serde_json::Value {
    let mut j = summary_json(&v.summary);
    j["suspended"] = json!(v.suspended);
    j["tasks"] = json!(v.tasks.iter().map(task_json).collect::<Vec<_>>());
    j
}

fn node_json(n: &NodeView) -> serde_json::Value {
    json!({
        "node_id": n.node_id,
        "pid": n.pid,
        "state": if n.halted { "halted" } else { "running" },
        "halted": n.halted,
        "stop_file": n.stop_file,
        "active_runs": n.active_runs,
        "total_runs": n.total_runs,
        "running_attempts": n.running_attempts,
        "queued_tasks": n.queued_tasks,
        "workers": n.workers,
        "last_seq": n.last_seq,
    })
}

fn print_tasks(tasks: &[TaskView]) {
    let mut out = std::io::stdout().lock();
    let saga = tasks.iter().any(|t| t.compensate.is_some());
    let _ = if saga {
        writeln!(
            out,
            "{:<24} {:<17} {:>8}  {:<13} DETAIL",
            "TASK", "FORWARD", "ATTEMPTS", "COMPENSATION"
        )
    } else {
        writeln!(
            out,
            "{:<24} {:<17} {:>8}  DETAIL",
            "TASK", "STATE", "ATTEMPTS"
        )
    };
    for t in tasks {
        let mut detail = match (&t.last_failure, t.retry_at) {
            (Some(f), Some(at)) => format!("{}; retry at {at}", printable(f)),
            (Some(f), None) => printable(f).into_owned(),
            _ => String::new(),
        };
        // The forward outcome of a compensated step is that it succeeded.
        let forward = if t.state == TaskState::Compensated {
            "succeeded"
        } else {
            t.state.as_str()
        };
        if !saga {
            let _ = writeln!(
                out,
                "{:<24} {:<17} {:>8}  {}",
                t.id.as_str(),
                forward,
                t.attempts,
                detail
            );
            continue;
        }
        let comp = match (&t.compensation, &t.compensate) {
            (Some(c), _) => {
                use troupe::model::CompensationState as C;
                let failing = matches!(c.state, C::Retrying | C::Failed);
                if let Some(f) = c.last_failure.as_ref().filter(|_| failing) {
                    let retry = c
                        .retry_at
                        .map(|at| format!("; retry at {at}"))
                        .unwrap_or_default();
                    detail = format!(
                        "compensation attempt {}: {}{retry}",
                        c.attempts,
                        printable(f)
                    );
                }
                format!("{} ({})", c.state.as_str(), c.attempts)
            }
            (None, Some(_)) => "-".to_owned(),
            (None, None) => "none".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<17} {:>8}  {:<13} {}",
            t.id.as_str(),
            forward,
            t.attempts,
            comp,
            detail
        );
    }
}

fn print_run(v: &RunView) {
    let s = &v.summary;
    println!(
        "run {} `{}`: {}{} — {}/{} succeeded, {} running, {} failed; submitted {}{}",
        s.id,
        printable(&s.name),
        s.state,
        if v.suspended { " (suspended)" } else { "" },
        s.succeeded,
        s.tasks,
        s.running,
        s.failed,
        s.submitted_at,
        s.finished_at
            .map(|f| format!(", finished {f}"))
            .unwrap_or_default()
    );
    print_tasks(&v.tasks);
}

/// `troupe status [RUN|RUN/TASK] [--json]`.
pub fn status(data_dir: &Path, target: Option<Target>, json: bool) -> ExitCode {
    block("status", async move {
        let mut conn = connect(data_dir).await?;
        match target {
            None => match conn.request(Request::Node).await? {
                Response::Node(n) if json => print_json(&node_json(&n)),
                Response::Node(n) => println!(
                    "node {} (pid {}): {}{}; {} active run{} of {}; {} attempt{} running, {} task{} queued; {} workers",
                    n.node_id,
                    n.pid,
                    if n.halted { "halted" } else { "running" },
                    if n.stop_file { " (STOP file present)" } else { "" },
                    n.active_runs,
                    if n.active_runs == 1 { "" } else { "s" },
                    n.total_runs,
                    n.running_attempts,
                    if n.running_attempts == 1 { "" } else { "s" },
                    n.queued_tasks,
                    if n.queued_tasks == 1 { "" } else { "s" },
                    n.workers
                ),
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
pub fn list(data_dir: &Path, json: bool) -> ExitCode {
    block("list", async move {
        let mut conn = connect(data_dir).await?;
        match conn.request(Request::List).await? {
            Response::Runs(runs) if json => {
                print_json(&json!(runs.iter().map(summary_json).collect::<Vec<_>>()))
            }
            Response::Runs(runs) => {
                println!(
                    "{:<26} {:<20} {:<20} {:>9}  SUBMITTED",
                    "RUN", "WORKFLOW", "STATE", "DONE"
                );
                for r in runs {
                    println!(
                        "{:<26} {:<20} {:<20} {:>4}/{:<4}  {}",
                        r.id.to_string(),
                        printable(&r.name),
                        r.state.as_str(),
                        r.succeeded,
                        r.tasks,
                        r.submitted_at
                    );
                }
            }
            r => return Err(unexpected(r)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `troupe tasks RUN [--json]`.
pub fn tasks(data_dir: &Path, run: RunId, json: bool) -> ExitCode {
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

/// `troupe cancel|suspend|resume|retry TARGET`, `halt [--kill]`, `unhalt`.
pub fn command(data_dir: &Path, name: &str, cmd: AdminCommand) -> ExitCode {
    block(name, async move {
        let mut conn = connect(data_dir).await?;
        let what = match &cmd {
            AdminCommand::Cancel(t) => format!("cancelled {t}"),
            AdminCommand::Suspend(t) => format!("suspended {t}"),
            AdminCommand::Resume(t) => format!("resumed {t}"),
            AdminCommand::Retry(t) => format!("retrying {t}"),
            AdminCommand::Halt { kill: true } => {
                "halted; running attempts are being terminated".into()
            }
            AdminCommand::Halt { kill: false } => "halted; running attempts continue".into(),
            AdminCommand::Unhalt => "dispatching resumed".into(),
            AdminCommand::Approve { run, task, .. } => format!("approved {run}/{task}"),
            AdminCommand::Reject { run, task, .. } => format!("rejected {run}/{task}"),
        };
        match conn.request(Request::Command(cmd)).await? {
            Response::Done => println!("{what}"),
            r => return Err(unexpected(r)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Options of `troupe node start`.
pub struct StartOptions {
    /// Worker count override.
    pub workers: Option<u32>,
    /// Grace period override.
    pub grace: Option<Duration>,
    /// Durability override.
    pub durability: Option<troupe::storage::Durability>,
    /// Snapshot interval override (events).
    pub snapshot_every: Option<u64>,
    /// `--config FILE` (else `DATA_DIR/troupe.toml` if present).
    pub config: Option<PathBuf>,
    /// `--http-addr` (`Some(None)`: off).
    pub http_addr: Option<Option<std::net::SocketAddr>>,
    /// Serve HTTP on the default address unless configured otherwise (`node start`).
    pub serve_http: bool,
}

/// The node's settings: built-in defaults, then `troupe.toml`, then `TROUPE_*` variables, then
/// command-line flags (docs/config.md).
pub fn node_config(data_dir: &Path, opts: &StartOptions) -> Result<NodeConfig, Failed> {
    let invalid = |e: troupe::config::ConfigError| Failed {
        code: EXIT_INVALID,
        message: e.to_string(),
    };
    let mut cfg = NodeConfig::new(data_dir);
    let file = match troupe::config::locate(opts.config.as_deref(), data_dir) {
        Some(path) => troupe::config::load(&path).map_err(invalid)?,
        None => troupe::config::NodeFile::default(),
    };
    if opts.serve_http {
        cfg.http_addr = Some(
            troupe::node::DEFAULT_HTTP_ADDR
                .parse()
                .expect("the default parses"),
        );
    }
    let file = troupe::config::apply_env(file, |v| std::env::var(v).ok()).map_err(invalid)?;
    file.apply(&mut cfg);
    if let Some(a) = opts.http_addr {
        cfg.http_addr = a;
    }
    if let Some(w) = opts.workers {
        cfg.workers = w;
    }
    if let Some(g) = opts.grace {
        cfg.grace = g;
    }
    if let Some(d) = opts.durability {
        cfg.durability = d;
    }
    if let Some(n) = opts.snapshot_every {
        cfg.snapshot_every = n;
    }
    troupe::config::check_workers(cfg.workers.into()).map_err(|e| Failed {
        code: EXIT_INVALID,
        message: format!("--workers: {e}"),
    })?;
    Ok(cfg)
}

fn start_failed(data_dir: &Path, e: NodeError) -> Failed {
    if let NodeError::Journal(JournalError::Locked { .. }) = &e {
        return Failed {
            code: EXIT_INTERNAL,
            message: format!(
                "{e}: another node serves {} (stop it with `troupe node stop`)",
                data_dir.display()
            ),
        };
    }
    e.into()
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        // Both arms are cancellation safe (signal streams).
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// `troupe node start --print-config`: the effective settings as a `troupe.toml`.
pub fn print_config(data_dir: &Path, opts: StartOptions) -> ExitCode {
    match node_config(data_dir, &opts) {
        Ok(cfg) => {
            print!("{}", troupe::config::render(&cfg));
            ExitCode::SUCCESS
        }
        Err(f) => f.exit("node start"),
    }
}

/// `troupe node start`: serves until SIGTERM/SIGINT or `troupe node stop`.
pub fn node_start(data_dir: &Path, opts: StartOptions) -> ExitCode {
    block("node start", async move {
        let node = Node::with_config(node_config(data_dir, &opts)?)
            .start()
            .await
            .map_err(|e| start_failed(data_dir, e))?;
        eprintln!(
            "troupe node {} serving {} (pid {})",
            node.shared().journal.node_id(),
            data_dir.display(),
            std::process::id()
        );
        let why = tokio::select! {
            // All arms are cancellation safe: signals, a Notify, a JoinHandle poll loop.
            s = wait_for_signal() => s,
            _ = node.stop_requested() => "troupe node stop",
            _ = wait_stopped(&node) => {
                return Err(Failed { code: EXIT_INTERNAL, message: "the node's supervisor gave up (restart intensity exceeded); see the log above".into() });
            }
        };
        eprintln!(
            "troupe node: {why}: stopping; running attempts get up to {} to finish \
             (send it again to kill them now)",
            humantime::format_duration(node.shared().config.grace)
        );
        stop_node(node, "node").await?;
        eprintln!("troupe node: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Stops an in-process node gracefully; a second SIGINT or SIGTERM meanwhile makes it kill
/// its running attempts at once instead of waiting out the grace period.
async fn stop_node(node: NodeHandle, cmd: &str) -> Result<(), Failed> {
    let shared = std::sync::Arc::clone(node.shared());
    let stop = node.shutdown();
    tokio::pin!(stop);
    tokio::select! {
        // Both arms are cancellation safe: the shutdown is pinned and awaited below if the
        // signal comes first; signal streams lose nothing.
        r = &mut stop => return r.map_err(Failed::from),
        s = wait_for_signal() => {
            eprintln!("troupe {cmd}: {s} again: killing running attempts now");
        }
    }
    shared.kill_running();
    stop.await.map_err(Failed::from)
}

async fn wait_stopped(node: &NodeHandle) {
    while !node.is_stopped() {
        tokio::time::sleep(POLL).await;
    }
}

/// `troupe node stop`: asks the node to stop and waits until it has.
pub fn node_stop(data_dir: &Path) -> ExitCode {
    block("node stop", async move {
        let mut conn = connect(data_dir).await?;
        let pid = match &conn {
            Conn::Remote(c) => c.pid,
            Conn::Local(_) => unreachable!(),
        };
        conn.request(Request::Stop).await?;
        drop(conn);
        // The node removes its socket and exits; wait for the process to be gone.
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            if !process_alive(pid) {
                println!("node (pid {pid}) stopped");
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(POLL).await;
        }
        Err(Failed {
            code: EXIT_INTERNAL,
            message: format!("node (pid {pid}) is still running after 600 s"),
        })
    })
}

/// Whether `pid` is a live process (a zombie waiting for its parent counts as gone).
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// `troupe run FILE [--detach] [--json]`.
pub fn run(data_dir: &Path, file: &Path, detach: bool, json: bool, opts: StartOptions) -> ExitCode {
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
        let followed = tokio::select! {
            // follow() only polls; dropping it mid-request loses nothing.
            r = follow(&mut conn, run) => Some(r),
            s = wait_for_signal() => {
                stopping(s);
                None
            }
            _ = stop_requested => {
                stopping("`troupe node stop`");
                None
            }
        };
        if let Conn::Local(node) = conn {
            stop_node(node, "run").await?;
        }
        let Some(view) = followed else {
            return Ok(ExitCode::from(EXIT_INTERNAL));
        };
        let view = view?;
        let s = &view.summary;
        if json {
            print_json(&run_json(&view));
        } else {
            let took = s
                .finished_at
                .map(|f| f.saturating_since(s.submitted_at))
                .unwrap_or_default();
            println!(
                "run {} `{}` {}: {}/{} tasks succeeded in {:.1} s",
                s.id,
                printable(&s.name),
                s.state,
                s.succeeded,
                s.tasks,
                took.as_secs_f64()
            );
            if s.state != RunState::Succeeded {
                for t in view
                    .tasks
                    .iter()
                    .filter(|t| matches!(t.state, TaskState::Failed | TaskState::Cancelled))
                {
                    println!(
                        "  {} {}: {}",
                        t.id,
                        t.state,
                        printable(t.last_failure.as_deref().unwrap_or("-"))
                    );
                }
                let mut failed_compensation = false;
                for t in &view.tasks {
                    if let Some(c) = t
                        .compensation
                        .as_ref()
                        .filter(|c| c.state == troupe::model::CompensationState::Failed)
                    {
                        failed_compensation = true;
                        println!(
                            "  {} compensation failed after {} attempt(s): {}",
                            t.id,
                            c.attempts,
                            printable(c.last_failure.as_deref().unwrap_or("-"))
                        );
                    }
                }
                println!("  logs: troupe logs {}/TASK", s.id);
                if failed_compensation {
                    println!(
                        "  compensation logs: troupe logs {}/TASK --compensation; resume with troupe retry {}/TASK",
                        s.id, s.id
                    );
                }
            }
        }
        Ok(if s.state == RunState::Succeeded {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_RUN_FAILED)
        })
    })
}

/// Polls the run until it finishes, drawing a progress bar on a terminal.
async fn follow(conn: &mut Conn, run: RunId) -> Result<Box<RunView>, Failed> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tasks {msg}",
        )
        .expect("valid template"),
    );
    let mut announced = 0;
    loop {
        let s = match conn.request(Request::Summary(run)).await? {
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
        tokio::time::sleep(POLL).await;
    }
}

/// `troupe logs RUN/TASK [--attempt N] [--follow]`: prints the attempt's log file from the
/// data dir (the latest attempt by default).
pub fn logs(
    data_dir: &Path,
    target: Target,
    attempt: Option<u32>,
    compensation: bool,
    follow: bool,
) -> ExitCode {
    let kind = if compensation {
        AttemptKind::Compensation
    } else {
        AttemptKind::Forward
    };
    let Target::Task(run, task) = target else {
        eprintln!("troupe logs: give a task as RUN/TASK");
        return ExitCode::from(EXIT_INVALID);
    };
    let dir = data_dir
        .join("logs")
        .join(run.to_string())
        .join(task.as_str());
    let attempt = match attempt {
        Some(a) => a,
        None => match latest_attempt(&dir, kind) {
            Some(a) => a,
            None => {
                eprintln!(
                    "troupe logs: no logs for {run}/{task} in {} (has it started?)",
                    dir.display()
                );
                return ExitCode::from(EXIT_INVALID);
            }
        },
    };
    let path = dir.join(format!("{}.log", kind.file_stem(attempt)));
    let mut file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("troupe logs: {}: {e}", path.display());
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut copy =
        |file: &mut std::fs::File| -> std::io::Result<u64> { std::io::copy(file, &mut out) };
    if let Err(e) = copy(&mut file) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
        eprintln!("troupe logs: {e}");
        return ExitCode::from(EXIT_INTERNAL);
    }
    if !follow {
        return ExitCode::SUCCESS;
    }
    let task_name = task.clone();
    block("logs", async move {
        let mut conn = connect(data_dir).await?;
        loop {
            let running = match conn.request(Request::Run(run)).await? {
                Response::Run(v) => {
                    v.tasks
                        .iter()
                        .find(|t| t.id == task_name)
                        .is_some_and(|t| match kind {
                            AttemptKind::Forward => {
                                t.state == TaskState::Running && t.attempts == attempt
                            }
                            AttemptKind::Compensation => t.compensation.as_ref().is_some_and(|c| {
                                c.state == troupe::model::CompensationState::Running
                                    && c.attempts == attempt
                            }),
                        })
                }
                r => return Err(unexpected(r)),
            };
            let pos = file.stream_position().unwrap_or(0);
            let mut buf = Vec::new();
            let _ = file.read_to_end(&mut buf);
            if !buf.is_empty() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&buf);
                let _ = out.flush();
            } else {
                let _ = file.seek(SeekFrom::Start(pos));
            }
            if !running && buf.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

fn latest_attempt(dir: &Path, kind: AttemptKind) -> Option<u32> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(".log")?;
            let number = match kind {
                AttemptKind::Forward => stem,
                AttemptKind::Compensation => stem.strip_prefix("compensate-")?,
            };
            number.parse::<u32>().ok()
        })
        .max()
}

fn approval_json(p: &PendingApproval, now: Timestamp) -> serde_json::Value {
    json!({
        "run": p.run.to_string(),
        "task": p.task.as_str(),
        "workflow": p.workflow,
        "command": p.command,
        "requested_at": p.requested_at.to_string(),
        "age_s": now.saturating_since(p.requested_at).as_secs(),
        "expires_at": p.expires_at.to_string(),
    })
}

fn queue_json(q: &QueueView) -> serde_json::Value {
    json!({
        "now": q.now.to_string(),
        "halted": q.halted,
        "running": q.running,
        "workers": q.workers,
        "throughput_per_s": q.throughput,
        "total": q.total,
        "tasks": q.entries.iter().map(|e| json!({
            "run": e.run.to_string(),
            "task": e.task.as_str(),
            "workflow": e.workflow,
            "state": e.state.as_str(),
            "priority": e.priority,
            "pool": e.pool,
            "waiting_since": e.waiting_since.to_string(),
            "wait_s": q.now.saturating_since(e.waiting_since).as_secs_f64(),
            "retry_at": opt_time(e.retry_at),
            "estimated_start": opt_time(e.estimated_start),
            "blocked": e.blocked,
        })).collect::<Vec<_>>(),
    })
}

fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

fn print_queue(q: &QueueView, verbose: bool, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{} queued{}, {} running on {} workers, {:.1} attempts/s over the last minute{}",
        q.total,
        if q.total > q.entries.len() as u64 {
            format!(" (first {} shown)", q.entries.len())
        } else {
            String::new()
        },
        q.running,
        q.workers,
        q.throughput,
        if q.halted { "; HALTED" } else { "" }
    )?;
    writeln!(
        out,
        "{:<40} {:<17} {:>5} {:<10} {:>8} {:>10}{}",
        "RUN/TASK",
        "STATE",
        "PRIO",
        "POOL",
        "WAITING",
        "STARTS IN",
        if verbose { "  BLOCKED" } else { "" }
    )?;
    for e in &q.entries {
        let starts = match e.estimated_start {
            Some(at) => short_duration(at.saturating_since(q.now)),
            None => "-".to_owned(),
        };
        write!(
            out,
            "{:<40} {:<17} {:>5} {:<10} {:>8} {:>10}",
            format!("{}/{}", e.run, e.task),
            e.state.as_str(),
            e.priority,
            printable(e.pool.as_deref().unwrap_or("-")),
            short_duration(q.now.saturating_since(e.waiting_since)),
            starts
        )?;
        if verbose {
            write!(out, "  {}", printable(e.blocked.as_deref().unwrap_or("")))?;
        }
        writeln!(out)?;
    }
    Ok(())
}

/// `troupe queue [--watch] [--verbose] [--json] [--limit N]`.
pub fn queue(data_dir: &Path, watch: bool, verbose: bool, json: bool, limit: u32) -> ExitCode {
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    block("queue", async move {
        let mut conn = connect(data_dir).await?;
        let mut first = true;
        loop {
            let request = Request::Queue {
                waiting: verbose,
                limit,
            };
            let q = match conn.request(request).await? {
                Response::Queue(q) => q,
                r => return Err(unexpected(r)),
            };
            let mut out = std::io::stdout().lock();
            if watch && !json {
                if terminal {
                    // Clear the screen and go home (ANSI), then redraw.
                    let _ = write!(out, "\x1b[2J\x1b[H");
                } else if !first {
                    // A pipe or file gets one listing after another, a blank line apart.
                    let _ = writeln!(out);
                }
            }
            first = false;
            let written = if json {
                writeln!(out, "{}", queue_json(&q))
            } else {
                print_queue(&q, verbose, &mut out)
            };
            let _ = out.flush();
            drop(out);
            if written.is_err() || !watch {
                return Ok(ExitCode::SUCCESS);
            }
            tokio::select! {
                // Both arms are cancellation safe.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = wait_for_signal() => return Ok(ExitCode::SUCCESS),
            }
        }
    })
}

/// `troupe approvals [--json]`: pending requests, oldest first.
pub fn approvals(data_dir: &Path, json: bool) -> ExitCode {
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
        let _ = writeln!(
            out,
            "{:<40} {:<16} {:>8} {:>10}  COMMAND",
            "RUN/TASK", "WORKFLOW", "AGE", "EXPIRES IN"
        );
        let short = |d: Duration| {
            let s = d.as_secs();
            match s {
                0..60 => format!("{s}s"),
                60..3600 => format!("{}m", s / 60),
                3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
                _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
            }
        };
        for p in &list {
            let _ = writeln!(
                out,
                "{:<40} {:<16} {:>8} {:>10}  {}",
                format!("{}/{}", p.run, p.task),
                printable(&p.workflow),
                short(now.saturating_since(p.requested_at)),
                short(p.expires_at.saturating_since(now)),
                printable(&p.command)
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `troupe events` when a node serves the data dir (reads through it), with `--follow`.
/// Returns `None` when no node answers (the caller reads the journal offline).
pub fn events_online(
    data_dir: &Path,
    run: Option<RunId>,
    json: bool,
    follow: bool,
) -> Option<ExitCode> {
    let rt = runtime();
    let client = rt.block_on(Client::connect(data_dir));
    let mut conn = match client {
        Ok(c) => Conn::Remote(c),
        Err(ClientError::NoNode { .. }) if !follow => return None,
        Err(e) => return Some(Failed::from(e).exit("events")),
    };
    Some(
        match rt.block_on(async {
            let mut after: Seq = 0;
            loop {
                let batch = match conn
                    .request(Request::Events {
                        run,
                        after,
                        limit: 10_000,
                    })
                    .await?
                {
                    Response::Events(e) => e,
                    r => return Err(unexpected(r)),
                };
                let n = batch.len();
                let mut out = std::io::stdout().lock();
                for (seq, record) in &batch {
                    let line = if json {
                        event_json(*seq, record).to_string()
                    } else {
                        event_line(*seq, record)
                    };
                    if writeln!(out, "{line}").is_err() {
                        return Ok(ExitCode::SUCCESS);
                    }
                    after = *seq;
                }
                let _ = out.flush();
                drop(out);
                if n == 0 {
                    if !follow {
                        return Ok(ExitCode::SUCCESS);
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }) {
            Ok(c) => c,
            Err(e) => e.exit("events"),
        },
    )
}

/// Opens the journal of a data dir that no node serves, for offline reads (`events`,
/// `metrics`). Errors: no journal there (exit 3, as for no node), a data dir this user
/// cannot read (2), or [`JournalError::exit_code`].
pub fn open_offline(data_dir: &Path) -> Result<Journal, Failed> {
    let dir = data_dir.join("journal");
    match std::fs::metadata(dir.join("CURRENT")) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failed {
                code: EXIT_INTERNAL,
                message: format!(
                    "no journal in {} (nothing has run with this data dir)",
                    data_dir.display()
                ),
            })
        }
        Err(e) => {
            return Err(Failed {
                code: EXIT_INVALID,
                message: format!("{}: {e}", dir.display()),
            })
        }
    }
    Journal::open(&dir).map_err(|e| Failed {
        code: e.exit_code() as u8,
        message: e.to_string(),
    })
}

/// `troupe metrics [--since DUR] [--json]`: figures of the window from the durable rollups,
/// through the node if one serves DATA_DIR, else from the journal directly.
pub fn metrics(data_dir: &Path, since: Duration, json: bool) -> ExitCode {
    if since.is_zero() {
        return Failed {
            code: EXIT_INVALID,
            message: "--since must be longer than 0s".into(),
        }
        .exit("metrics");
    }
    let age = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if since > age {
        return Failed {
            code: EXIT_INVALID,
            message: format!(
                "--since {} reaches back before 1970-01-01T00:00:00Z, where timestamps start; \
                 give a shorter window",
                humantime::format_duration(since)
            ),
        }
        .exit("metrics");
    }
    block("metrics", async move {
        let report = match Client::connect(data_dir).await {
            Ok(c) => match Conn::Remote(c).request(Request::Metrics { since }).await? {
                Response::Metrics(r) => *r,
                r => return Err(unexpected(r)),
            },
            Err(ClientError::NoNode { .. }) => {
                let journal = open_offline(data_dir)?;
                let now = Timestamp::from_system_time(std::time::SystemTime::now());
                troupe::actors::metrics::metrics_report(&journal, now, since)
                    .map_err(NodeError::from)?
            }
            Err(e) => return Err(e.into()),
        };
        let mut out = std::io::stdout().lock();
        if json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_value(&report).expect("serializable")
            );
        } else {
            let _ = print_metrics(&report, &mut out);
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_metrics(r: &MetricsReport, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "window: {} ({} to {}), {} buckets",
        humantime::format_duration(Duration::from_secs(r.window_secs)),
        r.from,
        r.to,
        r.buckets
    )?;
    writeln!(
        out,
        "{:<12} {:>10} {:>9} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "POOL", "TASKS/H", "SUCCEEDED", "FAILED", "ERRORS", "MEAN", "P50", "P95", "P99", "RETRIES"
    )?;
    let ms = |v: f64| {
        let d = Duration::from_micros((v * 1000.0) as u64);
        if v < 1000.0 {
            format!("{v:.0}ms")
        } else if v < 60_000.0 {
            format!("{:.1}s", d.as_secs_f64())
        } else {
            format!("{:.1}m", d.as_secs_f64() / 60.0)
        }
    };
    let rows = std::iter::once(&r.total).chain(r.pools.iter());
    for p in rows {
        let name = match p.pool.as_deref() {
            None => "(all)",
            Some("") => "(no pool)",
            Some(n) => n,
        };
        let name = printable(name);
        let (mean, p50, p95, p99) = match &p.latency {
            Some(l) => (ms(l.mean_ms), ms(l.p50_ms), ms(l.p95_ms), ms(l.p99_ms)),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        writeln!(
            out,
            "{:<12} {:>10.1} {:>9} {:>7} {:>7.1}% {:>9} {:>9} {:>9} {:>9} {:>8}",
            name,
            p.throughput_per_hour,
            p.counts.succeeded,
            p.counts.failed,
            p.error_rate * 100.0,
            mean,
            p50,
            p95,
            p99,
            p.counts.retries
        )?;
    }
    Ok(())
}

/// `troupe health [--json]`: exit 0 healthy, 1 degraded, 2 unhealthy (Nagios), 3 when no node
/// answers (Nagios UNKNOWN).
pub fn health(data_dir: &Path, json: bool) -> ExitCode {
    block("health", async move {
        let mut conn = connect(data_dir).await?;
        let report = match conn.request(Request::Health).await? {
            Response::Health(r) => *r,
            r => return Err(unexpected(r)),
        };
        let mut out = std::io::stdout().lock();
        if json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_value(&report).expect("serializable")
            );
        } else {
            let _ = writeln!(out, "{}", report.status.as_str());
            for c in &report.checks {
                let mark = match c.status {
                    Health::Healthy => "ok",
                    Health::Degraded => "DEGRADED",
                    Health::Unhealthy => "UNHEALTHY",
                };
                let _ = writeln!(
                    out,
                    "  {:<11} {:<9} {} (value {} {}, threshold {} {})",
                    c.name,
                    mark,
                    c.message,
                    num(c.value),
                    c.unit,
                    num(c.threshold),
                    c.unit
                );
            }
        }
        Ok(ExitCode::from(match report.status {
            Health::Healthy => 0,
            Health::Degraded => 1,
            Health::Unhealthy => 2,
        }))
    })
}

/// A figure without needless decimals.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}
