//! `troupe bench scoring`: what priority scoring costs on the dispatch path and in `queue`.
//!
//! | case | figure | baseline | target |
//! |---|---|---|---|
//! | throughput | no-op tasks/s of a run whose tasks carry priorities, deadlines and labels, scoring on with every weight and a label boost set, medians of alternating rounds | the same run with `scoring = false` | ≥ 0.9× |
//! | throughput, scattered (`--scattered`) | the same with deadlines scattered over two hours, so the tasks start in an order far from their index order | `scoring = false` with priorities that give the same start order | — |
//! | queue | p50/p99 of `queue --limit 10` with M such tasks queued on a halted node, scoring on | — (the read-model target: p99 ≤ 20 ms at 1,000,000) | p99 ≤ 20 ms |
//!
//! Buffered journal, 16 workers, the in-process no-op executor: CPU-bound, where the rank
//! computed per enqueue and the float comparisons of the heap cost the most (fsync waits
//! would hide them).
//!
//! Both sides start the tasks in the same order, so the figure is what scoring costs, not
//! what a different order costs: by default the deadlines grow with the task's index (the
//! scored order is the index order within a priority, as first in, first out is); with
//! `--scattered` the baseline's priorities encode the scored order. Starting 100,000 tasks
//! in a scattered order is slower by itself (each start touches a task far from the last
//! one in every per-task table), whoever chose the order.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::tasks::{flat_workflow, halt, run_to_end};
use super::{fresh, node_err, BenchError};
use crate::client::Client;
use crate::executor::NoopExecutor;
use crate::messages::control::{Request, Response};
use crate::model::score::Weights;
use crate::model::spec::{Deadline, TaskScheduling};
use crate::model::Workflow;
use crate::node::Node;
use crate::storage::Durability;

/// Settings of `bench scoring`.
#[derive(Debug, Clone)]
pub struct ScoringBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// No-op tasks per round.
    pub tasks: usize,
    /// Rounds per setting (alternating which goes first).
    pub rounds: usize,
    /// Tasks queued for the `queue` latency (0 skips it).
    pub queued: usize,
    /// `queue --limit 10` requests in the latency case.
    pub requests: usize,
    /// Scatter the deadlines (see the module docs).
    pub scattered: bool,
}

