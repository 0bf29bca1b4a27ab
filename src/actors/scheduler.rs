//! The scheduler: owns the folded state of every run, the ready queue, retry timers, worker
//! slots and the halt flag.
//!
//! # The loop
//! `message → decide (model::decide, the fold as validator) → apply → journal → effects`.
//! A decided event is applied to the in-memory [`State`] at once (so the next decision sees
//! it, and an event the fold refuses is never journaled), then sent to the journal actor with
//! [`JournalMsg::AppendThen`](crate::messages::journal::JournalMsg::AppendThen). Effects — dispatching an attempt, terminating one, answering a
//! control request — wait in a queue tagged with the sequence number they depend on and run
//! only once the journal acknowledged it ("persist, then act"). Acks arrive in sequence order
//! and an ack for `n` means everything up to `n` is durable.
//!
//! Because the scheduler applies before the journal confirms, a failed append leaves its
//! state ahead of the journal: it then fails on purpose, and its supervisor restarts it
//! from a fresh replay.
//!
//! # Dispatch
//! Ready tasks wait in one max-heap ordered by priority, then age (FIFO among equal
//! priorities; no age boost, see [`QueueKey`]). A task whose run is at `max_concurrency` or
//! whose pool is full is parked per (run, pool) and moved back when an attempt of that run
//! (pool) ends. Nothing is dispatched while the node is halted, a `STOP` file exists in the
//! data dir, or the node is draining for shutdown.
//!
//! # Recovery
//! On start (first boot or restart) the scheduler waits until every append already queued at
//! the journal is durable, replays the journal, terminates the process groups of attempts
//! the journal says are running (pid + start time, see [`crate::process::terminate_orphan`])
//! and closes those attempts as `interrupted`, retried under their policy. Succeeded tasks
//! are terminal in the fold, so recovery never runs them again.

use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::actors::approval::{apply_rules, pending_approval, ApprovalRule};
use crate::actors::journal::JournalRef;
use crate::actors::metrics::{Metrics, PoolHandles};
use crate::actors::saga::SagaCoordinator;
use crate::messages::approval::{ApprovalChange, ApprovalMsg};
use crate::messages::control::{
    Command as AdminCommand, ControlError, PendingApproval, Request, Response, Target,
};
use crate::messages::scheduler::{
    AttemptKind, AttemptOrder, AttemptOutcome, AttemptReport, ReportPort, SchedulerMsg, WorkerMsg,
};
use crate::model::decide::{
    attempt_end, compensation_end, running_attempts, running_compensations, AttemptEnd, QueueKey,
};
use crate::model::rollup::{schedulable_since, Counts, RollupDelta};
use crate::model::{
    ApplyError, Change, CompensationState, Event, EventRecord, Failure, RunId, RunState, Seq,
    State, TaskId, TaskIndex, TaskState, Timestamp, Workflow,
};
use crate::node::NodeShared;
use crate::read::facts::Lingering;
use crate::webhooks::{Notice, WebhookEvent};
use compact_str::CompactString;

/// How often the scheduler looks for the `STOP` file.
pub const STOP_FILE_POLL: Duration = Duration::from_millis(250);

/// The scheduler actor.
#[derive(Clone)]
pub struct Scheduler {
    /// Node-wide settings and handles.
    pub shared: Arc<NodeShared>,
}

/// A ready task in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Priority and age.
    key: QueueKey,
    /// Its run.
    run: RunId,
    /// Its index.
    task: TaskIndex,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// An attempt dispatched (or about to be) to a worker.
#[derive(Debug, Clone)]
struct Running {
    /// Dispatch token.
    token: u64,
    /// Worker slot.
    slot: u32,
    /// The task's pool, if any (compensations hold none).
    pool: Option<String>,
    /// Forward attempt or compensation.
    kind: AttemptKind,
}

/// Something to do once the journal holds everything up to a sequence number.
enum Effect {
    /// Send an attempt to a worker.
    Dispatch {
        run: RunId,
        task: TaskIndex,
        attempt: u32,
        kind: AttemptKind,
        token: u64,
        slot: u32,
    },
    /// Terminate the attempts with these tokens.
    Terminate(Vec<(u32, u64)>),
    /// Answer a request.
    Reply(RpcReplyPort<Response>, Response),
    /// Answer a barrier.
    Ack(RpcReplyPort<()>),
    /// Tell waiters a run finished.
    Finished(RunId, RunState),
    /// Tell the approval gate what changed.
    Approvals(Vec<ApprovalChange>),
    /// Add a durable bucket's counts to a pool's counters.
    Count(CompactString, Counts),
    /// Hand notices to the webhook sender.
    Notify(Vec<Notice>),
}

/// The scheduler's state (rebuilt from the journal on every start).
pub struct SchedulerState {
    /// The fold of the journal plus events decided but maybe not yet durable.
    state: State,
    /// Writes go here.
    journal: JournalRef,
    /// Decided events not yet sent to the journal (sent at the end of each message).
    outbox: Vec<EventRecord>,
    /// Highest sequence number the journal acknowledged.
    durable: Seq,
    /// Effects waiting for their sequence number to be durable, in order.
    effects: VecDeque<(Seq, Effect)>,
    /// Ready tasks, best first.
    queue: BinaryHeap<Entry>,
    /// Tasks blocked by their run's cap (`None`) or pool, by run.
    parked: HashMap<(RunId, Option<String>), BinaryHeap<Entry>>,
    /// Retrying tasks by due time.
    timers: BTreeSet<(Timestamp, RunId, TaskIndex)>,
    /// Which compensations of compensating runs are due.
    sagas: SagaCoordinator,
    /// The approval gate, once it announced itself.
    gate: Option<ActorRef<ApprovalMsg>>,
    /// Changes to pending approvals decided since the last message (sent once durable).
    approval_changes: Vec<ApprovalChange>,
    /// Expiry of approval requests whose task sets none.
    approval_timeout: Duration,
    /// Earliest due time a timer message is already scheduled for.
    armed: Option<Timestamp>,
    /// Attempts dispatched and not yet reported.
    running: HashMap<(RunId, TaskIndex), Running>,
    /// Running attempts per run.
    run_load: HashMap<RunId, u32>,
    /// Running attempts per (run, pool).
    pool_load: HashMap<(RunId, String), u32>,
    /// Node-wide pool capacities (`[pools]` in `troupe.toml`), across all runs.
    node_pools: std::collections::BTreeMap<String, u32>,
    /// Running attempts per node-wide pool.
    node_pool_load: HashMap<String, u32>,
    /// Tasks blocked by a full node-wide pool, best first, by pool.
    node_parked: HashMap<String, BinaryHeap<Entry>>,
    /// Worker actors by slot (`None` until it announced itself).
    workers: Vec<Option<ActorRef<WorkerMsg>>>,
    /// Token of the attempt each slot runs.
    busy: Vec<Option<u64>>,
    /// Slots with a live, idle worker.
    free: Vec<u32>,
    /// Next dispatch token.
    next_token: u64,
    /// Next enqueue counter (age).
    next_age: u64,
    /// A `STOP` file exists in the data dir.
    stop_file: bool,
    /// Shutdown: dispatch nothing more.
    draining: bool,
    /// Answered when draining and nothing runs.
    drained: Vec<RpcReplyPort<()>>,
    /// Shutdown after the grace period: ends of running attempts are not journaled.
    abandon: bool,
    /// Where finished runs are announced.
    finished: tokio::sync::broadcast::Sender<(RunId, RunState)>,
    /// A `Flush` message is in our mailbox.
    flush_scheduled: bool,
    /// An append failed: the state is ahead of the journal; nothing more is decided or done
    /// until the supervisor restarts us.
    frozen: bool,
    /// Sequence number of the last snapshot stored (or replayed from).
    snapshot_seq: Seq,
    /// Store a snapshot once this many events are past `snapshot_seq` (0 = never).
    snapshot_every: u64,
    /// Rollup counts of the outbox (go to the journal with it).
    rollup: RollupDelta,
    /// The node's registry.
    metrics: Arc<Metrics>,
    /// Metric handles per pool name (`""`: no pool).
    pool_metrics: HashMap<CompactString, PoolHandles>,
    /// Webhook notices of the outbox (sent once durable; only built if someone listens).
    notices: Vec<Notice>,
    /// The node's webhooks, to skip building unwanted notices.
    shared: Arc<NodeShared>,
    /// The attempts the journal closed but whose process still holds a slot may have
    /// changed: republish them (see [`crate::read::facts::Lingering`]).
    lingering_dirty: bool,
    /// How many lingering attempts were published last.
    lingering: usize,
}

