//! `troupe bench reads`: reads do not slow dispatch, and stay fast with a large queue.
//!
//! | case | troupe figure | baseline |
//! |---|---|---|
//! | dispatch under reads | tasks/s of a run of N no-op tasks while one client issues `status RUN` (of that run: all N tasks), `queue --limit 10` and a dashboard request back to back over the control socket; and with `status` of a 20-task run instead (light) | tasks/s of the same run with no reader, in alternating rounds of the same process |
//! | read latency, large queue | p50/p99 of `status RUN` (20 tasks), `queue --limit 10` and `dashboard` with M tasks queued on a halted node | p50/p99 of a raw Unix-socket ping-pong of the same response size |

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::tasks::{flat_workflow, halt};
use super::{fresh, node_err, socket_ping_pong, BenchError};
use crate::client::Client;
use crate::executor::NoopExecutor;
use crate::messages::control::{Request, Response};
use crate::model::RunId;
use crate::node::Node;
use crate::storage::{codec, Durability};

/// Settings of `bench reads`.
#[derive(Debug, Clone)]
pub struct ReadsBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// No-op tasks per dispatch round.
    pub tasks: usize,
    /// Workers of the dispatch rounds.
    pub workers: u32,
    /// Rounds of each side (alternated: without reader, with reader, ...).
    pub rounds: usize,
    /// Tasks queued for the latency case.
    pub queued: usize,
    /// Requests of each kind in the latency case.
    pub requests: usize,
}

impl ReadsBenchOptions {
    /// Defaults: 200,000 no-op tasks on 64 workers, 3 rounds each side, 1,000,000 queued,
    /// 200 requests of each kind.
    pub fn new(dir: PathBuf) -> Self {
        ReadsBenchOptions {
            dir,
            tasks: 200_000,
            workers: 64,
            rounds: 3,
            queued: 1_000_000,
            requests: 200,
        }
    }
}

/// Who reads during a dispatch round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reader {
    /// Nobody (the baseline).
    None,
    /// `status` of the dispatching run itself (every one of its tasks), `queue --limit 10`,
    /// `dashboard`, back to back: the case of the target.
    Full,
    /// The same with `status` of a small (20-task) run instead: what the reads cost without
    /// the work of rendering a 200,000-task run.
    Light,
}

/// One dispatch round.
#[derive(Debug, Clone, Serialize)]
pub struct DispatchRound {
    /// Who read during it.
    pub reader: Reader,
    /// Tasks/s, submit → run finished.
    pub tasks_per_s: f64,
    /// Reads answered during the run (each of the three kinds counts one).
    pub reads: usize,
    /// p99 of those reads, µs (0 without a reader).
    pub read_p99_us: u64,
}

/// Latency of one kind of read with a large queue.
#[derive(Debug, Clone, Serialize)]
pub struct ReadLatency {
    /// `status`, `queue` or `dashboard`.
    pub kind: &'static str,
    /// Samples.
    pub samples: usize,
    /// p50, µs.
    pub p50_us: u64,
    /// p99, µs.
    pub p99_us: u64,
    /// Response size, bytes.
    pub response_bytes: usize,
    /// Raw socket ping-pong of that size: p50, µs.
    pub baseline_p50_us: u64,
    /// Raw socket ping-pong of that size: p99, µs.
    pub baseline_p99_us: u64,
}

/// Everything `bench reads` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ReadsBenchReport {
    /// Tasks per dispatch round.
    pub tasks: usize,
    /// Every round, in the order run.
    pub rounds: Vec<DispatchRound>,
    /// Mean tasks/s with the full reader ÷ mean without a reader.
    pub ratio: f64,
    /// Mean tasks/s with the light reader ÷ mean without a reader.
    pub light_ratio: f64,
    /// Tasks queued in the latency case.
    pub queued: usize,
    /// Read latencies with that queue.
    pub latency: Vec<ReadLatency>,
}

fn percentiles(mut v: Vec<u64>) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    (at(0.50), at(0.99))
}

/// The three reads of a dashboard user, one after another; each answer's time in µs.
async fn read_three(client: &mut Client, run: RunId) -> Result<[u64; 3], BenchError> {
    let requests = [
        Request::Run(run),
        Request::Queue {
            waiting: false,
            limit: 10,
        },
        Request::Dashboard { limit: 10 },
    ];
    let mut out = [0u64; 3];
    for (i, r) in requests.iter().enumerate() {
        let t = Instant::now();
        match client.request(r).await.map_err(node_err)? {
            Response::Error(e) => return Err(node_err(e)),
            _ => out[i] = t.elapsed().as_micros() as u64,
        }
    }
    Ok(out)
}

