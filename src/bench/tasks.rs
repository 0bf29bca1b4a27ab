//! `troupe bench tasks`: the node end to end, each figure beside a baseline from the same run.
//!
//! | case | troupe figure | baseline |
//! |---|---|---|
//! | no-op throughput | tasks/s of one run of N independent in-process no-op tasks, submit → run finished, `sync` journal | raw RocksDB `WriteBatch`es with sync, of the same number of events (2 per task) in batches of troupe's mean commit size, as tasks/s |
//! | `/bin/true` throughput | tasks/s of a run of M `/bin/true` tasks with C workers | a raw `tokio::process` spawn-and-wait loop keeping C in flight |
//! | queued memory | RSS growth per task after submitting 1,000,000 tasks to a halted node | RSS growth of building the same workflow and folding its `run_submitted` into a bare model `State` |
//! | control round trip | p50/p99 of `status RUN` (Request::Run) over the Unix socket, one connection | p50/p99 of a ping-pong of the same response size over a raw Unix socket |
//! | submit → done | p50 of submit + wait for a one-task no-op run, `sync` | p50 of three sequential raw sync `WriteBatch`es (the three commits such a run needs) |

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::journal::raw_db;
use super::{fresh, node_err, socket_ping_pong, BenchError};
use crate::client::Client;
use crate::executor::{NoopExecutor, ProcessExecutor};
use crate::messages::control::{Command as AdminCommand, Request, Response};
use crate::model::{
    Command, Event, EventRecord, RunId, State, TaskDefaults, TaskId, TaskSpec, Timestamp, Workflow,
    WorkflowSpec,
};
use crate::node::{Node, NodeHandle};
use crate::storage::{codec, Durability};

/// Settings of `bench tasks`.
#[derive(Debug, Clone)]
pub struct TasksBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// Journal durability for the throughput and latency cases.
    pub durability: Durability,
    /// Tasks in the no-op throughput run.
    pub noop_tasks: usize,
    /// Workers for the no-op run.
    pub noop_workers: u32,
    /// Tasks in the `/bin/true` run.
    pub process_tasks: usize,
    /// Workers (and baseline concurrency) for the `/bin/true` run.
    pub process_workers: u32,
    /// Tasks queued for the memory figure (0 skips it).
    pub memory_tasks: usize,
    /// Requests for the control round-trip figure.
    pub control_requests: usize,
    /// One-task runs for the submit → done latency.
    pub latency_runs: usize,
}

impl TasksBenchOptions {
    /// Defaults: 200,000 no-op tasks on 64 workers, 2,000 `/bin/true` on 8, 1,000,000 queued,
    /// 5,000 control requests, 300 one-task runs, `sync`.
    pub fn new(dir: PathBuf) -> Self {
        TasksBenchOptions {
            dir,
            durability: Durability::Sync,
            noop_tasks: 200_000,
            noop_workers: 64,
            process_tasks: 2_000,
            process_workers: 8,
            memory_tasks: 1_000_000,
            control_requests: 5_000,
            latency_runs: 300,
        }
    }
}

/// A throughput figure.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// Tasks in the run.
    pub tasks: usize,
    /// troupe, tasks/s.
    pub figure: f64,
    /// Baseline, tasks/s.
    pub baseline: f64,
    /// figure / baseline.
    pub ratio: f64,
    /// Mean events per journal commit (no-op case).
    pub mean_batch: f64,
}

/// The memory figure.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    /// Tasks queued.
    pub tasks: usize,
    /// RSS growth per queued task in the node, bytes.
    pub figure: f64,
    /// RSS growth per task of the bare model state, bytes.
    pub baseline: f64,
    /// figure / baseline.
    pub ratio: f64,
}

/// A latency figure (µs).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Samples.
    pub samples: usize,
    /// troupe p50, µs.
    pub p50_us: u64,
    /// troupe p99, µs.
    pub p99_us: u64,
    /// Baseline p50, µs.
    pub baseline_p50_us: u64,
    /// Baseline p99, µs.
    pub baseline_p99_us: u64,
    /// The headline figure (p99 for control, p50 for submit → done), µs.
    pub figure: u64,
    /// The same percentile of the baseline, µs.
    pub baseline: u64,
    /// figure / baseline.
    pub ratio: f64,
}