/// The gauge handles of `pool`, created on first use.
fn pool_handles<'a>(
    cache: &'a mut HashMap<CompactString, PoolHandles>,
    metrics: &Metrics,
    pool: &str,
) -> &'a PoolHandles {
    if !cache.contains_key(pool) {
        cache.insert(CompactString::from(pool), metrics.pool(pool));
    }
    cache.get(pool).expect("just inserted")
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

fn to_control_error(e: ApplyError) -> ControlError {
    match e {
        ApplyError::UnknownRun(r) => ControlError::NotFound(format!("no run {r}")),
        ApplyError::UnknownTask { run, task } => {
            ControlError::NotFound(format!("run {run} has no task `{task}`"))
        }
        other => ControlError::Refused(other.to_string()),
    }
}

impl SchedulerState {
    /// Applies `event` (stamped now) and stages it for the journal; reacts to the
    /// transitions it caused. Refused events change nothing and are not journaled.
    fn decide(&mut self, event: Event) -> Result<(), ApplyError> {
        let record = EventRecord { time: now(), event };
        let seq = self.state.last_seq() + 1;
        let collect = self.shared.config.metrics;
        let runnable_since = match &record.event {
            Event::AttemptStarted { run, task, .. } if collect => self.runnable_since(*run, task),
            _ => None,
        };
        let mut changes = Vec::new();
        self.state.apply_with(seq, &record, &mut changes)?;
        self.shared.facts.decided(seq);
        if let Some(since) = runnable_since {
            self.metrics
                .queue_wait(record.time.saturating_since(since).as_secs_f64());
        }
        for change in &changes {
            if collect {
                self.rollup.observe(&self.state, change, record.time);
            }
            self.measure(change, &record, collect);
        }
        self.outbox.push(record);
        for change in changes {
            self.react(change);
        }
        Ok(())
    }

    /// When the task about to start became runnable: its retry's due time, or when its
    /// dependencies were met (`None` for approval-gated first attempts, whose wait includes
    /// a human's).
    fn runnable_since(&self, run: RunId, task: &TaskId) -> Option<Timestamp> {
        let r = self.state.run(run)?;
        let i = r.workflow().task_index(task.as_str())?;
        let t = r.task(i);
        match t.state {
            TaskState::Retrying => t.retry_at,
            TaskState::Ready if !r.workflow().requires_approval(i) && !t.approved => {
                Some(schedulable_since(r, i))
            }
            _ => None,
        }
    }

    /// Updates gauges now and stages samples, completions and notices for `change` (caused
    /// by `record`, already applied).
    fn measure(&mut self, change: &Change, record: &EventRecord, collect: bool) {
        match *change {
            Change::Task {
                run,
                task,
                from,
                to,
            } => {
                let Some(r) = self.state.run(run) else { return };
                if collect {
                    let pool = r.workflow().pool(task).unwrap_or("");
                    pool_handles(&mut self.pool_metrics, &self.metrics, pool).moved(from, to);
                    if to == TaskState::AwaitingApproval {
                        self.metrics.approvals_pending.inc();
                    } else if from == TaskState::AwaitingApproval {
                        self.metrics.approvals_pending.dec();
                    }
                }
                let t = r.task(task);
                if collect && from == TaskState::Running && to != TaskState::Suspended {
                    if let Some(started) = t.started_at {
                        self.metrics.attempt_ended(
                            to == TaskState::Succeeded,
                            record.time.saturating_since(started).as_secs_f64(),
                        );
                    }
                }
                if to == TaskState::Failed && self.shared.webhooks.wants(WebhookEvent::TaskFailed) {
                    self.notices.push(Notice::TaskFailed {
                        run,
                        workflow: r.workflow().spec().name.clone(),
                        task: r.workflow().task_id(task).clone(),
                        attempt: t.attempts,
                        failure: t
                            .last_failure
                            .as_ref()
                            .map(|f| f.to_string())
                            .unwrap_or_else(|| record.event.type_name().to_string()),
                    });
                }
                if to == TaskState::AwaitingApproval
                    && self.shared.webhooks.wants(WebhookEvent::ApprovalRequested)
                {
                    if let Some(p) = pending_approval(r, task, self.approval_timeout) {
                        self.notices.push(Notice::ApprovalRequested {
                            run,
                            workflow: r.workflow().spec().name.clone(),
                            task: r.workflow().task_id(task).clone(),
                            expires_at: p.expires_at,
                        });
                    }
                }
            }
            Change::Run { run, from, to } => {
                let Some(r) = self.state.run(run) else { return };
                if collect && to.is_finished() && !from.is_finished() {
                    self.metrics.run_ended(
                        to,
                        record.time.saturating_since(r.submitted_at()).as_secs_f64(),
                    );
                }
                if to.is_finished()
                    && !from.is_finished()
                    && self.shared.webhooks.wants(WebhookEvent::RunFinished)
                {
                    self.notices.push(Notice::RunFinished {
                        run,
                        workflow: r.workflow().spec().name.clone(),
                        state: to,
                    });
                }
            }
            Change::Compensation { .. } => {}
        }
    }

