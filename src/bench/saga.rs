//! `troupe bench saga`: approval gates and sagas, each figure beside a baseline from the
//! same run.
//!
//! | case | troupe figure | baseline |
//! |---|---|---|
//! | approvals listing | p50/max round trip of `troupe approvals` (Request::Approvals over the Unix socket) with N pending requests | p50/max of a raw Unix-socket ping-pong of the same response size |
//! | compensation rate | median of 3 rounds: steps/s undoing a chain saga of N in-process no-op steps (from the failure that aborts it to `compensated`) | tasks/s of N in-process no-op tasks run in sequence (a chain), submitted → succeeded |
//!
//! Both rates are timed from the journal's own timestamps (ms), so neither pays for the
//! client round trip; the two sides alternate for three rounds and each reports its median.
//!
//! Both node runs use the `sync` journal and in-process no-op work, so the figures are the
//! runtime's own cost.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::oneshot;

use super::{fresh, node_err, socket_ping_pong, BenchError};
use crate::client::Client;
use crate::executor::{AttemptContext, AttemptFuture, Executor};
use crate::messages::control::{Request, Response};
use crate::messages::scheduler::{AttemptKind, AttemptOutcome};
use crate::model::{
    Command, Failure, RunState, TaskDefaults, TaskId, TaskSpec, Workflow, WorkflowSpec,
};
use crate::node::{Node, NodeHandle};
use crate::storage::codec;

/// Settings of `bench saga`.
#[derive(Debug, Clone)]
pub struct SagaBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// Pending approval requests to list.
    pub approvals: usize,
    /// Round trips of the listing.
    pub listings: usize,
    /// Steps of the saga (and tasks of the sequential baseline).
    pub steps: usize,
}

impl SagaBenchOptions {
    /// Defaults: 100,000 pending approvals listed 20 times, a 1,000-step saga.
    pub fn new(dir: PathBuf) -> Self {
        SagaBenchOptions {
            dir,
            approvals: 100_000,
            listings: 20,
            steps: 1_000,
        }
    }
}

/// The approvals listing figure.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// Pending requests listed.
    pub pending: usize,
    /// Bytes of one answer.
    pub response_bytes: usize,
    /// troupe p50, ms.
    pub p50_ms: f64,
    /// troupe slowest, ms.
    pub max_ms: f64,
    /// Baseline p50, ms.
    pub baseline_p50_ms: f64,
    /// Baseline slowest, ms.
    pub baseline_max_ms: f64,
    /// p50 / baseline p50.
    pub ratio: f64,
}

/// The compensation figure.
#[derive(Debug, Clone, Serialize)]
pub struct Compensation {
    /// Steps undone.
    pub steps: usize,
    /// Compensations per second.
    pub figure: f64,
    /// Sequential no-op tasks per second.
    pub baseline: f64,
    /// figure / baseline.
    pub ratio: f64,
}

/// Everything `bench saga` measured.
#[derive(Debug, Clone, Serialize)]
pub struct SagaBenchReport {
    /// Listing pending approvals.
    pub approvals: Listing,
    /// Undoing a saga.
    pub compensation: Compensation,
    /// The headline figure: compensations/s.
    pub figure: f64,
    /// Its baseline: sequential no-op tasks/s.
    pub baseline: f64,
    /// Their ratio.
    pub ratio: f64,
}

/// Succeeds everything but the forward attempt of task `boom`.
struct FailBoom;

impl Executor for FailBoom {
    fn execute(&self, ctx: AttemptContext, _cancel: oneshot::Receiver<()>) -> AttemptFuture {
        let boom =
            ctx.kind == AttemptKind::Forward && ctx.workflow.task_id(ctx.task).as_str() == "boom";
        Box::pin(std::future::ready(if boom {
            AttemptOutcome::Failed {
                failure: Failure::Error {
                    message: "the step the saga aborts on".into(),
                },
                usage: None,
                retryable: false,
                counters: Default::default(),
            }
        } else {
            AttemptOutcome::Succeeded {
                usage: None,
                handed: Default::default(),
            }
        }))
    }
}

fn task(i: usize, compensate: bool, approval: bool, after: Option<String>) -> TaskSpec {
    TaskSpec {
        depends_on: after
            .map(|a| vec![TaskId::new(a).expect("valid id")])
            .unwrap_or_default(),
        requires_approval: approval.then_some(true),
        compensate: compensate.then(|| Command::Argv(vec!["true".into()])),
        ..TaskSpec::new(
            TaskId::new(format!("t{i}")).expect("valid id"),
            Command::Argv(vec!["true".into()]),
        )
    }
}

