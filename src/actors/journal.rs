//! The journal actor: the one writer of the journal, with group commit.
//!
//! # Group commit
//! An `Append` is staged into the open `WriteBatch` at once (sequence numbers assigned), and
//! the first append of a batch makes the actor send itself `Commit`. Because a mailbox is
//! FIFO, that `Commit` is handled after every append that was already queued when it was
//! sent, so one commit (one write, one fsync under `sync`) acknowledges all of them. While a
//! commit's fsync runs, new appends queue up in the mailbox and form the next batch. The
//! actor runs on a thread of its own (a single-threaded tokio runtime), so it does the write
//! and fsync inline: no hand-off to a blocking pool, and no other actor waits behind it. Nothing waits on a timer: an append that arrives alone is committed
//! alone, at once. A batch that reaches the event or byte cap of [`JournalOptions`] is
//! committed immediately.
//!
//! # Restarts
//! State is only the writer and the callers waiting for a commit. If the actor dies, staged
//! events are dropped unacknowledged (their callers' reply ports close), and a restarted
//! actor takes a fresh writer that continues after the last durable event.
//!
//! # A failed write (disk full)
//! A failed commit (RocksDB refused the write, e.g. `ENOSPC`) does not stop the actor: that
//! would restart it, and everything after it, in a loop while the disk stays full. Instead
//! every caller of the batch gets the error, the writer [resets](JournalWriter::reset) to what
//! the journal really holds, and the journal is *fenced*: every later append is refused
//! until [`JournalMsg::Resume`]. The only appender, the scheduler, applied those events
//! before they were durable, so appends it sent after the failed one must not be written
//! either; a scheduler that re-read the journal (its recovery) resumes it. RocksDB refuses
//! writes after `ENOSPC` until its own recovery (its SstFileManager polls for free space)
//! succeeded; the health check's probe write shows when it has.

use std::ops::Range;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SpawnErr};
use tokio::task::JoinHandle;

use crate::messages::journal::{AckFn, AppendError, JournalMsg, JournalStats};
use crate::model::rollup::RollupDelta;
use crate::model::{EventRecord, Seq, State};
use crate::storage::feed::{CommittedBatch, Feed};
use crate::storage::{Journal, JournalOptions, JournalWriter};
use crate::telemetry::registry::Metrics;

/// The journal actor (stateless; see [`JournalActorState`]).
pub struct JournalActor;

/// Arguments to spawn a [`JournalActor`].
pub struct JournalArgs {
    /// The open journal to write.
    pub journal: Journal,
    /// Durability and batch caps.
    pub options: JournalOptions,
    /// Where commit latency and batch size are recorded (the node's registry).
    pub metrics: Option<Arc<Metrics>>,
    /// Where each committed batch is published (the node's read model listens).
    pub feed: Option<Feed>,
}

/// Whoever waits for a staged append: a reply port or a callback.
enum Ack {
    Port(RpcReplyPort<Result<Range<Seq>, AppendError>>),
    Then(AckFn),
}

impl Ack {
    fn send(self, result: Result<Range<Seq>, AppendError>) {
        match self {
            // A caller that gave up no longer listens; its records are durable anyway.
            Ack::Port(port) => {
                let _ = port.send(result);
            }
            Ack::Then(then) => then(result),
        }
    }
}

type Waiter = (Range<Seq>, Ack);

/// The actor's state.
pub struct JournalActorState {
    /// The journal's one writer.
    writer: JournalWriter,
    /// Callers whose records are staged, to be acknowledged by the next commit.
    waiting: Vec<Waiter>,
    /// A `Commit` message is in the mailbox.
    commit_scheduled: bool,
    /// Counters for `Stats`.
    stats: JournalStats,
    /// The node's registry, if any.
    metrics: Option<Arc<Metrics>>,
    /// The committed-event feed, if anyone listens.
    feed: Option<Feed>,
    /// The staged records, in sequence order, published to the feed once committed.
    staged: Vec<EventRecord>,
    /// Why appends are refused since a write failed (see the module docs), until `Resume`.
    fenced: Option<String>,
}

