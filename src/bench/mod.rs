//! The measurements behind `troupe bench`: each prints troupe's figure beside a baseline
//! measured in the same run on the same machine and disk, and their ratio.
//!
//! - [`journal`]: durable appends through the journal actor (group commit) against raw
//!   RocksDB `WriteBatch` writes with the same durability and concurrency; ack latency under a
//!   fixed offered load; replay rate against a raw RocksDB scan of the same records.
//! - [`plan`]: parse + validate + toposort of a synthetic workflow, TOML or JSON, against
//!   parsing the same text into the format's generic value (`toml::Table`,
//!   `serde_json::Value`).
//! - [`tasks`]: the node end to end: no-op and `/bin/true` task throughput, memory per queued
//!   task, control round trip, submit → completion latency.
//! - [`reads`]: dispatch with and without a reader, and read latency with a large queue.
//! - [`saga`]: listing pending approvals, and the rate a saga is undone against running the
//!   same number of no-op tasks in sequence.
//! - [`metrics`]: scraping, `metrics --since`, dashboard refreshes, metrics overhead.
//! - [`fanout`]: a mapped task's N no-op instances against N plain no-op tasks.
//! - [`agents`]: spawn + wait latency and agent-tree rate against plain runs and tasks.
//! - [`inbox`]: files/s through the inbox (drop to moved) against submitting the same
//!   workflows directly.
//! - [`resilience`]: no-op throughput with one circuit breaker on every task against none.
//! - [`scoring`]: no-op throughput with priority scoring on (every weight, deadlines,
//!   labels) against `scoring = false`, and `queue --limit 10` with 1,000,000 scored tasks.
//! - [`boot`]: a long journal's boot (newest snapshot + tail) against a full replay.
//! - [`cluster`]: remote worker nodes on loopback against a local node: `/bin/true`
//!   throughput, submit → done latency, and how soon a killed worker's attempt is retried
//!   elsewhere.
//! - [`web`]: the web UI: a 10,000-task run page against its JSON, how soon a change reaches
//!   an open page against the raw event stream, dispatch with 20 open run pages against none.
//! - [`control`]: the control socket under load: read waits and dispatch with many clients
//!   (readers, `events --follow`, submitters, a garbage client, a connect/drop loop) against
//!   one client of each kind; [`load`] drives the clients (also used by the tests).

pub mod agents;
pub mod boot;
pub mod cluster;
pub mod control;
pub mod fanout;
pub mod inbox;
mod journal;
pub mod load;
pub mod metrics;
mod plan;
pub mod reads;
pub mod resilience;
pub mod saga;
pub mod scoring;
pub mod tasks;
pub mod web;

pub use journal::*;
pub use plan::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::messages::journal::AppendError;
use crate::storage::{CodecError, JournalError, ReplayError};

/// `dir/name`, emptied (a scratch directory for one case).
pub(crate) fn fresh(dir: &Path, name: &str) -> Result<PathBuf, BenchError> {
    let d = dir.join(name);
    if d.exists() {
        std::fs::remove_dir_all(&d)?;
    }
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// A node-side failure as a bench error.
/// Runs `rounds` rounds of a figure with a setting on and off (`round(on, index)`),
/// alternating which goes first so drift (page cache, thermal) hits both alike; returns each
/// round's (on, off) in the order run and the medians of both.
pub(crate) async fn alternating<F, Fut>(
    rounds: usize,
    mut round: F,
) -> Result<(Vec<(f64, f64)>, f64, f64), BenchError>
where
    F: FnMut(bool, usize) -> Fut,
    Fut: std::future::Future<Output = Result<f64, BenchError>>,
{
    let mut all = Vec::new();
    for r in 0..rounds {
        let (on, off) = if r % 2 == 0 {
            let on = round(true, r).await?;
            (on, round(false, r).await?)
        } else {
            let off = round(false, r).await?;
            (round(true, r).await?, off)
        };
        all.push((on, off));
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let on = med(all.iter().map(|r| r.0).collect());
    let off = med(all.iter().map(|r| r.1).collect());
    Ok((all, on, off))
}

pub(crate) fn node_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::Other(e.to_string())
}

/// The raw baseline of the control-socket figures: `rounds` ping-pongs over a Unix socket at
/// `path`, a 32-byte request answered by `response_len` bytes; the time of each round trip.
pub(crate) async fn socket_ping_pong(
    path: &Path,
    response_len: usize,
    rounds: usize,
) -> Result<Vec<Duration>, BenchError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::UnixListener::bind(path)?;
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        let mut req = [0u8; 32];
        let resp = vec![7u8; response_len];
        loop {
            if s.read_exact(&mut req).await.is_err() {
                return Ok::<(), std::io::Error>(());
            }
            s.write_all(&resp).await?;
        }
    });
    let mut samples = Vec::with_capacity(rounds);
    {
        let mut s = tokio::net::UnixStream::connect(path).await?;
        let mut resp = vec![0u8; response_len];
        for _ in 0..rounds {
            let t = Instant::now();
            s.write_all(&[1u8; 32]).await?;
            s.read_exact(&mut resp).await?;
            samples.push(t.elapsed());
        }
    }
    let _ = server.await;
    Ok(samples)
}

/// Why a benchmark could not run. Benchmarks measure, they do not recover: report and exit.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The scratch directory could not be created, cleaned or used.
    #[error("scratch directory: {0}")]
    Io(#[from] std::io::Error),
    /// The journal failed to open, read or write.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// An append through the journal actor failed.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// Replay failed.
    #[error(transparent)]
    Replay(#[from] Box<ReplayError>),
    /// An event could not be encoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The raw RocksDB baseline failed.
    #[error("RocksDB baseline: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// The synthetic workflow did not parse (a bug in the generator).
    #[error(transparent)]
    Spec(#[from] crate::model::SpecError),
    /// The journal actor could not start.
    #[error("journal actor: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    /// A worker task or thread died, or a figure is out of range.
    #[error("{0}")]
    Other(String),
}

impl From<ReplayError> for BenchError {
    fn from(e: ReplayError) -> Self {
        BenchError::Replay(Box::new(e))
    }
}

impl From<toml::de::Error> for BenchError {
    fn from(e: toml::de::Error) -> Self {
        BenchError::Other(format!("baseline TOML parse: {e}"))
    }
}

impl From<tokio::task::JoinError> for BenchError {
    fn from(e: tokio::task::JoinError) -> Self {
        BenchError::Other(format!("benchmark task failed: {e}"))
    }
}

impl From<hdrhistogram::RecordError> for BenchError {
    fn from(e: hdrhistogram::RecordError) -> Self {
        BenchError::Other(format!("latency histogram: {e}"))
    }
}

impl From<hdrhistogram::CreationError> for BenchError {
    fn from(e: hdrhistogram::CreationError) -> Self {
        BenchError::Other(format!("latency histogram: {e}"))
    }
}