/// Everything `bench tasks` measured.
#[derive(Debug, Clone, Serialize)]
pub struct TasksBenchReport {
    /// `sync` or `buffered`.
    pub durability: &'static str,
    /// No-op tasks end to end.
    pub noop: Throughput,
    /// `/bin/true` tasks.
    pub process: Throughput,
    /// Memory per queued task.
    pub memory: Option<Memory>,
    /// `status RUN` round trip.
    pub control: Latency,
    /// Submit → completion of a one-task no-op run.
    pub submit_to_done: Latency,
    /// The headline figure: no-op tasks/s.
    pub figure: f64,
    /// Its baseline.
    pub baseline: f64,
    /// Their ratio.
    pub ratio: f64,
}

/// A workflow of `n` independent tasks running `command`.
pub fn flat_workflow(name: &str, n: usize, command: &[&str]) -> Result<Workflow, BenchError> {
    let argv: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    let tasks = (0..n)
        .map(|i| {
            TaskSpec::new(
                TaskId::new(format!("t{i}")).expect("valid id"),
                Command::Argv(argv.clone()),
            )
        })
        .collect();
    Ok(Workflow::from_spec(WorkflowSpec {
        name: name.to_owned(),
        max_concurrency: None,
        pools: Default::default(),
        defaults: TaskDefaults::default(),
        tasks,
        delegation: None,
        resilience: None,
        origin: None,
    })?)
}

pub(crate) async fn run_to_end(node: &NodeHandle, wf: Workflow) -> Result<Duration, BenchError> {
    let start = Instant::now();
    let run = node.submit(wf).await.map_err(node_err)?;
    node.wait_for_run(run).await.map_err(node_err)?;
    Ok(start.elapsed())
}

async fn noop_case(opts: &TasksBenchOptions) -> Result<Throughput, BenchError> {
    let dir = fresh(&opts.dir, "noop")?;
    let wf = flat_workflow("bench-noop", opts.noop_tasks, &["true"])?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .workers(opts.noop_workers)
        .durability(opts.durability)
        .control_socket(false)
        .start()
        .await
        .map_err(node_err)?;
    let took = run_to_end(&node, wf).await?;
    let stats = node
        .shared()
        .journal_ref()
        .ok_or_else(|| node_err("no journal actor"))?
        .stats()
        .await?;
    node.shutdown().await.map_err(node_err)?;
    let figure = opts.noop_tasks as f64 / took.as_secs_f64();
    let mean_batch = stats.events as f64 / stats.commits.max(1) as f64;
    // Baseline: the same events, raw, in batches of troupe's mean size.
    let events = 2 * opts.noop_tasks;
    let batch = (mean_batch.round() as usize).max(1);
    let record = EventRecord {
        time: Timestamp(1_763_000_000_000),
        event: Event::AttemptStarted {
            run: RunId::from_u128(1),
            task: TaskId::new("t123456").expect("valid id"),
            attempt: 1,
        },
    };
    let value = codec::encode_event(1, &record)?;
    let bdir = fresh(&opts.dir, "noop-baseline")?;
    let secs = {
        let db = raw_db(&bdir)?;
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(opts.durability == Durability::Sync);
        let start = Instant::now();
        let mut seq = 1u64;
        while (seq as usize) <= events {
            let mut b = rocksdb::WriteBatch::default();
            for _ in 0..batch.min(events + 1 - seq as usize) {
                b.put(seq.to_be_bytes(), &value);
                seq += 1;
            }
            db.write_opt(b, &wo)?;
        }
        start.elapsed().as_secs_f64()
    };
    let baseline = opts.noop_tasks as f64 / secs;
    Ok(Throughput {
        tasks: opts.noop_tasks,
        figure,
        baseline,
        ratio: figure / baseline,
        mean_batch,
    })
}

