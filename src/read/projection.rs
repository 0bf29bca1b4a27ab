//! The projection: the journal's committed events folded with the same `model` fold the
//! scheduler uses, plus what the views observe along the way (recent completions, attempt
//! ends per second, the last progress). It is fed by the committed-event feed and answers
//! every read; the scheduler's mailbox never sees one.
//!
//! # Freshness
//! A read waits until the projection has applied everything the scheduler had decided when
//! the read arrived ([`ReadModel::fresh`]): read-your-writes, with no sleeping. If the
//! scheduler restarts meanwhile (its undecided tail is dropped), the wait ends at what is
//! durable; if nothing is applied within [`READ_WAIT`], the read fails with "node
//! restarting" rather than answer from a state it knows is behind.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::messages::control::{Completion, ControlError};
use crate::model::decide::{running_attempts, running_compensations};
use crate::model::rollup::schedulable_since;
use crate::model::score::{rank, Inputs, Rank, Weights};
use crate::model::{
    ApplyError, Change, CompensationState, EventRecord, Run, RunId, RunState, Seq, State,
    TaskIndex, TaskState, Timestamp,
};
use crate::read::facts::WriteFacts;
use crate::read::views::ViewContext;
use crate::storage::feed::{CommittedBatch, Feed};
use crate::storage::{replay, Journal};

/// How long a read waits for the projection to catch up before it fails with "node
/// restarting" (a journal failure or a scheduler restart is that long at most in practice).
pub const READ_WAIT: Duration = Duration::from_secs(10);

/// Completions kept for the dashboard.
pub const COMPLETIONS_KEPT: usize = 10;

/// Events read from the journal per step when catching up after a gap.
const CATCH_UP_STEP: usize = 10_000;

/// The folded state and what the views observe on top of it.
#[derive(Debug, Clone)]
pub struct Projection {
    /// The fold of every committed event.
    pub state: State,
    /// The last [`COMPLETIONS_KEPT`] tasks that reached a terminal state, newest first.
    pub completions: VecDeque<Completion>,
    /// Attempt ends per second (by event time) over the last minute: `(second, count)`.
    ends: VecDeque<(u64, u32)>,
    /// When a task last reached a terminal state or a run was last submitted.
    pub last_progress: Timestamp,
    /// Ready and retrying tasks of running runs, best first: what `troupe queue` lists
    /// (without `--verbose`) and the dashboard's queue, read in O(limit) however long the
    /// queue is.
    pub queue: BTreeSet<QueueOrder>,
    /// The key of each task in `queue` (to move or remove it).
    queued: HashMap<(RunId, TaskIndex), QueueOrder>,
    /// Attempts the journal says are running: `(run, task, compensation)`. Kept so that the
    /// queue's caps and the dashboard's running list cost O(running), not O(tasks).
    pub running: BTreeSet<(RunId, TaskIndex, bool)>,
    /// The node's scoring weights (`[scheduling]`): the queue index ranks tasks with them as
    /// the scheduler does.
    pub weights: Arc<Weights>,
}

/// A queued task's place: class (0 ready, 1 retrying, 2 cannot run yet), then higher rank
/// (the static score of [`crate::model::score::rank`], the scheduler's order; the priority
/// with scoring off), then longer wait (since it became ready) or earlier retry, then run
/// and task.
pub type QueueOrder = (u8, Reverse<Rank>, Timestamp, RunId, TaskIndex);

/// The place of task `t` of `r` in the queue, if it is listed there (ready or retrying, of a
/// running run); with `waiting`, tasks that cannot run yet too (class 2). `w`: the node's
/// scoring weights.
pub fn queue_order(r: &Run, t: TaskIndex, waiting: bool, w: &Weights) -> Option<QueueOrder> {
    if r.state() != RunState::Running {
        return None;
    }
    let task = r.task(t);
    let class = match task.state {
        TaskState::Ready => 0,
        TaskState::Retrying => 1,
        TaskState::Pending | TaskState::AwaitingApproval | TaskState::Suspended if waiting => 2,
        _ => return None,
    };
    let key_time = match task.state {
        TaskState::Retrying => task
            .retry_at
            .unwrap_or(task.started_at.unwrap_or(r.submitted_at())),
        _ => schedulable_since(r, t),
    };
    Some((
        class,
        Reverse(rank(w, &Inputs::of(r, t))),
        key_time,
        r.id(),
        t,
    ))
}