impl JournalActorState {
    /// Commits what is staged and acknowledges every waiting caller. Blocks the actor's
    /// thread for the write and fsync: the actor runs on a thread of its own (see
    /// [`JournalRef::spawn`]), and appends arriving meanwhile queue up as the next batch.
    ///
    /// A failed commit fails every waiting caller and fences the journal (see the module
    /// docs); it is an error only if the writer cannot even be reset.
    fn commit(&mut self) -> Result<(), ActorProcessingErr> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        let batch = self.waiting.len() as u64;
        let started = std::time::Instant::now();
        let first = self.writer.committed_seq() + 1;
        match self.writer.commit() {
            Ok(committed) => {
                let events: u64 = self.waiting.iter().map(|(r, _)| r.end - r.start).sum();
                if let Some(m) = &self.metrics {
                    m.journal_commit.observe(started.elapsed().as_secs_f64());
                    m.journal_batch.observe(events as f64);
                }
                self.stats.committed_seq = committed;
                self.stats.appends += batch;
                self.stats.events += events;
                self.stats.commits += 1;
                self.stats.max_batch_events = self.stats.max_batch_events.max(events);
                // Published before the acks, so whoever an ack wakes finds the batch on the
                // feed already (a read after a command sees the command's events).
                let records = std::mem::take(&mut self.staged);
                if let Some(feed) = &self.feed {
                    feed.publish(CommittedBatch { first, records });
                }
                for (range, ack) in self.waiting.drain(..) {
                    ack.send(Ok(range));
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, appends = batch, first_seq = first, "journal commit failed; appends are refused until the scheduler re-reads the journal");
                self.fail_all(e.to_string())
            }
        }
    }

    /// Fails every waiting caller with `message`, drops what is staged, resets the writer to
    /// what the journal holds and fences further appends.
    fn fail_all(&mut self, message: String) -> Result<(), ActorProcessingErr> {
        for (_, ack) in self.waiting.drain(..) {
            ack.send(Err(AppendError::Failed(message.clone())));
        }
        self.staged.clear();
        self.fenced = Some(message);
        self.writer.reset()?;
        self.stats.committed_seq = self.writer.committed_seq();
        Ok(())
    }
}

impl JournalActorState {
    /// Stages `records` for the next commit and makes sure a commit follows.
    fn append(
        &mut self,
        myself: &ActorRef<JournalMsg>,
        records: Vec<EventRecord>,
        rollup: Option<RollupDelta>,
        ack: Ack,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(why) = &self.fenced {
            ack.send(Err(AppendError::Failed(format!(
                "refused: an earlier write failed ({why}); the scheduler re-reads the journal before appending again"
            ))));
            return Ok(());
        }
        if records.is_empty() {
            if self.waiting.is_empty() {
                let next = self.writer.committed_seq() + 1;
                ack.send(Ok(next..next));
            } else {
                // Acked with the batch in front of it, so "acked" still means "all before
                // it is durable".
                let next = self.writer.committed_seq() + self.writer.staged_events() as Seq + 1;
                self.waiting.push((next..next, ack));
            }
            return Ok(());
        }
        match self.writer.stage(&records) {
            Ok(range) => {
                self.waiting.push((range, ack));
                if self.feed.is_some() {
                    self.staged.extend(records);
                }
                if let Some(r) = rollup {
                    self.writer.stage_rollup(r);
                }
            }
            Err(e) => {
                // The caller (the scheduler) predicted sequence numbers that now belong to
                // nobody; appends it already sent after this one assume this one. Fail the
                // whole batch and fence, as for a failed commit.
                tracing::error!(error = %e, "journal append refused; fencing the journal");
                ack.send(Err(AppendError::Failed(e.to_string())));
                return self.fail_all(e.to_string());
            }
        }
        if self.writer.batch_full() {
            self.commit()?;
        } else if !self.commit_scheduled {
            if myself.cast(JournalMsg::Commit).is_ok() {
                self.commit_scheduled = true;
            } else {
                // Draining (a graceful stop): the mailbox takes no new messages, not even
                // ours, so commit now rather than leave the batch behind.
                self.commit()?;
            }
        }
        Ok(())
    }
}