fn workflow(name: &str, tasks: Vec<TaskSpec>) -> Result<Workflow, BenchError> {
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

/// A chain t0 → … → t(n-1); with `saga`, each step compensates and a last step `boom` fails.
fn chain(name: &str, n: usize, saga: bool) -> Result<Workflow, BenchError> {
    let mut tasks: Vec<TaskSpec> = (0..n)
        .map(|i| task(i, saga, false, (i > 0).then(|| format!("t{}", i - 1))))
        .collect();
    if saga {
        let mut boom = task(n, false, false, Some(format!("t{}", n - 1)));
        boom.id = TaskId::new("boom").expect("valid id");
        tasks.push(boom);
    }
    workflow(name, tasks)
}

async fn start(dir: &Path, socket: bool) -> Result<NodeHandle, BenchError> {
    Node::builder(dir)
        .executor(FailBoom)
        .control_socket(socket)
        .start()
        .await
        .map_err(node_err)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

async fn listing_case(opts: &SagaBenchOptions) -> Result<Listing, BenchError> {
    let dir = fresh(&opts.dir, "approvals")?;
    let node = start(&dir, true).await?;
    let tasks = (0..opts.approvals)
        .map(|i| task(i, false, true, None))
        .collect();
    node.submit(workflow("bench-approvals", tasks)?)
        .await
        .map_err(node_err)?;
    let mut client = Client::connect(&dir).await.map_err(node_err)?;
    // The gate learns of the requests once their events are durable.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut response_bytes;
    loop {
        let r = client
            .request(&Request::Approvals)
            .await
            .map_err(node_err)?;
        response_bytes = codec::encode_message(&r).map_err(node_err)?.len();
        match r {
            Response::Approvals(list) if list.len() == opts.approvals => break,
            Response::Approvals(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => return Err(node_err(format!("approvals never all pending: {other:?}"))),
        }
    }
    let mut samples = Vec::with_capacity(opts.listings);
    for _ in 0..opts.listings {
        let t = Instant::now();
        let r = client
            .request(&Request::Approvals)
            .await
            .map_err(node_err)?;
        samples.push(t.elapsed());
        if !matches!(&r, Response::Approvals(l) if l.len() == opts.approvals) {
            return Err(node_err("a listing lost requests"));
        }
    }
    drop(client);
    node.shutdown().await.map_err(node_err)?;
    samples.sort();
    // Baseline: raw Unix socket ping-pong of the same response size.
    let mut base = socket_ping_pong(&dir.join("echo.sock"), response_bytes, opts.listings).await?;
    base.sort();
    let p50 = percentile(&samples, 0.5);
    let b50 = percentile(&base, 0.5);
    Ok(Listing {
        pending: opts.approvals,
        response_bytes,
        p50_ms: p50,
        max_ms: percentile(&samples, 1.0),
        baseline_p50_ms: b50,
        baseline_max_ms: percentile(&base, 1.0),
        ratio: p50 / b50,
    })
}

/// One round: (sequential tasks/s, compensations/s).
async fn compensation_round(
    opts: &SagaBenchOptions,
    round: usize,
) -> Result<(f64, f64), BenchError> {
    let n = opts.steps;
    // Baseline: the same number of no-op tasks in sequence.
    let dir = fresh(&opts.dir, &format!("sequential-{round}"))?;
    let node = start(&dir, false).await?;
    let run = node
        .submit(chain("bench-sequential", n, false)?)
        .await
        .map_err(node_err)?;
    let state = node.wait_for_run(run).await.map_err(node_err)?;
    // As the journal stamped them (like the saga below): submitted → succeeded.
    let sequential = match node
        .request(Request::Summary(run))
        .await
        .map_err(node_err)?
    {
        Response::Runs(r) if r.len() == 1 => r[0]
            .finished_at
            .ok_or_else(|| node_err("the sequential run has no end"))?
            .saturating_since(r[0].submitted_at)
            .max(Duration::from_millis(1)),
        other => return Err(node_err(format!("unexpected answer {other:?}"))),
    };
    node.shutdown().await.map_err(node_err)?;
    if state != RunState::Succeeded {
        return Err(node_err(format!("the sequential run ended {state}")));
    }
    // The saga: forward steps, then `boom` fails and every step is undone.
    let dir = fresh(&opts.dir, &format!("saga-{round}"))?;
    let node = start(&dir, false).await?;
    let run = node
        .submit(chain("bench-saga", n, true)?)
        .await
        .map_err(node_err)?;
    let state = node.wait_for_run(run).await.map_err(node_err)?;
    let view = match node.request(Request::Run(run)).await.map_err(node_err)? {
        Response::Run(v) => v,
        other => return Err(node_err(format!("unexpected answer {other:?}"))),
    };
    node.shutdown().await.map_err(node_err)?;
    if state != RunState::Compensated {
        return Err(node_err(format!("the saga ended {state}")));
    }
    // From the failure that aborted the saga to its end, as the journal stamped them.
    let failed_at = view
        .tasks
        .iter()
        .find(|t| t.id.as_str() == "boom")
        .and_then(|t| t.finished_at)
        .ok_or_else(|| node_err("boom has no end"))?;
    let ended_at = view
        .summary
        .finished_at
        .ok_or_else(|| node_err("the saga has no end"))?;
    let undo = ended_at
        .saturating_since(failed_at)
        .max(Duration::from_millis(1));
    let figure = n as f64 / undo.as_secs_f64();
    let baseline = n as f64 / sequential.as_secs_f64();
    Ok((baseline, figure))
}

/// Rounds of the compensation case, alternating baseline and saga; each side's median is
/// reported, so one slow fsync stretch does not decide the ratio.
const ROUNDS: usize = 3;

async fn compensation_case(opts: &SagaBenchOptions) -> Result<Compensation, BenchError> {
    let mut base = Vec::with_capacity(ROUNDS);
    let mut comp = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let (b, c) = compensation_round(opts, round).await?;
        base.push(b);
        comp.push(c);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (figure, baseline) = (median(&mut comp), median(&mut base));
    Ok(Compensation {
        steps: opts.steps,
        figure,
        baseline,
        ratio: figure / baseline,
    })
}

/// Runs both cases (in a fresh runtime's worker threads).
pub async fn saga(opts: &SagaBenchOptions) -> Result<SagaBenchReport, BenchError> {
    std::fs::create_dir_all(&opts.dir)?;
    let result = async {
        let compensation = compensation_case(opts).await?;
        let approvals = listing_case(opts).await?;
        Ok::<_, BenchError>(SagaBenchReport {
            figure: compensation.figure,
            baseline: compensation.baseline,
            ratio: compensation.ratio,
            approvals,
            compensation,
        })
    }
    .await;
    let _ = std::fs::remove_dir_all(&opts.dir);
    result
}
