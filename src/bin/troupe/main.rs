//! The `troupe` command line.
//!
//! Exit codes (see `../shared/DESIGN.md`): 0 ok; 1 run ended not succeeded; 2 invalid input
//! or usage; 3 node unreachable or internal error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod admin;
mod dashboard;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use troupe::bench;
use troupe::messages::control::{Command as AdminCommand, Target};
use troupe::model::{render, EventRecord, RunId, Seq, SpecError, Workflow};
use troupe::storage::{Durability, JournalError};
use troupe::workflow_file::load_workflow;

use troupe::model::quote::printable;

/// troupe: durable workflows on supervised actors, journaled in RocksDB.
#[derive(Parser)]
#[command(name = "troupe", version, about)]
struct Cli {
    /// Data directory (journal, logs, control socket).
    /// Default: $XDG_STATE_HOME/troupe, else ~/.local/state/troupe.
    #[arg(long, global = true, env = "TROUPE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Log format on stderr: `text` or `json` (one object per line). The filter comes from
    /// RUST_LOG (default `warn`).
    #[arg(long, global = true, env = "TROUPE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a workflow file: syntax, fields, dependencies, cycles. Exit 0 if valid, 2 if not.
    Validate {
        /// The workflow file (TOML).
        file: PathBuf,
        /// Print the result as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a workflow's DAG (exit 2 if the file is invalid).
    Graph {
        /// The workflow file (TOML).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Print journaled events, oldest first (through the node if one serves DATA_DIR,
    /// else from the journal directly).
    Events {
        /// Only events of this run.
        #[arg(long, value_name = "RUN")]
        run: Option<RunId>,
        /// Keep printing new events as they are journaled (needs a running node).
        #[arg(long)]
        follow: bool,
        /// One JSON object per line: seq, time (RFC 3339), type, and run/task/attempt where
        /// they apply.
        #[arg(long)]
        json: bool,
    },
    /// Start or stop the node serving DATA_DIR.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Submit a workflow and follow it to its end (exit 0 if it succeeded, 1 if not). With no
    /// node serving DATA_DIR, runs one in this process until the run ends.
    Run {
        /// The workflow file (TOML).
        file: PathBuf,
        /// Submit and print the run id without following (needs a running node).
        #[arg(long)]
        detach: bool,
        /// Print the final run (or, with --detach, the id) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// The node (no argument), a run (RUN) or a task (RUN/TASK).
    Status {
        /// RUN or RUN/TASK.
        target: Option<Target>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// All runs, oldest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The tasks of a run.
    Tasks {
        /// The run.
        run: RunId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print an attempt's output (stdout and stderr) from DATA_DIR/logs.
    Logs {
        /// RUN/TASK.
        target: Target,
        /// Which attempt (default: the latest).
        #[arg(long)]
        attempt: Option<u32>,
        /// Show the task's compensation attempts (saga) instead of its forward attempts.
        #[arg(long)]
        compensation: bool,
        /// Keep printing while the attempt runs.
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a run or a task; running attempts are terminated (SIGTERM, grace, SIGKILL).
    Cancel {
        /// RUN or RUN/TASK.
        target: Target,
    },
    /// Suspend a run or a waiting task: nothing of it is dispatched until resumed.
    Suspend {
        /// RUN or RUN/TASK.
        target: Target,
    },
    /// Resume a suspended run or task.
    Resume {
        /// RUN or RUN/TASK.
        target: Target,
    },
    /// Retry a failed or cancelled task (or every one of a run) with a fresh retry budget;
    /// its upstream_failed dependents reopen with it. In a run that is compensation_failed,
    /// retries the compensation that failed (RUN/TASK, or RUN for every failed one).
    Retry {
        /// RUN or RUN/TASK.
        target: Target,
    },
    /// Tasks waiting to run, best first: priority, wait time, pool, estimated start (from the
    /// last minute's throughput).
    Queue {
        /// Redraw every second until interrupted.
        #[arg(long)]
        watch: bool,
        /// Also list tasks that cannot run yet (pending, awaiting approval, suspended), and
        /// why ready tasks are held back.
        #[arg(long)]
        verbose: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// At most this many tasks.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// Throughput, latency (mean, p50, p95, p99), error rate and retries over a past window,
    /// overall and per pool, from the journal's durable per-minute rollups.
    Metrics {
        /// The window: from this long ago until now (humantime: 1h, 24h, 7d).
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        since: std::time::Duration,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The node's health checks. Exit 0 healthy, 1 degraded, 2 unhealthy, 3 no node
    /// (Nagios OK / WARNING / CRITICAL / UNKNOWN).
    Health {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A live terminal view of the node: state, queue, running attempts, last completions,
    /// throughput and error rate. `q` quits.
    Dashboard {
        /// Time between refreshes (humantime).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
    },
    /// Pending approval requests, oldest first: run, task, command, age, expiry.
    Approvals {
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Grant the approval a task awaits; it is then dispatched.
    Approve {
        /// RUN/TASK.
        target: Target,
        /// Your name, recorded in the journal with the OS user of this connection.
        #[arg(long = "as", value_name = "NAME")]
        name: String,
        /// Why (recorded in the journal).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Reject the approval a task awaits; the task fails for good (a saga compensates).
    Reject {
        /// RUN/TASK.
        target: Target,
        /// Your name, recorded in the journal with the OS user of this connection.
        #[arg(long = "as", value_name = "NAME")]
        name: String,
        /// Why (recorded in the journal).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Stop dispatching new attempts (an emergency stop; a file DATA_DIR/STOP does the same).
    Halt {
        /// Also terminate running attempts (they are retried after `unhalt`).
        #[arg(long)]
        kill: bool,
    },
    /// Resume dispatching after `halt`.
    Unhalt,
    /// Measure this machine and disk; each figure is printed beside a baseline from the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Serve DATA_DIR until SIGTERM, SIGINT or `troupe node stop`; then stop dispatching,
    /// let running attempts finish within the grace period, and exit 0.
    Start {
        #[command(flatten)]
        node: NodeArgs,
        /// Print the effective settings (defaults, troupe.toml, TROUPE_* variables, flags) as
        /// a troupe.toml and exit without starting.
        #[arg(long)]
        print_config: bool,
    },
    /// Ask the node serving DATA_DIR to stop, and wait until it has.
    Stop,
}

/// Settings of a node started by this command.
#[derive(clap::Args)]
struct NodeArgs {
    /// Worker actors: attempts that may run at once (default 16).
    #[arg(long)]
    workers: Option<u32>,
    /// Between SIGTERM and SIGKILL of an attempt, and how long a stopping node lets attempts
    /// finish (default 10s).
    #[arg(long, value_parser = humantime::parse_duration)]
    grace: Option<std::time::Duration>,
    /// Journal durability: `sync` (default) or `buffered`.
    #[arg(long)]
    durability: Option<Durability>,
    /// Snapshot the scheduler's state every N events (default 1000000; 0 = never).
    #[arg(long, value_name = "N")]
    snapshot_every: Option<u64>,
    /// Node config file (default: DATA_DIR/troupe.toml if it exists); see docs/config.md.
    #[arg(long, env = "TROUPE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz on IP:PORT, or `off` (`node start` default:
    /// 127.0.0.1:9479; `run` serves none unless configured).
    #[arg(long, value_name = "ADDR", value_parser = |s: &str| troupe::config::parse_http_addr(s).map(HttpAddrArg))]
    http_addr: Option<HttpAddrArg>,
}

/// `--http-addr`: an address or `off` (`None`).
#[derive(Clone, Copy)]
struct HttpAddrArg(Option<std::net::SocketAddr>);

impl NodeArgs {
    fn options(self, serve_http: bool) -> admin::StartOptions {
        admin::StartOptions {
            workers: self.workers,
            grace: self.grace,
            durability: self.durability,
            snapshot_every: self.snapshot_every,
            config: self.config,
            http_addr: self.http_addr.map(|a| a.0),
            serve_http,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (tracing-subscriber's JSON format).
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// Mermaid flowchart.
    Mermaid,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Durable appends (1, 8, 64 appenders) against raw RocksDB, ack latency, replay rate.
    Journal {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-<pid>, so the
        /// disk measured is the one the journal uses.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Seconds per measured case.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// `sync` (fsync per commit, the default) or `buffered`.
        #[arg(long, default_value = "sync")]
        durability: Durability,
        /// Events written and replayed for the replay figure.
        #[arg(long, default_value_t = 1_000_000)]
        replay_events: u64,
        /// Concurrency levels, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
        appenders: Vec<usize>,
    },
    /// Parse + validate + toposort of a synthetic N-task workflow against a plain TOML parse.
    Plan {
        /// Number of tasks.
        #[arg(long)]
        nodes: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Repetitions (the median is reported).
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// The node end to end: no-op and /bin/true tasks/s, memory per queued task, control
    /// round trip, submit → completion latency; each beside a baseline from the same run.
    Tasks {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-tasks-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// `sync` (the default) or `buffered`.
        #[arg(long, default_value = "sync")]
        durability: Durability,
        /// No-op tasks in the throughput run.
        #[arg(long, default_value_t = 200_000)]
        tasks: usize,
        /// Workers for the no-op run.
        #[arg(long, default_value_t = 64)]
        workers: u32,
        /// /bin/true tasks.
        #[arg(long, default_value_t = 2_000)]
        true_tasks: usize,
        /// Workers (and baseline concurrency) for /bin/true.
        #[arg(long, default_value_t = 8)]
        true_workers: u32,
        /// Tasks queued for the memory figure (0 skips it).
        #[arg(long, default_value_t = 1_000_000)]
        memory_tasks: usize,
    },
    /// Approval gates and sagas: listing pending approvals against a raw socket round trip of
    /// the same size; undoing a saga against running as many no-op tasks in sequence.
    Saga {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-saga-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Pending approval requests to list.
        #[arg(long, default_value_t = 100_000)]
        approvals: usize,
        /// Steps of the saga (and no-op tasks of the sequential baseline).
        #[arg(long, default_value_t = 1_000)]
        steps: usize,
    },
    /// Operating a node: /metrics scrape with 1M tasks in the journal (vs /healthz),
    /// `metrics --since 7d` over 10M events (vs a raw scan of them), dashboard refreshes (vs a
    /// status round trip), and no-op throughput with metrics on vs off.
    Metrics {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-metrics-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Tasks in the journal while scraping.
        #[arg(long, default_value_t = 1_000_000)]
        scrape_tasks: usize,
        /// Events in the 7-day window.
        #[arg(long, default_value_t = 10_000_000)]
        since_events: u64,
        /// No-op tasks per overhead round.
        #[arg(long, default_value_t = 200_000)]
        overhead_tasks: usize,
    },
}

/// Exit status for invalid input or usage.
const EXIT_INVALID: u8 = 2;
/// Exit status for an internal error.
const EXIT_INTERNAL: u8 = 3;

/// The data dir when `--data-dir` and `TROUPE_DATA_DIR` are not given:
/// `$XDG_STATE_HOME/troupe`, else `$HOME/.local/state/troupe`. Like the XDG Base Directory
/// spec says, a relative `XDG_STATE_HOME` is ignored; a `HOME` that is unset or relative is
/// an error rather than a data dir under whatever the current folder happens to be.
fn default_data_dir() -> Result<PathBuf, String> {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").map(PathBuf::from) {
        if state.is_absolute() {
            return Ok(state.join("troupe"));
        }
    }
    match std::env::var_os("HOME").map(PathBuf::from) {
        Some(home) if home.is_absolute() => Ok(home.join(".local/state/troupe")),
        _ => Err(
            "no data dir: HOME is unset or not an absolute path (and XDG_STATE_HOME \
                  is not an absolute path either); give --data-dir DIR or set TROUPE_DATA_DIR"
                .into(),
        ),
    }
}

/// `troupe approve|reject RUN/TASK --as NAME [--reason TEXT]`.
fn decide_approval(
    data_dir: &std::path::Path,
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
    admin::command(data_dir, verb, cmd)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    // Commands that never touch a data dir run without one.
    let needs_dir = !matches!(
        cli.command,
        Command::Validate { .. }
            | Command::Graph { .. }
            | Command::Bench(BenchCommand::Plan { .. })
    );
    let data_dir = match cli
        .data_dir
        .clone()
        .map(Ok)
        .unwrap_or_else(default_data_dir)
    {
        Ok(d) => d,
        Err(e) if needs_dir => {
            eprintln!("troupe: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
        Err(_) => PathBuf::new(),
    };
    match cli.command {
        Command::Validate { file, json } => validate(&file, json),
        Command::Graph { file, format } => graph(&file, format),
        Command::Events { run, follow, json } => {
            match admin::events_online(&data_dir, run, json, follow) {
                Some(code) => code,
                None => events(&data_dir, run, json),
            }
        }
        Command::Node(NodeCommand::Start {
            node,
            print_config: true,
        }) => admin::print_config(&data_dir, node.options(true)),
        Command::Node(NodeCommand::Start { node, .. }) => {
            admin::node_start(&data_dir, node.options(true))
        }
        Command::Node(NodeCommand::Stop) => admin::node_stop(&data_dir),
        Command::Run {
            file,
            detach,
            json,
            node,
        } => admin::run(&data_dir, &file, detach, json, node.options(false)),
        Command::Metrics { since, json } => admin::metrics(&data_dir, since, json),
        Command::Health { json } => admin::health(&data_dir, json),
        Command::Dashboard { interval } => dashboard::run(&data_dir, interval),
        Command::Status { target, json } => admin::status(&data_dir, target, json),
        Command::List { json } => admin::list(&data_dir, json),
        Command::Tasks { run, json } => admin::tasks(&data_dir, run, json),
        Command::Logs {
            target,
            attempt,
            compensation,
            follow,
        } => admin::logs(&data_dir, target, attempt, compensation, follow),
        Command::Cancel { target } => {
            admin::command(&data_dir, "cancel", AdminCommand::Cancel(target))
        }
        Command::Suspend { target } => {
            admin::command(&data_dir, "suspend", AdminCommand::Suspend(target))
        }
        Command::Resume { target } => {
            admin::command(&data_dir, "resume", AdminCommand::Resume(target))
        }
        Command::Retry { target } => {
            admin::command(&data_dir, "retry", AdminCommand::Retry(target))
        }
        Command::Halt { kill } => admin::command(&data_dir, "halt", AdminCommand::Halt { kill }),
        Command::Unhalt => admin::command(&data_dir, "unhalt", AdminCommand::Unhalt),
        Command::Approvals { json } => admin::approvals(&data_dir, json),
        Command::Queue {
            watch,
            verbose,
            json,
            limit,
        } => admin::queue(&data_dir, watch, verbose, json, limit),
        Command::Approve {
            target,
            name,
            reason,
        } => decide_approval(&data_dir, "approve", target, name, reason),
        Command::Reject {
            target,
            name,
            reason,
        } => decide_approval(&data_dir, "reject", target, name, reason),
        Command::Bench(cmd) => match cmd.check().map(|()| run_bench(cmd, &data_dir)) {
            Err(e) => {
                eprintln!("troupe bench: {e}");
                ExitCode::from(EXIT_INVALID)
            }
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(e)) => {
                eprintln!("troupe bench: {e:#}");
                ExitCode::from(EXIT_INTERNAL)
            }
        },
    }
}

impl BenchCommand {
    /// Checks the options before anything runs: a bad one is invalid input (exit 2), not a
    /// failed measurement (exit 3).
    fn check(&self) -> Result<(), String> {
        let positive = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("{what} must be at least 1"))
            }
        };
        match self {
            BenchCommand::Journal {
                seconds, appenders, ..
            } => {
                if !(*seconds > 0.0 && seconds.is_finite()) {
                    return Err("--seconds must be positive".into());
                }
                positive(
                    !appenders.is_empty() && appenders.iter().all(|&a| a > 0),
                    "--appenders (each count)",
                )
            }
            BenchCommand::Plan { nodes, runs, .. } => {
                positive(*nodes > 0, "--nodes")?;
                positive(*runs > 0, "--runs")
            }
            BenchCommand::Tasks {
                tasks,
                workers,
                true_tasks,
                true_workers,
                ..
            } => {
                positive(*tasks > 0 && *true_tasks > 0, "--tasks and --true-tasks")?;
                positive(
                    *workers > 0 && *true_workers > 0,
                    "--workers and --true-workers",
                )
            }
            BenchCommand::Saga {
                approvals, steps, ..
            } => positive(*approvals > 0 && *steps > 0, "--approvals and --steps"),
            BenchCommand::Metrics {
                scrape_tasks,
                since_events,
                overhead_tasks,
                ..
            } => positive(
                *scrape_tasks > 0 && *since_events > 0 && *overhead_tasks > 0,
                "--scrape-tasks, --since-events and --overhead-tasks",
            ),
        }
    }
}

fn invalid(e: &SpecError) -> ExitCode {
    // One problem per line: a message quoting the file (a key, a value) must not add lines.
    let mut shown = e.clone();
    shown.source_name = shown.source_name.map(|n| printable(&n).into_owned());
    for p in &mut shown.problems {
        p.message = printable(&p.message).into_owned();
    }
    eprintln!("{shown}");
    let n = e.problems.len();
    eprintln!(
        "{} problem{} found; the workflow is invalid",
        n,
        if n == 1 { "" } else { "s" }
    );
    ExitCode::from(EXIT_INVALID)
}

fn print(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`troupe graph x | head`) is not an error worth a message.
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    ExitCode::SUCCESS
}

fn validate(file: &Path, json: bool) -> ExitCode {
    match load_workflow(file) {
        Ok(wf) => {
            let cp = wf.plan().critical_path(|_| 1);
            if json {
                let v = json!({
                    "valid": true,
                    "file": file.display().to_string(),
                    "name": wf.spec().name,
                    "tasks": wf.len(),
                    "edges": wf.plan().edge_count(),
                    "critical_path": cp.tasks.iter().map(|&t| wf.task_id(t).as_str()).collect::<Vec<_>>(),
                });
                print(&format!("{v}\n"))
            } else {
                print(&summary(file, &wf, cp.length))
            }
        }
        Err(e) if json => {
            let problems: Vec<_> = e
                .problems
                .iter()
                .map(|p| json!({"line": p.line, "column": p.column, "message": p.message}))
                .collect();
            let v = json!({"valid": false, "file": file.display().to_string(), "errors": problems});
            print(&format!("{v}\n"));
            ExitCode::from(EXIT_INVALID)
        }
        Err(e) => invalid(&e),
    }
}

fn summary(file: &Path, wf: &Workflow, critical: u64) -> String {
    format!(
        "{}: valid workflow `{}`: {} task{}, {} dependenc{}, critical path {} task{}{}\n",
        printable(&file.display().to_string()),
        printable(&wf.spec().name),
        wf.len(),
        if wf.len() == 1 { "" } else { "s" },
        wf.plan().edge_count(),
        if wf.plan().edge_count() == 1 {
            "y"
        } else {
            "ies"
        },
        critical,
        if critical == 1 { "" } else { "s" },
        if wf.is_saga() { " (saga)" } else { "" },
    )
}

fn graph(file: &Path, format: GraphFormat) -> ExitCode {
    match load_workflow(file) {
        Ok(wf) => print(&match format {
            GraphFormat::Dot => render::to_dot(&wf),
            GraphFormat::Mermaid => render::to_mermaid(&wf),
        }),
        Err(e) => invalid(&e),
    }
}

/// Exit status for a journal error ([`JournalError::exit_code`]).
fn journal_exit(e: &JournalError) -> ExitCode {
    ExitCode::from(e.exit_code() as u8)
}

fn event_json(seq: Seq, record: &EventRecord) -> serde_json::Value {
    let mut v = json!({
        "seq": seq,
        "time": record.time.to_string(),
        "type": record.event.type_name(),
    });
    if let Some(run) = record.event.run() {
        v["run"] = json!(run.to_string());
    }
    if let Some(task) = record.event.task() {
        v["task"] = json!(task.as_str());
    }
    if let Some(attempt) = record.event.attempt() {
        v["attempt"] = json!(attempt);
    }
    use troupe::model::Event as E;
    let (failure, usage, retry_at) = match &record.event {
        E::TaskSucceeded { usage, .. } | E::CompensationSucceeded { usage, .. } => {
            (None, usage.as_ref(), None)
        }
        E::AttemptFailed {
            failure,
            usage,
            retry_at,
            ..
        } => (Some(failure), usage.as_ref(), Some(*retry_at)),
        E::TaskFailed { failure, usage, .. } => (Some(failure), usage.as_ref(), None),
        E::CompensationFailed {
            failure,
            usage,
            retry_at,
            ..
        } => (Some(failure), usage.as_ref(), *retry_at),
        E::NodeHalted { kill } => {
            v["kill"] = json!(kill);
            (None, None, None)
        }
        E::ApprovalGranted { approver, .. } | E::ApprovalRejected { approver, .. } => {
            v["approver"] = json!({
                "name": approver.name,
                "os_user": approver.os_user,
                "reason": approver.reason,
            });
            (None, None, None)
        }
        _ => (None, None, None),
    };
    if let Some(f) = failure {
        v["failure"] = json!(f.to_string());
    }
    if let Some(u) = usage {
        v["usage"] = json!({
            "user_cpu_us": u.user_cpu_us,
            "system_cpu_us": u.system_cpu_us,
            "max_rss_kib": u.max_rss_kib,
        });
    }
    if let Some(at) = retry_at {
        v["retry_at"] = json!(at.to_string());
    }
    v
}

/// One event as a line of text: seq, time, type, target, attempt.
fn event_line(seq: Seq, record: &EventRecord) -> String {
    let mut line = format!(
        "{seq:>8}  {}  {:<22}",
        record.time,
        record.event.type_name()
    );
    match (record.event.run(), record.event.task()) {
        (Some(r), Some(t)) => line.push_str(&format!("  {r}/{t}")),
        (Some(r), None) => line.push_str(&format!("  {r}")),
        _ => {}
    }
    if let Some(a) = record.event.attempt() {
        line.push_str(&format!("  attempt {a}"));
    }
    if let troupe::model::Event::ApprovalGranted { approver, .. }
    | troupe::model::Event::ApprovalRejected { approver, .. } = &record.event
    {
        line.push_str(&format!(
            "  by {} ({})",
            printable(&approver.name),
            printable(&approver.os_user)
        ));
        if let Some(r) = &approver.reason {
            line.push_str(&format!(": {}", printable(r)));
        }
    }
    line
}

fn events(data_dir: &Path, run: Option<RunId>, json: bool) -> ExitCode {
    let journal = match admin::open_offline(data_dir) {
        Ok(j) => j,
        Err(f) => return f.exit("events"),
    };
    let items: Box<dyn Iterator<Item = Result<(Seq, EventRecord), JournalError>>> = match run {
        Some(run) => match journal.run_events(run) {
            Ok(v) => Box::new(v.into_iter().map(Ok)),
            Err(e) => {
                eprintln!("troupe events: {e}");
                return journal_exit(&e);
            }
        },
        None => Box::new(journal.events_from(1)),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for item in items {
        let (seq, record) = match item {
            Ok(x) => x,
            Err(e) => {
                let _ = out.flush();
                eprintln!("troupe events: {e}");
                return journal_exit(&e);
            }
        };
        let line = if json {
            event_json(seq, &record).to_string()
        } else {
            event_line(seq, &record)
        };
        if writeln!(out, "{line}").is_err() {
            return ExitCode::SUCCESS;
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let (sign, digits) = s.split_at(if s.starts_with('-') { 1 } else { 0 });
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn run_bench(cmd: BenchCommand, data_dir: &Path) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Journal {
            json,
            dir,
            seconds,
            durability,
            replay_events,
            appenders,
        } => {
            let dir = dir.unwrap_or_else(|| data_dir.join(format!("bench-{}", std::process::id())));
            let mut opts = bench::JournalBenchOptions::new(dir);
            opts.case_duration = std::time::Duration::from_secs_f64(seconds);
            opts.durability = durability;
            opts.replay_events = replay_events;
            opts.appenders = appenders;
            let rt = tokio::runtime::Runtime::new()?;
            let report = rt.block_on(bench::journal(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            println!(
                "troupe bench journal: {}-byte events, durability {}, {:.1} s per case",
                report.event_bytes,
                match report.durability {
                    Durability::Sync => "sync",
                    Durability::Buffered => "buffered",
                },
                seconds
            );
            println!(
                "{:>9}  {:>17}  {:>20}  {:>6}  {:>10}",
                "appenders", "troupe events/s", "raw RocksDB events/s", "ratio", "mean batch"
            );
            for c in &report.append {
                println!(
                    "{:>9}  {:>17}  {:>20}  {:>5.2}x  {:>10.1}",
                    c.appenders,
                    thousands(c.events_per_sec),
                    thousands(c.baseline_events_per_sec),
                    c.ratio,
                    c.mean_batch
                );
            }
            let l = &report.latency;
            println!(
                "ack latency at {} events/s offered: achieved {}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                thousands(l.offered_per_sec as f64),
                thousands(l.achieved_per_sec),
                l.p50_us as f64 / 1e3,
                l.p99_us as f64 / 1e3,
                l.max_us as f64 / 1e3
            );
            let r = &report.replay;
            println!(
                "replay: {} events at {} events/s; raw RocksDB scan {} events/s; ratio {:.2}x",
                thousands(r.events as f64),
                thousands(r.events_per_sec),
                thousands(r.baseline_events_per_sec),
                r.ratio
            );
        }
        BenchCommand::Tasks {
            json,
            dir,
            durability,
            tasks,
            workers,
            true_tasks,
            true_workers,
            memory_tasks,
        } => {
            let dir =
                dir.unwrap_or_else(|| data_dir.join(format!("bench-tasks-{}", std::process::id())));
            let mut opts = bench::tasks::TasksBenchOptions::new(dir);
            opts.durability = durability;
            opts.noop_tasks = tasks;
            opts.noop_workers = workers;
            opts.process_tasks = true_tasks;
            opts.process_workers = true_workers;
            opts.memory_tasks = memory_tasks;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::tasks::tasks(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            println!("troupe bench tasks: durability {}", r.durability);
            let n = &r.noop;
            println!(
                "no-op tasks ({} tasks, {} workers): {} tasks/s; raw RocksDB, same events and batch size ({:.1}): {} tasks/s; ratio {:.2}x",
                thousands(n.tasks as f64), workers, thousands(n.figure), n.mean_batch, thousands(n.baseline), n.ratio
            );
            let p = &r.process;
            println!(
                "/bin/true tasks ({} tasks, {} workers): {} tasks/s; raw tokio::process loop: {} spawns/s; ratio {:.2}x",
                thousands(p.tasks as f64), true_workers, thousands(p.figure), thousands(p.baseline), p.ratio
            );
            if let Some(m) = &r.memory {
                println!(
                    "memory per queued task ({} queued): {:.0} B; model state alone: {:.0} B; ratio {:.2}x",
                    thousands(m.tasks as f64), m.figure, m.baseline, m.ratio
                );
            }
            let c = &r.control;
            println!(
                "control round trip (status RUN, {} requests): p50 {:.2} ms, p99 {:.2} ms; raw socket ping-pong p50 {:.2} ms, p99 {:.2} ms; p99 ratio {:.2}x",
                c.samples, c.p50_us as f64 / 1e3, c.p99_us as f64 / 1e3, c.baseline_p50_us as f64 / 1e3, c.baseline_p99_us as f64 / 1e3, c.ratio
            );
            let l = &r.submit_to_done;
            println!(
                "submit -> done, one no-op task ({} runs): p50 {:.2} ms, p99 {:.2} ms; three raw sync writes p50 {:.2} ms; p50 ratio {:.2}x",
                l.samples, l.p50_us as f64 / 1e3, l.p99_us as f64 / 1e3, l.baseline_p50_us as f64 / 1e3, l.ratio
            );
        }
        BenchCommand::Metrics {
            json,
            dir,
            scrape_tasks,
            since_events,
            overhead_tasks,
        } => {
            let dir = dir
                .unwrap_or_else(|| data_dir.join(format!("bench-metrics-{}", std::process::id())));
            let mut opts = bench::metrics::MetricsBenchOptions::new(dir);
            opts.scrape_tasks = scrape_tasks;
            opts.since_events = since_events;
            opts.overhead_tasks = overhead_tasks;
            opts.binary = std::env::current_exe().ok();
            let terminal = std::sync::Mutex::new(ratatui::Terminal::new(
                ratatui::backend::TestBackend::new(160, 45),
            )?);
            let draw = |view: &troupe::messages::control::DashboardView| {
                let screen = dashboard::Screen {
                    view: Some(view.clone()),
                    error: None,
                    fetched_in: std::time::Duration::ZERO,
                    interval: std::time::Duration::from_secs(1),
                };
                let mut t = terminal.lock().expect("not poisoned");
                let _ = t.draw(|f| dashboard::draw(f, &screen));
            };
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::metrics::metrics(&opts, &draw))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            let s = &r.scrape;
            println!(
                "scrape /metrics ({} tasks in the journal): p50 {:.2} ms, p99 {:.2} ms; GET /healthz p50 {:.2} ms; p50 ratio {:.2}x",
                thousands(scrape_tasks as f64), s.p50_ms, s.p99_ms, s.baseline_p50_ms, s.ratio
            );
            let m = &r.since;
            println!(
                "metrics --since 7d ({} events, {} buckets): query p50 {:.1} ms, p99 {:.1} ms{}; raw scan of the events p50 {:.1} ms; p50 ratio {:.3}x",
                thousands(m.events as f64), m.buckets, m.query.p50_ms, m.query.p99_ms,
                m.cli_p50_ms.map(|c| format!(", CLI process p50 {c:.1} ms")).unwrap_or_default(),
                m.query.baseline_p50_ms, m.query.ratio
            );
            for d in &r.dashboard {
                println!(
                    "dashboard refresh ({} queued tasks): p50 {:.1} ms, p99 {:.1} ms; status round trip p50 {:.2} ms; p50 ratio {:.1}x",
                    thousands(d.tasks as f64), d.refresh.p50_ms, d.refresh.p99_ms, d.refresh.baseline_p50_ms, d.refresh.ratio
                );
            }
            let o = &r.overhead;
            let rounds: Vec<String> = o
                .rounds
                .iter()
                .map(|(on, off)| format!("{}/{}", thousands(*on), thousands(*off)))
                .collect();
            println!(
                "metrics cost ({} no-op tasks, {} rounds on/off: {}): {} tasks/s with metrics, {} without; ratio {:.3}x",
                thousands(o.tasks as f64), o.rounds.len(), rounds.join(" "), thousands(o.figure), thousands(o.baseline), o.ratio
            );
        }
        BenchCommand::Saga {
            json,
            dir,
            approvals,
            steps,
        } => {
            let dir =
                dir.unwrap_or_else(|| data_dir.join(format!("bench-saga-{}", std::process::id())));
            let mut opts = bench::saga::SagaBenchOptions::new(dir);
            opts.approvals = approvals;
            opts.steps = steps;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::saga::saga(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            let a = &r.approvals;
            println!(
                "approvals listing ({} pending, {} bytes): p50 {:.1} ms, max {:.1} ms; raw socket round trip of the same size p50 {:.1} ms, max {:.1} ms; p50 ratio {:.2}x",
                thousands(a.pending as f64), thousands(a.response_bytes as f64), a.p50_ms, a.max_ms, a.baseline_p50_ms, a.baseline_max_ms, a.ratio
            );
            let c = &r.compensation;
            println!(
                "saga compensation ({} steps): {} steps/s; {} no-op tasks in sequence: {} tasks/s; ratio {:.2}x",
                thousands(c.steps as f64), thousands(c.figure), thousands(c.steps as f64), thousands(c.baseline), c.ratio
            );
        }
        BenchCommand::Plan { nodes, json, runs } => {
            let report = bench::plan(nodes, runs)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            println!(
                "troupe bench plan: {} tasks, {} dependencies, {:.1} MiB of TOML, median of {} runs",
                thousands(report.nodes as f64),
                thousands(report.edges as f64),
                report.bytes as f64 / (1024.0 * 1024.0),
                report.runs
            );
            println!(
                "parse + validate + toposort: {:.1} ms (of which validate + toposort {:.1} ms); \
                 plain TOML parse (baseline): {:.1} ms; ratio {:.2}x",
                report.figure, report.validate_plan_ms, report.baseline, report.ratio
            );
        }
    }
    Ok(())
}
