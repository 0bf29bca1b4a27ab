//! `troupe bench journal`: durable appends against raw RocksDB, ack latency under a fixed
//! offered load, replay rate against a raw scan.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::actors::journal::JournalRef;
use crate::model::{
    parse_workflow, Event, EventRecord, Failure, ResourceUsage, RunId, TaskId, Timestamp,
};
use crate::storage::{codec, replay, Durability, Journal, JournalOptions};

use super::*;

/// Settings of `troupe bench journal`.
#[derive(Debug, Clone)]
pub struct JournalBenchOptions {
    /// Scratch directory (created, and removed afterwards).
    pub dir: PathBuf,
    /// Concurrency levels to measure (appenders each waiting for their ack before the next).
    pub appenders: Vec<usize>,
    /// Measuring time per case.
    pub case_duration: Duration,
    /// Encoded size of each event, envelope included (bytes).
    pub event_bytes: usize,
    /// Durability for both troupe and the baseline.
    pub durability: Durability,
    /// Offered load for the latency case (events/s).
    pub latency_rate: u64,
    /// Events written and then replayed for the replay case.
    pub replay_events: u64,
}

impl JournalBenchOptions {
    /// The defaults used by `troupe bench journal`: 1, 8 and 64 appenders, 2 s per case,
    /// 200-byte events, `sync`, 50,000 events/s offered for latency, 1,000,000 events replayed.
    pub fn new(dir: PathBuf) -> Self {
        JournalBenchOptions {
            dir,
            appenders: vec![1, 8, 64],
            case_duration: Duration::from_secs(2),
            event_bytes: 200,
            durability: Durability::Sync,
            latency_rate: 50_000,
            replay_events: 1_000_000,
        }
    }
}

/// One concurrency level of the append benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct AppendCase {
    /// Concurrent appenders.
    pub appenders: usize,
    /// troupe: acknowledged events per second through the journal actor.
    pub events_per_sec: f64,
    /// Baseline: raw RocksDB, one `WriteBatch` per event from each of `appenders` threads,
    /// same durability (RocksDB's own write-group batching applies).
    pub baseline_events_per_sec: f64,
    /// `events_per_sec / baseline_events_per_sec`.
    pub ratio: f64,
    /// Mean events per troupe commit (one fsync each under `sync`).
    pub mean_batch: f64,
}

/// Ack latency at a fixed offered load.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyCase {
    /// Offered load, events/s (open loop: sends do not wait for acks).
    pub offered_per_sec: u64,
    /// Achieved acknowledged rate, events/s.
    pub achieved_per_sec: f64,
    /// Median ack latency, µs (from the moment the append is sent to the ack).
    pub p50_us: u64,
    /// 99th percentile ack latency, µs.
    pub p99_us: u64,
    /// Largest ack latency, µs.
    pub max_us: u64,
}

/// Replay rate.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayCase {
    /// Events replayed.
    pub events: u64,
    /// troupe: events/s through read + CRC + decode + fold.
    pub events_per_sec: f64,
    /// Baseline: raw RocksDB forward scan of the same column family (no decode), events/s.
    pub baseline_events_per_sec: f64,
    /// `events_per_sec / baseline_events_per_sec`.
    pub ratio: f64,
}

/// Everything `troupe bench journal` measured.
#[derive(Debug, Clone, Serialize)]
pub struct JournalBenchReport {
    /// Headline: events/s at the highest concurrency measured.
    pub figure: f64,
    /// The baseline at that concurrency.
    pub baseline: f64,
    /// `figure / baseline`.
    pub ratio: f64,
    /// Unit of `figure` and `baseline`.
    pub unit: &'static str,
    /// `sync` or `buffered`.
    pub durability: Durability,
    /// Encoded event size in bytes.
    pub event_bytes: usize,
    /// Per concurrency level.
    pub append: Vec<AppendCase>,
    /// Ack latency under load.
    pub latency: LatencyCase,
    /// Replay.
    pub replay: ReplayCase,
}

/// An event whose envelope is exactly `bytes` long (if `bytes` is at least the minimum
/// for this shape, about 60 bytes), used as the benchmark payload.
pub fn sized_event(bytes: usize, n: u64) -> EventRecord {
    let make = |pad: usize| EventRecord {
        time: Timestamp(1_763_000_000_000 + n),
        event: Event::TaskFailed {
            run: RunId::from_u128(0x0193_0000_0000_0000_0000_0000_0000_0001),
            task: TaskId::new(format!("task-{:06}", n % 1_000_000)).expect("valid id"),
            attempt: 1,
            failure: Failure::Error {
                message: "x".repeat(pad),
            },
            usage: Some(ResourceUsage {
                user_cpu_us: 1_000,
                system_cpu_us: 500,
                max_rss_kib: 4_096,
            }),
        },
    };
    let base = codec::encode_event(1, &make(0))
        .map(|v| v.len())
        .unwrap_or(0);
    let mut pad = bytes.saturating_sub(base);
    // The message length prefix is a varint: one more byte once it reaches 251.
    let mut rec = make(pad);
    while pad > 0 && codec::encode_event(1, &rec).map(|v| v.len()).unwrap_or(0) > bytes {
        pad -= 1;
        rec = make(pad);
    }
    rec
}

