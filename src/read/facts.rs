//! Facts only the write side knows, published by the scheduler for the read side.
//!
//! The journal says what was decided; a few things the scheduler knows are not events: how
//! many attempts hold a worker slot (a cancelled attempt keeps its slot through its grace
//! period), whether a `STOP` file or a shutdown blocks dispatch, and how far it has decided.
//! They are published here — atomics written by the scheduler, read without locks — instead
//! of being recomputed by readers or asked of the scheduler's mailbox.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::messages::scheduler::AttemptKind;
use crate::model::{Counters, RunId, Seq, TaskIndex, Timestamp};

/// An attempt that holds a worker slot although the journal already closed it (cancelled,
/// its process still in the grace period before SIGKILL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lingering {
    /// Its run.
    pub run: RunId,
    /// Its task.
    pub task: TaskIndex,
    /// Forward attempt or compensation.
    pub kind: AttemptKind,
}

/// The write side's published facts (one per node, shared by every scheduler incarnation).
#[derive(Debug)]
pub struct WriteFacts {
    /// The scheduler's last decided sequence number (its fold's `last_seq`, durable or not).
    /// A read waits until the read model has applied what was decided before it arrived.
    decided: AtomicU64,
    /// Bumped by every scheduler start, with the decided number reset to what is durable (a
    /// restart drops decisions that never reached the journal); wakes waiting reads.
    epoch: watch::Sender<u64>,
    /// The scheduler is running (false from its failure until its restart finished recovery).
    up: AtomicBool,
    /// When the current scheduler started (ms since the epoch): the `stalled` health check
    /// measures from here at the latest.
    started_at: AtomicU64,
    /// Attempts holding a worker slot now.
    in_flight: AtomicU32,
    /// A `STOP` file exists in the data dir.
    stop_file: AtomicBool,
    /// The node is shutting down: nothing more is dispatched.
    draining: AtomicBool,
    /// Attempts holding a slot that the journal already closed (rarely more than a few).
    lingering: Mutex<Vec<Lingering>>,
    /// Usage counters running attempts reported so far (`TROUPE_USAGE`, read while they
    /// run); journaled only at their end, so only the worker side knows them meanwhile.
    live_usage: Mutex<HashMap<(RunId, TaskIndex), (u32, Counters)>>,
    /// The cluster's nodes with what the scheduler heard (`troupe nodes`).
    nodes: Mutex<Vec<crate::messages::control::NodeInfo>>,
    /// Why dispatch is halted after a failed append (a full disk), until a scheduler
    /// restarted by `unhalt` recovered.
    fault: Mutex<Option<String>>,
}

impl Default for WriteFacts {
    fn default() -> Self {
        WriteFacts {
            decided: AtomicU64::new(0),
            epoch: watch::channel(0).0,
            up: AtomicBool::new(false),
            started_at: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            stop_file: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            lingering: Mutex::new(Vec::new()),
            live_usage: Mutex::new(HashMap::new()),
            nodes: Mutex::new(Vec::new()),
            fault: Mutex::new(None),
        }
    }
}

impl WriteFacts {
    /// Publishes the cluster's nodes.
    pub fn set_nodes(&self, nodes: Vec<crate::messages::control::NodeInfo>) {
        *self.nodes.lock().expect("nodes lock") = nodes;
    }

    /// The cluster's nodes as last published.
    pub fn nodes(&self) -> Vec<crate::messages::control::NodeInfo> {
        self.nodes.lock().expect("nodes lock").clone()
    }

    /// Attempt `attempt` of `task` reported `counters` so far (`None`: it ended). An older
    /// attempt (cancelled, still in its grace period) neither overwrites nor clears a newer
    /// one's figures.
    pub fn set_live_usage(
        &self,
        run: RunId,
        task: TaskIndex,
        attempt: u32,
        counters: Option<Counters>,
    ) {
        let mut live = self.live_usage.lock().expect("not poisoned");
        let newer = live.get(&(run, task)).is_some_and(|(a, _)| *a > attempt);
        match counters {
            Some(c) if !newer => {
                live.insert((run, task), (attempt, c));
            }
            None if live.get(&(run, task)).is_some_and(|(a, _)| *a == attempt) => {
                live.remove(&(run, task));
            }
            _ => {}
        }
    }

    /// What the running attempt of `task` reported so far, if anything.
    pub fn live_usage(&self, run: RunId, task: TaskIndex) -> Option<Counters> {
        self.live_usage
            .lock()
            .expect("not poisoned")
            .get(&(run, task))
            .map(|(_, c)| c.clone())
    }

    /// A scheduler finished recovery: everything up to `durable` is decided and durable.
    pub fn scheduler_started(&self, durable: Seq, now: Timestamp) {
        self.decided.store(durable, Ordering::Release);
        self.started_at.store(now.0, Ordering::Relaxed);
        self.in_flight.store(0, Ordering::Relaxed);
        self.lingering.lock().expect("not poisoned").clear();
        *self.fault.lock().expect("not poisoned") = None;
        self.up.store(true, Ordering::Release);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// The scheduler stopped (failed or shut down); reads that need write-side facts wait
    /// for its restart.
    pub fn scheduler_stopped(&self) {
        self.up.store(false, Ordering::Release);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// An append failed with `why`: the scheduler decides nothing more, and what it decided
    /// after `durable` will never be journaled, so reads stop waiting for it.
    pub fn journal_failed(&self, durable: Seq, why: String) {
        *self.fault.lock().expect("not poisoned") = Some(why);
        self.decided.store(durable, Ordering::Release);
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Why dispatch is halted after a failed append, if it is.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().expect("not poisoned").clone()
    }

    /// The scheduler decided events up to `seq`.
    pub fn decided(&self, seq: Seq) {
        self.decided.store(seq, Ordering::Release);
    }

    /// The last decided sequence number.
    pub fn decided_seq(&self) -> Seq {
        self.decided.load(Ordering::Acquire)
    }

    /// Whether the scheduler is running.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Wakes on every scheduler start or stop.
    pub fn epochs(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// When the current scheduler started.
    pub fn started_at(&self) -> Timestamp {
        Timestamp(self.started_at.load(Ordering::Relaxed))
    }

    /// Sets the number of attempts holding a slot.
    pub fn set_in_flight(&self, n: u32) {
        self.in_flight.store(n, Ordering::Relaxed);
    }

    /// Attempts holding a slot.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Sets whether a `STOP` file exists.
    pub fn set_stop_file(&self, on: bool) {
        self.stop_file.store(on, Ordering::Relaxed);
    }

    /// Whether a `STOP` file exists.
    pub fn stop_file(&self) -> bool {
        self.stop_file.load(Ordering::Relaxed)
    }

    /// Sets whether the node drains for shutdown.
    pub fn set_draining(&self, on: bool) {
        self.draining.store(on, Ordering::Relaxed);
    }

    /// Whether the node drains for shutdown.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Replaces the list of lingering attempts.
    pub fn set_lingering(&self, list: Vec<Lingering>) {
        *self.lingering.lock().expect("not poisoned") = list;
    }

    /// The attempts holding a slot that the journal already closed.
    pub fn lingering(&self) -> Vec<Lingering> {
        self.lingering.lock().expect("not poisoned").clone()
    }
}