    fn react(&mut self, change: Change) {
        if let Change::Run { run, to, .. } = change {
            if to.is_finished() {
                self.after_persist(Effect::Finished(run, to));
            }
        }
        let run = match change {
            Change::Task {
                run,
                task,
                from,
                to,
            } => {
                self.track(run, task);
                if to == TaskState::AwaitingApproval {
                    let r = self.state.run(run).expect("changed run exists");
                    if let Some(p) = pending_approval(r, task, self.approval_timeout) {
                        self.approval_changes.push(ApprovalChange::Requested(p));
                    }
                } else if from == TaskState::AwaitingApproval {
                    let r = self.state.run(run).expect("changed run exists");
                    self.approval_changes.push(ApprovalChange::Closed {
                        run,
                        task: r.workflow().task_id(task).clone(),
                    });
                }
                run
            }
            Change::Run { run, .. } | Change::Compensation { run, .. } => run,
        };
        if self
            .state
            .run(run)
            .is_some_and(|r| r.state() == RunState::Compensating)
        {
            self.sagas.touch(run);
        }
    }

    /// Puts a task where its state says it waits: a ready task in the queue, a retrying one
    /// among the timers (duplicates are harmless: `fill` skips stale entries, timers are a
    /// set).
    fn track(&mut self, run: RunId, task: TaskIndex) {
        let Some(t) = self.state.run(run).map(|r| r.task(task)) else {
            return;
        };
        match t.state {
            TaskState::Ready => self.enqueue(run, task),
            TaskState::Retrying => {
                if let Some(at) = t.retry_at {
                    self.timers.insert((at, run, task));
                }
            }
            _ => {}
        }
    }

    fn enqueue(&mut self, run: RunId, task: TaskIndex) {
        let Some(r) = self.state.run(run) else { return };
        let key = QueueKey {
            priority: r.workflow().priority(task),
            age: self.next_age,
        };
        self.next_age += 1;
        self.queue.push(Entry { key, run, task });
    }

    /// Runs `effect` once everything decided so far is durable.
    fn after_persist(&mut self, effect: Effect) {
        if let Effect::Terminate(_) = effect {
            self.lingering_dirty = true;
        }
        self.effects.push_back((self.state.last_seq(), effect));
    }

    /// Makes sure the outbox goes to the journal after the messages already queued: sends
    /// `Flush` to ourselves once per group. If the mailbox takes no more messages (the actor
    /// is stopping), flushes at once.
    fn schedule_flush(&mut self, myself: &ActorRef<SchedulerMsg>) {
        if self.outbox.is_empty() || self.flush_scheduled {
            return;
        }
        if myself.cast(SchedulerMsg::Flush).is_ok() {
            self.flush_scheduled = true;
        } else {
            self.flush(myself);
        }
    }

    /// Sends the outbox to the journal as one append.
    fn flush(&mut self, myself: &ActorRef<SchedulerMsg>) {
        self.metrics.running.set(self.running.len() as i64);
        if !self.outbox.is_empty() {
            let records = std::mem::take(&mut self.outbox);
            let rollup = std::mem::take(&mut self.rollup);
            for ((_, pool), b) in &rollup.buckets {
                self.after_persist(Effect::Count(pool.clone(), Counts::of(b)));
            }
            if !self.notices.is_empty() {
                let notices = std::mem::take(&mut self.notices);
                self.after_persist(Effect::Notify(notices));
            }
            let me = myself.clone();
            self.journal.append_then(
                records,
                rollup,
                Box::new(move |r| {
                    let _ = me.cast(SchedulerMsg::Persisted(r));
                }),
            );
        }
    }

    /// Runs the effects whose events are durable.
    fn run_effects(&mut self, myself: &ActorRef<SchedulerMsg>) {
        while self
            .effects
            .front()
            .is_some_and(|(seq, _)| *seq <= self.durable)
        {
            let (_, effect) = self.effects.pop_front().expect("checked");
            match effect {
                Effect::Dispatch {
                    run,
                    task,
                    attempt,
                    kind,
                    token,
                    slot,
                } => {
                    let Some(r) = self.state.run(run) else {
                        continue;
                    };
                    let order = AttemptOrder {
                        workflow: Arc::clone(r.workflow()),
                        report: ReportPort::new(
                            myself.clone(),
                            token,
                            slot,
                            run,
                            task,
                            attempt,
                            kind,
                        ),
                    };
                    match &self.workers[slot as usize] {
                        // If the worker is gone, the dropped order reports itself interrupted.
                        Some(w) => {
                            let _ = w.cast(WorkerMsg::Run(Box::new(order)));
                        }
                        None => drop(order),
                    }
                }
                Effect::Terminate(list) => {
                    for (slot, token) in list {
                        if let Some(w) = &self.workers[slot as usize] {
                            let _ = w.cast(WorkerMsg::Terminate { token });
                        }
                    }
                }
                Effect::Reply(port, response) => {
                    let _ = port.send(response);
                }
                Effect::Ack(port) => {
                    let _ = port.send(());
                }
                Effect::Finished(run, state) => {
                    let _ = self.finished.send((run, state));
                }
                Effect::Approvals(changes) => {
                    if let Some(gate) = &self.gate {
                        let _ = gate.cast(ApprovalMsg::Changed(changes));
                    }
                }
                Effect::Count(pool, counts) => {
                    pool_handles(&mut self.pool_metrics, &self.metrics, &pool).count(&counts);
                }
                Effect::Notify(notices) => {
                    for n in notices {
                        self.shared.webhooks.send(n);
                    }
                }
            }
        }
    }

    /// Stores a snapshot when enough events have passed since the last one. The clone is O(tasks of all runs); at the default of one
    /// snapshot per 1,000,000 events it costs well under 1% of the scheduler's time.
    fn maybe_snapshot(&mut self) {
        let last = self.state.last_seq();
        // Everything decided is already sent (the outbox is empty): the journal handles the
        // snapshot after those appends (its mailbox is FIFO), commits what it staged first, and
        // refuses a snapshot past its last durable event, so it is never ahead of the journal.
        if self.snapshot_every == 0
            || last - self.snapshot_seq < self.snapshot_every
            || !self.outbox.is_empty()
        {
            return;
        }
        self.snapshot_seq = last;
        let (reply, _ignored) = ractor::concurrency::oneshot();
        let state = Arc::new(self.state.clone());
        if let Err(e) = self
            .journal
            .actor()
            .cast(crate::messages::journal::JournalMsg::Snapshot {
                state,
                reply: reply.into(),
            })
        {
            tracing::warn!(error = %e, "could not send a snapshot to the journal");
        } else {
            tracing::debug!(seq = last, "snapshot sent to the journal");
        }
    }