async fn process_case(opts: &TasksBenchOptions) -> Result<Throughput, BenchError> {
    let dir = fresh(&opts.dir, "true")?;
    let node = Node::builder(&dir)
        .executor(ProcessExecutor)
        .workers(opts.process_workers)
        .durability(opts.durability)
        .control_socket(false)
        .start()
        .await
        .map_err(node_err)?;
    let wf = flat_workflow("bench-true", opts.process_tasks, &["/bin/true"])?;
    let took = run_to_end(&node, wf).await?;
    node.shutdown().await.map_err(node_err)?;
    let figure = opts.process_tasks as f64 / took.as_secs_f64();
    // Baseline: spawn and wait with tokio::process, `process_workers` in flight.
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let mut started = 0;
    while started < opts.process_tasks || !set.is_empty() {
        while started < opts.process_tasks && set.len() < opts.process_workers as usize {
            set.spawn(async {
                tokio::process::Command::new("/bin/true")
                    .stdin(std::process::Stdio::null())
                    .status()
                    .await
            });
            started += 1;
        }
        if let Some(r) = set.join_next().await {
            r.map_err(node_err)??;
        }
    }
    let baseline = opts.process_tasks as f64 / start.elapsed().as_secs_f64();
    Ok(Throughput {
        tasks: opts.process_tasks,
        figure,
        baseline,
        ratio: figure / baseline,
        mean_batch: 0.0,
    })
}

/// Resident set size of this process, bytes (from /proc/self/statm).
pub fn rss_bytes() -> u64 {
    let page = 4096;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|p| p * page)
        .unwrap_or(0)
}

async fn memory_case(opts: &TasksBenchOptions) -> Result<Memory, BenchError> {
    let n = opts.memory_tasks;
    // Baseline: the model alone.
    let before = rss_bytes();
    let wf = flat_workflow("bench-memory", n, &["true"])?;
    let mut state = State::new();
    state
        .apply(
            1,
            &EventRecord {
                time: Timestamp(0),
                event: Event::RunSubmitted {
                    run: RunId::from_u128(1),
                    workflow: Arc::new(wf),
                },
            },
        )
        .map_err(node_err)?;
    let baseline = (rss_bytes().saturating_sub(before)) as f64 / n as f64;
    drop(state);

    let dir = fresh(&opts.dir, "memory")?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .durability(Durability::Buffered)
        .control_socket(false)
        .start()
        .await
        .map_err(node_err)?;
    halt(&node).await?;
    node.shared().journal.flush()?;
    let before = rss_bytes();
    let wf = flat_workflow("bench-memory", n, &["true"])?;
    let run = node.submit(wf).await.map_err(node_err)?;
    // Wait until the read model holds the run too (it is measured with the scheduler).
    node.request(Request::Summary(run))
        .await
        .map_err(node_err)?;
    // The journal's memtable holds the encoded workflow until flushed; it is storage, not
    // scheduler memory.
    node.shared().journal.flush()?;
    let figure = (rss_bytes().saturating_sub(before)) as f64 / n as f64;
    node.shutdown().await.map_err(node_err)?;
    Ok(Memory {
        tasks: n,
        figure,
        baseline,
        ratio: figure / baseline.max(1.0),
    })
}

fn percentiles(mut v: Vec<u64>) -> (u64, u64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    (at(0.50), at(0.99))
}

/// Which percentile is the headline figure of a [`Latency`].
#[derive(Clone, Copy)]
enum Headline {
    P50,
    P99,
}

impl Latency {
    /// Summarises troupe's and the baseline's samples (µs, same count).
    fn new(troupe: Vec<u64>, baseline: Vec<u64>, headline: Headline) -> Latency {
        let samples = troupe.len();
        let (p50_us, p99_us) = percentiles(troupe);
        let (baseline_p50_us, baseline_p99_us) = percentiles(baseline);
        let (figure, baseline) = match headline {
            Headline::P50 => (p50_us, baseline_p50_us),
            Headline::P99 => (p99_us, baseline_p99_us),
        };
        Latency {
            samples,
            p50_us,
            p99_us,
            baseline_p50_us,
            baseline_p99_us,
            figure,
            baseline,
            ratio: figure as f64 / baseline.max(1) as f64,
        }
    }
}

