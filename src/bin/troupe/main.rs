//! The `troupe` command line.
//!
//! Exit codes (see `../shared/DESIGN.md`): 0 ok; 1 run ended not succeeded; 2 invalid input
//! or usage; 3 node unreachable or internal error; 4 refused by an agent's authority
//! (`spawn`, `wait`); 124 `wait --timeout` ran out.
//!
//! # Layout
//! - this file: the clap definitions ([`Cli`], [`Command`]) and a `match` that hands each
//!   subcommand to its function.
//! - [`cmd`]: one module per subcommand or small family (`run`, `status`, `events`, `queue`,
//!   `approval`, `logs`, `node`, `metrics`, `bench`, ...).
//! - [`render`]: what commands print: text for people, JSON for scripts, bench reports, the
//!   dashboard screen.
//! - [`common`]: exit codes, [`common::Failed`], the connection to a node, the runtime,
//!   signals, the default data dir.
//! - [`settings`]: the settings of a node this process starts (file, environment, flags).
//!
//! A stopped node's journal is read only through [`troupe::read::offline`].

use std::path::PathBuf;
use std::process::ExitCode;

mod cmd;
mod common;
mod render;
mod settings;

use clap::{Parser, Subcommand, ValueEnum};

use troupe::messages::control::{Command as AdminCommand, Target};
use troupe::model::RunId;
use troupe::Durability;

use crate::cmd::bench::BenchCommand;
use crate::common::{default_data_dir, EXIT_INVALID};
use crate::settings::StartOptions;

/// `--on-failure` of `spawn`.
#[derive(Clone, Copy, ValueEnum)]
enum OnFailureArg {
    /// The parent decides after `troupe wait`.
    Report,
    /// The parent's attempt is stopped and fails as child_failed.
    #[value(name = "fail_parent")]
    FailParent,
    /// A human is asked: approve retries the child, reject reports its failure.
    Ask,
}

impl From<OnFailureArg> for troupe::model::OnFailure {
    fn from(a: OnFailureArg) -> Self {
        match a {
            OnFailureArg::Report => troupe::model::OnFailure::Report,
            OnFailureArg::FailParent => troupe::model::OnFailure::FailParent,
            OnFailureArg::Ask => troupe::model::OnFailure::Ask,
        }
    }
}

/// `--on-budget-exhausted` of `spawn`.
#[derive(Clone, Copy, ValueEnum)]
enum OnBudgetArg {
    /// The run stops, budget_exhausted.
    Stop,
    /// The run is suspended and a human is asked (approve --extend, or reject).
    Ask,
}

impl From<OnBudgetArg> for troupe::model::OnBudgetExhausted {
    fn from(a: OnBudgetArg) -> Self {
        match a {
            OnBudgetArg::Stop => troupe::model::OnBudgetExhausted::Stop,
            OnBudgetArg::Ask => troupe::model::OnBudgetExhausted::Ask,
        }
    }
}

/// `--on-parent-exit` of `spawn`.
#[derive(Clone, Copy, ValueEnum)]
enum OnParentExitArg {
    /// Cancel the child.
    Cancel,
    /// Leave it running.
    Abandon,
}

