//! `troupe bench metrics`: the cost and speed of operating a node.
//!
//! | case | figure | baseline (same run) | target |
//! |---|---|---|---|
//! | scrape | `GET /metrics` with 1,000,000 tasks in the journal, p50/p99 ms | `GET /healthz` on the same server | ≤ 10 ms |
//! | since | `troupe metrics --since 7d` over 10,000,000 events, in-process and as a CLI process, ms | a raw scan of the same 10,000,000 events (what the rollups avoid) | ≤ 100 ms |
//! | dashboard | one refresh (request + draw) with N queued tasks, p50/p99 ms | a `Node` status round trip | ≤ 200 ms |
//! | overhead | no-op tasks/s with metrics on vs off (buffered journal: CPU-bound), medians of 5 alternating rounds | metrics off | ≥ 0.95× |

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tasks::flat_workflow;
use super::{fresh, node_err, BenchError};
use crate::actors::metrics::metrics_report;
use crate::client::Client;
use crate::executor::NoopExecutor;
use crate::layout::DataDir;
use crate::messages::control::{DashboardView, Request, Response};
use crate::model::rollup::RollupDelta;
use crate::model::{Event, EventRecord, Failure, RunId, State, TaskId, Timestamp};
use crate::node::{Node, NodeHandle};
use crate::storage::{Durability, Journal, JournalOptions};

/// Settings of `troupe bench metrics`.
#[derive(Debug, Clone)]
pub struct MetricsBenchOptions {
    /// Where the bench's data dirs go (removed first).
    pub dir: PathBuf,
    /// Tasks in the journal while scraping.
    pub scrape_tasks: usize,
    /// Events in the `--since 7d` window.
    pub since_events: u64,
    /// Queued tasks behind the dashboard (one case per entry).
    pub dashboard_tasks: Vec<usize>,
    /// No-op tasks per overhead round.
    pub overhead_tasks: usize,
    /// Overhead rounds per setting (alternating).
    pub rounds: usize,
    /// Path of the `troupe` binary, for the CLI timing of `metrics --since` (skipped if
    /// `None`).
    pub binary: Option<PathBuf>,
}

impl MetricsBenchOptions {
    /// The documented sizes.
    pub fn new(dir: PathBuf) -> Self {
        MetricsBenchOptions {
            dir,
            scrape_tasks: 1_000_000,
            since_events: 10_000_000,
            dashboard_tasks: vec![10_000, 100_000],
            overhead_tasks: 200_000,
            rounds: 5,
            binary: None,
        }
    }
}

/// Latencies of one case, ms.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Samples taken.
    pub samples: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile (the maximum below 100 samples), ms.
    pub p99_ms: f64,
    /// The baseline's median, ms.
    pub baseline_p50_ms: f64,
    /// p50 / baseline p50.
    pub ratio: f64,
}

fn timing(mut v: Vec<f64>, mut base: Vec<f64>) -> Timing {
    let q = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let p50 = q(&mut v, 0.5);
    let b50 = q(&mut base, 0.5);
    Timing {
        samples: v.len(),
        p50_ms: p50,
        p99_ms: q(&mut v, 0.99),
        baseline_p50_ms: b50,
        ratio: p50 / b50.max(1e-9),
    }
}

/// The `--since 7d` case.
#[derive(Debug, Clone, Serialize)]
pub struct Since {
    /// Events written over the 7 days.
    pub events: u64,
    /// Rollup buckets read by one query.
    pub buckets: u64,
    /// In-process query (read + merge), ms; baseline: raw scan of the events.
    pub query: Timing,
    /// `troupe metrics --since 7d` as a process (start, open, query, print), median ms.
    pub cli_p50_ms: Option<f64>,
}

/// One dashboard case.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    /// Queued tasks.
    pub tasks: usize,
    /// Request + draw, ms; baseline: a `Node` round trip.
    pub refresh: Timing,
}

/// The overhead case.
#[derive(Debug, Clone, Serialize)]
pub struct Overhead {
    /// No-op tasks per round.
    pub tasks: usize,
    /// Median tasks/s with metrics on.
    pub figure: f64,
    /// Median tasks/s with metrics off.
    pub baseline: f64,
    /// figure / baseline.
    pub ratio: f64,
    /// Every round, tasks/s: (on, off) in the order run.
    pub rounds: Vec<(f64, f64)>,
}

/// What `troupe bench metrics` measured.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsBenchReport {
    /// `/metrics` with 1M tasks in the journal.
    pub scrape: Timing,
    /// `metrics --since 7d`.
    pub since: Since,
    /// Dashboard refreshes.
    pub dashboard: Vec<Dashboard>,
    /// Collection cost.
    pub overhead: Overhead,
}