    /// Sends the approval changes decided so far to the gate once they are durable.
    fn flush_approval_changes(&mut self) {
        if !self.approval_changes.is_empty() {
            let changes = std::mem::take(&mut self.approval_changes);
            self.after_persist(Effect::Approvals(changes));
        }
    }

    /// Every pending approval request (for a gate that just started).
    fn pending_approvals(&self) -> Vec<PendingApproval> {
        let mut out = Vec::new();
        for r in self.state.runs() {
            if r.count(TaskState::AwaitingApproval) == 0 {
                continue;
            }
            for t in 0..r.tasks().len() as TaskIndex {
                out.extend(pending_approval(r, t, self.approval_timeout));
            }
        }
        out
    }

    /// Journals `approval_expired` if `task` still awaits the request made at
    /// `requested_at`.
    fn expire_approval(&mut self, run: RunId, task: TaskId, requested_at: Timestamp) {
        let Some(r) = self.state.run(run) else { return };
        let Some(t) = r.workflow().task_index(task.as_str()) else {
            return;
        };
        let current = pending_approval(r, t, self.approval_timeout);
        if current.is_some_and(|p| p.requested_at == requested_at) {
            tracing::info!(run_id = %run, task_id = %task, "approval request expired");
            if let Err(e) = self.decide(Event::ApprovalExpired { run, task }) {
                tracing::error!(error = %e, "approval expiry refused by the fold");
            }
        }
    }

    /// Answers `port` once everything decided so far is durable (after the approval gate
    /// heard of what it changed, so `approve` then `approvals` never shows a stale request).
    fn reply(&mut self, port: RpcReplyPort<Response>, response: Response) {
        self.flush_approval_changes();
        self.after_persist(Effect::Reply(port, response));
    }

    fn dispatch_blocked(&self) -> bool {
        self.state.is_halted() || self.stop_file || self.draining
    }

    /// Starts attempts of the best ready tasks while workers are free.
    fn fill(&mut self) {
        if self.dispatch_blocked() {
            return;
        }
        let t_now = now();
        self.sagas.due_timers(t_now);
        while !self.free.is_empty() && self.sagas.has_ready() {
            let Some((run, task, attempt)) = self.sagas.next_due(&self.state, t_now) else {
                break;
            };
            // A forward attempt cancelled while running is `cancelled` in the fold at once,
            // but its process may still be in its grace period: undo nothing until it ended
            // (its end touches the run again).
            if self
                .running
                .iter()
                .any(|((r, _), x)| *r == run && x.kind == AttemptKind::Forward)
            {
                continue;
            }
            let Some(slot) = self.take_slot() else {
                self.sagas.put_back(run);
                break;
            };
            let r = self
                .state
                .run(run)
                .expect("due compensations name live runs");
            let event = Event::CompensationStarted {
                run,
                task: r.workflow().task_id(task).clone(),
                attempt,
            };
            if let Err(e) = self.decide(event) {
                tracing::error!(error = %e, "scheduler decided a compensation the fold refuses");
                self.free.push(slot);
                continue;
            }
            self.occupy(run, task, attempt, AttemptKind::Compensation, slot, None);
        }
        while !self.free.is_empty() {
            let Some(entry) = self.queue.pop() else { break };
            let Some(r) = self.state.run(entry.run) else {
                continue;
            };
            if r.state() != RunState::Running
                || r.is_suspended()
                || self.running.contains_key(&(entry.run, entry.task))
            {
                self.reoffer(entry.run, entry.task);
                continue;
            }
            let task = r.task(entry.task);
            match task.state {
                TaskState::Ready => {}
                TaskState::Retrying => {
                    if let Some(at) = task.retry_at.filter(|at| *at > t_now) {
                        self.timers.insert((at, entry.run, entry.task));
                        self.reoffer(entry.run, entry.task);
                        continue;
                    }
                }
                _ => {
                    self.reoffer(entry.run, entry.task);
                    continue;
                }
            }
            let wf = r.workflow();
            if let Some(cap) = wf.spec().max_concurrency {
                if self.run_load.get(&entry.run).copied().unwrap_or(0) >= cap {
                    self.parked
                        .entry((entry.run, None))
                        .or_default()
                        .push(entry);
                    continue;
                }
            }
            let pool = wf.pool(entry.task).map(str::to_owned);
            if let Some(p) = &pool {
                let cap = wf.spec().pools.get(p).copied().unwrap_or(u32::MAX);
                let used = self
                    .pool_load
                    .get(&(entry.run, p.clone()))
                    .copied()
                    .unwrap_or(0);
                if used >= cap {
                    self.parked
                        .entry((entry.run, Some(p.clone())))
                        .or_default()
                        .push(entry);
                    // This entry may have been moved here from the run-cap heap for a run
                    // slot it cannot use: offer that slot to the next task of the run.
                    self.unpark(&(entry.run, None));
                    continue;
                }
                if !self.node_pool_free(p) {
                    self.node_parked.entry(p.clone()).or_default().push(entry);
                    self.unpark(&(entry.run, None));
                    continue;
                }
            }
            let attempt = task.attempts + 1;
            let event = Event::AttemptStarted {
                run: entry.run,
                task: wf.task_id(entry.task).clone(),
                attempt,
            };
            let Some(slot) = self.take_slot() else {
                self.queue.push(entry);
                break;
            };
            if let Err(e) = self.decide(event) {
                tracing::error!(error = %e, "scheduler decided an attempt the fold refuses");
                self.free.push(slot);
                continue;
            }
            *self.run_load.entry(entry.run).or_default() += 1;
            if let Some(p) = &pool {
                *self.pool_load.entry((entry.run, p.clone())).or_default() += 1;
                if self.node_pools.contains_key(p) {
                    *self.node_pool_load.entry(p.clone()).or_default() += 1;
                }
            }
            self.occupy(
                entry.run,
                entry.task,
                attempt,
                AttemptKind::Forward,
                slot,
                pool,
            );
        }
    }

    /// A free slot whose worker is alive, if any. A worker that died is not given work: its
    /// slot comes back with the restarted worker's `WorkerUp` (an order sent to it would
    /// only come back interrupted).
    fn take_slot(&mut self) -> Option<u32> {
        while let Some(slot) = self.free.pop() {
            let alive = self.workers[slot as usize].as_ref().is_some_and(|w| {
                !matches!(
                    w.get_status(),
                    ractor::ActorStatus::Draining
                        | ractor::ActorStatus::Stopping
                        | ractor::ActorStatus::Stopped
                )
            });
            if alive {
                return Some(slot);
            }
            self.workers[slot as usize] = None;
        }
        None
    }