pub(crate) fn raw_db(dir: &Path) -> Result<rocksdb::DB, rocksdb::Error> {
    let mut o = crate::storage::journal::db_options();
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    rocksdb::DB::open(&o, dir)
}

/// Raw RocksDB: `threads` threads, each writing one-event `WriteBatch`es for `duration`.
fn baseline_append(
    dir: &Path,
    threads: usize,
    duration: Duration,
    value: &[u8],
    durability: Durability,
) -> Result<f64, BenchError> {
    let db = Arc::new(raw_db(dir)?);
    let next = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let value: Arc<[u8]> = value.into();
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (db, next, stop, value) = (db.clone(), next.clone(), stop.clone(), value.clone());
            std::thread::spawn(move || -> Result<u64, rocksdb::Error> {
                let mut wo = rocksdb::WriteOptions::default();
                wo.set_sync(durability == Durability::Sync);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    let mut batch = rocksdb::WriteBatch::default();
                    batch.put(seq.to_be_bytes(), &value[..]);
                    db.write_opt(batch, &wo)?;
                    n += 1;
                }
                Ok(n)
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for h in handles {
        total += h.join().expect("baseline thread")?;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

async fn troupe_append(
    journal: &JournalRef,
    appenders: usize,
    duration: Duration,
    record: &EventRecord,
) -> Result<(f64, f64), BenchError> {
    let before = journal.stats().await?;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|_| {
            let (journal, stop, record) = (journal.clone(), stop.clone(), record.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    journal.append_one(record.clone()).await?;
                    n += 1;
                }
                Ok::<u64, BenchError>(n)
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = journal.stats().await?;
    let commits = (after.commits - before.commits).max(1);
    let mean_batch = (after.events - before.events) as f64 / commits as f64;
    Ok((total as f64 / elapsed, mean_batch))
}

async fn latency_case(
    journal: &JournalRef,
    rate: u64,
    duration: Duration,
    record: &EventRecord,
) -> Result<LatencyCase, BenchError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<u64, String>>();
    // Open loop: every millisecond, send that millisecond's share of the load without
    // waiting for earlier acks. Latency runs from each send to its ack (tokio's 1 ms timer
    // granularity makes ticks late by up to 1 ms; that lag is the generator's, not troupe's).
    let per_tick = (rate / 1000).max(1);
    let ticks = duration.as_millis() as u64;
    let start = tokio::time::Instant::now();
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for _ in 0..ticks {
        interval.tick().await;
        for _ in 0..per_tick {
            let (journal, tx, record) = (journal.clone(), tx.clone(), record.clone());
            tokio::spawn(async move {
                let sent = tokio::time::Instant::now();
                let r = journal.append_one(record).await;
                let us = sent.elapsed().as_micros() as u64;
                let _ = tx.send(r.map(|_| us).map_err(|e| e.to_string()));
            });
        }
    }
    drop(tx);
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    let mut n = 0u64;
    while let Some(r) = rx.recv().await {
        hist.record(r.map_err(BenchError::Other)?.max(1))?;
        n += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(LatencyCase {
        offered_per_sec: rate,
        achieved_per_sec: n as f64 / elapsed,
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
        max_us: hist.max(),
    })
}

/// Appends at least `events` events the fold accepts (runs of 1,000 independent tasks, each
/// started then succeeded: 2,001 events per run); returns how many were written.
pub async fn write_replayable(journal: &JournalRef, events: u64) -> Result<u64, BenchError> {
    write_replayable_after(journal, events, 0).await
}

/// [`write_replayable`] with run ids after `last_run` (so a second call adds new runs).
pub async fn write_replayable_after(
    journal: &JournalRef,
    events: u64,
    last_run: u128,
) -> Result<u64, BenchError> {
    let mut text = String::from("name = \"replay-bench\"\n");
    for i in 0..1000 {
        text.push_str(&format!(
            "[[task]]\nid = \"t{i:04}\"\ncommand = [\"true\"]\n"
        ));
    }
    let wf = Arc::new(parse_workflow(&text)?);
    let ids: Vec<TaskId> = (0..1000).map(|i| wf.task_id(i).clone()).collect();
    let mut written = 0u64;
    let mut run_no = last_run;
    while written < events {
        run_no += 1;
        let run = RunId::from_u128(run_no);
        let t = Timestamp(1_763_000_000_000 + written);
        let mut batch = vec![EventRecord {
            time: t,
            event: Event::RunSubmitted {
                run,
                workflow: wf.clone(),
            },
        }];
        for id in &ids {
            batch.push(EventRecord {
                time: t,
                event: Event::AttemptStarted {
                    run,
                    task: id.clone(),
                    attempt: 1,
                },
            });
            batch.push(EventRecord {
                time: t,
                event: Event::TaskSucceeded {
                    run,
                    task: id.clone(),
                    attempt: 1,
                    usage: None,
                },
            });
        }
        written += batch.len() as u64;
        for chunk in batch.chunks(1000) {
            journal.append(chunk.to_vec()).await?;
        }
    }
    Ok(written)
}

fn replay_case(journal: &Journal) -> Result<ReplayCase, BenchError> {
    // The first scan warms the page cache, so the baseline and troupe both read warm.
    raw_scan(journal)?;
    let (n, baseline) = raw_scan(journal)?;
    let start = Instant::now();
    let replayed = replay(journal)?;
    let elapsed = start.elapsed().as_secs_f64();
    if replayed.events_applied != n {
        return Err(BenchError::Other(format!(
            "replay applied {} of {n} events",
            replayed.events_applied
        )));
    }
    let rate = n as f64 / elapsed;
    Ok(ReplayCase {
        events: n,
        events_per_sec: rate,
        baseline_events_per_sec: baseline,
        ratio: rate / baseline,
    })
}

/// Raw RocksDB forward scan of the `events` column family: `(events, events/s)`.
fn raw_scan(journal: &Journal) -> Result<(u64, f64), BenchError> {
    let start = Instant::now();
    let n = journal.scan_raw()?;
    Ok((n, n as f64 / start.elapsed().as_secs_f64()))
}

/// Runs the journal benchmark. Needs a multi-threaded tokio runtime.
pub async fn journal(opts: &JournalBenchOptions) -> Result<JournalBenchReport, BenchError> {
    std::fs::create_dir_all(&opts.dir)?;
    let record = sized_event(opts.event_bytes, 1);
    let value = codec::encode_event(1, &record)?;
    let mut append = Vec::new();
    for (i, &n) in opts.appenders.iter().enumerate() {
        let base_dir = opts.dir.join(format!("baseline-{i}"));
        let baseline = {
            let dir = base_dir.clone();
            let (d, v, dur) = (opts.case_duration, value.clone(), opts.durability);
            tokio::task::spawn_blocking(move || baseline_append(&dir, n, d, &v, dur)).await??
        };
        std::fs::remove_dir_all(&base_dir)?;
        let jdir = opts.dir.join(format!("journal-{i}"));
        let journal = Journal::open(&jdir)?;
        let options = JournalOptions {
            durability: opts.durability,
            ..JournalOptions::default()
        };
        let (actor, handle) = JournalRef::spawn(journal, options).await?;
        let (rate, mean_batch) = troupe_append(&actor, n, opts.case_duration, &record).await?;
        actor.stop().await;
        handle.await?;
        std::fs::remove_dir_all(&jdir)?;
        append.push(AppendCase {
            appenders: n,
            events_per_sec: rate,
            baseline_events_per_sec: baseline,
            ratio: rate / baseline,
            mean_batch,
        });
    }

    let jdir = opts.dir.join("latency");
    let journal = Journal::open(&jdir)?;
    let options = JournalOptions {
        durability: opts.durability,
        ..JournalOptions::default()
    };
    let (actor, handle) = JournalRef::spawn(journal.clone(), options).await?;
    let latency = latency_case(&actor, opts.latency_rate, opts.case_duration, &record).await?;
    actor.stop().await;
    handle.await?;
    drop(journal);
    std::fs::remove_dir_all(&jdir)?;

    let rdir = opts.dir.join("replay");
    let journal = Journal::open(&rdir)?;
    let options = JournalOptions {
        durability: Durability::Buffered,
        ..JournalOptions::default()
    };
    let (actor, handle) = JournalRef::spawn(journal.clone(), options).await?;
    write_replayable(&actor, opts.replay_events).await?;
    actor.stop().await;
    handle.await?;
    journal.flush()?;
    let replay = {
        let journal = journal.clone();
        tokio::task::spawn_blocking(move || replay_case(&journal)).await??
    };
    drop(journal);
    std::fs::remove_dir_all(&rdir)?;
    let _ = std::fs::remove_dir(&opts.dir);

    let head = append.last().expect("at least one case").clone();
    Ok(JournalBenchReport {
        figure: head.events_per_sec,
        baseline: head.baseline_events_per_sec,
        ratio: head.ratio,
        unit: "events/s",
        durability: opts.durability,
        event_bytes: value.len(),
        append,
        latency,
        replay,
    })
}