async fn http_ms(addr: std::net::SocketAddr, path: &str) -> Result<f64, BenchError> {
    let start = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).await?;
    if !body.starts_with(b"HTTP/1.0 200") && !body.starts_with(b"HTTP/1.1 200") {
        return Err(node_err(format!("GET {path} did not answer 200")));
    }
    Ok(start.elapsed().as_secs_f64() * 1e3)
}

async fn queued_node(
    dir: &std::path::Path,
    tasks: usize,
    http: bool,
) -> Result<NodeHandle, BenchError> {
    let node = Node::builder(dir)
        .executor(NoopExecutor)
        .durability(Durability::Buffered)
        .http_addr(http.then(|| "127.0.0.1:0".parse().expect("valid")))
        .start()
        .await
        .map_err(node_err)?;
    super::tasks::halt(&node).await?;
    node.submit(flat_workflow("bench-queued", tasks, &["true"])?)
        .await
        .map_err(node_err)?;
    Ok(node)
}

async fn scrape_case(opts: &MetricsBenchOptions) -> Result<Timing, BenchError> {
    let dir = fresh(&opts.dir, "scrape")?;
    let node = queued_node(&dir, opts.scrape_tasks, true).await?;
    let addr = node
        .http_addr()
        .ok_or_else(|| node_err("no HTTP address"))?;
    let (mut v, mut base) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        v.push(http_ms(addr, "/metrics").await?);
        base.push(http_ms(addr, "/healthz").await?);
    }
    node.shutdown().await.map_err(node_err)?;
    Ok(timing(v, base))
}

/// Writes `events` events of 10-task runs (one task in ten fails once, then for good), spread
/// evenly over the 7 days before `now`, with their rollups, through the journal's writer.
fn write_week(journal: &Journal, events: u64, now: Timestamp) -> Result<u64, BenchError> {
    let wf = Arc::new(flat_workflow("bench-week", 10, &["true"])?);
    let week_ms = 7 * 86_400_000u64;
    let mut writer = journal.writer(&JournalOptions {
        durability: Durability::Buffered,
        ..JournalOptions::default()
    })?;
    let step = week_ms as f64 / events as f64;
    let mut seq = writer.committed_seq();
    let start_seq = seq;
    let mut n = 0u64;
    let mut records = Vec::with_capacity(64);
    let mut delta = RollupDelta::default();
    let mut changes = Vec::new();
    let mut run_no = 0u128;
    while n < events {
        run_no += 1;
        let run = RunId::from_u128(run_no);
        let mut state = State::new();
        let mut evs = vec![Event::RunSubmitted {
            run,
            workflow: Arc::clone(&wf),
        }];
        for i in 0..10 {
            let task = TaskId::new(format!("t{i}")).expect("valid id");
            evs.push(Event::AttemptStarted {
                run,
                task: task.clone(),
                attempt: 1,
            });
            if i == 9 {
                evs.push(Event::AttemptFailed {
                    run,
                    task: task.clone(),
                    attempt: 1,
                    failure: Failure::Exit { code: 1 },
                    usage: None,
                    retry_at: Timestamp(0),
                });
                evs.push(Event::AttemptStarted {
                    run,
                    task: task.clone(),
                    attempt: 2,
                });
                evs.push(Event::TaskFailed {
                    run,
                    task,
                    attempt: 2,
                    failure: Failure::Exit { code: 1 },
                    usage: None,
                });
            } else {
                evs.push(Event::TaskSucceeded {
                    run,
                    task,
                    attempt: 1,
                    usage: None,
                });
            }
        }
        for event in evs {
            let time = Timestamp(now.0 - week_ms + (n as f64 * step) as u64);
            let record = EventRecord { time, event };
            seq += 1;
            changes.clear();
            state
                .apply_with(seq, &record, &mut changes)
                .map_err(node_err)?;
            for c in &changes {
                delta.observe(&state, c, time);
            }
            records.push(record);
            n += 1;
        }
        if records.len() >= 1000 || n >= events {
            writer.stage(&records)?;
            writer.stage_rollup(std::mem::take(&mut delta));
            writer.commit()?;
            records.clear();
        }
    }
    if !records.is_empty() {
        writer.stage(&records)?;
        writer.stage_rollup(delta);
        writer.commit()?;
    }
    journal.flush()?;
    Ok(seq - start_seq)
}