    /// Books a decided attempt start on `slot` and dispatches it once durable.
    fn occupy(
        &mut self,
        run: RunId,
        task: TaskIndex,
        attempt: u32,
        kind: AttemptKind,
        slot: u32,
        pool: Option<String>,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        self.busy[slot as usize] = Some(token);
        self.running.insert(
            (run, task),
            Running {
                token,
                slot,
                pool,
                kind,
            },
        );
        self.after_persist(Effect::Dispatch {
            run,
            task,
            attempt,
            kind,
            token,
            slot,
        });
    }

    /// Whether a queue entry can still be dispatched (its run is running and not suspended,
    /// the task is ready or retrying, and no attempt of it is out).
    fn dispatchable(&self, e: &Entry) -> bool {
        let t_now = now();
        self.state.run(e.run).is_some_and(|r| {
            let t = r.task(e.task);
            r.state() == RunState::Running
                && !r.is_suspended()
                && (t.state == TaskState::Ready
                    // A retry that is not due has its timer; its entry would only park a slot.
                    || (t.state == TaskState::Retrying
                        && t.retry_at.is_none_or(|at| at <= t_now)))
        }) && !self.running.contains_key(&(e.run, e.task))
    }

    /// An entry of `run` left the queue without using a slot (it went stale, or its retry is
    /// not due): a slot that `release` handed to it would be lost, so hand the run's free run
    /// slot and the task's pool slot, if any, to the next parked entries. Each hand-off uses up
    /// a parked entry, so this terminates.
    fn reoffer(&mut self, run: RunId, task: TaskIndex) {
        let Some(r) = self.state.run(run) else { return };
        let wf = r.workflow();
        let run_free = wf
            .spec()
            .max_concurrency
            .is_none_or(|cap| self.run_load.get(&run).copied().unwrap_or(0) < cap);
        let pool = wf.pool(task).map(str::to_owned);
        let pool_free = pool.as_ref().is_some_and(|p| {
            let cap = wf.spec().pools.get(p).copied().unwrap_or(u32::MAX);
            self.pool_load.get(&(run, p.clone())).copied().unwrap_or(0) < cap
        });
        if run_free {
            self.unpark(&(run, None));
        }
        if let Some(p) = pool.as_ref().filter(|p| self.node_pool_free(p)) {
            let p = p.clone();
            self.unpark_node(&p);
        }
        if pool_free {
            self.unpark(&(run, pool));
        }
    }

    /// Whether node-wide pool `pool` (if it is one) has a free slot.
    fn node_pool_free(&self, pool: &str) -> bool {
        self.node_pools
            .get(pool)
            .is_none_or(|&cap| self.node_pool_load.get(pool).copied().unwrap_or(0) < cap)
    }

    /// Moves the best still-dispatchable task blocked by node-wide pool `pool` back into the
    /// queue.
    fn unpark_node(&mut self, pool: &str) {
        let Some(mut heap) = self.node_parked.remove(pool) else {
            return;
        };
        self.requeue_best(&mut heap);
        if !heap.is_empty() {
            self.node_parked.insert(pool.to_owned(), heap);
        }
    }

    /// Moves the best dispatchable entry of `heap` into the queue, dropping stale ones
    /// (cancelled, suspended, already running) on the way.
    fn requeue_best(&mut self, heap: &mut BinaryHeap<Entry>) {
        while let Some(e) = heap.pop() {
            if self.dispatchable(&e) {
                self.queue.push(e);
                break;
            }
        }
    }

    /// Moves the best still-dispatchable parked task of `key` back into the queue; parked
    /// entries that went stale (cancelled, suspended, already running) are dropped on the way.
    fn unpark(&mut self, key: &(RunId, Option<String>)) {
        let Some(mut heap) = self.parked.remove(key) else {
            return;
        };
        self.requeue_best(&mut heap);
        if !heap.is_empty() {
            self.parked.insert(key.clone(), heap);
        }
    }