impl Actor for JournalActor {
    type Msg = JournalMsg;
    type State = JournalActorState;
    type Arguments = JournalArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: JournalArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let writer = args.journal.writer(&args.options)?;
        let stats = JournalStats {
            committed_seq: writer.committed_seq(),
            ..JournalStats::default()
        };
        tracing::debug!(path = %args.journal.path().display(), committed = stats.committed_seq, "journal actor started");
        Ok(JournalActorState {
            writer,
            waiting: Vec::new(),
            commit_scheduled: false,
            stats,
            metrics: args.metrics,
            feed: args.feed,
            staged: Vec::new(),
            fenced: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            JournalMsg::Append { records, reply } => {
                state.append(&myself, records, None, Ack::Port(reply))?
            }
            JournalMsg::AppendThen {
                records,
                rollup,
                then,
            } => {
                state.append(&myself, records, Some(rollup), Ack::Then(then))?;
            }
            JournalMsg::Probe { reply } => {
                let r = state
                    .writer
                    .probe()
                    .map_err(|e| AppendError::Failed(e.to_string()));
                let _ = reply.send(r);
            }
            JournalMsg::DropRollups { before, reply } => {
                let r = state
                    .writer
                    .drop_rollups_before(before)
                    .map_err(|e| AppendError::Failed(e.to_string()));
                let _ = reply.send(r);
            }
            JournalMsg::Purge { runs, upto, reply } => {
                state.commit()?;
                let r = state
                    .writer
                    .purge_runs(&runs, upto)
                    .map_err(|e| AppendError::Failed(e.to_string()));
                let _ = reply.send(r);
            }
            JournalMsg::Resume { reply } => {
                if let Some(why) = state.fenced.take() {
                    tracing::info!(previous = %why, committed = state.writer.committed_seq(), "journal appends resumed");
                }
                let _ = reply.send(state.writer.committed_seq());
            }
            JournalMsg::Commit => {
                state.commit_scheduled = false;
                state.commit()?;
            }

            JournalMsg::Snapshot {
                state: snapshot,
                reply,
            } => {
                // Anything staged goes first, so the snapshot is never ahead of the journal.
                state.commit()?;
                let result = state
                    .writer
                    .write_snapshot(&snapshot)
                    .map_err(|e| AppendError::Failed(e.to_string()));
                let _ = reply.send(result);
            }
            JournalMsg::Stats { reply } => {
                let _ = reply.send(state.stats);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Appends already staged were accepted into a batch: finish them rather than drop.
        state.commit()
    }
}

/// A typed handle on a running journal actor. Cheap to clone.
#[derive(Clone, Debug)]
pub struct JournalRef {
    actor: ActorRef<JournalMsg>,
}

fn unavailable<T>(e: ractor::MessagingErr<T>) -> AppendError {
    AppendError::Unavailable(e.to_string())
}

fn call_failed<T>(r: ractor::rpc::CallResult<T>) -> Result<T, AppendError> {
    match r {
        ractor::rpc::CallResult::Success(v) => Ok(v),
        ractor::rpc::CallResult::Timeout => Err(AppendError::Unavailable("timed out".into())),
        ractor::rpc::CallResult::SenderError => Err(AppendError::Unavailable(
            "the journal actor stopped before replying".into(),
        )),
    }
}

/// Runs `spawn` on a new OS thread with a single-threaded tokio runtime of its own, where the
/// journal actor may block on fsync without stalling other actors. The thread ends when the
/// actor stops; the returned handle completes then.
async fn spawn_on_own_thread<F, Fut>(spawn: F) -> Result<(JournalRef, JoinHandle<()>), SpawnErr>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(ActorRef<JournalMsg>, JoinHandle<()>), SpawnErr>>,
{
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let startup = |e: std::io::Error| SpawnErr::StartupFailed(Box::new(e));
    // Timers only: with no I/O driver the idle thread parks on a condvar, which wakes faster
    // than an epoll wait when an append arrives.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(startup)?;
    std::thread::Builder::new()
        .name("troupe-journal".into())
        .spawn(move || {
            runtime.block_on(async move {
                match spawn().await {
                    Ok((actor, handle)) => {
                        let _ = started_tx.send(Ok(actor));
                        let _ = handle.await;
                    }
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                    }
                }
            });
            let _ = done_tx.send(());
        })
        .map_err(startup)?;
    let actor = started_rx.await.map_err(|_| {
        SpawnErr::StartupFailed("the journal thread ended before the actor started".into())
    })??;
    let handle = tokio::spawn(async move {
        let _ = done_rx.await;
    });
    Ok((JournalRef { actor }, handle))
}

impl JournalRef {
    /// Spawns a journal actor on a thread of its own (unsupervised; the node links it under
    /// its supervisor with [`JournalRef::spawn_linked`]). Fails if the journal already has a
    /// writer. The returned handle completes when the actor has stopped.
    pub async fn spawn(
        journal: Journal,
        options: JournalOptions,
    ) -> Result<(JournalRef, JoinHandle<()>), SpawnErr> {
        spawn_on_own_thread(move || async move {
            Actor::spawn(
                None,
                JournalActor,
                JournalArgs {
                    journal,
                    options,
                    metrics: None,
                    feed: None,
                },
            )
            .await
        })
        .await
    }