impl Projection {
    /// A projection of `state` (replayed), observed from `now` on, its queue ranked with
    /// `weights`.
    pub fn new(state: State, now: Timestamp, weights: Arc<Weights>) -> Self {
        let mut p = Projection {
            state,
            completions: VecDeque::new(),
            ends: VecDeque::new(),
            last_progress: now,
            queue: BTreeSet::new(),
            queued: HashMap::new(),
            running: BTreeSet::new(),
            weights,
        };
        let forward = running_attempts(&p.state)
            .into_iter()
            .map(|(run, t, _)| (run, t, false));
        let compensations = running_compensations(&p.state)
            .into_iter()
            .map(|(run, t, _)| (run, t, true));
        p.running = forward.chain(compensations).collect();
        let runs: Vec<RunId> = p.state.runs().map(|r| r.id()).collect();
        for run in runs {
            p.index_run(run);
        }
        p
    }

    /// Puts task `t` of `run` where its state says in the queue index (or takes it out).
    fn index(&mut self, run: RunId, t: TaskIndex) {
        if let Some(old) = self.queued.remove(&(run, t)) {
            self.queue.remove(&old);
        }
        let w = &self.weights;
        let Some(order) = self
            .state
            .run(run)
            .and_then(|r| queue_order(r, t, false, w))
        else {
            return;
        };
        self.queue.insert(order);
        self.queued.insert((run, t), order);
    }

    /// Re-indexes every task of `run` (it was submitted, or its state changed).
    fn index_run(&mut self, run: RunId) {
        let n = self.state.run(run).map_or(0, |r| r.tasks().len());
        for t in 0..n as TaskIndex {
            self.index(run, t);
        }
    }

    /// Folds one committed event and observes what it changed.
    pub fn apply(&mut self, seq: Seq, record: &EventRecord) -> Result<(), ApplyError> {
        let mut changes = Vec::new();
        self.state.apply_with(seq, record, &mut changes)?;
        if let crate::model::Event::RunSubmitted { run, .. }
        | crate::model::Event::RunSpawned { run, .. } = record.event
        {
            self.last_progress = self.last_progress.max(record.time);
            self.index_run(run);
        }
        for change in changes {
            self.observe(change, record.time);
        }
        Ok(())
    }

    fn observe(&mut self, change: Change, time: Timestamp) {
        match change {
            Change::Task {
                run,
                task,
                from,
                to,
            } => {
                self.index(run, task);
                if to == TaskState::Running {
                    self.running.insert((run, task, false));
                } else if from == TaskState::Running {
                    self.running.remove(&(run, task, false));
                }
                if from == TaskState::Running && to != TaskState::Suspended {
                    self.count_end(time);
                }
                if !to.is_terminal() {
                    return;
                }
                let Some(r) = self.state.run(run) else { return };
                self.last_progress = self.last_progress.max(time);
                if self.completions.len() == COMPLETIONS_KEPT {
                    self.completions.pop_back();
                }
                self.completions.push_front(Completion {
                    run,
                    task: r.workflow().task_id(task).clone(),
                    workflow: r.workflow().spec().name.clone(),
                    state: to,
                    attempts: r.task(task).attempts,
                    finished_at: time,
                });
            }
            Change::Run { run, from, to }
                if from == RunState::Running || to == RunState::Running =>
            {
                self.index_run(run)
            }
            Change::Compensation {
                run,
                task,
                from,
                to,
            } => {
                if to == CompensationState::Running {
                    self.running.insert((run, task, true));
                } else if from == Some(CompensationState::Running) {
                    self.running.remove(&(run, task, true));
                    self.count_end(time);
                }
            }
            _ => {}
        }
    }

