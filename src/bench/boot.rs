//! `troupe bench boot`: how long a long journal takes to boot — open, decode the newest
//! snapshot, fold the events after it (what every node start and actor restart does) —
//! against the same journal folded from its first event without the snapshot. Rounds of the
//! two alternate, each reported.
//!
//! The journal is written through the journal actor (`buffered`) with
//! [`super::write_replayable`] (runs of 1,000 tasks, each started and succeeded), then a
//! snapshot is stored after `events − tail` events, as a node snapshotting every
//! `snapshot_every` events would have; `tail` events follow it (default 500,000: half the
//! default `snapshot_every`, the average a node replays).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::{fresh, write_replayable, write_replayable_after, BenchError};
use crate::actors::journal::JournalRef;
use crate::model::State;
use crate::storage::{replay, Durability, Journal, JournalOptions};

/// Options of [`boot`].
#[derive(Debug, Clone)]
pub struct BootBenchOptions {
    /// Scratch directory (removed afterwards).
    pub dir: PathBuf,
    /// Events in the journal (at least; whole runs are written).
    pub events: u64,
    /// Events after the snapshot.
    pub tail: u64,
    /// Rounds of each side.
    pub rounds: usize,
}

/// One round: each side once.
#[derive(Debug, Clone, Serialize)]
pub struct BootRound {
    /// Open + newest snapshot + tail, seconds.
    pub boot_s: f64,
    /// Open + fold of every event from the first, seconds (the baseline).
    pub full_replay_s: f64,
}

/// What [`boot`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct BootBenchReport {
    /// Events in the journal.
    pub events: u64,
    /// Sequence number of the snapshot.
    pub snapshot_seq: u64,
    /// Encoded size of the snapshot, bytes.
    pub snapshot_bytes: u64,
    /// Tasks in the snapshot's state (all runs are kept: no retention).
    pub tasks: u64,
    /// Events folded after the snapshot.
    pub tail_events: u64,
    /// Seconds spent writing the journal (not measured further).
    pub write_s: f64,
    /// Every round, in order.
    pub rounds: Vec<BootRound>,
    /// Median boot, seconds (the figure).
    pub boot_s: f64,
    /// Median full replay, seconds (the baseline).
    pub baseline_s: f64,
    /// `baseline_s / boot_s`: how much the snapshot saves.
    pub ratio: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Folds every event from the first (no snapshot): the baseline.
fn full_replay(journal: &Journal) -> Result<State, BenchError> {
    let mut state = State::new();
    for item in journal.events_from(1) {
        let (seq, record) = item?;
        state
            .apply(seq, &record)
            .map_err(|e| BenchError::Other(format!("event {seq}: {e}")))?;
    }
    Ok(state)
}

/// Runs the boot benchmark. Needs a multi-threaded tokio runtime.
pub async fn boot(opts: &BootBenchOptions) -> Result<BootBenchReport, BenchError> {
    let dir = fresh(&opts.dir, "boot")?;
    let options = JournalOptions {
        durability: Durability::Buffered,
        ..JournalOptions::default()
    };
    let started = Instant::now();
    let (snapshot_seq, snapshot_bytes, tasks, events) = {
        let journal = Journal::open(&dir)?;
        let (actor, handle) = JournalRef::spawn(journal.clone(), options).await?;
        let head = write_replayable(&actor, opts.events.saturating_sub(opts.tail).max(1)).await?;
        let j = journal.clone();
        let state = tokio::task::spawn_blocking(move || replay(&j))
            .await
            .map_err(|e| BenchError::Other(e.to_string()))??
            .state;
        let tasks: u64 = state.runs().map(|r| r.workflow().len() as u64).sum();
        let bytes = crate::storage::codec::encode_snapshot(&state)?.len() as u64;
        let seq = actor.snapshot(Arc::new(state)).await?;
        if opts.tail > 0 {
            // Runs of 2,001 events: the head wrote head / 2,001 of them.
            write_replayable_after(&actor, opts.tail, u128::from(head / 2001 + 1)).await?;
        }
        let events = journal.last_seq()?;
        actor.stop().await;
        let _ = handle.await;
        journal.flush()?;
        (seq, bytes, tasks, events)
    };
    let write_s = started.elapsed().as_secs_f64();
    let mut rounds = Vec::with_capacity(opts.rounds);
    for _ in 0..opts.rounds {
        let d = dir.clone();
        let round = tokio::task::spawn_blocking(move || -> Result<BootRound, BenchError> {
            let t = Instant::now();
            {
                let journal = Journal::open(&d)?;
                let replayed = replay(&journal)?;
                if replayed.snapshot_seq != Some(snapshot_seq) {
                    return Err(BenchError::Other("boot did not use the snapshot".into()));
                }
            }
            let boot_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            {
                let journal = Journal::open(&d)?;
                full_replay(&journal)?;
            }
            Ok(BootRound {
                boot_s,
                full_replay_s: t.elapsed().as_secs_f64(),
            })
        })
        .await
        .map_err(|e| BenchError::Other(e.to_string()))??;
        rounds.push(round);
    }
    let _ = std::fs::remove_dir_all(&opts.dir);
    let boot_s = median(rounds.iter().map(|r| r.boot_s).collect());
    let baseline_s = median(rounds.iter().map(|r| r.full_replay_s).collect());
    Ok(BootBenchReport {
        events,
        snapshot_seq,
        snapshot_bytes,
        tasks,
        tail_events: events - snapshot_seq,
        write_s,
        rounds,
        boot_s,
        baseline_s,
        ratio: baseline_s / boot_s,
    })
}