impl From<OnParentExitArg> for troupe::model::OnParentExit {
    fn from(a: OnParentExitArg) -> Self {
        match a {
            OnParentExitArg::Cancel => troupe::model::OnParentExit::Cancel,
            OnParentExitArg::Abandon => troupe::model::OnParentExit::Abandon,
        }
    }
}

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
    /// Write a commented starter workflow from a template (pipeline, fanout, saga, approval,
    /// agents, swarm) that validates as is; `--list` lists them.
    New(cmd::new::NewArgs),
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
        /// The workflow file (TOML or JSON).
        #[arg(required_unless_present = "run", conflicts_with = "run")]
        file: Option<PathBuf>,
        /// Draw a run's workflow as it is now, mapped tasks expanded into their instances
        /// (through the node serving DATA_DIR, else from its journal).
        #[arg(long, value_name = "RUN")]
        run: Option<RunId>,
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
    /// Run attempts for a coordinator on another machine (docs/cluster.md).
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// The cluster's nodes: id, address, slots, running, labels, last heartbeat, state.
    Nodes {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send no new attempts to a worker node; returns once its running attempts ended.
    Drain {
        /// The node's id (`troupe nodes`).
        node: String,
    },
    /// Submit a workflow and follow it to its end (exit 0 if it succeeded, 1 if not). With no
    /// node serving DATA_DIR, runs one in this process until the run ends.
    Run {
        /// The workflow file (TOML).
        file: PathBuf,
        /// Submit and print the run id without following (needs a running node).
        #[arg(long)]
        detach: bool,
        /// Submit nothing: validate the file (exit 2 if invalid) and print the plan — waves
        /// of tasks that would start together within max_concurrency and the pools' slots,
        /// the critical path, approvals, compensations in undo order, each task's effective
        /// settings. Needs no node and no data dir.
        #[arg(long, conflicts_with = "detach")]
        dry_run: bool,
        /// Print the final run (or, with --detach, the id; with --dry-run, the plan) as JSON.
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
        /// Only root runs: hide runs a task spawned (`troupe tree RUN` shows those).
        #[arg(long)]
        roots: bool,
    },
    /// Start a child run from inside a task (or a root run from outside any task) and print
    /// its id on stdout. A workflow FILE, or with --command one task running PROGRAM ARGS...
    /// directly. Options go before FILE / PROGRAM. The same --key from the same task returns
    /// the same run (never run twice); the same key with a different spec is refused (exit
    /// 2, "spawn conflict"); a spawn over a limit of the authority is refused (exit 4).
    /// Without --detach, waits for the run's end (exit 0 if it succeeded, 1 if not).
    Spawn {
        /// Idempotency key: the child's id is derived from (parent run, parent task, key).
        #[arg(long)]
        key: String,
        /// The input, one JSON value, or @FILE: every task of the run reads it from the file
        /// TROUPE_INPUT and as {{ input }} / {{ input.field }} in its templates.
        #[arg(long, value_name = "@FILE|JSON")]
        input: Option<String>,
        /// Print the id and return at once (wait later with `troupe wait`).
        #[arg(long)]
        detach: bool,
        /// ARGS are PROGRAM and its arguments (one task, no shell), not a workflow file.
        #[arg(long)]
        command: bool,
        /// Deepest depth below the root the child's subtree may reach.
        #[arg(long)]
        max_depth: Option<u32>,
        /// Children the child may have live at once.
        #[arg(long)]
        max_children: Option<u32>,
        /// Descendants the child's subtree may spawn in total.
        #[arg(long)]
        max_descendants: Option<u32>,
        /// A budget over a usage counter, NAME=NUMBER (reserved from the parent's
        /// remainder), or wall_clock=DURATION; repeatable.
        #[arg(long, value_name = "NAME=VALUE", value_parser = cmd::agents::parse_budget)]
        budget: Vec<(String, cmd::agents::BudgetValue)>,
        /// Only programs matching one of these globs (repeatable; a shell line runs `sh`).
        #[arg(long = "allow-command", value_name = "GLOB")]
        allow_command: Vec<String>,
        /// Only these pools (repeatable).
        #[arg(long = "pool", value_name = "POOL")]
        pools: Vec<String>,
        /// The child may not spawn children of its own.
        #[arg(long)]
        no_spawn: bool,
        /// The child's tasks may not ask a human (requires_approval).
        #[arg(long)]
        no_approval: bool,
        /// What the parent hears of a failure: `report` (it decides after `wait`) or
        /// `fail_parent` (the parent's attempt is stopped and fails as child_failed).
        #[arg(long, value_enum, default_value_t = OnFailureArg::Report)]
        on_failure: OnFailureArg,
        /// When the parent task ends first: `cancel` the child or `abandon` it (it runs on).
        #[arg(long, value_enum, default_value_t = OnParentExitArg::Cancel)]
        on_parent_exit: OnParentExitArg,
        /// When the child's subtree runs out of budget: `stop` it (budget_exhausted) or `ask`
        /// a human (it is suspended; `troupe approve RUN --as NAME --extend tokens=N`).
        #[arg(long, value_enum, default_value_t = OnBudgetArg::Stop)]
        on_budget_exhausted: OnBudgetArg,
        /// FILE, or with --command PROGRAM [ARGS...].
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "FILE|PROGRAM ARGS"
        )]
        args: Vec<String>,
    },
    /// Wait for runs to finish and print each one's final state and output (the output of
    /// its `output` task, or its single final task). Inside a task, only the attempt's own
    /// children. Exit 0 if all succeeded, 1 if not, 124 on --timeout (the runs go on).
    Wait {
        /// The runs.
        #[arg(required = true)]
        runs: Vec<RunId>,
        /// Return when the first one finishes (print only it).
        #[arg(long)]
        any: bool,
        /// Give up after this long (humantime: 30s, 10m).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// One JSON object per line: {"run", "key", "state", "output"}.
        #[arg(long)]
        json: bool,
    },
    /// Start a child run on a registry agent (`[[agent]]` in troupe.toml) that offers
    /// CAPABILITY, chosen by recent success rate and median duration with some exploration
    /// (UCB1; docs/agents.md); the choice and its reason are journaled. Prints the run id;
    /// the agent and the reason go to stderr. Otherwise as `spawn`.
    Delegate {
        /// The capability asked for.
        capability: String,
        /// Idempotency key (as for `spawn`).
        #[arg(long)]
        key: String,
        /// The input, one JSON value, or @FILE.
        #[arg(long, value_name = "@FILE|JSON")]
        input: Option<String>,
        /// Print the id and return at once.
        #[arg(long)]
        detach: bool,
        /// A budget over a usage counter, NAME=NUMBER, or wall_clock=DURATION; repeatable.
        #[arg(long, value_name = "NAME=VALUE", value_parser = cmd::agents::parse_budget)]
        budget: Vec<(String, cmd::agents::BudgetValue)>,
        /// See `spawn --on-failure`.
        #[arg(long, value_enum, default_value_t = OnFailureArg::Report)]
        on_failure: OnFailureArg,
        /// See `spawn --on-parent-exit`.
        #[arg(long, value_enum, default_value_t = OnParentExitArg::Cancel)]
        on_parent_exit: OnParentExitArg,
    },
    /// The agent registry: each agent's capabilities, load, success rate and median duration.
    Agents {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A run and all its descendants: state, depth, spawning task, key, usage, budget.
    Tree {
        /// The run.
        run: RunId,
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
    /// Print a task's output (the JSON its attempt wrote to TROUPE_OUTPUT; `null` if none).
    /// For a mapped task, the list of its instances' outputs in index order.
    Output {
        /// RUN/TASK (an instance is TASK[i]).
        target: Target,
        /// One JSON object: run, task, state, output.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run or a task; running attempts are terminated (SIGTERM, grace, SIGKILL).
    Cancel {
        /// RUN or RUN/TASK.
        target: Target,
        /// Change nothing: list the run and tasks the command would move (state now → state
        /// after) and the attempts it would terminate; refused like the real command.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: print one JSON object.
        #[arg(long, requires = "dry_run")]
        json: bool,
    },
    /// Suspend a run or a waiting task: nothing of it is dispatched until resumed.
    Suspend {
        /// RUN or RUN/TASK.
        target: Target,
        /// Change nothing: list the run and tasks the command would move (state now → state
        /// after) and the attempts it would terminate; refused like the real command.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: print one JSON object.
        #[arg(long, requires = "dry_run")]
        json: bool,
    },
    /// Resume a suspended run or task.
    Resume {
        /// RUN or RUN/TASK.
        target: Target,
        /// Change nothing: list the run and tasks the command would move (state now → state
        /// after) and the attempts it would terminate; refused like the real command.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: print one JSON object.
        #[arg(long, requires = "dry_run")]
        json: bool,
    },
    /// Retry a failed or cancelled task (or every one of a run) with a fresh retry budget;
    /// its upstream_failed dependents reopen with it. In a run that is compensation_failed,
    /// retries the compensation that failed (RUN/TASK, or RUN for every failed one).
    /// With --failed instead of a TARGET: every task that failed for good (`troupe failed`
    /// with the same filters), each retried as `retry RUN/TASK` would be; one the node
    /// refuses is skipped with the reason. Exit 2 if nothing was retried (none matched, or
    /// every one was refused).
    // `requires = "failed"` goes unenforced (clap 4.6; `failed` is also in `json_with`); a
    // group of its own is enforced, so the filters require `redrive`.
    #[command(group(clap::ArgGroup::new("json_with").args(["dry_run", "failed"]).multiple(true)))]
    #[command(group(clap::ArgGroup::new("redrive").args(["failed"])))]
    Retry {
        /// RUN or RUN/TASK.
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        target: Option<Target>,
        /// Retry every task that failed for good across runs (dead letters), filtered by
        /// --since, --run and --label.
        #[arg(long)]
        failed: bool,
        /// With --failed: only tasks that failed within this long before now (humantime:
        /// 30m, 1h, 7d).
        #[arg(long, value_name = "DUR", requires = "redrive", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// With --failed: only this run's tasks.
        #[arg(long, value_name = "RUN", requires = "redrive")]
        run: Option<RunId>,
        /// With --failed: only tasks with this label (repeatable: every one).
        #[arg(long = "label", value_name = "LABEL", requires = "redrive")]
        labels: Vec<String>,
        /// Change nothing: list the run and tasks the command would move (state now → state
        /// after) and the attempts it would terminate; refused like the real command.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: print one JSON object; with --failed: one JSON array, an object
        /// per task (run, task, workflow, kind, message, outcome, reason).
        #[arg(long, requires = "json_with")]
        json: bool,
    },
    /// Tasks that failed for good (dead letters) across runs, oldest failure first: run,
    /// workflow, task, failure kind, exit status or signal, message, attempts, when, labels,
    /// and the last lines of the last attempt's log. `troupe retry --failed` redrives them.
    Failed {
        /// Only tasks that failed within this long before now (humantime: 30m, 1h, 7d).
        #[arg(long, value_name = "DUR", value_parser = humantime::parse_duration)]
        since: Option<std::time::Duration>,
        /// Only this run's tasks.
        #[arg(long, value_name = "RUN")]
        run: Option<RunId>,
        /// Only tasks with this label (repeatable: every one).
        #[arg(long = "label", value_name = "LABEL")]
        labels: Vec<String>,
        /// Log lines shown per task (the end of its last attempt's log).
        #[arg(long, value_name = "N", default_value_t = 10)]
        lines: usize,
        /// Print one JSON array: run, workflow, run_state, task, state, kind, exit_code,
        /// signal, message, attempts, failed_at, labels, log, log_tail.
        #[arg(long)]
        json: bool,
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
    /// Circuit breakers (`[[breakers]]` of troupe.toml and of live runs' workflows): state
    /// (closed, open, half_open), scope, trip rule, tasks waiting in scope, times opened.
    Breakers {
        #[command(subcommand)]
        action: Option<BreakersAction>,
        /// Print one JSON array: name, state, scope, since, until, reason, opened, waiting,
        /// failure_rate, window, min_attempts, consecutive_failures, open_for_ms,
        /// half_open_probes.
        #[arg(long)]
        json: bool,
    },
    /// Hook calls (`[[hooks]]`), oldest first: id, hook, event, run/task, state, attempts,
    /// last failure.
    Hooks {
        /// Only calls in this state.
        #[arg(long, value_parser = ["queued", "running", "retrying", "succeeded", "failed"])]
        state: Option<String>,
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Pending approval requests, oldest first: run, task, command, age, expiry.
    Approvals {
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Grant the approval a task awaits; it is then dispatched.
    Approve {
        /// RUN/TASK; or RUN for the escalation a run of an agent tree asks (a failed
        /// `--on-failure ask` child: its failed tasks are retried; a budget: see --extend).
        target: Target,
        /// Your name, recorded in the journal with the OS user of this connection.
        #[arg(long = "as", value_name = "NAME")]
        name: String,
        /// Why (recorded in the journal).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// For a run over its budget: add to it, NAME=NUMBER or wall_clock=DURATION
        /// (repeatable); the run resumes.
        #[arg(long, value_name = "NAME=VALUE", value_parser = cmd::agents::parse_budget)]
        extend: Vec<(String, cmd::agents::BudgetValue)>,
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
        /// Change nothing: list the running attempts (which --kill would terminate) and how
        /// many queued tasks would stop being dispatched.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: print one JSON object.
        #[arg(long, requires = "dry_run")]
        json: bool,
    },
    /// Resume dispatching after `halt`.
    Unhalt,
    /// Measure this machine and disk; each figure is printed beside a baseline from the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Checks of the journal of a stopped node's data dir (or of a backup).
    #[command(subcommand)]
    Journal(JournalCommand),
    /// Remove finished runs (whole agent trees) that ended more than `[retention] runs` (or
    /// --older-than) ago: their state, events, stream index entries and logs. Says what it
    /// removes and frees. Needs the node serving DATA_DIR.
    Gc {
        /// The cutoff (humantime: 30d, 12h); default `[retention] runs` of the node's config.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
        /// Change nothing: list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON object: dry_run, older_than_ms, runs, events, event_bytes,
        /// log_files, log_bytes.
        #[arg(long)]
        json: bool,
    },
    /// Back up DATA_DIR into DEST (which must not exist) while the node runs: a RocksDB
    /// checkpoint of the journal, the attempt logs, troupe.toml and backup.json (seq, node,
    /// time). Without a node, backs up the stopped node's journal.
    Backup {
        /// The backup folder to create (put it on another disk to survive this one).
        dest: PathBuf,
        /// Print backup.json's fields as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Restore the backup SRC into DATA_DIR (which must hold no journal; no node may use it),
    /// after checking it like `journal verify`. A node started there resumes from the
    /// backup's sequence number.
    Restore {
        /// A folder `troupe backup` wrote.
        src: PathBuf,
        /// Print the backup's fields as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BreakersAction {
    /// Close an open or half-open breaker by hand (journaled as `reset by USER`).
    Reset {
        /// The breaker's name (`WORKFLOW/NAME` for a workflow's own).
        name: String,
    },
}

#[derive(Subcommand)]
enum JournalCommand {
    /// Check every record's CRC and decoding, the stream index against the events, every
    /// snapshot, and a replay. Exit 0 if clean, 1 with each problem named by sequence number.
    Verify {
        /// Print one JSON object: events, first_seq, last_seq, stream_entries, snapshots,
        /// problems [{seq, kind, message}], ok.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum WorkerCommand {
    /// Join the coordinator at ADDR:PORT and run its attempts until SIGTERM or SIGINT
    /// (DATA_DIR holds this worker's node id, logs and result spool).
    Start {
        /// The coordinator's `[cluster] listen` address.
        #[arg(long, value_name = "ADDR:PORT")]
        join: String,
        /// The cluster cookie (the coordinator's `cookie_file`; mode 0600).
        #[arg(long, value_name = "FILE")]
        cookie_file: PathBuf,
        /// This worker's join token (one of the coordinator's `join_tokens_file` lines;
        /// mode 0600).
        #[arg(long, value_name = "FILE")]
        token_file: PathBuf,
        /// Attempts run at once (default: the number of CPUs).
        #[arg(long)]
        slots: Option<u32>,
        /// Labels tasks can ask for with `node_labels` (comma-separated).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// Dial a non-loopback address without TLS.
        #[arg(long)]
        insecure: bool,
        /// This worker's certificate (PEM) for mutual TLS.
        #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
        tls_cert: Option<PathBuf>,
        /// Its private key (PEM).
        #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_ca"])]
        tls_key: Option<PathBuf>,
        /// The private CA (PEM) the coordinator's certificate must chain to.
        #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"])]
        tls_ca: Option<PathBuf>,
        /// The name in the coordinator's certificate (default: the host of --join).
        #[arg(long, value_name = "NAME")]
        tls_server_name: Option<String>,
        /// Give up when the first join is not answered within this (default 30s).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        join_timeout: std::time::Duration,
        /// A secrets file (NAME=VALUE lines, mode 0600) for tasks' `secret_env`, over this
        /// worker's own environment; repeatable, later files win.
        #[arg(long = "secrets-file", value_name = "FILE")]
        secrets_files: Vec<PathBuf>,
    },
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
        /// Submit workflow files dropped into DIR (over troupe.toml's `inbox`); see the
        /// Inbox section of docs/operations.md.
        #[arg(long, value_name = "DIR")]
        inbox: Option<PathBuf>,
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
    /// Let `[cluster] listen` be a non-loopback address without TLS (the cookie handshake
    /// alone authenticates; traffic is in the clear), and a non-loopback `--http-addr` serve
    /// the web UI and API without `[http] tokens_file` (reads open to anyone who reaches it).
    #[arg(long)]
    insecure: bool,
}

/// `--http-addr`: an address or `off` (`None`).
#[derive(Clone, Copy)]
struct HttpAddrArg(Option<std::net::SocketAddr>);

impl NodeArgs {
    /// The settings these flags override, for `node start` (`serve_http`) or `run`.
    fn options(self, serve_http: bool) -> StartOptions {
        StartOptions {
            workers: self.workers,
            grace: self.grace,
            durability: self.durability,
            snapshot_every: self.snapshot_every,
            config: self.config,
            http_addr: self.http_addr.map(|a| a.0),
            serve_http,
            insecure: self.insecure,
            inbox: None,
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
            | Command::New(_)
            | Command::Graph { run: None, .. }
            | Command::Run { dry_run: true, .. }
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
    // Commands that run attempts make this process a child subreaper: the orphans of an
    // attempt's daemons are re-parented to it and reaped (see `troupe::process`).
    let runs_attempts = matches!(
        cli.command,
        Command::Node(NodeCommand::Start {
            print_config: false,
            ..
        }) | Command::Run { dry_run: false, .. }
            | Command::Worker(WorkerCommand::Start { .. })
    );
    if runs_attempts {
        if let Err(e) = troupe::process::become_subreaper() {
            tracing::warn!("cannot become a child subreaper ({e}); orphans of attempts go to init");
        }
    }
    match cli.command {
        Command::Validate { file, json } => cmd::workflow::validate(&file, json),
        Command::New(args) => cmd::new::new(args),
        Command::Graph {
            file: Some(file),
            format,
            ..
        } => cmd::workflow::graph(&file, format),
        Command::Graph {
            run: Some(run),
            format,
            ..
        } => cmd::workflow::graph_run(&data_dir, run, format),
        Command::Graph { .. } => unreachable!("clap requires a file or --run"),
        Command::Events { run, follow, json } => cmd::events::events(&data_dir, run, json, follow),
        Command::Node(NodeCommand::Start {
            node,
            print_config: true,
            inbox,
        }) => cmd::node::print_config(&data_dir, node.options(true).with_inbox(inbox)),
        Command::Node(NodeCommand::Start { node, inbox, .. }) => {
            cmd::node::node_start(&data_dir, node.options(true).with_inbox(inbox))
        }
        Command::Node(NodeCommand::Stop) => cmd::node::node_stop(&data_dir),
        Command::Run {
            file,
            dry_run: true,
            json,
            ..
        } => cmd::run::dry_run(&file, json),
        Command::Run {
            file,
            detach,
            json,
            node,
            ..
        } => cmd::run::run(&data_dir, &file, detach, json, node.options(false)),
        Command::Metrics { since, json } => cmd::metrics::metrics(&data_dir, since, json),
        Command::Health { json } => cmd::health::health(&data_dir, json),
        Command::Dashboard { interval } => cmd::dashboard::run(&data_dir, interval),
        Command::Status { target, json } => cmd::status::status(&data_dir, target, json),
        Command::List { json, roots } => cmd::status::list(&data_dir, json, roots),
        Command::Spawn {
            key,
            input,
            detach,
            command,
            max_depth,
            max_children,
            max_descendants,
            budget,
            allow_command,
            pools,
            no_spawn,
            no_approval,
            on_failure,
            on_parent_exit,
            on_budget_exhausted,
            mut args,
        } => {
            let mut authority = troupe::model::authority::AuthorityAsk {
                max_depth,
                max_children,
                max_descendants,
                allowed_commands: (!allow_command.is_empty()).then_some(allow_command),
                pools: (!pools.is_empty()).then_some(pools),
                may_spawn: no_spawn.then_some(false),
                may_request_approval: no_approval.then_some(false),
                ..Default::default()
            };
            cmd::agents::budget_ask(budget, &mut authority);
            let (file, command) = if command {
                (None, Some(args))
            } else if args.len() == 1 {
                (Some(PathBuf::from(args.remove(0))), None)
            } else {
                eprintln!(
                    "troupe spawn: give one workflow FILE, or --command PROGRAM ARGS... (got {} arguments)",
                    args.len()
                );
                return ExitCode::from(EXIT_INVALID);
            };
            cmd::agents::spawn(
                &data_dir,
                cmd::agents::SpawnArgs {
                    file,
                    command,
                    key,
                    input,
                    detach,
                    authority,
                    on_failure: on_failure.into(),
                    on_parent_exit: on_parent_exit.into(),
                    on_budget_exhausted: on_budget_exhausted.into(),
                },
            )
        }
        Command::Wait {
            runs,
            any,
            timeout,
            json,
        } => cmd::agents::wait(&data_dir, runs, any, timeout, json),
        Command::Tree { run, json } => cmd::agents::tree(&data_dir, run, json),
        Command::Delegate {
            capability,
            key,
            input,
            detach,
            budget,
            on_failure,
            on_parent_exit,
        } => {
            let mut authority = troupe::model::authority::AuthorityAsk::default();
            cmd::agents::budget_ask(budget, &mut authority);
            cmd::agents::delegate(
                &data_dir,
                capability,
                cmd::agents::SpawnArgs {
                    file: None,
                    command: None,
                    key,
                    input,
                    detach,
                    authority,
                    on_failure: on_failure.into(),
                    on_parent_exit: on_parent_exit.into(),
                    on_budget_exhausted: Default::default(),
                },
            )
        }
        Command::Agents { json } => cmd::agents::agents(&data_dir, json),
        Command::Nodes { json } => cmd::cluster::nodes(&data_dir, json),
        Command::Drain { node } => cmd::cluster::drain(&data_dir, node),
        Command::Worker(WorkerCommand::Start {
            join,
            cookie_file,
            token_file,
            slots,
            labels,
            insecure,
            tls_cert,
            tls_key,
            tls_ca,
            tls_server_name,
            join_timeout,
            secrets_files,
        }) => cmd::cluster::worker_start(
            &data_dir,
            cmd::cluster::WorkerArgs {
                join,
                cookie_file,
                token_file,
                slots: slots.unwrap_or_else(|| {
                    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
                }),
                labels,
                insecure,
                tls: match (tls_cert, tls_key, tls_ca) {
                    (Some(cert), Some(key), Some(ca)) => {
                        Some(troupe::config::TlsFiles { cert, key, ca })
                    }
                    _ => None,
                },
                tls_server_name,
                join_timeout,
                secrets_files,
            },
        ),
        Command::Tasks { run, json } => cmd::status::tasks(&data_dir, run, json),
        Command::Logs {
            target,
            attempt,
            compensation,
            follow,
        } => cmd::logs::logs(&data_dir, target, attempt, compensation, follow),
        Command::Output { target, json } => cmd::output::output(&data_dir, target, json),
        Command::Cancel {
            target,
            dry_run,
            json,
        } => control(
            &data_dir,
            "cancel",
            AdminCommand::Cancel(target),
            dry_run,
            json,
        ),
        Command::Suspend {
            target,
            dry_run,
            json,
        } => control(
            &data_dir,
            "suspend",
            AdminCommand::Suspend(target),
            dry_run,
            json,
        ),
        Command::Resume {
            target,
            dry_run,
            json,
        } => control(
            &data_dir,
            "resume",
            AdminCommand::Resume(target),
            dry_run,
            json,
        ),
        Command::Retry {
            failed: true,
            since,
            run,
            labels,
            dry_run,
            json,
            ..
        } => cmd::failed::retry_failed(
            &data_dir,
            troupe::messages::control::FailedFilter { since, run, labels },
            dry_run,
            json,
        ),
        Command::Retry {
            target: Some(target),
            dry_run,
            json,
            ..
        } => control(
            &data_dir,
            "retry",
            AdminCommand::Retry(target),
            dry_run,
            json,
        ),
        Command::Retry { .. } => unreachable!("clap requires a target or --failed"),
        Command::Failed {
            since,
            run,
            labels,
            lines,
            json,
        } => cmd::failed::failed(
            &data_dir,
            troupe::messages::control::FailedFilter { since, run, labels },
            lines,
            json,
        ),
        Command::Halt {
            kill,
            dry_run,
            json,
        } => control(
            &data_dir,
            "halt",
            AdminCommand::Halt { kill },
            dry_run,
            json,
        ),
        Command::Unhalt => cmd::control::command(&data_dir, "unhalt", AdminCommand::Unhalt),
        Command::Approvals { json } => cmd::approval::approvals(&data_dir, json),
        Command::Breakers { action: None, json } => cmd::breakers::list(&data_dir, json),
        Command::Breakers {
            action: Some(BreakersAction::Reset { name }),
            ..
        } => cmd::control::command(
            &data_dir,
            "breakers reset",
            AdminCommand::ResetBreaker {
                breaker: name,
                os_user: String::new(),
            },
        ),
        Command::Hooks { state, json } => cmd::hooks::hooks(&data_dir, state, json),
        Command::Queue {
            watch,
            verbose,
            json,
            limit,
        } => cmd::queue::queue(&data_dir, watch, verbose, json, limit),
        Command::Approve {
            target,
            name,
            reason,
            extend,
        } => cmd::approval::decide(&data_dir, "approve", target, name, reason, extend),
        Command::Reject {
            target,
            name,
            reason,
        } => cmd::approval::decide(&data_dir, "reject", target, name, reason, Vec::new()),
        Command::Bench(what) => cmd::bench::bench(what, &data_dir),
        Command::Journal(JournalCommand::Verify { json }) => cmd::journal::verify(&data_dir, json),
        Command::Gc {
            older_than,
            dry_run,
            json,
        } => cmd::backup::gc(&data_dir, older_than, dry_run, json),
        Command::Backup { dest, json } => cmd::backup::backup(&data_dir, &dest, json),
        Command::Restore { src, json } => cmd::backup::restore(&data_dir, &src, json),
    }
}

/// A control command, or its dry run.
fn control(
    data_dir: &std::path::Path,
    name: &str,
    cmd: AdminCommand,
    dry_run: bool,
    json: bool,
) -> ExitCode {
    if dry_run {
        cmd::control::dry_run(data_dir, name, cmd, json)
    } else {
        cmd::control::command(data_dir, name, cmd)
    }
}
