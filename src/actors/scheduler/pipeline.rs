//! The write pipeline: decide (the fold as validator) → apply → stage in the outbox → flush
//! to the journal as one append → effects once durable ("persist, then act").

use std::sync::Arc;

use ractor::{ActorRef, RpcReplyPort};

use super::*;
use crate::actors::approval::pending_approval;
use crate::messages::approval::ApprovalChange;
use crate::messages::control::Response;
use crate::messages::scheduler::SchedulerMsg;
use crate::model::rollup::{schedulable_since, Counts};
use crate::model::{
    ApplyError, Change, Event, EventRecord, RunId, RunState, TaskId, TaskState, Timestamp,
};

impl SchedulerState {
    /// Applies `event` (stamped now) and stages it for the journal; reacts to the
    /// transitions it caused. Refused events change nothing and are not journaled.
    pub(crate) fn decide(&mut self, event: Event) -> Result<(), ApplyError> {
        let record = EventRecord { time: now(), event };
        let seq = self.state.last_seq() + 1;
        let collect = self.shared.config.metrics;
        let runnable_since = match &record.event {
            Event::AttemptStarted { run, task, .. } if collect => self.runnable_since(*run, task),
            _ => None,
        };
        let mut changes = Vec::new();
        self.state.apply_with(seq, &record, &mut changes)?;
        let submitted = match &record.event {
            Event::RunSubmitted { run, .. } | Event::RunSpawned { run, .. } => Some(*run),
            _ => None,
        };
        self.shared.facts.decided(seq);
        if let Event::TaskOutput {
            run, task, output, ..
        } = &record.event
        {
            if task.split_instance().is_some()
                && self
                    .state
                    .run(*run)
                    .and_then(|r| r.workflow().task_index(task.as_str()))
                    .is_some_and(|t| {
                        self.state
                            .run(*run)
                            .is_some_and(|r| r.swarm_of(t).is_some())
                    })
            {
                self.replica_outputs
                    .insert((*run, task.clone()), output.clone());
            }
        }
        if let Event::AttemptUsage {
            run,
            task,
            counters,
            ..
        } = &record.event
        {
            if collect {
                self.rollup
                    .observe_usage(&self.state, *run, task, counters, record.time);
            }
            if self.state.run(*run).is_some_and(|r| r.lineage().is_some()) {
                self.agent_due.usage.push(*run);
                self.after_persist(Effect::BudgetUsed(counters.clone()));
            }
        }
        if let Event::RunSpawned { run, spawn, .. } = &record.event {
            if spawn.parent.is_some() {
                self.metrics.child_runs_active.inc();
            }
            self.watch_wall_clock(*run);
            if let Some((parent, _)) = &spawn.parent {
                if spawn.parent_authority.is_some() {
                    self.watch_wall_clock(*parent);
                }
            }
        }
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
        for &change in &changes {
            self.note_for_agents(&change);
            self.react(change);
        }
        // Hooks this trigger made due go into the same append, right after it.
        if submitted.is_some() || self.hooks.enabled() {
            self.queue_hooks(submitted, &changes);
        }
        Ok(())
    }

    /// When the task about to start became runnable: its retry's due time, or when its
    /// dependencies were met (`None` for approval-gated first attempts, whose wait includes
    /// a human's).
    pub(crate) fn runnable_since(&self, run: RunId, task: &TaskId) -> Option<Timestamp> {
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

    pub(crate) fn react(&mut self, change: Change) {
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
                if to.is_terminal() {
                    if let Some(s) = self.state.run(run).and_then(|r| r.swarm_of(task)) {
                        self.after_persist(Effect::Swarm(run, s));
                    }
                }
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
            Change::ExpansionDue { run, task } => {
                self.after_persist(Effect::Expand(run, task));
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

    /// Runs `effect` once everything decided so far is durable.
    pub(crate) fn after_persist(&mut self, effect: Effect) {
        if let Effect::Terminate(_) = effect {
            self.lingering_dirty = true;
        }
        self.effects.push_back((self.state.last_seq(), effect));
    }

    /// Makes sure the outbox goes to the journal after the messages already queued: sends
    /// `Flush` to ourselves once per group. If the mailbox takes no more messages (the actor
    /// is stopping), flushes at once.
    pub(crate) fn schedule_flush(&mut self, myself: &ActorRef<SchedulerMsg>) {
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
    pub(crate) fn flush(&mut self, myself: &ActorRef<SchedulerMsg>) {
        self.metrics.running.set(self.running.len() as i64);
        if !self.outbox.is_empty() {
            let records = std::mem::take(&mut self.outbox);
            let rollup = std::mem::take(&mut self.rollup);
            for ((_, pool), b) in &rollup.buckets {
                self.after_persist(Effect::Count(pool.clone(), Counts::of(b)));
                if !b.usage.is_empty() {
                    self.after_persist(Effect::Usage(pool.clone(), b.usage.clone()));
                }
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

    /// Answers `port` once everything decided so far is durable (after the approval gate
    /// heard of what it changed, so `approve` then `approvals` never shows a stale request).
    pub(crate) fn reply(&mut self, port: RpcReplyPort<Response>, response: Response) {
        self.flush_approval_changes();
        self.after_persist(Effect::Reply(port, response));
    }

    /// Stores a snapshot when enough events have passed since the last one. The clone is O(tasks of all runs); at the default of one
    /// snapshot per 1,000,000 events it costs well under 1% of the scheduler's time.
    pub(crate) fn maybe_snapshot(&mut self) {
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
}