    /// Counts an attempt end in the per-second window of the last minute.
    fn count_end(&mut self, t: Timestamp) {
        let sec = t.0 / 1000;
        match self.ends.back_mut() {
            Some((s, n)) if *s == sec => *n += 1,
            _ => self.ends.push_back((sec, 1)),
        }
        while self.ends.front().is_some_and(|(s, _)| *s + 60 < sec) {
            self.ends.pop_front();
        }
    }

    /// Attempt ends per second over the minute before `t`.
    pub fn throughput(&self, t: Timestamp) -> f64 {
        let sec = t.0 / 1000;
        let n: u32 = self
            .ends
            .iter()
            .filter(|(s, _)| *s + 60 >= sec && *s <= sec)
            .map(|(_, n)| n)
            .sum();
        n as f64 / 60.0
    }

    /// Attempt ends per second over the 60 s before `t`, oldest first (the last is the
    /// current second).
    pub fn throughput_series(&self, t: Timestamp) -> Vec<u32> {
        let sec = t.0 / 1000;
        let mut out = vec![0u32; 60];
        for &(s, n) in &self.ends {
            if s <= sec && s + 60 > sec {
                out[(59 - (sec - s)) as usize] += n;
            }
        }
        out
    }
}

/// Output reads from the journal that run at once on the blocking pool.
pub const JOURNAL_READS: usize = 8;

/// The node's read model: the projection, how far it got, and the write side's facts.
#[derive(Debug)]
pub struct ReadModel {
    /// The projection (readers share it; the follower task writes it per batch).
    projection: RwLock<Projection>,
    /// Sequence number of the last event applied.
    applied: watch::Sender<Seq>,
    /// What only the scheduler knows.
    pub facts: Arc<WriteFacts>,
    /// The journal (catching up, events).
    journal: Journal,
    /// The feed it follows (subscriptions listen to it too).
    feed: Feed,
    /// The node's settings the views show.
    cx: ViewContext,
    /// Set when the node stops: the follower and every subscription end.
    stopped: watch::Sender<bool>,
    /// The follower task (awaited by [`ReadModel::stop`]).
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Bounds the journal reads of outputs that run at once on the blocking pool: a tree of
    /// agents waiting for thousands of children must not start a thread for each.
    pub(crate) journal_reads: tokio::sync::Semaphore,
}

impl ReadModel {
    /// Replays the journal into a new projection and follows `feed` from there (subscribed
    /// before replaying, so no batch falls between the two). Blocks for the replay.
    pub fn start(
        journal: Journal,
        feed: Feed,
        facts: Arc<WriteFacts>,
        cx: ViewContext,
    ) -> Result<Arc<ReadModel>, crate::storage::ReplayError> {
        let batches = feed.subscribe();
        let replayed = replay(&journal)?;
        let last = replayed.state.last_seq();
        let model = Arc::new(ReadModel {
            projection: RwLock::new(Projection::new(
                replayed.state,
                now(),
                Arc::clone(&cx.scheduling),
            )),
            applied: watch::channel(last).0,
            facts,
            journal,
            feed,
            cx,
            stopped: watch::channel(false).0,
            follower: std::sync::Mutex::new(None),
            journal_reads: tokio::sync::Semaphore::new(JOURNAL_READS),
        });
        let follower = Arc::clone(&model);
        let task = tokio::spawn(async move { follower.follow(batches).await });
        *model.follower.lock().expect("not poisoned") = Some(task);
        Ok(model)
    }