    /// Spawns a journal actor on a thread of its own, linked to `supervisor`, recording
    /// commit latency and batch sizes in `metrics` and publishing committed batches to `feed`.
    pub async fn spawn_linked(
        journal: Journal,
        options: JournalOptions,
        metrics: Option<Arc<Metrics>>,
        feed: Option<Feed>,
        supervisor: ActorCell,
    ) -> Result<(JournalRef, JoinHandle<()>), SpawnErr> {
        spawn_on_own_thread(move || async move {
            Actor::spawn_linked(
                None,
                JournalActor,
                JournalArgs {
                    journal,
                    options,
                    metrics,
                    feed,
                },
                supervisor,
            )
            .await
        })
        .await
    }

    /// The underlying actor.
    pub fn actor(&self) -> &ActorRef<JournalMsg> {
        &self.actor
    }

    /// Appends `records` as one unit; returns their sequence numbers once durable.
    pub async fn append(&self, records: Vec<EventRecord>) -> Result<Range<Seq>, AppendError> {
        let r = self
            .actor
            .call(|reply| JournalMsg::Append { records, reply }, None)
            .await
            .map_err(unavailable)?;
        call_failed(r)?
    }

    /// Appends `records` as one unit and calls `then` with their sequence numbers once
    /// durable (or with why not), on the journal's thread, in commit order. If the actor is
    /// not running, `then` is called at once with `Unavailable`.
    /// `rollup` holds the records' rollup counts, stored in the same commit.
    pub fn append_then(&self, records: Vec<EventRecord>, rollup: RollupDelta, then: AckFn) {
        if let Err(e) = self.actor.cast(JournalMsg::AppendThen {
            records,
            rollup,
            then,
        }) {
            let message = e.to_string();
            if let ractor::MessagingErr::SendErr(JournalMsg::AppendThen { then, .. }) = e {
                then(Err(AppendError::Unavailable(message)));
            }
        }
    }

    /// Appends one record; returns its sequence number once durable.
    pub async fn append_one(&self, record: EventRecord) -> Result<Seq, AppendError> {
        self.append(vec![record]).await.map(|r| r.start)
    }

    /// Lifts the fence a failed write put up (module docs): the caller's state was re-read
    /// from the journal. Handled after every append already queued (so it also waits for
    /// those, as an empty append would). Returns the last durable sequence number.
    pub async fn resume(&self) -> Result<Seq, AppendError> {
        let r = self
            .actor
            .call(|reply| JournalMsg::Resume { reply }, None)
            .await
            .map_err(unavailable)?;
        call_failed(r)
    }

    /// Writes a probe key (is the journal writable?).
    pub async fn probe(&self) -> Result<(), AppendError> {
        let r = self
            .actor
            .call(|reply| JournalMsg::Probe { reply }, None)
            .await
            .map_err(unavailable)?;
        call_failed(r)?
    }

    /// Deletes rollup buckets of minutes before `before`; returns how many.
    pub async fn drop_rollups_before(&self, before: u64) -> Result<u64, AppendError> {
        let r = self
            .actor
            .call(|reply| JournalMsg::DropRollups { before, reply }, None)
            .await
            .map_err(unavailable)?;
        call_failed(r)?
    }

    /// Stores a snapshot of `state`.
    pub async fn snapshot(&self, state: Arc<State>) -> Result<Seq, AppendError> {
        let r = self
            .actor
            .call(|reply| JournalMsg::Snapshot { state, reply }, None)
            .await
            .map_err(unavailable)?;
        call_failed(r)?
    }

    /// The actor's counters.
    pub async fn stats(&self) -> Result<JournalStats, AppendError> {
        let r = self
            .actor
            .call(|reply| JournalMsg::Stats { reply }, None)
            .await
            .map_err(unavailable)?;
        call_failed(r)
    }

    /// Stops the actor gracefully: appends already in its mailbox are staged, committed and
    /// acknowledged first; appends sent after this call fail with `Unavailable`.
    pub async fn stop(self) {
        let _ = self.actor.drain_and_wait(None).await;
    }
}
