//! `troupe bench breakers`: what a circuit breaker costs on the dispatch path.
//!
//! | case | figure | baseline | target |
//! |---|---|---|---|
//! | one breaker | no-op tasks/s with one breaker whose scope holds every task (it never trips: no-op tasks succeed), medians of alternating rounds | the same run with no breaker | ≥ 0.9× |
//!
//! Buffered journal, 16 workers, the in-process no-op executor: CPU-bound, where the check
//! per dispatch and the window update per attempt end cost the most (fsync waits hide them).

use std::path::PathBuf;

use serde::Serialize;

use super::tasks::{flat_workflow, run_to_end};
use super::{fresh, node_err, BenchError};
use crate::executor::NoopExecutor;
use crate::model::resilience::{BreakerSpec, Scope};
use crate::node::Node;
use crate::storage::Durability;

/// Settings of `bench breakers`.
#[derive(Debug, Clone)]
pub struct BreakersBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// No-op tasks per round.
    pub tasks: usize,
    /// Rounds per setting (alternating which goes first).
    pub rounds: usize,
}

impl BreakersBenchOptions {
    /// Defaults: 100,000 tasks, 5 rounds.
    pub fn new(dir: PathBuf) -> Self {
        BreakersBenchOptions {
            dir,
            tasks: 100_000,
            rounds: 5,
        }
    }
}

/// The report: each round's (with breaker, without) tasks/s and their medians.
#[derive(Debug, Clone, Serialize)]
pub struct BreakersBenchReport {
    /// Tasks per round.
    pub tasks: usize,
    /// Median tasks/s with one breaker on every task.
    pub figure: f64,
    /// Median tasks/s with none.
    pub baseline: f64,
    /// figure / baseline.
    pub ratio: f64,
    /// (with, without) per round, in the order run.
    pub rounds: Vec<(f64, f64)>,
}

/// A breaker holding every task that never trips in a run of succeeding tasks.
fn every_task() -> BreakerSpec {
    BreakerSpec {
        name: "bench".into(),
        scope: Scope::default(),
        failure_rate: Some(0.5),
        window: 100,
        min_attempts: 100,
        consecutive_failures: Some(5),
        open_for: std::time::Duration::from_secs(60),
        half_open_probes: 10,
    }
}

async fn round(opts: &BreakersBenchOptions, on: bool, r: usize) -> Result<f64, BenchError> {
    let dir = fresh(&opts.dir, &format!("breakers-{on}-{r}"))?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .workers(16)
        .durability(Durability::Buffered)
        .control_socket(false)
        .breakers(if on { vec![every_task()] } else { Vec::new() })
        .start()
        .await
        .map_err(node_err)?;
    let wf = flat_workflow("bench-breakers", opts.tasks, &["true"])?;
    let took = run_to_end(&node, wf).await?;
    node.shutdown().await.map_err(node_err)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(opts.tasks as f64 / took.as_secs_f64())
}

/// Runs the alternating rounds.
pub async fn breakers(opts: &BreakersBenchOptions) -> Result<BreakersBenchReport, BenchError> {
    let (rounds, figure, baseline) =
        super::alternating(opts.rounds, |on, r| round(opts, on, r)).await?;
    let _ = std::fs::remove_dir_all(&opts.dir);
    Ok(BreakersBenchReport {
        tasks: opts.tasks,
        figure,
        baseline,
        ratio: figure / baseline,
        rounds,
    })
}