    /// Books the end of a reported attempt: frees its worker slot and caps.
    fn release(&mut self, report: &AttemptReport) -> bool {
        if self.busy[report.slot as usize] == Some(report.token) {
            self.busy[report.slot as usize] = None;
            if self.workers[report.slot as usize].is_some() {
                self.free.push(report.slot);
            }
        }
        let key = (report.run, report.task);
        if self.running.get(&key).map(|r| r.token) != Some(report.token) {
            return false;
        }
        let running = self.running.remove(&key).expect("checked");
        if self.lingering > 0 {
            self.lingering_dirty = true;
        }
        if running.kind == AttemptKind::Compensation {
            return true;
        }
        if let Some(n) = self.run_load.get_mut(&report.run) {
            *n -= 1;
            if *n == 0 {
                self.run_load.remove(&report.run);
            }
        }
        self.unpark(&(report.run, None));
        if let Some(p) = running.pool {
            let k = (report.run, p);
            if let Some(n) = self.pool_load.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.pool_load.remove(&k);
                }
            }
            if let Some(n) = self.node_pool_load.get_mut(&k.1) {
                *n = n.saturating_sub(1);
                self.unpark_node(&k.1);
            }
            self.unpark(&(report.run, Some(k.1)));
        }
        true
    }

    fn attempt_ended(&mut self, report: AttemptReport) {
        // After a shutdown's grace (or a second Ctrl-C) ends are not journaled: the next boot
        // closes those attempts as interrupted. The drain still completes.
        if self.release(&report) && !self.abandon {
            self.close_attempt(report);
        }
        if self.draining && self.running.is_empty() {
            for port in self.drained.drain(..) {
                let _ = port.send(());
            }
        }
    }

    /// Journals the end of a released attempt (and what follows from it).
    fn close_attempt(&mut self, report: AttemptReport) {
        let end = match report.outcome {
            AttemptOutcome::Succeeded { usage } => AttemptEnd::Succeeded { usage },
            AttemptOutcome::Failed {
                failure,
                usage,
                retryable,
            } => AttemptEnd::Failed {
                failure,
                retryable,
                usage,
            },
            // Terminated without the task being cancelled (halt --kill, a worker restart):
            // the attempt was interrupted, not failed by its own doing.
            AttemptOutcome::Terminated { usage } => AttemptEnd::Failed {
                failure: Failure::Interrupted,
                retryable: true,
                usage,
            },
        };
        let close = match report.kind {
            AttemptKind::Forward => {
                // The task may have become ready again while this attempt was still out
                // (retry of a task whose cancelled attempt was being terminated): `fill`
                // skipped it then. A compensating run may have waited for this attempt.
                self.track(report.run, report.task);
                if self
                    .state
                    .run(report.run)
                    .is_some_and(|r| r.state() == RunState::Compensating)
                {
                    self.sagas.touch(report.run);
                }
                attempt_end
            }
            AttemptKind::Compensation => {
                self.sagas.touch(report.run);
                compensation_end
            }
        };
        let sample = rand::random::<f64>();
        if let Some(event) = close(
            &self.state,
            report.run,
            report.task,
            report.attempt,
            end,
            now(),
            sample,
        ) {
            if let Err(e) = self.decide(event) {
                tracing::error!(error = %e, "attempt end refused by the fold");
            }
        }
    }

    /// Tokens of running attempts matching `pred`.
    fn running_where(&self, pred: impl Fn(RunId, TaskIndex) -> bool) -> Vec<(u32, u64)> {
        self.running
            .iter()
            .filter(|((run, task), _)| pred(*run, *task))
            .map(|(_, r)| (r.slot, r.token))
            .collect()
    }

    fn command(
        &mut self,
        cmd: AdminCommand,
        stop_file: &std::path::Path,
    ) -> Result<(), ControlError> {
        if let AdminCommand::Approve { approver, .. } | AdminCommand::Reject { approver, .. } = &cmd
        {
            approver.check().map_err(ControlError::BadRequest)?;
        }
        let task_id =
            |s: &Self, run: RunId, t: &crate::model::TaskId| -> Result<TaskIndex, ControlError> {
                let r = s
                    .state
                    .run(run)
                    .ok_or_else(|| ControlError::NotFound(format!("no run {run}")))?;
                r.workflow()
                    .task_index(t.as_str())
                    .ok_or_else(|| ControlError::NotFound(format!("run {run} has no task `{t}`")))
            };
        match cmd {
            AdminCommand::Cancel(Target::Run(run)) => {
                self.decide(Event::RunCancelled { run })
                    .map_err(to_control_error)?;
                let r = self.state.run(run).expect("just applied");
                let kill =
                    self.running_where(|rr, t| rr == run && r.task(t).state != TaskState::Running);
                self.after_persist(Effect::Terminate(kill));
            }
            AdminCommand::Cancel(Target::Task(run, task)) => {
                let t = task_id(self, run, &task)?;
                self.decide(Event::TaskCancelled { run, task })
                    .map_err(to_control_error)?;
                let kill = self.running_where(|rr, tt| rr == run && tt == t);
                self.after_persist(Effect::Terminate(kill));
            }
            AdminCommand::Suspend(Target::Run(run)) => self
                .decide(Event::RunSuspended { run })
                .map_err(to_control_error)?,
            AdminCommand::Suspend(Target::Task(run, task)) => self
                .decide(Event::TaskSuspended { run, task })
                .map_err(to_control_error)?,
            AdminCommand::Resume(Target::Run(run)) => self
                .decide(Event::RunResumed { run })
                .map_err(to_control_error)?,
            AdminCommand::Resume(Target::Task(run, task)) => self
                .decide(Event::TaskResumed { run, task })
                .map_err(to_control_error)?,
            AdminCommand::Retry(Target::Task(run, task)) => {
                let t = task_id(self, run, &task)?;
                let r = self.state.run(run).expect("checked");
                let comp = r.task(t).compensation.as_deref().map(|c| c.state);
                let event = match (r.state(), comp) {
                    (_, Some(CompensationState::Succeeded)) => {
                        return Err(ControlError::Refused(format!(
                            "the compensation of `{task}` already succeeded; it never runs again"
                        )))
                    }
                    (RunState::CompensationFailed, Some(CompensationState::Failed)) => {
                        Event::CompensationRetried { run, task }
                    }
                    (RunState::CompensationFailed, other) => {
                        let what = other.map_or("none", CompensationState::as_str);
                        return Err(ControlError::Refused(format!(
                            "run {run} waits for a failed compensation; `{task}`'s compensation \
                             is {what}, and only a failed one can be retried"
                        )));
                    }
                    _ => Event::TaskRetried { run, task },
                };
                self.decide(event).map_err(to_control_error)?
            }
            AdminCommand::Retry(Target::Run(run)) => {
                let r = self
                    .state
                    .run(run)
                    .ok_or_else(|| ControlError::NotFound(format!("no run {run}")))?;
                if r.state() == RunState::CompensationFailed {
                    let failed: Vec<_> = r
                        .tasks()
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| {
                            t.compensation
                                .as_deref()
                                .is_some_and(|c| c.state == CompensationState::Failed)
                        })
                        .map(|(i, _)| r.workflow().task_id(i as TaskIndex).clone())
                        .collect();
                    for task in failed {
                        self.decide(Event::CompensationRetried { run, task })
                            .map_err(to_control_error)?;
                    }
                    return Ok(());
                }
                let wf = Arc::clone(r.workflow());
                let failed: Vec<TaskIndex> = wf
                    .plan()
                    .topological_order()
                    .iter()
                    .copied()
                    .filter(|&t| {
                        matches!(r.task(t).state, TaskState::Failed | TaskState::Cancelled)
                    })
                    .collect();
                let mut retried = 0;
                let mut last_err = None;
                for t in failed {
                    let task = wf.task_id(t).clone();
                    match self.decide(Event::TaskRetried { run, task }) {
                        Ok(()) => retried += 1,
                        Err(e) => last_err = Some(e),
                    }
                }
                if retried == 0 {
                    return Err(match last_err {
                        Some(e) => to_control_error(e),
                        None => ControlError::Refused(format!(
                            "run {run} has no failed or cancelled task to retry"
                        )),
                    });
                }
            }
            AdminCommand::Halt { kill } => {
                self.decide(Event::NodeHalted { kill })
                    .map_err(to_control_error)?;
                if kill {
                    let all = self.running_where(|_, _| true);
                    self.after_persist(Effect::Terminate(all));
                }
            }
            AdminCommand::Approve {
                run,
                task,
                approver,
            } => self
                .decide(Event::ApprovalGranted {
                    run,
                    task,
                    approver,
                })
                .map_err(to_control_error)?,
            AdminCommand::Reject {
                run,
                task,
                approver,
            } => self
                .decide(Event::ApprovalRejected {
                    run,
                    task,
                    approver,
                })
                .map_err(to_control_error)?,
            AdminCommand::Unhalt => {
                if stop_file.exists() {
                    return Err(ControlError::Refused(format!(
                        "{} exists; remove it first (it halts the node while present)",
                        stop_file.display()
                    )));
                }
                self.decide(Event::NodeUnhalted).map_err(to_control_error)?
            }
        }
        Ok(())
    }

    fn submit(
        &mut self,
        workflow: Workflow,
        rules: &[ApprovalRule],
    ) -> Result<(RunId, bool), ControlError> {
        // A decoded workflow has its structure checked but not every field: validate it
        // fully, as a file would be, before it can enter the journal. The node's approval
        // rules go into the spec first (so resubmitting the same file compares equal).
        let spec = apply_rules(workflow.spec().clone(), rules);
        let workflow = Workflow::from_spec(spec)
            .map_err(|e| ControlError::Refused(format!("invalid workflow: {e}")))?;
        if let Some(r) = self
            .state
            .runs()
            .find(|r| !r.state().is_finished() && **r.workflow() == workflow)
        {
            return Ok((r.id(), true));
        }
        let run = RunId::from_ulid(ulid::Ulid::new());
        self.decide(Event::RunSubmitted {
            run,
            workflow: Arc::new(workflow),
        })
        .map_err(to_control_error)?;
        Ok((run, false))
    }

    /// Schedules a `Tick` for the earliest retry timer, if not already scheduled earlier.
    fn arm(&mut self, myself: &ActorRef<SchedulerMsg>) {
        let first = self.timers.first().map(|&(at, _, _)| at);
        let Some(at) = first.into_iter().chain(self.sagas.next_timer()).min() else {
            return;
        };
        if self.armed.is_some_and(|a| a <= at) {
            return;
        }
        self.armed = Some(at);
        let wait = at.saturating_since(now()) + Duration::from_millis(1);
        myself.send_after(wait, || SchedulerMsg::Tick);
    }

    /// Moves due retries into the queue.
    fn due_timers(&mut self) {
        let t = now();
        if self.armed.is_some_and(|a| a <= t) {
            self.armed = None;
        }
        while let Some(&(at, run, task)) = self.timers.first() {
            if at > t {
                break;
            }
            self.timers.pop_first();
            self.enqueue(run, task);
        }
        self.sagas.due_timers(t);
    }

    /// Publishes the facts only the write side has: slots held, and the attempts the
    /// journal closed that still hold one (recomputed only when they may have changed).
    fn publish_facts(&mut self) {
        let facts = &self.shared.facts;
        facts.set_in_flight(self.running.len() as u32);
        if !self.lingering_dirty {
            return;
        }
        self.lingering_dirty = false;
        let list: Vec<Lingering> = self
            .running
            .iter()
            .filter(|((run, task), r)| {
                let Some(t) = self.state.run(*run).map(|x| x.task(*task)) else {
                    return true;
                };
                match r.kind {
                    AttemptKind::Forward => t.state != TaskState::Running,
                    AttemptKind::Compensation => t
                        .compensation
                        .as_deref()
                        .is_none_or(|c| c.state != CompensationState::Running),
                }
            })
            .map(|(&(run, task), r)| Lingering {
                run,
                task,
                kind: r.kind,
            })
            .collect();
        if list.len() != self.lingering || !list.is_empty() {
            self.lingering = list.len();
            facts.set_lingering(list);
        }
    }

    /// Recounts the task gauges from the state (at start: the registry outlives us).
    fn count_gauges(&mut self) {
        // An earlier incarnation's counts are stale: start from nothing.
        self.pool_metrics.clear();
        self.metrics.reset_task_gauges();
        let mut approvals = 0;
        let (cache, metrics) = (&mut self.pool_metrics, &self.metrics);
        for r in self.state.runs() {
            if r.state().is_finished() {
                continue;
            }
            approvals += i64::from(r.count(TaskState::AwaitingApproval));
            for (i, t) in r.tasks().iter().enumerate() {
                if !t.state.is_terminal() {
                    let pool = r.workflow().pool(i as TaskIndex).unwrap_or("");
                    pool_handles(cache, metrics, pool).add(t.state);
                }
            }
        }
        self.metrics.approvals_pending.set(approvals);
        self.metrics.running.set(self.running.len() as i64);
    }
}