    /// The projection, for reading (hold it briefly: the follower waits for it).
    pub fn read(&self) -> RwLockReadGuard<'_, Projection> {
        self.projection.read().expect("not poisoned")
    }

    /// Sequence number of the last event applied.
    pub fn applied(&self) -> Seq {
        *self.applied.borrow()
    }

    /// Wakes whenever more events were applied.
    pub fn watch_applied(&self) -> watch::Receiver<Seq> {
        self.applied.subscribe()
    }

    /// Ends the follower and every subscription (the node stops; the journal they read must
    /// be released).
    pub async fn stop(&self) {
        self.stopped.send_replace(true);
        let task = self.follower.lock().expect("not poisoned").take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Completes once [`ReadModel::stop`] was called.
    pub async fn stopped(&self) {
        let mut rx = self.stopped.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The node's settings the views show.
    pub fn context(&self) -> &ViewContext {
        &self.cx
    }

    /// The committed-event feed.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// The journal (for reads the projection does not hold: events, rollups).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Waits until the projection holds everything the scheduler decided before this call
    /// (read-your-writes). With `write_side`, also until the scheduler is running, so facts
    /// only it publishes are current.
    pub async fn fresh(&self, write_side: bool) -> Result<(), ControlError> {
        let wanted = self.facts.decided_seq();
        let mut applied = self.applied.subscribe();
        let mut epochs = self.facts.epochs();
        let deadline = tokio::time::Instant::now() + READ_WAIT;
        loop {
            // A restart resets `decided` to what is durable: never wait past it.
            let target = wanted.min(self.facts.decided_seq());
            let up = !write_side || self.facts.is_up();
            if *applied.borrow_and_update() >= target && up {
                return Ok(());
            }
            tokio::select! {
                // Each arm only waits on a watch: dropping the others loses nothing.
                r = applied.changed() => if r.is_err() { return Err(restarting()) },
                r = epochs.changed() => if r.is_err() { return Err(restarting()) },
                _ = tokio::time::sleep_until(deadline) => return Err(restarting()),
            }
        }
    }

    /// Applies batches as they come; after a gap (lagged, or a batch starting later than
    /// expected) reads the missing events from the journal first.
    async fn follow(self: Arc<Self>, mut batches: broadcast::Receiver<Arc<CommittedBatch>>) {
        loop {
            let batch = tokio::select! {
                // Cancelling a broadcast recv loses nothing.
                b = batches.recv() => b,
                _ = self.stopped() => return,
            };
            match batch {
                Ok(batch) => {
                    if batch.first > self.applied() + 1 {
                        self.catch_up(batch.first - 1).await;
                    }
                    self.apply_batch(batch.iter());
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(
                        batches = n,
                        "read model fell behind the feed; catching up from the journal"
                    );
                    self.catch_up(Seq::MAX).await;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Reads events after the applied one from the journal, up to `until` (or the end).
    async fn catch_up(self: &Arc<Self>, until: Seq) {
        loop {
            let after = self.applied();
            if after >= until {
                return;
            }
            let journal = self.journal.clone();
            let read =
                tokio::task::spawn_blocking(move || Feed::catch_up(&journal, after, CATCH_UP_STEP))
                    .await;
            match read {
                Ok(Ok(events)) if events.is_empty() => return,
                Ok(Ok(events)) => {
                    let events: Vec<_> = events.into_iter().filter(|(s, _)| *s <= until).collect();
                    if events.is_empty() {
                        return;
                    }
                    self.apply_batch(events.iter().map(|(s, r)| (*s, r)));
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "read model cannot read the journal to catch up");
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, "read model catch-up failed");
                    return;
                }
            }
        }
    }

    /// Applies the events after the applied one, then tells waiting readers.
    fn apply_batch<'a>(&self, events: impl Iterator<Item = (Seq, &'a EventRecord)>) {
        let mut p = self.projection.write().expect("not poisoned");
        let mut last = p.state.last_seq();
        for (seq, record) in events {
            if seq <= last {
                continue;
            }
            if let Err(e) = p.apply(seq, record) {
                // The scheduler applied this event before journaling it, so the fold accepts
                // it; if not, rebuilding from the journal is the only honest state.
                tracing::error!(seq, error = %e, "read model refused a committed event; replaying the journal");
                match replay(&self.journal) {
                    Ok(r) => *p = Projection::new(r.state, now(), Arc::clone(&self.cx.scheduling)),
                    Err(e) => tracing::error!(error = %e, "read model replay failed"),
                }
                break;
            }
            last = seq;
        }
        let last = p.state.last_seq();
        drop(p);
        self.applied.send_if_modified(|a| {
            let moved = *a != last;
            *a = last;
            moved
        });
    }
}

fn restarting() -> ControlError {
    ControlError::Internal(
        "node restarting: its scheduler or journal is being restarted; try again in a moment"
            .into(),
    )
}

/// Now, as the model's timestamp.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}