/// Stops dispatching, so what is submitted next stays queued.
pub(crate) async fn halt(node: &NodeHandle) -> Result<(), BenchError> {
    node.request(Request::Command(AdminCommand::Halt { kill: false }))
        .await
        .map_err(node_err)?;
    Ok(())
}

async fn control_case(opts: &TasksBenchOptions) -> Result<Latency, BenchError> {
    let dir = fresh(&opts.dir, "control")?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .durability(opts.durability)
        .start()
        .await
        .map_err(node_err)?;
    halt(&node).await?;
    let run = node
        .submit(flat_workflow("bench-status", 20, &["true"])?)
        .await
        .map_err(node_err)?;
    let mut client = Client::connect(&dir).await.map_err(node_err)?;
    let mut samples = Vec::with_capacity(opts.control_requests);
    let mut response_len = 0;
    for _ in 0..opts.control_requests {
        let t = Instant::now();
        let r = client.request(&Request::Run(run)).await.map_err(node_err)?;
        samples.push(t.elapsed().as_micros() as u64);
        if let Response::Run(_) = &r {
            response_len = codec::encode_message(&r).map_err(node_err)?.len();
        } else {
            return Err(node_err(format!("unexpected answer {r:?}")));
        }
    }
    drop(client);
    node.shutdown().await.map_err(node_err)?;
    let troupe = samples;
    // Baseline: raw Unix socket ping-pong, same sizes.
    let samples = socket_ping_pong(&dir.join("echo.sock"), response_len, opts.control_requests)
        .await?
        .into_iter()
        .map(|d| d.as_micros() as u64)
        .collect();
    Ok(Latency::new(troupe, samples, Headline::P99))
}

async fn submit_case(opts: &TasksBenchOptions) -> Result<Latency, BenchError> {
    let dir = fresh(&opts.dir, "latency")?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .durability(opts.durability)
        .control_socket(false)
        .start()
        .await
        .map_err(node_err)?;
    let mut samples = Vec::with_capacity(opts.latency_runs);
    for i in 0..opts.latency_runs {
        let wf = flat_workflow(&format!("bench-latency-{i}"), 1, &["true"])?;
        samples.push(run_to_end(&node, wf).await?.as_micros() as u64);
    }
    node.shutdown().await.map_err(node_err)?;
    let troupe = samples;
    let bdir = fresh(&opts.dir, "latency-baseline")?;
    let db = raw_db(&bdir)?;
    let mut wo = rocksdb::WriteOptions::default();
    wo.set_sync(opts.durability == Durability::Sync);
    let mut samples = Vec::with_capacity(opts.latency_runs);
    let mut seq = 1u64;
    for _ in 0..opts.latency_runs {
        let t = Instant::now();
        for _ in 0..3 {
            let mut b = rocksdb::WriteBatch::default();
            b.put(seq.to_be_bytes(), [0u8; 100]);
            seq += 1;
            db.write_opt(b, &wo)?;
        }
        samples.push(t.elapsed().as_micros() as u64);
    }
    Ok(Latency::new(troupe, samples, Headline::P50))
}

/// Runs every case (in a fresh subdirectory each) and removes `opts.dir` afterwards.
pub async fn tasks(opts: &TasksBenchOptions) -> Result<TasksBenchReport, BenchError> {
    std::fs::create_dir_all(&opts.dir)?;
    let result = async {
        let noop = noop_case(opts).await?;
        let process = process_case(opts).await?;
        let control = control_case(opts).await?;
        let submit_to_done = submit_case(opts).await?;
        let memory = if opts.memory_tasks > 0 {
            Some(memory_case(opts).await?)
        } else {
            None
        };
        Ok::<_, BenchError>(TasksBenchReport {
            durability: match opts.durability {
                Durability::Sync => "sync",
                Durability::Buffered => "buffered",
            },
            figure: noop.figure,
            baseline: noop.baseline,
            ratio: noop.ratio,
            noop,
            process,
            memory,
            control,
            submit_to_done,
        })
    }
    .await;
    let _ = std::fs::remove_dir_all(&opts.dir);
    result
}