pub use crate::read::views::{run_summary, run_view};

impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        _args: (),
    ) -> Result<SchedulerState, ActorProcessingErr> {
        let shared = &self.shared;
        let journal = shared
            .journal_ref()
            .ok_or("scheduler started without a journal")?;
        // Appends a previous incarnation left in flight are durable (or failed) before we
        // read: the empty append is acknowledged after everything queued ahead of it.
        journal.append(Vec::new()).await?;
        let replayed = crate::storage::replay(&shared.journal)?;
        let durable = replayed.state.last_seq();
        let replayed_snapshot = replayed.snapshot_seq;
        let n = shared.config.workers as usize;
        let mut s = SchedulerState {
            state: replayed.state,
            journal,
            outbox: Vec::new(),
            durable,
            effects: VecDeque::new(),
            queue: BinaryHeap::new(),
            parked: HashMap::new(),
            timers: BTreeSet::new(),
            sagas: SagaCoordinator::new(),
            gate: None,
            approval_changes: Vec::new(),
            approval_timeout: shared.config.approval_timeout,
            armed: None,
            running: HashMap::new(),
            run_load: HashMap::new(),
            pool_load: HashMap::new(),
            node_pools: shared.config.pools.clone(),
            node_pool_load: HashMap::new(),
            node_parked: HashMap::new(),
            workers: vec![None; n],
            busy: vec![None; n],
            free: Vec::with_capacity(n),
            next_token: 1,
            next_age: 0,
            stop_file: shared.stop_file().exists(),
            draining: false,
            drained: Vec::new(),
            abandon: false,
            finished: shared.finished_runs.clone(),
            flush_scheduled: false,
            frozen: false,
            snapshot_seq: replayed_snapshot.unwrap_or(0),
            snapshot_every: shared.config.snapshot_every,
            rollup: RollupDelta::default(),
            metrics: Arc::clone(&shared.metrics),
            pool_metrics: HashMap::new(),
            notices: Vec::new(),
            shared: Arc::clone(shared),
            lingering_dirty: false,
            lingering: 0,
        };
        s.count_gauges();
        // Rebuild the queue and timers from the replayed state.
        let waiting: Vec<(RunId, TaskIndex)> = s
            .state
            .runs()
            .filter(|r| r.state() == RunState::Running)
            .flat_map(|r| {
                r.tasks()
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| matches!(t.state, TaskState::Ready | TaskState::Retrying))
                    .map(move |(i, _)| (r.id(), i as TaskIndex))
            })
            .collect();
        for (run, task) in waiting {
            s.track(run, task);
        }
        // Close attempts a previous node (or incarnation) left running, after terminating
        // whatever is left of their process groups (all at once: each may take the grace
        // period).
        let interrupted: Vec<_> = running_attempts(&s.state)
            .into_iter()
            .map(|(run, task, attempt)| (run, task, attempt, AttemptKind::Forward))
            .chain(
                running_compensations(&s.state)
                    .into_iter()
                    .map(|(run, task, attempt)| (run, task, attempt, AttemptKind::Compensation)),
            )
            .collect();
        let mut orphans = tokio::task::JoinSet::new();
        for &(run, task, attempt, kind) in &interrupted {
            let r = s.state.run(run).expect("listed from state");
            let task_id = r.workflow().task_id(task).clone();
            let pid_path = shared
                .config
                .layout()
                .attempt_pid(run, &task_id, kind, attempt);
            let grace = shared.config.grace;
            orphans.spawn(async move {
                match crate::process::terminate_orphan(&pid_path, grace).await {
                    Ok(outcome) => {
                        tracing::info!(run_id = %run, task_id = %task_id, attempt, ?kind, ?outcome, "closing interrupted attempt")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, path = %pid_path.display(), "could not check an interrupted attempt's process")
                    }
                }
            });
        }
        while orphans.join_next().await.is_some() {}
        for (run, task, attempt, kind) in interrupted {
            let end = AttemptEnd::Failed {
                failure: Failure::Interrupted,
                retryable: true,
                usage: None,
            };
            let close = match kind {
                AttemptKind::Forward => attempt_end,
                AttemptKind::Compensation => compensation_end,
            };
            if let Some(event) = close(
                &s.state,
                run,
                task,
                attempt,
                end,
                now(),
                rand::random::<f64>(),
            ) {
                s.decide(event)?;
            }
        }
        s.sagas.touch_all(&s.state);
        if s.stop_file && !s.state.is_halted() {
            s.decide(Event::NodeHalted { kill: false })?;
        }
        // The gate starts after us and asks for the full list; changes before that are moot.
        s.approval_changes.clear();
        s.flush(&myself);
        s.due_timers();
        s.arm(&myself);
        myself.send_interval(STOP_FILE_POLL, || SchedulerMsg::Tick);
        shared.facts.set_stop_file(s.stop_file);
        shared.facts.set_draining(false);
        s.lingering_dirty = true;
        s.publish_facts();
        shared.facts.scheduler_started(s.state.last_seq(), now());
        tracing::info!(
            last_seq = s.state.last_seq(),
            runs = s.state.runs().count(),
            "scheduler started"
        );
        Ok(s)
    }

    async fn handle(
        &self,
        myself: ActorRef<SchedulerMsg>,
        message: SchedulerMsg,
        s: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        if s.frozen {
            if let SchedulerMsg::Request { reply, .. } = message {
                let _ = reply.send(Response::Error(ControlError::Internal(
                    "the journal failed; the node is restarting its actors".into(),
                )));
            }
            return Ok(());
        }
        match message {
            SchedulerMsg::Persisted(result) => match result {
                Ok(range) => {
                    if range.end > range.start {
                        s.durable = s.durable.max(range.end - 1);
                    }
                    s.run_effects(&myself);
                    s.maybe_snapshot();
                }
                Err(e) => {
                    // Our state is now ahead of the journal. The journal actor stops after any
                    // failed append, and its supervisor restarts it and, rest_for_one, us with
                    // it: until then decide nothing and act on nothing (failing here as well
                    // would race the journal's own failure to the supervisor).
                    tracing::error!(error = %e, "journal append failed; the scheduler waits for its restart");
                    s.frozen = true;
                    return Ok(());
                }
            },
            SchedulerMsg::AttemptEnded(report) => s.attempt_ended(report),
            SchedulerMsg::WorkerUp { slot, worker } => {
                let i = slot as usize;
                if i < s.workers.len() {
                    s.workers[i] = Some(worker);
                    if s.busy[i].is_none() && !s.free.contains(&slot) {
                        s.free.push(slot);
                    }
                }
            }
            SchedulerMsg::Tick => {
                let stop = self.shared.stop_file().exists();
                if stop && !s.state.is_halted() {
                    tracing::warn!(path = %self.shared.stop_file().display(), "STOP file found: halting");
                    s.decide(Event::NodeHalted { kill: false })?;
                }
                s.stop_file = stop;
                self.shared.facts.set_stop_file(stop);
                s.due_timers();
            }
            SchedulerMsg::Request { request, reply } => match request {
                Request::Submit(workflow) => {
                    let response = match s.submit(*workflow, &self.shared.config.approval_rules) {
                        Ok((run, attached)) => Response::Submitted { run, attached },
                        Err(e) => Response::Error(e),
                    };
                    s.reply(reply, response);
                }
                Request::Command(cmd) => {
                    let response = match s.command(cmd, &self.shared.stop_file()) {
                        Ok(()) => Response::Done,
                        Err(e) => Response::Error(e),
                    };
                    s.reply(reply, response);
                }
                Request::InjectPanic(actor) if actor == "scheduler" => {
                    panic!("test hook: scheduler panics")
                }
                Request::InjectPanic(actor) if actor == "worker" => {
                    let worker = s.workers.iter().flatten().next().cloned();
                    let response = match worker {
                        Some(w) => {
                            let _ = w.cast(WorkerMsg::Panic);
                            Response::Done
                        }
                        None => Response::Error(ControlError::Refused("no worker".into())),
                    };
                    s.reply(reply, response);
                }
                other => {
                    let _ = reply.send(Response::Error(ControlError::BadRequest(format!(
                        "the scheduler does not answer {other:?}"
                    ))));
                }
            },
            SchedulerMsg::Barrier(port) => s.after_persist(Effect::Ack(port)),
            SchedulerMsg::Drain(port) => {
                s.draining = true;
                self.shared.facts.set_draining(true);
                if s.running.is_empty() {
                    let _ = port.send(());
                } else {
                    s.drained.push(port);
                }
            }
            SchedulerMsg::AbandonRunning | SchedulerMsg::KillRunning => {
                s.abandon = true;
                let kill = matches!(message, SchedulerMsg::KillRunning);
                let all = s.running_where(|_, _| true);
                for (slot, token) in all {
                    if let Some(w) = &s.workers[slot as usize] {
                        let _ = w.cast(if kill {
                            WorkerMsg::Kill { token }
                        } else {
                            WorkerMsg::Terminate { token }
                        });
                    }
                }
            }
            SchedulerMsg::Flush => {
                s.flush_scheduled = false;
                s.flush(&myself);
                s.maybe_snapshot();
            }
            SchedulerMsg::ApprovalGateUp(gate) => {
                let _ = gate.cast(ApprovalMsg::Reset(s.pending_approvals()));
                s.gate = Some(gate);
            }
            SchedulerMsg::ExpireApproval {
                run,
                task,
                requested_at,
            } => s.expire_approval(run, task, requested_at),
            SchedulerMsg::Panic => panic!("test hook: scheduler panics"),
        }
        s.fill();
        s.flush_approval_changes();
        s.schedule_flush(&myself);
        s.arm(&myself);
        s.run_effects(&myself);
        s.publish_facts();
        Ok(())
    }
}

impl Drop for SchedulerState {
    /// Runs when the actor stops for any reason, a panic included: reads that need the
    /// write side's facts wait for the restart instead of trusting this incarnation's.
    fn drop(&mut self) {
        self.shared.facts.scheduler_stopped();
    }
}
