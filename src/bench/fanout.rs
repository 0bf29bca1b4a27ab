//! `troupe bench fanout`: dynamic fan-out against plain tasks. One run whose `list` task
//! (in-process) outputs an array of N numbers and whose mapped task expands into N no-op
//! instances, against one run of N independent no-op tasks (what `bench tasks` measures),
//! alternating rounds of both in the same process, each on a fresh node and data dir.
//!
//! The fan-out figure is instances/s from submission to the run's end: it includes the
//! expansion (reading the array back from the journal, one `task_expanded` event, the
//! rebuilt workflow) and every instance's dispatch and journaled end.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::oneshot;

use super::tasks::{flat_workflow, run_to_end};
use super::{fresh, node_err, BenchError};
use crate::executor::{AttemptContext, AttemptFuture, Executor};
use crate::messages::scheduler::AttemptOutcome;
use crate::model::decide::Handed;
use crate::model::{Command, Handoff, TaskDefaults, TaskId, TaskSpec, Workflow, WorkflowSpec};
use crate::node::Node;
use crate::storage::Durability;

/// Settings of `bench fanout`.
#[derive(Debug, Clone)]
pub struct FanOutBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// Instances of the mapped task (and tasks of the plain run).
    pub instances: usize,
    /// Worker slots.
    pub workers: u32,
    /// Rounds of each side, alternated.
    pub rounds: usize,
    /// Journal durability.
    pub durability: Durability,
}

impl FanOutBenchOptions {
    /// Defaults: 100,000 instances, 64 workers, 3 rounds, `sync`.
    pub fn new(dir: PathBuf) -> Self {
        FanOutBenchOptions {
            dir,
            instances: 100_000,
            workers: 64,
            rounds: 3,
            durability: Durability::Sync,
        }
    }
}

/// What `bench fanout` measured.
#[derive(Debug, Clone, Serialize)]
pub struct FanOutBenchReport {
    /// Instances per fan-out run (= tasks per plain run).
    pub instances: usize,
    /// Each round: (fan-out instances/s, plain tasks/s).
    pub rounds: Vec<(f64, f64)>,
    /// Fan-out instances/s, median of the rounds.
    pub figure: f64,
    /// Plain no-op tasks/s, median of the rounds.
    pub baseline: f64,
    /// figure / baseline.
    pub ratio: f64,
}

/// Outputs the array `[0, 1, ..., n-1]` for the task `list`; every other attempt succeeds
/// at once with no output.
struct ListThenNoop {
    /// The `list` task's output, compact JSON.
    array: String,
}

impl Executor for ListThenNoop {
    fn execute(&self, ctx: AttemptContext, _cancel: oneshot::Receiver<()>) -> AttemptFuture {
        let output = (ctx.task_id().as_str() == "list").then(|| self.array.clone());
        Box::pin(std::future::ready(AttemptOutcome::Succeeded {
            usage: None,
            handed: Handed {
                output,
                counters: Default::default(),
            },
        }))
    }
}

/// `list` → `each` (for_each over its output, `max_fan_out` = n).
pub fn fan_out_workflow(n: usize) -> Result<Workflow, BenchError> {
    let list = TaskSpec::new(
        TaskId::new("list").expect("valid id"),
        Command::Argv(vec!["true".into()]),
    );
    let mut each = TaskSpec::new(
        TaskId::new("each").expect("valid id"),
        Command::Argv(vec!["true".into()]),
    );
    each.depends_on = vec![list.id.clone()];
    each.handoff = Some(Box::new(Handoff {
        for_each: Some("{{ tasks.list.output }}".into()),
        max_fan_out: Some(n as u32),
        ..Handoff::default()
    }));
    Ok(Workflow::from_spec(WorkflowSpec {
        name: "bench-fanout".into(),
        max_concurrency: None,
        pools: Default::default(),
        defaults: TaskDefaults::default(),
        tasks: vec![list, each],
        delegation: None,
        resilience: None,
        origin: None,
    })?)
}

/// Runs the benchmark (see the module docs).
pub async fn fan_out(opts: &FanOutBenchOptions) -> Result<FanOutBenchReport, BenchError> {
    let n = opts.instances;
    let array = serde_json::to_string(&(0..n).collect::<Vec<_>>()).map_err(node_err)?;
    let mut rounds = Vec::new();
    for round in 0..opts.rounds {
        let dir = fresh(&opts.dir, &format!("fanout-{round}"))?;
        let node = Node::builder(&dir)
            .executor(ListThenNoop {
                array: array.clone(),
            })
            .workers(opts.workers)
            .durability(opts.durability)
            .control_socket(false)
            .start()
            .await
            .map_err(node_err)?;
        let start = Instant::now();
        let took = run_to_end(&node, fan_out_workflow(n)?).await?;
        debug_assert!(took <= start.elapsed());
        node.shutdown().await.map_err(node_err)?;
        let fan = n as f64 / took.as_secs_f64();
        let dir = fresh(&opts.dir, &format!("plain-{round}"))?;
        let node = Node::builder(&dir)
            .executor(crate::executor::NoopExecutor)
            .workers(opts.workers)
            .durability(opts.durability)
            .control_socket(false)
            .start()
            .await
            .map_err(node_err)?;
        let took = run_to_end(&node, flat_workflow("bench-plain", n, &["true"])?).await?;
        node.shutdown().await.map_err(node_err)?;
        rounds.push((fan, n as f64 / took.as_secs_f64()));
    }
    let _ = std::fs::remove_dir_all(&opts.dir);
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let figure = median(rounds.iter().map(|r| r.0).collect());
    let baseline = median(rounds.iter().map(|r| r.1).collect());
    Ok(FanOutBenchReport {
        instances: n,
        rounds,
        figure,
        baseline,
        ratio: figure / baseline,
    })
}