async fn dispatch_round(
    opts: &ReadsBenchOptions,
    round: usize,
    reader: Reader,
) -> Result<DispatchRound, BenchError> {
    let dir = fresh(&opts.dir, &format!("dispatch-{round}"))?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .workers(opts.workers)
        .durability(Durability::Sync)
        .start()
        .await
        .map_err(node_err)?;
    let wf = flat_workflow("bench-reads", opts.tasks, &["true"])?;
    let stop = Arc::new(AtomicBool::new(false));
    let small = match reader {
        Reader::Light => Some(
            node.submit(flat_workflow("bench-small", 20, &["true"])?)
                .await
                .map_err(node_err)?,
        ),
        _ => None,
    };
    let start = Instant::now();
    let run = node.submit(wf).await.map_err(node_err)?;
    let status_of = small.unwrap_or(run);
    let task = (reader != Reader::None).then(|| {
        let (dir, stop) = (dir.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut client = Client::connect(&dir).await.map_err(node_err)?;
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.extend(read_three(&mut client, status_of).await?);
            }
            Ok::<_, BenchError>(samples)
        })
    });
    node.wait_for_run(run).await.map_err(node_err)?;
    let took = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let samples = match task {
        Some(r) => r.await.map_err(node_err)??,
        None => Vec::new(),
    };
    node.shutdown().await.map_err(node_err)?;
    let reads = samples.len();
    Ok(DispatchRound {
        reader,
        tasks_per_s: opts.tasks as f64 / took.as_secs_f64(),
        reads,
        read_p99_us: percentiles(samples).1,
    })
}

async fn latency_case(opts: &ReadsBenchOptions) -> Result<Vec<ReadLatency>, BenchError> {
    let dir = fresh(&opts.dir, "latency")?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .durability(Durability::Buffered)
        .start()
        .await
        .map_err(node_err)?;
    halt(&node).await?;
    node.submit(flat_workflow("bench-queued", opts.queued, &["true"])?)
        .await
        .map_err(node_err)?;
    let run = node
        .submit(flat_workflow("bench-status", 20, &["true"])?)
        .await
        .map_err(node_err)?;
    let mut client = Client::connect(&dir).await.map_err(node_err)?;
    let kinds: [(&'static str, Request); 3] = [
        ("status", Request::Run(run)),
        (
            "queue",
            Request::Queue {
                waiting: false,
                limit: 10,
            },
        ),
        ("dashboard", Request::Dashboard { limit: 10 }),
    ];
    let mut out = Vec::new();
    for (kind, request) in kinds {
        let mut samples = Vec::with_capacity(opts.requests);
        let mut response_bytes = 0;
        for _ in 0..opts.requests {
            let t = Instant::now();
            let r = client.request(&request).await.map_err(node_err)?;
            samples.push(t.elapsed().as_micros() as u64);
            if let Response::Error(e) = &r {
                return Err(node_err(e));
            }
            response_bytes = codec::encode_message(&r).map_err(node_err)?.len();
        }
        let base: Vec<u64> = socket_ping_pong(
            &dir.join(format!("echo-{kind}.sock")),
            response_bytes,
            opts.requests,
        )
        .await?
        .into_iter()
        .map(|d| d.as_micros() as u64)
        .collect();
        let (p50_us, p99_us) = percentiles(samples);
        let (baseline_p50_us, baseline_p99_us) = percentiles(base);
        out.push(ReadLatency {
            kind,
            samples: opts.requests,
            p50_us,
            p99_us,
            response_bytes,
            baseline_p50_us,
            baseline_p99_us,
        });
    }
    drop(client);
    node.shutdown().await.map_err(node_err)?;
    Ok(out)
}

/// Runs `bench reads`: dispatch rounds alternating without and with a reader, then the
/// latency case. Removes its scratch directory.
pub async fn reads(opts: &ReadsBenchOptions) -> Result<ReadsBenchReport, BenchError> {
    let result = async {
        let mut rounds = Vec::new();
        for i in 0..opts.rounds {
            for (j, reader) in [Reader::None, Reader::Full, Reader::Light]
                .into_iter()
                .enumerate()
            {
                rounds.push(dispatch_round(opts, 3 * i + j, reader).await?);
            }
        }
        let mean = |reader: Reader| {
            let v: Vec<f64> = rounds
                .iter()
                .filter(|r| r.reader == reader)
                .map(|r| r.tasks_per_s)
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let without = mean(Reader::None).max(f64::MIN_POSITIVE);
        let ratio = mean(Reader::Full) / without;
        let light_ratio = mean(Reader::Light) / without;
        let latency = latency_case(opts).await?;
        Ok(ReadsBenchReport {
            tasks: opts.tasks,
            rounds,
            ratio,
            light_ratio,
            queued: opts.queued,
            latency,
        })
    }
    .await;
    let _ = std::fs::remove_dir_all(&opts.dir);
    result
}
