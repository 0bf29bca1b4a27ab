//! `troupe bench inbox`: how fast the inbox submits dropped workflow files.
//!
//! | case | figure | baseline | target |
//! |---|---|---|---|
//! | dropped files | files/s from the first drop until every file is in `submitted/` (N distinct one-task workflows, written to `.NAME.tmp` and renamed in) | the same N workflows (origin included) submitted directly through the node handle, [`crate::inbox::IN_FLIGHT`] at once | ≥ 1,000 files/s |
//!
//! Each round runs on a fresh node (the default `sync` journal, 16 workers, no control
//! socket), halted so that no task runs: the figure is the inbox's submission path (read,
//! hash, validate, submit, move) and the baseline the node's submission path alone. Rounds
//! alternate which case goes first.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{fresh, node_err, BenchError};
use crate::executor::NoopExecutor;
use crate::messages::control::{Command as AdminCommand, Request};
use crate::node::{Node, NodeConfig, NodeHandle};

/// Settings of `bench inbox`.
#[derive(Debug, Clone)]
pub struct InboxBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// Files (and runs) per round.
    pub files: usize,
    /// Rounds per case (alternating which goes first).
    pub rounds: usize,
}

impl InboxBenchOptions {
    /// Defaults: 10,000 files, 3 rounds.
    pub fn new(dir: PathBuf) -> Self {
        InboxBenchOptions {
            dir,
            files: 10_000,
            rounds: 3,
        }
    }
}

/// The report: each round's (inbox, direct) files/s and their medians.
#[derive(Debug, Clone, Serialize)]
pub struct InboxBenchReport {
    /// Files per round.
    pub files: usize,
    /// Median files/s through the inbox (drop to all moved).
    pub figure: f64,
    /// Median runs/s submitted directly.
    pub baseline: f64,
    /// figure / baseline.
    pub ratio: f64,
    /// (inbox, direct) per round, in the order run.
    pub rounds: Vec<(f64, f64)>,
}

/// The text of workflow `i` of round `r` (distinct bytes, so distinct origins).
fn workflow_text(r: usize, i: usize) -> String {
    format!("name = \"inbox-bench-{r}-{i}\"\n[[task]]\nid = \"t\"\ncommand = [\"true\"]\n")
}

async fn start(dir: &std::path::Path, inbox: Option<PathBuf>) -> Result<NodeHandle, BenchError> {
    let mut config = NodeConfig::new(dir.join("data"));
    config.workers = 16;
    config.control_socket = false;
    config.inbox = inbox;
    let node = Node::with_config(config)
        .executor(NoopExecutor)
        .start()
        .await
        .map_err(node_err)?;
    node.request(Request::Command(AdminCommand::Halt { kill: false }))
        .await
        .map_err(node_err)?;
    Ok(node)
}

/// Files/s through the inbox: drops every file, then waits until `submitted/` holds them all.
async fn through_inbox(opts: &InboxBenchOptions, r: usize) -> Result<f64, BenchError> {
    let dir = fresh(&opts.dir, &format!("inbox-{r}"))?;
    let inbox = dir.join("inbox");
    std::fs::create_dir_all(&inbox)?;
    let node = start(&dir, Some(inbox.clone())).await?;
    let (n, started) = (opts.files, Instant::now());
    let dropping = inbox.clone();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for i in 0..n {
            let tmp = dropping.join(format!(".{i}.toml.tmp"));
            std::fs::write(&tmp, workflow_text(r, i))?;
            std::fs::rename(&tmp, dropping.join(format!("{i}.toml")))?;
        }
        Ok(())
    })
    .await
    .map_err(node_err)??;
    // Counted once each file is moved (cheaper to poll than listing `submitted/`).
    let metrics = &node.shared().metrics;
    let deadline = Instant::now() + Duration::from_secs(600);
    while metrics.inbox_files("submitted") < n as u64 {
        if Instant::now() > deadline {
            return Err(BenchError::Other(
                "the inbox did not submit every file within 600 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = started.elapsed();
    let moved = std::fs::read_dir(inbox.join(crate::inbox::SUBMITTED))?.count();
    if moved != n {
        return Err(BenchError::Other(format!(
            "{moved} files in submitted/, not {n}"
        )));
    }
    node.shutdown().await.map_err(node_err)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(n as f64 / took.as_secs_f64())
}

/// Runs/s submitting the same workflows directly (parsed, with the origin the inbox would
/// give them), [`crate::inbox::IN_FLIGHT`] at once.
async fn direct(opts: &InboxBenchOptions, r: usize) -> Result<f64, BenchError> {
    let dir = fresh(&opts.dir, &format!("direct-{r}"))?;
    let node = Arc::new(start(&dir, None).await?);
    let n = opts.files;
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..crate::inbox::IN_FLIGHT {
        let (node, next) = (Arc::clone(&node), Arc::clone(&next));
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, BenchError>(());
                }
                // The workflow the inbox would submit: same text, same origin.
                let text = workflow_text(r, i);
                let wf = crate::model::parse::WorkflowFormat::Toml
                    .parse(&text)
                    .map_err(node_err)?;
                let mut spec = wf.spec().clone();
                spec.origin = Some(crate::inbox::origin_of(text.as_bytes()));
                let wf = crate::model::Workflow::from_spec(spec).map_err(node_err)?;
                node.submit(wf).await.map_err(node_err)?;
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.map_err(node_err)??;
    }
    let took = started.elapsed();
    let node = Arc::try_unwrap(node).map_err(|_| BenchError::Other("node still shared".into()))?;
    node.shutdown().await.map_err(node_err)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(n as f64 / took.as_secs_f64())
}

/// Runs the alternating rounds.
pub async fn inbox(opts: &InboxBenchOptions) -> Result<InboxBenchReport, BenchError> {
    let (rounds, figure, baseline) = super::alternating(opts.rounds, |on, r| async move {
        if on {
            through_inbox(opts, r).await
        } else {
            direct(opts, r).await
        }
    })
    .await?;
    let _ = std::fs::remove_dir_all(&opts.dir);
    Ok(InboxBenchReport {
        files: opts.files,
        figure,
        baseline,
        ratio: figure / baseline,
        rounds,
    })
}