impl ScoringBenchOptions {
    /// Defaults: 100,000 tasks, 5 rounds, 1,000,000 queued, 200 requests.
    pub fn new(dir: PathBuf) -> Self {
        ScoringBenchOptions {
            dir,
            tasks: 100_000,
            rounds: 5,
            queued: 1_000_000,
            requests: 200,
            scattered: false,
        }
    }
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct ScoringBenchReport {
    /// Tasks per round.
    pub tasks: usize,
    /// Deadlines scattered (else growing with the task index).
    pub scattered: bool,
    /// Median tasks/s with scoring on.
    pub figure: f64,
    /// Median tasks/s with scoring off.
    pub baseline: f64,
    /// figure / baseline.
    pub ratio: f64,
    /// (on, off) tasks/s per round, in the order run.
    pub rounds: Vec<(f64, f64)>,
    /// Tasks queued for the latency case (0: skipped).
    pub queued: usize,
    /// p50 of `queue --limit 10` with them, µs.
    pub queue_p50_us: u64,
    /// p99 of `queue --limit 10` with them, µs.
    pub queue_p99_us: u64,
}

/// Every weight on, and a boost for the label half the tasks carry.
fn weights_on() -> Weights {
    let mut w = Weights {
        age: 0.5,
        ..Weights::default()
    };
    w.label_boosts.insert("vip".into(), 250.0);
    w
}

/// `n` independent no-op tasks with priorities 0..4, a deadline, and the labels `vip`
/// (boosted: every task alike, so the boost is looked up but does not reorder) and `bulk`.
/// The deadline of task `i` is `i` seconds after submission, or with `scattered` `i % 120`
/// minutes; for the scoring-off side of a scattered round (`!on`), the priority is
/// `1000 · (i % 5) − i % 120` instead, which starts the tasks in the scored order.
fn scored_workflow(
    name: &str,
    n: usize,
    scattered: bool,
    on: bool,
) -> Result<Workflow, BenchError> {
    let mut spec = flat_workflow(name, n, &["true"])?.spec().clone();
    for (i, t) in spec.tasks.iter_mut().enumerate() {
        let deadline = if scattered {
            60 * (i % 120) as u64
        } else {
            i as u64
        };
        t.priority = Some(if scattered && !on {
            1000 * (i % 5) as i32 - (i % 120) as i32
        } else {
            (i % 5) as i32
        });
        t.scheduling = Some(Box::new(TaskScheduling {
            deadline: Some(Deadline::After(Duration::from_secs(deadline))),
            swarm: None,
        }));
        t.labels = vec!["vip".into(), "bulk".into()];
    }
    Ok(Workflow::from_spec(spec)?)
}

async fn round(opts: &ScoringBenchOptions, on: bool, r: usize) -> Result<f64, BenchError> {
    let dir = fresh(&opts.dir, &format!("scoring-{on}-{r}"))?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .workers(16)
        .durability(Durability::Buffered)
        .control_socket(false)
        .scheduling(if on { weights_on() } else { Weights::off() })
        .start()
        .await
        .map_err(node_err)?;
    let wf = scored_workflow("bench-scoring", opts.tasks, opts.scattered, on)?;
    let took = run_to_end(&node, wf).await?;
    node.shutdown().await.map_err(node_err)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(opts.tasks as f64 / took.as_secs_f64())
}

/// p50 and p99 (µs) of `queue --limit 10` with `opts.queued` scored tasks (scattered
/// deadlines) on a halted node.
async fn queue_latency(opts: &ScoringBenchOptions) -> Result<(u64, u64), BenchError> {
    let dir = fresh(&opts.dir, "scoring-queue")?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .durability(Durability::Buffered)
        .scheduling(weights_on())
        .start()
        .await
        .map_err(node_err)?;
    halt(&node).await?;
    node.submit(scored_workflow("bench-queued", opts.queued, true, true)?)
        .await
        .map_err(node_err)?;
    let mut client = Client::connect(&dir).await.map_err(node_err)?;
    let request = Request::Queue {
        waiting: false,
        limit: 10,
    };
    let mut samples = Vec::with_capacity(opts.requests);
    for _ in 0..opts.requests {
        let t = Instant::now();
        let r = client.request(&request).await.map_err(node_err)?;
        samples.push(t.elapsed().as_micros() as u64);
        match r {
            Response::Queue(q) if q.total == opts.queued as u64 => {}
            Response::Error(e) => return Err(node_err(e)),
            other => return Err(node_err(format!("unexpected answer: {other:?}"))),
        }
    }
    drop(client);
    node.shutdown().await.map_err(node_err)?;
    let _ = std::fs::remove_dir_all(&dir);
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    Ok((at(0.50), at(0.99)))
}

/// Runs the alternating rounds, then the queue latency case.
pub async fn scoring(opts: &ScoringBenchOptions) -> Result<ScoringBenchReport, BenchError> {
    let (rounds, figure, baseline) =
        super::alternating(opts.rounds, |on, r| round(opts, on, r)).await?;
    let (queue_p50_us, queue_p99_us) = if opts.queued > 0 && opts.requests > 0 {
        queue_latency(opts).await?
    } else {
        (0, 0)
    };
    let _ = std::fs::remove_dir_all(&opts.dir);
    Ok(ScoringBenchReport {
        tasks: opts.tasks,
        scattered: opts.scattered,
        figure,
        baseline,
        ratio: figure / baseline,
        rounds,
        queued: opts.queued,
        queue_p50_us,
        queue_p99_us,
    })
}
