//! `troupe bench control`: the control socket under load.
//!
//! | case | troupe figure | baseline |
//! |---|---|---|
//! | read waits | max and p99 wait of readers (`Node`, `Run`, `Queue`, `Dashboard` back to back) and of `events --follow` subscribers for their next frame, with N clients at once (half readers, a quarter followers, a quarter submitters) plus a garbage client and a connect/drop loop | the same with 1 reader, 1 follower and 1 submitter, on a fresh node of the same settings, in the same run |
//! | dispatch | tasks dispatched (attempts started, counted from the journal) per second while the clients run | the same during the baseline |
//! | submits | acknowledged submits, each checked to name a distinct run that exists once, with no run of the load left unacknowledged | — |
//!
//! Both phases run on a node in this process (no-op executor, `sync` durability) kept busy
//! by a feeder that submits runs of no-op tasks back to back through the node handle, so
//! events keep flowing to the followers and dispatch never idles. The clients run on a
//! runtime of their own (2 threads), so a wait they measure is the node's, not theirs.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::load::{load, LoadPlan, LoadTally};
use super::tasks::{flat_workflow, run_to_end};
use super::{fresh, node_err, BenchError};
use crate::executor::NoopExecutor;
use crate::messages::control::{Request, Response};
use crate::model::{Event, Seq};
use crate::node::{Node, NodeHandle};
use crate::read::query::MAX_EVENTS_PER_REQUEST;
use crate::storage::Durability;

/// Settings of `bench control`.
#[derive(Debug, Clone)]
pub struct ControlBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// Clients of the load phase (besides the garbage and churn clients).
    pub clients: usize,
    /// How long each phase's clients run.
    pub duration: Duration,
    /// The node's workers.
    pub workers: u32,
    /// No-op tasks of each run the feeder submits.
    pub feed_tasks: usize,
}

impl ControlBenchOptions {
    /// Defaults: 200 clients for 60 s, 8 workers, feeder runs of 100 tasks.
    pub fn new(dir: PathBuf) -> Self {
        ControlBenchOptions {
            dir,
            clients: 200,
            duration: Duration::from_secs(60),
            workers: 8,
            feed_tasks: 100,
        }
    }
}

/// One phase: the clients' tally and what the node did meanwhile.
#[derive(Debug, Clone, Serialize)]
pub struct ControlPhase {
    /// Readers, followers and submitters.
    pub clients: usize,
    /// What the clients saw.
    pub tally: LoadTally,
    /// Attempts started while the clients ran (from the journal).
    pub tasks_dispatched: u64,
    /// `tasks_dispatched` per second of the phase.
    pub tasks_per_s: f64,
    /// Submits acknowledged.
    pub submits_acked: usize,
    /// Acknowledged runs that name the same run as another acknowledgement (0 expected).
    pub acked_twice: usize,
    /// Acknowledged runs missing from the node's list of runs (0 expected).
    pub acked_missing: usize,
    /// Runs of the clients' workflows the node holds without an acknowledgement (0
    /// expected: every client finishes the request in flight).
    pub unacked_runs: usize,
}

/// Everything `bench control` measured.
#[derive(Debug, Clone, Serialize)]
pub struct ControlBenchReport {
    /// Seconds per phase.
    pub secs: f64,
    /// The baseline: 1 reader, 1 follower, 1 submitter.
    pub baseline: ControlPhase,
    /// The load: `clients` clients, a garbage client and a connect/drop loop.
    pub load: ControlPhase,
    /// Reader p99 wait under load ÷ baseline.
    pub read_p99_ratio: f64,
    /// Longest read wait (readers and followers) under load ÷ baseline.
    pub read_max_ratio: f64,
    /// Tasks/s under load ÷ baseline.
    pub dispatch_ratio: f64,
}

/// The node's last applied sequence number.
async fn last_seq(node: &NodeHandle) -> Result<Seq, BenchError> {
    match node.request(Request::Node).await.map_err(node_err)? {
        Response::Node(v) => Ok(v.last_seq),
        other => Err(node_err(format!("unexpected answer {other:?}"))),
    }
}