fn since_case(opts: &MetricsBenchOptions) -> Result<Since, BenchError> {
    let dir = fresh(&opts.dir, "since")?;
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let week = Duration::from_secs(7 * 86_400);
    let (events, buckets, query) = {
        let journal = Journal::open(&DataDir::new(&dir).journal())?;
        let events = write_week(&journal, opts.since_events, now)?;
        let (mut v, mut base) = (Vec::new(), Vec::new());
        let mut buckets = 0;
        for _ in 0..10 {
            let start = Instant::now();
            let r = metrics_report(&journal, now, week)?;
            v.push(start.elapsed().as_secs_f64() * 1e3);
            buckets = r.buckets;
            let start = Instant::now();
            journal.scan_raw()?;
            base.push(start.elapsed().as_secs_f64() * 1e3);
        }
        (events, buckets, timing(v, base))
    };
    let cli_p50_ms = match &opts.binary {
        Some(bin) => {
            let mut v = Vec::new();
            for _ in 0..5 {
                let start = Instant::now();
                let o = std::process::Command::new(bin)
                    .arg("--data-dir")
                    .arg(&dir)
                    .args(["metrics", "--since", "7d"])
                    .output()?;
                if !o.status.success() {
                    return Err(node_err(String::from_utf8_lossy(&o.stderr)));
                }
                v.push(start.elapsed().as_secs_f64() * 1e3);
            }
            v.sort_by(f64::total_cmp);
            Some(v[v.len() / 2])
        }
        None => None,
    };
    Ok(Since {
        events,
        buckets,
        query,
        cli_p50_ms,
    })
}

async fn dashboard_case(
    opts: &MetricsBenchOptions,
    tasks: usize,
    draw: &(dyn Fn(&DashboardView) + Sync),
) -> Result<Dashboard, BenchError> {
    let dir = fresh(&opts.dir, &format!("dashboard-{tasks}"))?;
    let node = queued_node(&dir, tasks, false).await?;
    let mut client = Client::connect(&dir).await.map_err(node_err)?;
    let (mut v, mut base) = (Vec::new(), Vec::new());
    for _ in 0..50 {
        let start = Instant::now();
        match client
            .request(&Request::Dashboard { limit: 50 })
            .await
            .map_err(node_err)?
        {
            Response::Dashboard(view) => draw(&view),
            other => return Err(node_err(format!("unexpected answer {other:?}"))),
        }
        v.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        client.request(&Request::Node).await.map_err(node_err)?;
        base.push(start.elapsed().as_secs_f64() * 1e3);
    }
    drop(client);
    node.shutdown().await.map_err(node_err)?;
    Ok(Dashboard {
        tasks,
        refresh: timing(v, base),
    })
}

async fn overhead_round(
    opts: &MetricsBenchOptions,
    metrics: bool,
    round: usize,
) -> Result<f64, BenchError> {
    let dir = fresh(&opts.dir, &format!("overhead-{metrics}-{round}"))?;
    let node = Node::builder(&dir)
        .executor(NoopExecutor)
        .workers(16)
        // Buffered: CPU-bound, where collection costs the most (fsync waits hide it).
        .durability(Durability::Buffered)
        .control_socket(false)
        .metrics(metrics)
        .start()
        .await
        .map_err(node_err)?;
    let wf = flat_workflow("bench-overhead", opts.overhead_tasks, &["true"])?;
    let took = super::tasks::run_to_end(&node, wf).await?;
    node.shutdown().await.map_err(node_err)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(opts.overhead_tasks as f64 / took.as_secs_f64())
}

async fn overhead_case(opts: &MetricsBenchOptions) -> Result<Overhead, BenchError> {
    let (rounds, figure, baseline) =
        super::alternating(opts.rounds, |on, r| overhead_round(opts, on, r)).await?;
    Ok(Overhead {
        tasks: opts.overhead_tasks,
        figure,
        baseline,
        ratio: figure / baseline,
        rounds,
    })
}

/// Runs every case; `draw` renders a dashboard view (the CLI passes its real drawing code).
pub async fn metrics(
    opts: &MetricsBenchOptions,
    draw: &(dyn Fn(&DashboardView) + Sync),
) -> Result<MetricsBenchReport, BenchError> {
    let scrape = scrape_case(opts).await?;
    let o = opts.clone();
    let since = tokio::task::spawn_blocking(move || since_case(&o)).await??;
    let mut dashboard = Vec::new();
    for &n in &opts.dashboard_tasks {
        dashboard.push(dashboard_case(opts, n, draw).await?);
    }
    let overhead = overhead_case(opts).await?;
    let _ = std::fs::remove_dir_all(&opts.dir);
    Ok(MetricsBenchReport {
        scrape,
        since,
        dashboard,
        overhead,
    })
}
