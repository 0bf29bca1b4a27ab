//! `troupe bench journal|plan|tasks|reads|saga|metrics|fanout|agents|cluster|control`: measures this
//! machine and disk; each figure is printed beside a baseline from the same run
//! ([`troupe::bench`]). Exit 2 for bad options, 3 when a measurement fails.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use troupe::bench;
use troupe::model::parse::WorkflowFormat;
use troupe::Durability;

use crate::common::{EXIT_INTERNAL, EXIT_INVALID};
use crate::render::bench::{
    print_agents, print_cluster, print_fanout, print_journal, print_metrics, print_plan,
    print_reads, print_saga, print_tasks,
};
use crate::render::dashboard::{draw, Screen};

/// `troupe bench` subcommands: one measurement each.
#[derive(Subcommand)]
pub(crate) enum BenchCommand {
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
    /// Parse + validate + toposort of a synthetic N-task workflow against a plain parse of
    /// the same text (TOML or JSON).
    Plan {
        /// Number of tasks.
        #[arg(long)]
        nodes: usize,
        /// Spelling of the workflow: `toml` or `json` (baseline: a plain parse of the same
        /// text into `toml::Table` or `serde_json::Value`).
        #[arg(long, default_value = "toml", value_parser = ["toml", "json"])]
        format: String,
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
    /// Reads against dispatch: no-op throughput with and without a client reading `status`,
    /// `queue` and `dashboard` back to back (alternating rounds), and read latency with a
    /// large queue (vs a raw socket round trip of the same size).
    Reads {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-reads-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// No-op tasks per dispatch round.
        #[arg(long, default_value_t = 200_000)]
        tasks: usize,
        /// Workers of the dispatch rounds.
        #[arg(long, default_value_t = 64)]
        workers: u32,
        /// Rounds of each side (alternated).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Tasks queued for the latency case.
        #[arg(long, default_value_t = 1_000_000)]
        queued: usize,
        /// Requests of each kind in the latency case.
        #[arg(long, default_value_t = 200)]
        requests: usize,
    },
    /// Agent trees of in-process no-op agents: spawn + wait of one child against submit →
    /// done of a one-task run, and a tree (fan-out F, depth D) against as many no-op tasks,
    /// alternating rounds. Targets: ≤ 2× and ≥ 0.5×.
    Agents {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-agents-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Children per agent.
        #[arg(long, default_value_t = 10)]
        fan_out: u32,
        /// Levels below the root.
        #[arg(long, default_value_t = 4)]
        depth: u32,
        /// Spawn + wait samples per round.
        #[arg(long, default_value_t = 200)]
        samples: usize,
        /// Rounds of each side.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Dynamic fan-out: a mapped task's N in-process no-op instances (expansion included)
    /// against a run of N plain no-op tasks, alternating rounds.
    Fanout {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-fanout-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Instances (and plain tasks).
        #[arg(long, default_value_t = 100_000)]
        instances: usize,
        /// Worker slots.
        #[arg(long, default_value_t = 64)]
        workers: u32,
        /// Rounds of each side.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
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
    /// Remote worker nodes on loopback (worker processes of this binary, the coordinator in
    /// this process, `run_local = false`), alternating rounds with a local node: /bin/true
    /// tasks/s on 2 worker nodes of S slots against a local node with 2×S workers (target
    /// ≥ 0.7x); submit → done p50 of a one-task run on one worker node against a local node
    /// (target ≤ 3x); kill -9 of the worker running a task → the retry placed on the other
    /// worker (bound 2 × heartbeat + 500 ms).
    Cluster {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-cluster-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// /bin/true tasks per throughput run.
        #[arg(long, default_value_t = 2_000)]
        tasks: usize,
        /// Slots of each worker node (the local node gets twice as many workers).
        #[arg(long, default_value_t = 4)]
        slots: u32,
        /// Submit → done samples per side and round.
        #[arg(long, default_value_t = 50)]
        samples: usize,
        /// Rounds of each case (throughput and latency alternate the sides).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// The coordinator's heartbeat (a worker silent for twice this is lost).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "500ms")]
        heartbeat: std::time::Duration,
    },
    /// Boot of a long journal: open + newest snapshot + the events after it, against a fold
    /// of every event from the first (rounds alternate, each printed).
    Boot {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-boot-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Events in the journal.
        #[arg(long, default_value_t = 10_000_000)]
        events: u64,
        /// Events after the snapshot (default: half the default snapshot_every).
        #[arg(long, default_value_t = 500_000)]
        tail: u64,
        /// Rounds of each side.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// The control socket under load: read waits (max, p99) and dispatch with N clients
    /// (readers, `events --follow`, submitters) plus a garbage client and a connect/drop
    /// loop, against 1 client of each kind; every submit checked acknowledged once.
    Control(super::bench_control::ControlArgs),
    /// What one circuit breaker on every task costs: no-op tasks/s with it vs without,
    /// alternating rounds (target ≥ 0.9×).
    Breakers {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-breakers-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// No-op tasks per round.
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Rounds per setting.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// What priority scoring costs: no-op tasks/s with every weight on (tasks with
    /// priorities, deadlines, labels) vs `scoring = false`, alternating rounds (target ≥
    /// 0.9×); then `queue --limit 10` with N scored tasks queued (target p99 ≤ 20 ms).
    Scoring {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-scoring-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// No-op tasks per round.
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Rounds per setting.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Scored tasks queued for the `queue` latency (0 skips it).
        #[arg(long, default_value_t = 1_000_000)]
        queued: usize,
        /// Scatter the deadlines over two hours (both sides then start the tasks in the same
        /// scattered order; by default deadlines grow with the task index).
        #[arg(long)]
        scattered: bool,
    },
    /// The web UI: the page of a 10,000-task run against its JSON (target ≤ 1 s), the page
    /// of a 100,000-task run (summarised), how soon an approval reaches an open run page
    /// against the raw event stream (target ≤ 200 ms), and no-op tasks/s with 20 open run
    /// pages against none, alternating rounds (target ≥ 0.95×).
    Web {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-web-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Tasks of the timed run page (the big run has ten times as many).
        #[arg(long, default_value_t = 10_000)]
        tasks: usize,
        /// Rounds of each case.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Approvals timed for the live latency.
        #[arg(long, default_value_t = 50)]
        approvals: usize,
        /// No-op tasks per dispatch round.
        #[arg(long, default_value_t = 50_000)]
        dispatch_tasks: usize,
        /// Open run pages in the dispatch rounds with pages.
        #[arg(long, default_value_t = 20)]
        pages: usize,
    },
    /// The inbox: files/s from dropping N workflow files into `--inbox` until all are in
    /// `submitted/`, vs the same workflows submitted directly; alternating rounds (target
    /// ≥ 1,000 files/s).
    Inbox {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scratch directory (removed afterwards). Default: DATA_DIR/bench-inbox-<pid>.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Files per round.
        #[arg(long, default_value_t = 10_000)]
        files: usize,
        /// Rounds per case.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
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

/// `troupe bench ...`: checks the options, then measures.
pub(crate) fn bench(cmd: BenchCommand, data_dir: &Path) -> ExitCode {
    match cmd.check().map(|()| measure(cmd, data_dir)) {
        Err(e) => {
            eprintln!("troupe bench: {e}");
            ExitCode::from(EXIT_INVALID)
        }
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("troupe bench: {e:#}");
            ExitCode::from(EXIT_INTERNAL)
        }
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
            BenchCommand::Control(args) => args.check(),
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
            BenchCommand::Agents {
                fan_out,
                depth,
                samples,
                rounds,
                ..
            } => positive(
                *fan_out > 0 && *fan_out <= 64 && *depth <= 8 && *samples > 0 && *rounds > 0,
                "--fan-out (at most 64), --depth (at most 8), --samples and --rounds",
            ),
            BenchCommand::Fanout {
                instances,
                workers,
                rounds,
                ..
            } => positive(
                *instances > 0 && *instances <= 1_000_000 && *workers > 0 && *rounds > 0,
                "--instances (at most 1000000), --workers and --rounds",
            ),
            BenchCommand::Reads {
                tasks,
                workers,
                rounds,
                queued,
                requests,
                ..
            } => positive(
                *tasks > 0 && *workers > 0 && *rounds > 0 && *queued > 0 && *requests > 0,
                "--tasks, --workers, --rounds, --queued and --requests",
            ),
            BenchCommand::Cluster {
                tasks,
                slots,
                samples,
                rounds,
                heartbeat,
                ..
            } => {
                if cfg!(not(feature = "cluster")) {
                    return Err("this troupe was built without the `cluster` feature".into());
                }
                if heartbeat.is_zero() {
                    return Err("--heartbeat must be longer than 0s".into());
                }
                positive(
                    *tasks > 0
                        && *slots > 0
                        && *slots <= troupe::node::MAX_WORKERS / 2
                        && *samples > 0
                        && *rounds > 0,
                    &format!(
                        "--tasks, --slots (at most {}), --samples and --rounds",
                        troupe::node::MAX_WORKERS / 2
                    ),
                )
            }
            BenchCommand::Boot {
                events,
                tail,
                rounds,
                ..
            } => positive(
                *events > *tail && *rounds > 0,
                "--events (more than --tail) and --rounds",
            ),
            BenchCommand::Breakers { tasks, rounds, .. }
            | BenchCommand::Scoring { tasks, rounds, .. } => {
                positive(*tasks > 0 && *rounds > 0, "--tasks and --rounds")
            }
            BenchCommand::Inbox { files, rounds, .. } => {
                positive(*files > 0 && *rounds > 0, "--files and --rounds")
            }
            BenchCommand::Web {
                tasks,
                rounds,
                approvals,
                dispatch_tasks,
                ..
            } => positive(
                *tasks > 0 && *rounds > 0 && *approvals > 0 && *dispatch_tasks > 0,
                "--tasks, --rounds, --approvals and --dispatch-tasks",
            ),
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

/// The default scratch directory of a bench: `DATA_DIR/NAME-PID`, on the disk the journal
/// uses.
fn scratch(data_dir: &Path, name: &str) -> PathBuf {
    troupe::layout::DataDir::new(data_dir).bench_dir(name, std::process::id())
}

/// Runs the measurement and prints its report (text, or one JSON object).
fn measure(cmd: BenchCommand, data_dir: &Path) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Control(args) => args.run(data_dir)?,
        BenchCommand::Journal {
            json,
            dir,
            seconds,
            durability,
            replay_events,
            appenders,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench"));
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
            print_journal(&report, seconds);
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
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-tasks"));
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
            print_tasks(&r, workers, true_workers);
        }
        BenchCommand::Metrics {
            json,
            dir,
            scrape_tasks,
            since_events,
            overhead_tasks,
        } => {
            let dir = dir.unwrap_or_else(|| {
                troupe::layout::DataDir::new(data_dir)
                    .bench_dir("bench-metrics", std::process::id())
            });
            let mut opts = bench::metrics::MetricsBenchOptions::new(dir);
            opts.scrape_tasks = scrape_tasks;
            opts.since_events = since_events;
            opts.overhead_tasks = overhead_tasks;
            opts.binary = std::env::current_exe().ok();
            let terminal = std::sync::Mutex::new(ratatui::Terminal::new(
                ratatui::backend::TestBackend::new(160, 45),
            )?);
            let draw_view = |view: &troupe::messages::control::DashboardView| {
                let screen = Screen {
                    view: Some(view.clone()),
                    error: None,
                    fetched_in: std::time::Duration::ZERO,
                    interval: std::time::Duration::from_secs(1),
                };
                let mut t = terminal.lock().expect("not poisoned");
                let _ = t.draw(|f| draw(f, &screen));
            };
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::metrics::metrics(&opts, &draw_view))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            print_metrics(&r, scrape_tasks);
        }
        BenchCommand::Breakers {
            json,
            dir,
            tasks,
            rounds,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-breakers"));
            let mut opts = bench::resilience::BreakersBenchOptions::new(dir);
            opts.tasks = tasks;
            opts.rounds = rounds;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::resilience::breakers(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            println!(
                "bench breakers: {} no-op tasks per round, buffered journal, 16 workers",
                r.tasks
            );
            print_paired(
                &r.rounds,
                ("one breaker", "tasks/s"),
                ("none", "tasks/s"),
                (r.figure, r.baseline, r.ratio),
                "target ≥ 0.9",
            );
        }
        BenchCommand::Scoring {
            json,
            dir,
            tasks,
            rounds,
            queued,
            scattered,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-scoring"));
            let mut opts = bench::scoring::ScoringBenchOptions::new(dir);
            opts.tasks = tasks;
            opts.rounds = rounds;
            opts.queued = queued;
            opts.scattered = scattered;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::scoring::scoring(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            println!(
                "bench scoring: {} no-op tasks per round (priorities, deadlines{}, labels), buffered journal, 16 workers",
                r.tasks,
                if r.scattered { " scattered" } else { "" }
            );
            print_paired(
                &r.rounds,
                ("scoring on", "tasks/s"),
                ("off", "tasks/s"),
                (r.figure, r.baseline, r.ratio),
                "target ≥ 0.9",
            );
            if r.queued > 0 {
                println!(
                    "queue --limit 10 with {} scored tasks queued: p50 {:.2} ms, p99 {:.2} ms (target p99 ≤ 20 ms)",
                    r.queued,
                    r.queue_p50_us as f64 / 1000.0,
                    r.queue_p99_us as f64 / 1000.0
                );
            }
        }
        BenchCommand::Web {
            json,
            dir,
            tasks,
            rounds,
            approvals,
            dispatch_tasks,
            pages,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-web"));
            let mut opts = bench::web::WebBenchOptions::new(dir);
            opts.tasks = tasks;
            opts.rounds = rounds;
            opts.approvals = approvals;
            opts.dispatch_tasks = dispatch_tasks;
            opts.pages = pages;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::web::web(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            println!(
                "bench web: the page of a {}-task run (HTML, DAG SVG, task table) vs its JSON, {} bytes",
                r.tasks, r.page_bytes
            );
            for (i, (page, json)) in r.page_rounds.iter().enumerate() {
                println!(
                    "  round {}: page {page:>8.1} ms   json {json:>8.1} ms",
                    i + 1
                );
            }
            println!(
                "median: page {:.1} ms, json {:.1} ms, ratio {:.2} (target: page ≤ 1000 ms)",
                r.page_ms,
                r.json_ms,
                r.page_ms / r.json_ms
            );
            println!(
                "the page of a {}-task run (summarised graph, paged table), {} bytes",
                r.big_tasks, r.big_page_bytes
            );
            for (i, (page, json)) in r.big_rounds.iter().enumerate() {
                println!(
                    "  round {}: page {page:>8.1} ms   json {json:>8.1} ms",
                    i + 1
                );
            }
            println!("median: page {:.1} ms", r.big_page_ms);
            println!(
                "approval answered (durable) → open run page shows it, vs → /api/events: {} approvals",
                r.latency_rounds.len()
            );
            println!(
                "  run page p50 {:.1} ms, max {:.1} ms; event stream p50 {:.1} ms (target: page ≤ 200 ms)",
                r.latency_p50_ms, r.latency_max_ms, r.feed_p50_ms
            );
            println!(
                "dispatch: no-op tasks/s with {} open run pages vs none, buffered journal, 16 workers",
                r.pages
            );
            print_paired(
                &r.dispatch_rounds,
                ("pages", "tasks/s"),
                ("none", "tasks/s"),
                (r.figure, r.baseline, r.ratio),
                "target ≥ 0.95",
            );
        }
        BenchCommand::Inbox {
            json,
            dir,
            files,
            rounds,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-inbox"));
            let mut opts = bench::inbox::InboxBenchOptions::new(dir);
            opts.files = files;
            opts.rounds = rounds;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::inbox::inbox(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            println!(
                "bench inbox: {} files per round, sync journal, node halted (no task runs)",
                r.files
            );
            print_paired(
                &r.rounds,
                ("inbox", "files/s"),
                ("direct submit", "runs/s"),
                (r.figure, r.baseline, r.ratio),
                "target: inbox ≥ 1000 files/s",
            );
        }
        BenchCommand::Agents {
            json,
            dir,
            fan_out,
            depth,
            samples,
            rounds,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-agents"));
            let mut opts = bench::agents::AgentsBenchOptions::new(dir);
            opts.fan_out = fan_out;
            opts.depth = depth;
            opts.latency_samples = samples;
            opts.rounds = rounds;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::agents::agents(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            print_agents(&r);
        }
        BenchCommand::Boot {
            json,
            dir,
            events,
            tail,
            rounds,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-boot"));
            let opts = bench::boot::BootBenchOptions {
                dir,
                events,
                tail,
                rounds,
            };
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::boot::boot(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            println!(
                "journal: {} events, snapshot at {} ({} bytes, {} tasks), {} events after it (written in {:.1} s)",
                r.events, r.snapshot_seq, r.snapshot_bytes, r.tasks, r.tail_events, r.write_s
            );
            for (i, round) in r.rounds.iter().enumerate() {
                println!(
                    "round {}: boot (snapshot + tail) {:.3} s   full replay {:.3} s",
                    i + 1,
                    round.boot_s,
                    round.full_replay_s
                );
            }
            println!(
                "boot {:.3} s (median)   baseline full replay {:.3} s   ratio {:.1}x   target <= 3 s",
                r.boot_s, r.baseline_s, r.ratio
            );
        }
        BenchCommand::Cluster {
            json,
            dir,
            tasks,
            slots,
            samples,
            rounds,
            heartbeat,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-cluster"));
            // The worker nodes are this binary's `worker start`.
            let binary = std::env::current_exe()?;
            let mut opts = bench::cluster::ClusterBenchOptions::new(dir, binary);
            opts.tasks = tasks;
            opts.slots = slots;
            opts.samples = samples;
            opts.rounds = rounds;
            opts.heartbeat = heartbeat;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::cluster::cluster(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            print_cluster(&r);
        }
        BenchCommand::Fanout {
            json,
            dir,
            instances,
            workers,
            rounds,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-fanout"));
            let mut opts = bench::fanout::FanOutBenchOptions::new(dir);
            opts.instances = instances;
            opts.workers = workers;
            opts.rounds = rounds;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::fanout::fan_out(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            print_fanout(&r);
        }
        BenchCommand::Saga {
            json,
            dir,
            approvals,
            steps,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-saga"));
            let mut opts = bench::saga::SagaBenchOptions::new(dir);
            opts.approvals = approvals;
            opts.steps = steps;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::saga::saga(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            print_saga(&r);
        }
        BenchCommand::Reads {
            json,
            dir,
            tasks,
            workers,
            rounds,
            queued,
            requests,
        } => {
            let dir = dir.unwrap_or_else(|| scratch(data_dir, "bench-reads"));
            let mut opts = bench::reads::ReadsBenchOptions::new(dir);
            opts.tasks = tasks;
            opts.workers = workers;
            opts.rounds = rounds;
            opts.queued = queued;
            opts.requests = requests;
            let rt = tokio::runtime::Runtime::new()?;
            let r = rt.block_on(bench::reads::reads(&opts))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
                return Ok(());
            }
            print_reads(&r);
        }
        BenchCommand::Plan {
            nodes,
            json,
            runs,
            format,
        } => {
            let format: WorkflowFormat = format.parse().map_err(anyhow::Error::msg)?;
            let report = bench::plan(nodes, runs, format)?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
                return Ok(());
            }
            print_plan(&report);
        }
    }
    Ok(())
}

/// Prints the rounds of a bench that alternates two sides (`(on, off)` per round, in units
/// per second) and the medians: `round N: ON a UNIT   OFF b UNIT`, then
/// `median: ON a UNIT, OFF b UNIT, ratio R (TARGET)`.
fn print_paired(
    rounds: &[(f64, f64)],
    (on, on_unit): (&str, &str),
    (off, off_unit): (&str, &str),
    (figure, baseline, ratio): (f64, f64, f64),
    target: &str,
) {
    for (i, (a, b)) in rounds.iter().enumerate() {
        println!(
            "  round {}: {on} {a:>10.0} {on_unit}   {off} {b:>10.0} {off_unit}",
            i + 1
        );
    }
    println!(
        "median: {on} {figure:.0} {on_unit}, {off} {baseline:.0} {off_unit}, ratio {ratio:.3} ({target})"
    );
}