/// Attempts started with a sequence number in `from+1..=to`.
async fn attempts_between(node: &NodeHandle, from: Seq, to: Seq) -> Result<u64, BenchError> {
    let (mut after, mut n) = (from, 0);
    while after < to {
        let request = Request::Events {
            run: None,
            after,
            limit: MAX_EVENTS_PER_REQUEST,
        };
        let Response::Events(events) = node.request(request).await.map_err(node_err)? else {
            return Err(node_err("unexpected answer to Events"));
        };
        let Some(&(last, _)) = events.last() else {
            break;
        };
        n += events
            .iter()
            .filter(|(seq, r)| *seq <= to && matches!(r.event, Event::AttemptStarted { .. }))
            .count() as u64;
        after = last;
    }
    Ok(n)
}

/// Checks the acknowledged runs against the node's list: `(twice, missing, unacked)`.
async fn check_acks(
    node: &NodeHandle,
    tally: &LoadTally,
    prefix: &str,
) -> Result<(usize, usize, usize), BenchError> {
    let Response::Runs(runs) = node.request(Request::List).await.map_err(node_err)? else {
        return Err(node_err("unexpected answer to List"));
    };
    let acked: HashSet<_> = tally.acked.iter().copied().collect();
    let twice = tally.acked.len() - acked.len();
    let mine: HashSet<_> = runs
        .iter()
        .filter(|r| r.name.starts_with(prefix))
        .map(|r| r.id)
        .collect();
    let missing = acked.difference(&mine).count();
    let unacked = mine.difference(&acked).count();
    Ok((twice, missing, unacked))
}

async fn phase(
    opts: &ControlBenchOptions,
    name: &str,
    mut plan: LoadPlan,
) -> Result<ControlPhase, BenchError> {
    let dir = fresh(&opts.dir, name)?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .workers(opts.workers)
        .durability(Durability::Sync)
        .start()
        .await
        .map_err(node_err)?;
    plan.status_run = Some(
        node.submit(flat_workflow("bench-control-status", 20, &["true"])?)
            .await
            .map_err(node_err)?,
    );
    plan.name_prefix = format!("bench-control-{name}");
    let prefix = format!("{}-", plan.name_prefix);
    let clients = plan.readers + plan.followers + plan.submitters;
    let first = last_seq(&node).await?;
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let feed = async {
        let mut i = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let wf = flat_workflow(
                &format!("bench-control-feed-{i}"),
                opts.feed_tasks,
                &["true"],
            )?;
            run_to_end(&node, wf).await?;
            i += 1;
        }
        Ok::<_, BenchError>(())
    };
    let clients_done = async {
        let dir = dir.clone();
        let tally = tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            let tally = rt.block_on(load(&dir, &plan));
            rt.shutdown_background();
            tally
        })
        .await;
        stop.store(true, Ordering::Relaxed);
        tally
    };
    let (fed, tally) = tokio::join!(feed, clients_done);
    let took = start.elapsed();
    let last = last_seq(&node).await?;
    fed?;
    let tally = tally??;
    let tasks_dispatched = attempts_between(&node, first, last).await?;
    let (acked_twice, acked_missing, unacked_runs) = check_acks(&node, &tally, &prefix).await?;
    node.shutdown().await.map_err(node_err)?;
    Ok(ControlPhase {
        clients,
        submits_acked: tally.acked.len(),
        tally,
        tasks_dispatched,
        tasks_per_s: tasks_dispatched as f64 / took.as_secs_f64(),
        acked_twice,
        acked_missing,
        unacked_runs,
    })
}

/// Runs `bench control`: the baseline phase, then the load phase, each on a fresh node.
/// Removes its scratch directory.
pub async fn control(opts: &ControlBenchOptions) -> Result<ControlBenchReport, BenchError> {
    let result = async {
        let baseline = phase(opts, "baseline", LoadPlan::split(3, opts.duration)).await?;
        let mut plan = LoadPlan::split(opts.clients, opts.duration);
        plan.garbage = true;
        plan.churn = true;
        let load = phase(opts, "load", plan).await?;
        let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
        Ok(ControlBenchReport {
            secs: opts.duration.as_secs_f64(),
            read_p99_ratio: ratio(
                load.tally.reads.p99_us as f64,
                baseline.tally.reads.p99_us as f64,
            ),
            read_max_ratio: ratio(
                load.tally.max_read_wait_us() as f64,
                baseline.tally.max_read_wait_us() as f64,
            ),
            dispatch_ratio: ratio(load.tasks_per_s, baseline.tasks_per_s),
            baseline,
            load,
        })
    }
    .await;
    let _ = std::fs::remove_dir_all(&opts.dir);
    result
}
